"""tf2_msgs/msg/TFMessage as scripts/build_tf2_msgs.sh builds it into the venv (no wheel exists).

It must be the Kilted type: the same RIHS01 type hash (as rosidl computed it in the build, as
the type support advertises it over DDS, and as rosbags computes it from its own Kilted and
Jazzy definitions), the same CDR bytes as rosbags, and usable by unchanged rclpy code on /tf
between two processes.
"""
from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from ros_helpers import domain_id, ros_env

# tf2_msgs/msg/TFMessage in Kilted (and Jazzy: geometry_msgs/TransformStamped did not change).
KILTED_TFMESSAGE_HASH = "RIHS01_e369d0f05a23ae52508854b66f6aa0437f3449d652e8cbf22d5abe85d020f087"
MSG_FILE = Path(__file__).resolve().parents[2] / "ros_ws" / "msg" / "tf2_msgs" / "TFMessage.msg"


def tfmessage_class() -> Any:
    try:
        from tf2_msgs.msg import TFMessage
    except ImportError as exc:  # pragma: no cover - a set-up fault, said plainly
        pytest.fail(f"tf2_msgs is not installed in this venv ({exc}): run `bash scripts/build_tf2_msgs.sh .venv`")
    return TFMessage


def two_transforms() -> Any:
    from geometry_msgs.msg import TransformStamped

    msg = tfmessage_class()()
    for i, (parent, child) in enumerate((("map", "odom"), ("odom", "base_link"))):
        t = TransformStamped()
        t.header.stamp.sec = 1700000000 + i
        t.header.stamp.nanosec = 250_000_000 * (i + 1)
        t.header.frame_id = parent
        t.child_frame_id = child
        t.transform.translation.x = 1.5 + i
        t.transform.translation.y = -2.25 * i
        t.transform.translation.z = 0.125
        t.transform.rotation.z = 0.6
        t.transform.rotation.w = 0.8
        msg.transforms.append(t)
    return msg


def installed_description() -> dict[str, Any]:
    """share/tf2_msgs/msg/TFMessage.json: rosidl_generator_type_description's output in the build."""
    path = Path(sys.prefix) / "share" / "tf2_msgs" / "msg" / "TFMessage.json"
    assert path.is_file(), f"{path} missing: tf2_msgs was not installed by scripts/build_tf2_msgs.sh"
    return json.loads(path.read_text())


def test_tfmessage_imports_with_its_type_support() -> None:
    from rosidl_generator_py import import_type_support

    TFMessage = tfmessage_class()
    import_type_support("tf2_msgs")  # raises if a generated library does not load
    TFMessage.__class__.__import_type_support__()
    assert TFMessage.__class__._TYPE_SUPPORT is not None
    assert TFMessage.get_fields_and_field_types() == {"transforms": "sequence<geometry_msgs/TransformStamped>"}


def test_two_transforms_round_trip_through_rclpy_serialization() -> None:
    from rclpy.serialization import deserialize_message, serialize_message

    msg = two_transforms()
    data = serialize_message(msg)
    back = deserialize_message(data, type(msg))
    assert back == msg
    assert [(t.header.frame_id, t.child_frame_id) for t in back.transforms] == [("map", "odom"), ("odom", "base_link")]
    assert back.transforms[1].header.stamp.nanosec == 500_000_000
    assert back.transforms[1].transform.translation.y == -2.25
    assert serialize_message(back) == data


def test_type_hash_is_kilteds() -> None:
    description = installed_description()
    hashes = {entry["type_name"]: entry["hash_string"] for entry in description["type_hashes"]}
    assert hashes["tf2_msgs/msg/TFMessage"].startswith("RIHS01_")
    assert hashes["tf2_msgs/msg/TFMessage"] == KILTED_TFMESSAGE_HASH
    # The nested types were described from the installed geometry_msgs wheel: same hashes as its own files.
    geometry = Path(sys.prefix) / "share" / "geometry_msgs" / "msg" / "TransformStamped.json"
    own = {e["type_name"]: e["hash_string"] for e in json.loads(geometry.read_text())["type_hashes"]}
    assert hashes["geometry_msgs/msg/TransformStamped"] == own["geometry_msgs/msg/TransformStamped"]
    # The definition built is the one in the repo.
    assert MSG_FILE.read_text().split() == ["geometry_msgs/TransformStamped[]", "transforms"]


def test_type_hash_matches_rosbags_kilted_and_jazzy_definitions() -> None:
    from rosbags.typesys import Stores, get_typestore

    for store in (Stores.ROS2_KILTED, Stores.ROS2_JAZZY):
        assert get_typestore(store).hash_rihs01("tf2_msgs/msg/TFMessage") == KILTED_TFMESSAGE_HASH, store


def test_cdr_bytes_are_interchangeable_with_rosbags() -> None:
    from rclpy.serialization import deserialize_message, serialize_message
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    msg = two_transforms()
    data = serialize_message(msg)
    decoded: Any = store.deserialize_cdr(data, "tf2_msgs/msg/TFMessage")
    assert [(t.header.frame_id, t.child_frame_id) for t in decoded.transforms] == [("map", "odom"), ("odom", "base_link")]
    assert decoded.transforms[0].header.stamp.sec == 1700000000
    assert decoded.transforms[1].transform.translation.x == 2.5
    assert decoded.transforms[1].transform.rotation.w == 0.8
    # And back: rosbags' bytes read in rclpy. (Same layout and length; byte equality is not asked
    # because Fast CDR leaves its alignment padding unwritten and rosbags writes zeros.)
    again = bytes(store.serialize_cdr(decoded, "tf2_msgs/msg/TFMessage"))
    assert len(again) == len(data)
    assert deserialize_message(again, type(msg)) == msg


PUBLISHER = textwrap.dedent(
    """
    import sys, time
    import rclpy
    from geometry_msgs.msg import TransformStamped
    from tf2_msgs.msg import TFMessage

    rclpy.init()
    node = rclpy.create_node("tf_test_publisher")
    pub = node.create_publisher(TFMessage, "/tf", 10)
    deadline = time.monotonic() + float(sys.argv[1])
    i = 0
    while time.monotonic() < deadline:
        msg = TFMessage()
        for child in ("odom", "base_link"):
            t = TransformStamped()
            t.header.stamp = node.get_clock().now().to_msg()
            t.header.frame_id = "map" if child == "odom" else "odom"
            t.child_frame_id = child
            t.transform.translation.x = float(i)
            t.transform.rotation.w = 1.0
            msg.transforms.append(t)
        pub.publish(msg)
        i += 1
        time.sleep(0.05)
    node.destroy_node()
    rclpy.shutdown()
    """
)


@pytest.mark.ros
def test_publish_subscribe_tf_between_two_processes(spawn: Any, ros_client: Any) -> None:
    TFMessage = tfmessage_class()
    domain = domain_id()
    publisher = spawn([sys.executable, "-c", PUBLISHER, "30"], ros_env(domain), "tf_publisher")
    client = ros_client(domain)
    received: list[Any] = []
    client.node.create_subscription(TFMessage, "/tf", received.append, 10)
    assert client.spin_until(lambda: len(received) >= 3, 20.0), (
        f"no TFMessage on /tf from the other process; its log:\n{publisher.output()}")
    msg = received[-1]
    assert isinstance(msg, TFMessage)
    assert [(t.header.frame_id, t.child_frame_id) for t in msg.transforms] == [("map", "odom"), ("odom", "base_link")]
    assert msg.transforms[0].transform.rotation.w == 1.0
    assert received[-1].transforms[0].transform.translation.x > received[0].transforms[0].transform.translation.x
    # What the other process's type support advertises over DDS is Kilted's hash.
    infos = client.node.get_publishers_info_by_topic("/tf")
    assert [i.topic_type for i in infos] == ["tf2_msgs/msg/TFMessage"]
    assert str(infos[0].topic_type_hash) == KILTED_TFMESSAGE_HASH
