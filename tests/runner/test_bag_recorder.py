"""BagRecorder writes MCAP rosbag2 bags that rosbags *and* rclpy read back intact."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from navkit.common import CameraImage, LaserScan, Odometry, Pose2D, VelocityCommand
from navkit.runner.bag_recorder import BagError, BagRecorder, bag_directory, read_bag, read_bag_raw

N = 300
DT = 0.02


def _odom(i: int) -> Odometry:
    return Odometry(stamp=i * DT, pose=Pose2D(0.01 * i, -0.02 * i, math.remainder(0.05 * i, 2 * math.pi)),
                    v=0.3 + 0.001 * i, omega=-0.2 + 0.001 * i)


def _scan(i: int) -> LaserScan:
    ranges = np.linspace(0.2, 5.0, 90) + 0.001 * i
    ranges[i % 90] = np.inf
    return LaserScan(stamp=i * DT + 0.001, angle_min=-math.pi, angle_increment=2 * math.pi / 90, range_min=0.1,
                     range_max=8.0, ranges=ranges)


def _cmd(i: int) -> VelocityCommand:
    return VelocityCommand(stamp=i * DT + 0.002, v=0.5 - 0.001 * i, omega=0.01 * i)


def _image(i: int) -> CameraImage:
    rgb = np.random.default_rng(i).integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    return CameraImage(stamp=i * DT + 0.003, rgb=rgb)


@pytest.fixture(scope="module")
def bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    requested = tmp_path_factory.mktemp("bags") / "run.mcap"
    with BagRecorder(requested, camera_every_n=3) as rec:
        for i in range(N):
            rec.write_odom(_odom(i))
            rec.write_scan(_scan(i))
            rec.write_cmd_vel(_cmd(i))
            rec.write_image(_image(i))
    return requested


def _stamp_s(header) -> float:
    return header.stamp.sec + header.stamp.nanosec * 1e-9


def test_layout_is_a_bag_directory_holding_a_named_mcap(bag: Path) -> None:
    directory = bag_directory(bag)
    assert directory == bag.with_suffix("")
    assert sorted(p.name for p in directory.iterdir()) == ["metadata.yaml", "run.mcap"]
    assert (directory / "run.mcap").read_bytes()[:5] == b"\x89MCAP"
    # All spellings of the bag read the same.
    counts = {k: len(v) for k, v in read_bag(bag).items()}
    assert counts == {k: len(v) for k, v in read_bag(directory).items()}
    assert counts == {k: len(v) for k, v in read_bag(directory / "run.mcap").items()}
    assert counts == {"/odom": N, "/scan": N, "/cmd_vel": N, "/camera/image_raw": N // 3}


def test_values_round_trip_through_rosbags(bag: Path) -> None:
    msgs = read_bag(bag)
    for i, m in enumerate(msgs["/odom"]):
        ref = _odom(i)
        assert _stamp_s(m.header) == pytest.approx(ref.stamp, abs=1e-9)
        assert (m.header.frame_id, m.child_frame_id) == ("odom", "base_link")
        p = m.pose.pose
        assert (p.position.x, p.position.y) == pytest.approx((ref.pose.x, ref.pose.y))
        assert 2 * math.atan2(p.orientation.z, p.orientation.w) == pytest.approx(ref.pose.yaw, abs=1e-12)
        assert (m.twist.twist.linear.x, m.twist.twist.angular.z) == pytest.approx((ref.v, ref.omega))
    for i, m in enumerate(msgs["/scan"]):
        ref = _scan(i)
        np.testing.assert_array_equal(m.ranges, ref.ranges.astype(np.float32))
        assert m.ranges.dtype == np.float32 and math.isinf(m.ranges[i % 90])
        assert m.angle_max == pytest.approx(ref.angle_min + 89 * ref.angle_increment)
        assert (m.header.frame_id, _stamp_s(m.header)) == ("base_scan", pytest.approx(ref.stamp, abs=1e-9))
    for i, m in enumerate(msgs["/cmd_vel"]):
        ref = _cmd(i)
        assert m.header.frame_id == "base_link"
        assert (m.twist.linear.x, m.twist.angular.z, _stamp_s(m.header)) == pytest.approx((ref.v, ref.omega, ref.stamp))
    for k, m in enumerate(msgs["/camera/image_raw"]):
        ref = _image(3 * k)  # camera_every_n=3 keeps calls 0, 3, 6, ...
        assert (m.height, m.width, m.encoding, m.step) == (6, 8, "rgb8", 24)
        assert bytes(m.data) == ref.rgb.tobytes()
        assert _stamp_s(m.header) == pytest.approx(ref.stamp, abs=1e-9)


def test_receive_time_equals_header_stamp(bag: Path) -> None:
    raw = read_bag_raw(bag)
    msgs = read_bag(bag)
    for topic, items in raw.items():
        for (t_ns, _), msg in zip(items, msgs[topic]):
            assert t_ns == msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def test_cdr_bytes_deserialize_with_rclpy(bag: Path) -> None:
    from geometry_msgs.msg import TwistStamped
    from nav_msgs.msg import Odometry as RosOdometry
    from rclpy import serialization
    from sensor_msgs.msg import Image, LaserScan as RosLaserScan

    raw = read_bag_raw(bag)
    i = 7
    odom = serialization.deserialize_message(raw["/odom"][i][1], RosOdometry)
    ref = _odom(i)
    assert (odom.header.stamp.sec, odom.header.stamp.nanosec) == divmod(round(ref.stamp * 1e9), 10**9)
    assert (odom.pose.pose.position.x, odom.twist.twist.angular.z) == pytest.approx((ref.pose.x, ref.omega))
    assert odom.child_frame_id == "base_link"

    scan = serialization.deserialize_message(raw["/scan"][i][1], RosLaserScan)
    np.testing.assert_array_equal(np.asarray(scan.ranges, dtype=np.float32), _scan(i).ranges.astype(np.float32))

    cmd = serialization.deserialize_message(raw["/cmd_vel"][i][1], TwistStamped)
    assert (cmd.twist.linear.x, cmd.twist.angular.z) == pytest.approx((_cmd(i).v, _cmd(i).omega))
    assert cmd.header.frame_id == "base_link"

    img = serialization.deserialize_message(raw["/camera/image_raw"][2][1], Image)
    assert (img.encoding, img.height, img.width) == ("rgb8", 6, 8)
    assert bytes(img.data) == _image(6).rgb.tobytes()


def test_refuses_to_overwrite_and_bad_images(tmp_path: Path) -> None:
    with BagRecorder(tmp_path / "a.mcap") as rec:
        with pytest.raises(BagError, match="/camera/image_raw"):
            rec.write_image(CameraImage(0.0, np.zeros((4, 4), np.uint8)))
    with pytest.raises(BagError, match="already exists"):
        BagRecorder(tmp_path / "a.mcap")
    with pytest.raises(ValueError):
        BagRecorder(tmp_path / "b.mcap", camera_every_n=0)
