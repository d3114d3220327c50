"""navkit's TF buffer (tf2_ros's role): chain lookups, interpolation, diagnostics, and /tf over DDS.

The buffer tests need no DDS; the two ``ros``-marked tests check the wire behaviour that
matters in a launch: a static transform published before a listener starts still reaches
it (transient local), and dynamic transforms flow on /tf.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from navkit.common.geometry import Pose2D, RigidTransform
from navkit.ros_ws.navkit_nodes.tf_tree import (TfBuffer, compose_transforms, invert_transform, slerp,
                                                 tf2_msgs_available, transform_from_msg, transform_msg)
from ros_helpers import RosClient, domain_id

NEEDS_TF2_MSGS = pytest.mark.skipif(not tf2_msgs_available(),
                                    reason="tf2_msgs is not installed (pip: ros-kilted-tf2-msgs): "
                                           "the TF listener and broadcasters cannot be built")


def planar(parent: str, child: str, x: float, y: float, yaw: float, z: float = 0.0) -> RigidTransform:
    return RigidTransform.planar(x, y, yaw, z=z, parent_frame=parent, child_frame=child)


def robot_tree(buffer: TfBuffer) -> None:
    """map -> odom (dynamic), odom -> base_link (dynamic), base_link -> base_scan (static)."""
    buffer.set_transform(planar("map", "odom", 1.0, 0.0, 0.0), 0.0)
    buffer.set_transform(planar("map", "odom", 1.0, 0.0, 0.0), 2.0)
    buffer.set_transform(planar("odom", "base_link", 0.0, 0.0, 0.0), 0.0)
    buffer.set_transform(planar("odom", "base_link", 2.0, 0.0, math.pi / 2), 2.0)
    buffer.set_transform(planar("base_link", "base_scan", 0.2, 0.0, 0.0, z=0.3), 0.0, static=True)


def assert_close(t: RigidTransform, translation: tuple[float, float, float], yaw: float) -> None:
    np.testing.assert_allclose(t.translation, translation, atol=1e-9)
    assert math.isclose(math.remainder(t.yaw - yaw, 2 * math.pi), 0.0, abs_tol=1e-9)


# ------------------------------------------------------------------ pure buffer


def test_chain_lookup_walks_map_odom_base_link_base_scan() -> None:
    buffer = TfBuffer()
    robot_tree(buffer)
    t = buffer.lookup("map", "base_scan", 2.0)
    assert t is not None and (t.parent_frame, t.child_frame) == ("map", "base_scan")
    # base_link at (3, 0) facing +y in map; the scanner 0.2 m ahead of it, 0.3 m up.
    assert_close(t, (3.0, 0.2, 0.3), math.pi / 2)
    np.testing.assert_allclose(t.apply([[1.0, 0.0, 0.0]]), [[3.0, 1.2, 0.3]], atol=1e-9)


def test_inverse_direction_is_the_inverse_transform() -> None:
    buffer = TfBuffer()
    robot_tree(buffer)
    forward, backward = buffer.lookup("map", "base_scan", 2.0), buffer.lookup("base_scan", "map", 2.0)
    assert forward is not None and backward is not None
    assert (backward.parent_frame, backward.child_frame) == ("base_scan", "map")
    point = np.array([[0.5, -0.25, 0.1]])
    np.testing.assert_allclose(backward.apply(forward.apply(point)), point, atol=1e-9)


def test_lookup_between_siblings_goes_through_the_common_parent() -> None:
    buffer = TfBuffer()
    buffer.set_transform(planar("base_link", "left_wheel", 0.0, 0.2, 0.0), 0.0, static=True)
    buffer.set_transform(planar("base_link", "right_wheel", 0.0, -0.2, 0.0), 0.0, static=True)
    t = buffer.lookup("left_wheel", "right_wheel")
    assert t is not None
    assert_close(t, (0.0, -0.4, 0.0), 0.0)


def test_interpolates_at_mid_time() -> None:
    buffer = TfBuffer()
    robot_tree(buffer)
    t = buffer.lookup("odom", "base_link", 1.0)
    assert t is not None
    assert_close(t, (1.0, 0.0, 0.0), math.pi / 4)  # halfway in translation and (slerp) in yaw
    quarter = buffer.lookup("odom", "base_link", 0.5)
    assert quarter is not None
    assert_close(quarter, (0.5, 0.0, 0.0), math.pi / 8)


def test_outside_history_is_none_with_a_reason_naming_the_edge() -> None:
    buffer = TfBuffer()
    robot_tree(buffer)
    assert buffer.lookup("map", "base_scan", 2.5) is None
    reason = buffer.why("map", "base_scan", 2.5)
    assert "map->odom" in reason or "odom->base_link" in reason, reason
    assert "2.5" in reason
    assert buffer.why("map", "base_scan", 2.0) == ""


def test_history_is_pruned_to_the_cache_time() -> None:
    buffer = TfBuffer(cache_time_s=1.0)
    for i in range(30):
        buffer.set_transform(planar("odom", "base_link", 0.1 * i, 0.0, 0.0), 0.1 * i)
    assert buffer.lookup("odom", "base_link", 2.9) is not None
    assert buffer.lookup("odom", "base_link", 1.5) is None
    assert "odom->base_link" in buffer.why("odom", "base_link", 1.5)


def test_unknown_and_disconnected_frames_are_none_with_reasons() -> None:
    buffer = TfBuffer()
    robot_tree(buffer)
    assert buffer.lookup("map", "camera_link") is None
    assert "camera_link" in buffer.why("map", "camera_link") and "unknown" in buffer.why("map", "camera_link")
    buffer.set_transform(planar("world", "charger", 0.0, 0.0, 0.0), 0.0, static=True)
    assert buffer.lookup("map", "charger") is None
    assert "not connected" in buffer.why("map", "charger")
    assert buffer.lookup("map", "/odom") is None and "leading slash" in buffer.why("map", "/odom")


def test_static_and_dynamic_mix_and_latest_common_time() -> None:
    buffer = TfBuffer()
    robot_tree(buffer)
    buffer.set_transform(planar("map", "odom", 1.0, 0.0, 0.0), 3.0)  # map->odom is now ahead of odom->base_link
    assert buffer.latest_common_time("map", "base_scan") == 2.0
    latest = buffer.lookup("map", "base_scan")  # stamp None: the latest time every edge knows
    assert latest is not None
    assert_close(latest, (3.0, 0.2, 0.3), math.pi / 2)
    # Static edges are valid at any time, including long before any dynamic data.
    assert buffer.lookup("base_link", "base_scan", -100.0) is not None
    assert buffer.latest_common_time("base_link", "base_scan") == 0.0
    assert buffer.latest_common_time("map", "nowhere") is None


def test_bad_transforms_are_refused_not_raised() -> None:
    buffer = TfBuffer()
    assert not buffer.set_transform(planar("odom", "odom", 0.0, 0.0, 0.0), 0.0)
    assert not buffer.set_transform(planar("", "base_link", 0.0, 0.0, 0.0), 0.0)
    assert not buffer.set_transform(planar("odom", "base_link", 0.0, 0.0, 0.0), math.nan)
    assert buffer.rejected == 3 and "base_link" in buffer.last_rejection
    assert buffer.frames() == set()


def test_a_new_parent_replaces_the_old_edge() -> None:
    buffer = TfBuffer()
    buffer.set_transform(planar("odom", "base_link", 1.0, 0.0, 0.0), 0.0)
    buffer.set_transform(planar("map", "base_link", 5.0, 0.0, 0.0), 1.0)
    assert buffer.parent_of("base_link") == "map" and buffer.reparented == 1
    assert buffer.lookup("odom", "base_link") is None


def test_rolled_lidar_maps_plus_y_to_minus_y() -> None:
    """A lidar mounted upside down (roll = π): a return at +y in the sensor is on the robot's right."""
    buffer = TfBuffer()
    roll = (math.sin(math.pi / 2), 0.0, 0.0, math.cos(math.pi / 2))
    buffer.set_transform(RigidTransform((0.1, 0.0, 0.4), roll, "base_link", "base_scan"), 0.0, static=True)
    t = buffer.lookup("base_link", "base_scan")
    assert t is not None
    np.testing.assert_allclose(t.apply([[0.0, 1.0, 0.0]]), [[0.1, -1.0, 0.4]], atol=1e-9)
    back = buffer.lookup("base_scan", "base_link")
    assert back is not None
    np.testing.assert_allclose(back.apply([[0.1, -1.0, 0.4]]), [[0.0, 1.0, 0.0]], atol=1e-9)


def test_slerp_takes_the_short_way_round() -> None:
    a = (0.0, 0.0, math.sin(0.5 * 3.0), math.cos(0.5 * 3.0))  # yaw 3.0
    b = (0.0, 0.0, -math.sin(0.5 * 3.0), math.cos(0.5 * 3.0))  # yaw -3.0, 0.28 rad away across ±π
    x, y, z, w = slerp(a, b, 0.5)
    assert math.isclose(abs(math.atan2(2 * w * z, 1 - 2 * z * z)), math.pi, abs_tol=1e-9)


def test_message_round_trip() -> None:
    tilted = RigidTransform((0.1, -0.2, 0.3), (0.1, 0.2, 0.3, 0.9), "base_link", "camera_link")
    stamp, back = transform_from_msg(transform_msg("base_link", "camera_link", 12.5, tilted))
    assert stamp == 12.5 and (back.parent_frame, back.child_frame) == ("base_link", "camera_link")
    np.testing.assert_allclose(back.matrix, tilted.matrix, atol=1e-9)
    stamp, pose = transform_from_msg(transform_msg("odom", "base_link", 3.0, Pose2D(1.0, 2.0, 0.5)))
    assert_close(pose, (1.0, 2.0, 0.0), 0.5)


finite = st.floats(-10.0, 10.0, allow_nan=False)
quaternions = st.tuples(*[st.floats(-1.0, 1.0, allow_nan=False)] * 4).filter(
    lambda q: sum(c * c for c in q) > 0.01)
transforms = st.tuples(st.tuples(finite, finite, finite), quaternions)


@settings(max_examples=100, deadline=None)
@given(edges=st.lists(transforms, min_size=1, max_size=4), split=st.integers(0, 4))
def test_lookup_there_and_back_is_identity(edges: list[tuple[tuple[float, float, float], tuple[float, ...]]],
                                           split: int) -> None:
    """Frames f0 <- f1 <- ... <- fn; for a and b anywhere on the chain, lookup(a, b) ∘ lookup(b, a) = identity."""
    buffer = TfBuffer()
    for i, (translation, rotation) in enumerate(edges):
        buffer.set_transform(RigidTransform(translation, rotation, f"f{i}", f"f{i + 1}"), 0.0, static=i % 2 == 0)
    a, b = "f0", f"f{min(split, len(edges))}"
    ab, ba = buffer.lookup(a, b, 0.0), buffer.lookup(b, a, 0.0)
    assert ab is not None and ba is not None
    both = compose_transforms(ab, ba)
    np.testing.assert_allclose(both.translation, (0.0, 0.0, 0.0), atol=1e-7)
    np.testing.assert_allclose(both.matrix, np.eye(3), atol=1e-7)
    np.testing.assert_allclose(compose_transforms(ab, invert_transform(ab)).matrix, np.eye(3), atol=1e-7)


# ------------------------------------------------------------------ over DDS


@pytest.mark.ros
@NEEDS_TF2_MSGS
def test_static_transform_sent_before_the_listener_starts_arrives(ros_client: Callable[[int], RosClient]) -> None:
    from navkit.ros_ws.navkit_nodes.tf_tree import StaticTfBroadcaster, TfListener

    domain = domain_id()
    sender = ros_client(domain)
    static = StaticTfBroadcaster(sender.node)
    static.send(transform_msg("base_link", "base_scan", 0.0, RigidTransform((0.2, 0.0, 0.3))))
    static.send(transform_msg("base_link", "camera_link", 0.0, RigidTransform((0.1, 0.0, 0.5))))
    sender.spin_for(0.5)  # the sample now sits in the publisher's transient-local history

    receiver = ros_client(domain)
    buffer = TfBuffer()
    TfListener(receiver.node, buffer)

    def both_known() -> bool:
        sender.executor.spin_once(timeout_sec=0.0)
        return buffer.can_transform("base_scan", "camera_link")

    assert receiver.spin_until(both_known, 10.0), buffer.why("base_scan", "camera_link")
    t = buffer.lookup("base_scan", "camera_link")
    assert t is not None
    np.testing.assert_allclose(t.translation, (-0.1, 0.0, 0.2), atol=1e-9)


@pytest.mark.ros
@NEEDS_TF2_MSGS
def test_dynamic_transforms_flow_on_tf(ros_client: Callable[[int], RosClient]) -> None:
    from navkit.ros_ws.navkit_nodes.tf_tree import TfBroadcaster, TfListener

    domain = domain_id()
    receiver = ros_client(domain)
    buffer = TfBuffer()
    listener = TfListener(receiver.node, buffer)
    sender = ros_client(domain)
    broadcaster = TfBroadcaster(sender.node)
    stamp = 100.0

    def sent_and_received() -> bool:
        nonlocal stamp
        stamp += 0.05
        broadcaster.send([transform_msg("odom", "base_link", stamp, Pose2D(stamp - 100.0, 0.0, 0.0))])
        return listener.received >= 3

    assert receiver.spin_until(sent_and_received, 10.0), "no /tf message reached the listener"
    latest = buffer.latest_common_time("odom", "base_link")
    assert latest is not None and latest > 100.0
    t = buffer.lookup("odom", "base_link")
    assert t is not None and math.isclose(t.translation[0], latest - 100.0, abs_tol=1e-6)
    assert listener.rejected == 0
