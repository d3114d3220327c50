"""The controller node fed by ``camera/image_raw`` and a latched ``goal_image`` (a goal-image controller's inputs).

``image_from_msg`` is checked on its own; then the real ControllerNode runs in this process
(default rclpy context on a domain of its own, loopback only) with a stub ``local_controller``
registered under a name of its own and chosen by parameter, exactly as a parameter file would
choose ``world_model_mpc``; the stub records what the node hands it.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")

from geometry_msgs.msg import TwistStamped  # noqa: E402
from nav_msgs.msg import Odometry as OdometryMsg  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from rclpy.signals import SignalHandlerOptions  # noqa: E402
from sensor_msgs.msg import Image as ImageMsg  # noqa: E402

from navkit.common.geometry import Pose2D  # noqa: E402
from navkit.common.observation import ControlTarget, Observation  # noqa: E402
from navkit.common.plugins import Plugin  # noqa: E402
from navkit.common.sensor_data import CameraImage, Odometry, VelocityCommand  # noqa: E402
from navkit.common.observation import FRONT_CAMERA  # noqa: E402
from navkit.ros_ws.navkit_nodes import controller_node  # noqa: E402
from navkit.ros_ws.navkit_nodes.controller_node import GOAL_IMAGE_QOS, IMAGE_TIMEOUT_S  # noqa: E402
from navkit.ros_ws.navkit_nodes.conversions import (from_time, image_from_msg, image_to_msg,  # noqa: E402
                                                    odometry_to_msg)
from navkit.stack.plugin_catalog import default_registry  # noqa: E402
from ros_helpers import domain_id  # noqa: E402

pytestmark = pytest.mark.ros

RNG = np.random.default_rng(7)


def random_rgb(h: int, w: int) -> np.ndarray:
    return RNG.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def raw_msg(pixels: np.ndarray, encoding: str, pad: int = 0) -> ImageMsg:
    """An Image message of ``pixels`` (H, W, C) with ``pad`` junk bytes at the end of every row."""
    h, w = pixels.shape[:2]
    rows = pixels.reshape(h, -1)
    padded = np.concatenate([rows, np.full((h, pad), 0xAB, dtype=np.uint8)], axis=1)
    msg = ImageMsg()
    msg.height, msg.width, msg.encoding = h, w, encoding
    msg.step = padded.shape[1]
    msg.data = padded.tobytes()
    return msg


# ------------------------------------------------------------------ image_from_msg


def test_rgb8_round_trips_image_to_msg() -> None:
    rgb = random_rgb(5, 7)
    back = image_from_msg(image_to_msg(CameraImage(12.25, rgb, frame_id="cam"), stamp=3.5))
    assert back.rgb.dtype == np.uint8 and back.rgb.shape == (5, 7, 3) and back.rgb.flags.c_contiguous
    np.testing.assert_array_equal(back.rgb, rgb)
    assert back.stamp == pytest.approx(3.5) and back.frame_id == "cam"


@pytest.mark.parametrize("encoding, make", [
    ("rgb8", lambda rgb: rgb),
    ("bgr8", lambda rgb: rgb[..., ::-1]),
    ("rgba8", lambda rgb: np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 9, np.uint8)], axis=2)),
    ("bgra8", lambda rgb: np.concatenate([rgb[..., ::-1], np.full(rgb.shape[:2] + (1,), 9, np.uint8)], axis=2)),
])
@pytest.mark.parametrize("pad", [0, 3])
def test_colour_encodings_with_padded_rows_become_rgb(encoding: str, make: Callable[[np.ndarray], np.ndarray],
                                                       pad: int) -> None:
    rgb = random_rgb(4, 6)
    np.testing.assert_array_equal(image_from_msg(raw_msg(make(rgb), encoding, pad)).rgb, rgb)


@pytest.mark.parametrize("pad", [0, 2])
def test_mono8_is_replicated_into_three_channels(pad: int) -> None:
    grey = RNG.integers(0, 256, size=(3, 5, 1), dtype=np.uint8)
    rgb = image_from_msg(raw_msg(grey, "mono8", pad)).rgb
    assert rgb.shape == (3, 5, 3)
    for c in range(3):
        np.testing.assert_array_equal(rgb[..., c], grey[..., 0])


def test_big_endian_flag_is_irrelevant_for_8_bit_data() -> None:
    rgb = random_rgb(2, 3)
    msg = raw_msg(rgb, "rgb8")
    msg.is_bigendian = 1
    np.testing.assert_array_equal(image_from_msg(msg).rgb, rgb)


def malformed() -> dict[str, ImageMsg]:
    cases = {}
    msg = raw_msg(random_rgb(4, 4), "rgb8")
    msg.data = msg.data[:-1]
    cases["data"] = msg  # one byte short
    msg = raw_msg(random_rgb(4, 4), "rgb8", pad=2)
    msg.step = 12  # padded rows read as unpadded: the length no longer matches
    cases["data "] = msg
    msg = raw_msg(random_rgb(4, 4), "rgb8")
    msg.step = 5  # shorter than a row
    cases["step"] = msg
    cases["height/width"] = ImageMsg(height=0, width=4, encoding="rgb8", step=12)
    cases["encoding"] = raw_msg(random_rgb(4, 4), "yuv422")
    return cases


@pytest.mark.parametrize("field", list(malformed()))
def test_malformed_images_are_a_value_error_naming_the_field(field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field.strip()}: "):
        image_from_msg(malformed()[field])


# ------------------------------------------------------------------ the node with a stub controller

STUB_COMMAND = (0.31, -0.27)


@dataclass(frozen=True)
class StubConfig:
    v: float = STUB_COMMAND[0]
    """Forward speed it commands, whatever it sees."""


class StubController:
    """A LocalController that records every (observation, target) and commands a fixed (v, ω)."""

    def __init__(self, config: StubConfig) -> None:
        self.config = config
        self.calls: list[tuple[Observation, ControlTarget]] = []
        self.resets = 0

    def reset(self) -> None:
        self.resets += 1

    def compute(self, observation: Observation, target: ControlTarget) -> VelocityCommand:
        self.calls.append((observation, target))
        return VelocityCommand(observation.stamp, self.config.v, STUB_COMMAND[1])


class Graph:
    """The default rclpy context (ManagedNode uses it) on a fresh domain, with a client node; spun by hand."""

    def __init__(self, args: list[str]) -> None:
        rclpy.init(args=args, domain_id=domain_id(), signal_handler_options=SignalHandlerOptions.NO)
        self.executor = SingleThreadedExecutor()
        self.nodes: list[Any] = []
        self.client = self.add(rclpy.create_node("goal_image_test_client"))

    def add(self, node: Any) -> Any:
        self.executor.add_node(node)
        self.nodes.append(node)
        return node

    def now(self) -> float:
        return from_time(self.client.get_clock().now().to_msg())

    def spin_until(self, condition: Callable[[], bool], timeout_s: float, every: Callable[[], None] | None = None,
                   every_s: float = 0.05) -> bool:
        deadline = time.monotonic() + timeout_s
        next_call = 0.0
        while time.monotonic() < deadline:
            if every is not None and time.monotonic() >= next_call:
                every()
                next_call = time.monotonic() + every_s
            if condition():
                return True
            self.executor.spin_once(timeout_sec=0.01)  # a callback that raised would raise here
        return condition()

    def close(self) -> None:
        for node in self.nodes:  # out of the executor before destroying (see ros_helpers.RosClient)
            self.executor.remove_node(node)
            node.destroy_node()
        self.executor.shutdown()
        rclpy.try_shutdown()


def statuses(node: Any) -> dict[str, Any]:
    """The node's diagnostic statuses now, by check name."""
    return {s.name.split(": ", 1)[1]: s for s in node.diagnostics.collect().status}


@pytest.fixture()
def graph(monkeypatch: pytest.MonkeyPatch) -> Iterator[Graph]:
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

    def registry() -> Any:
        reg = default_registry(entry_points=False)
        reg.register(Plugin("local_controller", "goal_stub", StubController, StubConfig, "records its inputs"))
        return reg

    monkeypatch.setattr(controller_node, "default_registry", registry)
    g = Graph(["--ros-args", "-p", "local_controller.plugin:=goal_stub", "-p", "rate_hz:=50.0"])
    yield g
    g.close()


def test_camera_and_latched_goal_image_reach_the_controller_and_its_command_is_published(graph: Graph) -> None:
    client = graph.client
    goal_pub = client.create_publisher(ImageMsg, "goal_image", GOAL_IMAGE_QOS)
    camera_pub = client.create_publisher(ImageMsg, "camera/image_raw", qos_profile_sensor_data)
    odom_pub = client.create_publisher(OdometryMsg, "odom", qos_profile_sensor_data)
    commands: list[TwistStamped] = []
    client.create_subscription(TwistStamped, "cmd_vel_nav", commands.append, 10)

    goal = random_rgb(24, 32)
    goal_pub.publish(image_to_msg(CameraImage(graph.now(), goal)))  # before the controller node exists

    node = graph.add(controller_node.ControllerNode())
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    stub = node.controller
    assert isinstance(stub, StubController)
    assert graph.spin_until(lambda: node.goal_image is not None, 10.0), "the latched goal image never arrived"
    resets_after_goal = stub.resets
    assert resets_after_goal >= 1  # a new goal image resets the controller
    assert statuses(node)["input /camera/image_raw"].level == b"\x01"  # a goal image, and no camera yet
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    assert stub.resets == resets_after_goal + 1  # activation starts afresh: no plan from before resumes
    resets_after_goal = stub.resets

    frame = random_rgb(24, 32)

    def publish_sensors(image: np.ndarray = frame, age_s: float = 0.0) -> None:
        now = graph.now()
        odom_pub.publish(odometry_to_msg(Odometry(now, Pose2D(1.0, 2.0, 0.3), 0.0, 0.0)))
        camera_pub.publish(image_to_msg(CameraImage(now - age_s, image)))

    def with_camera() -> list[tuple[Observation, ControlTarget]]:
        return [c for c in stub.calls if c[0].camera(FRONT_CAMERA) is not None]

    # (b) the controller sees the published camera image and the goal image, with no plan at all
    assert graph.spin_until(lambda: len(with_camera()) >= 3, 10.0, publish_sensors), "no observation with a camera"
    observation, target = with_camera()[-1]
    np.testing.assert_array_equal(observation.camera(FRONT_CAMERA).rgb, frame)
    assert observation.odom is not None and observation.odom.pose.x == pytest.approx(1.0)
    assert target.goal_image is not None
    np.testing.assert_array_equal(target.goal_image, goal)
    assert target.path is None and target.goal is None
    assert stub.resets == resets_after_goal  # sensors alone do not reset it
    assert node.last_reason == "tracking"
    control = statuses(node)["control"]
    values = {kv.key: kv.value for kv in control.values}
    assert values["has_goal_image"] == "True" and values["has_path"] == "False"
    assert values["has_fresh_camera_image"] == "True"

    # (d) what the node publishes is the stub's command
    assert graph.spin_until(lambda: any(c.twist.linear.x == pytest.approx(STUB_COMMAND[0]) for c in commands),
                            10.0, publish_sensors), "the stub's command never reached cmd_vel_nav"
    sent = next(c for c in commands if c.twist.linear.x == pytest.approx(STUB_COMMAND[0]))
    assert sent.twist.angular.z == pytest.approx(STUB_COMMAND[1])

    # (c) a stale camera image is left out of the observation (odometry stays fresh)
    stale = random_rgb(24, 32)
    stale_age = IMAGE_TIMEOUT_S + 3.0

    def stale_arrived() -> bool:
        return node.image is not None and np.array_equal(node.image.rgb, stale)

    assert graph.spin_until(stale_arrived, 10.0, lambda: publish_sensors(stale, stale_age)), "stale image never arrived"
    stub.calls.clear()
    assert graph.spin_until(lambda: len(stub.calls) >= 5, 10.0, lambda: publish_sensors(stale, stale_age))
    assert all(obs.camera(FRONT_CAMERA) is None and obs.odom is not None for obs, _ in stub.calls)
    assert all(t.goal_image is not None for _, t in stub.calls)  # the goal stays
    assert node.last_reason.startswith("goal image but no fresh camera image")

    # malformed images never raise out of a callback (spin_once would re-raise): a warning + the diagnostic
    bad = malformed()
    before = node.rejected_images
    for msg in bad.values():
        camera_pub.publish(msg)
    assert graph.spin_until(lambda: node.rejected_images >= before + len(bad), 10.0)
    status = statuses(node)["images"]
    assert status.level == b"\x01" and status.message.startswith("camera/image_raw: ")
    assert {kv.key: kv.value for kv in status.values}["rejected_images"] == str(node.rejected_images)
    assert graph.spin_until(lambda: "camera/image_raw" not in node.image_errors, 10.0, publish_sensors)

    # a new goal image resets the controller; an unreadable one clears the goal (stop, not the old goal)
    resets = stub.resets
    goal_pub.publish(bad["encoding"])
    assert graph.spin_until(lambda: node.goal_image is None, 10.0, publish_sensors)
    assert stub.resets > resets
    status = statuses(node)["images"]
    assert status.level == b"\x01" and "goal_image: encoding: " in status.message
    # Nothing to drive to: the node sends zero itself and does not ask the controller (this stub would drive on).
    stub.calls.clear()
    seen = len(commands)
    assert graph.spin_until(lambda: len(commands) >= seen + 5, 10.0, publish_sensors)
    assert all(c.twist.linear.x == 0.0 and c.twist.angular.z == 0.0 for c in commands[seen + 1:])
    assert stub.calls == []
    assert node.last_reason == "no path or goal image: commanding zero"
    # without a goal image a silent camera is no warning (a robot without a camera is fine)
    graph.spin_until(lambda: False, 1.3, lambda: odom_pub.publish(odometry_to_msg(
        Odometry(graph.now(), Pose2D(1.0, 2.0, 0.3), 0.0, 0.0))))
    camera_status = statuses(node)["input /camera/image_raw"]
    assert camera_status.level == b"\x00" and "not needed without a goal image" in camera_status.message

    new_goal = random_rgb(24, 32)
    goal_pub.publish(image_to_msg(CameraImage(graph.now(), new_goal)))
    assert graph.spin_until(lambda: node.goal_image is not None, 10.0, publish_sensors)
    np.testing.assert_array_equal(node.goal_image, new_goal)
    assert "goal_image" not in node.image_errors

    assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
    assert graph.spin_until(lambda: commands[-1].twist.linear.x == 0.0, 5.0)
