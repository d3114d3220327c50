"""``navkit record`` (navkit.ros_ws.live_recorder) against a live graph on an isolated domain.

The publishers live in the test process (one rclpy client node) with the three QoS a
recorder must get right: a best-effort scan (SensorDataQoS), a reliable cmd_vel and a
latched (transient-local) map published once *before* the recorder starts. The recorder
runs as a subprocess and is stopped with SIGINT, as a user stops it with Ctrl-C.
"""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from ros_helpers import Proc, RosClient, domain_id, ros_env

pytestmark = pytest.mark.ros

RECORDER = [sys.executable, "-m", "navkit.ros_ws.live_recorder"]
N_RAYS = 16
MAP_DATA = [0, 100, -1, 50, 0, 0, 100, 100, -1, -1, 0, 7]


class Publishers:
    """scan (best effort), cmd_vel (reliable), map (transient local, sent once) on one client node."""

    def __init__(self, client: RosClient) -> None:
        from geometry_msgs.msg import TwistStamped
        from nav_msgs.msg import OccupancyGrid
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
        from sensor_msgs.msg import LaserScan

        self.client = client
        node = client.node
        self.scan_pub = node.create_publisher(LaserScan, "scan", qos_profile_sensor_data)
        self.cmd_pub = node.create_publisher(TwistStamped, "cmd_vel", QoSProfile(depth=10))
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.map_pub = node.create_publisher(OccupancyGrid, "map", latched)
        grid = OccupancyGrid()
        grid.header.frame_id = "map"
        grid.header.stamp = client.now().to_msg()
        grid.info.resolution = 0.25
        grid.info.width, grid.info.height = 4, 3
        grid.data = MAP_DATA
        self.map_pub.publish(grid)
        self.sent = 0

    def publish(self) -> None:
        """One scan and one command carrying the index ``i`` (scan_time = i, ranges 1 + i/100, v = i/100)."""
        from geometry_msgs.msg import TwistStamped
        from sensor_msgs.msg import LaserScan

        i = self.sent
        scan = LaserScan()
        scan.header.stamp = self.client.now().to_msg()
        scan.header.frame_id = "base_scan"
        scan.angle_min, scan.angle_increment, scan.angle_max = -1.0, 0.1, -1.0 + 0.1 * (N_RAYS - 1)
        scan.range_min, scan.range_max = 0.05, 10.0
        scan.scan_time = float(i)
        scan.ranges = [1.0 + i / 100.0] * N_RAYS
        self.scan_pub.publish(scan)
        cmd = TwistStamped()
        cmd.header.stamp = scan.header.stamp
        cmd.header.frame_id = "base_link"
        cmd.twist.linear.x = i / 100.0
        cmd.twist.angular.z = -i / 100.0
        self.cmd_pub.publish(cmd)
        self.sent += 1

    def run_until(self, done: Callable[[], bool], timeout_s: float, period_s: float = 0.05) -> bool:
        """Publish every ``period_s`` while spinning, until ``done()`` or the timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if done():
                return True
            self.publish()
            self.client.spin_for(period_s)
        return done()


def start_recorder(spawn: Callable[[list[str], dict[str, str], str], Proc], domain: int, *args: str) -> Proc:
    return spawn([*RECORDER, *args, "--progress-period", "1"], ros_env(domain), "recorder")


def subscribed(proc: Proc, *topics: str) -> Callable[[], bool]:
    return lambda: all(f"subscribed {t} " in proc.output() for t in topics)


def read_bag(bag: Path) -> tuple[dict[str, Any], dict[str, list[tuple[int, Any]]], dict[str, Any]]:
    """(connections by topic, messages by topic as (log time, deserialized), metadata.yaml)."""
    from rosbags.rosbag2 import Reader
    from rosbags.typesys import Stores, get_typestore

    typestore = get_typestore(Stores.ROS2_KILTED)
    messages: dict[str, list[tuple[int, Any]]] = {}
    with Reader(bag) as reader:
        connections = {c.topic: c for c in reader.connections}
        for conn, timestamp, raw in reader.messages():
            messages.setdefault(conn.topic, []).append((timestamp, typestore.deserialize_cdr(raw, conn.msgtype)))
    meta = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    return connections, messages, meta


def test_records_every_topic_with_matching_qos(tmp_path: Path, spawn: Any, ros_client: Any) -> None:
    from rosbags.interfaces import QosDurability, QosReliability

    from navkit.ros_ws.live_recorder import ros_distro

    domain = domain_id()
    client = ros_client(domain)
    pubs = Publishers(client)
    t0 = time.time_ns()
    out = tmp_path / "run.mcap"
    rec = start_recorder(spawn, domain, str(out))
    assert pubs.run_until(subscribed(rec, "/scan", "/cmd_vel", "/map"), 20.0), rec.output()
    pubs.run_until(lambda: False, 1.0)
    client.spin_for(0.3)  # let the last messages arrive before stopping
    rec.proc.send_signal(signal.SIGINT)
    assert rec.proc.wait(timeout=15) == 0, rec.output()
    t1 = time.time_ns()
    log = rec.output()
    assert "/scan" in log and "messages on" in log  # the per-topic summary and total

    bag = tmp_path / "run"
    assert (bag / "run.mcap").is_file()
    connections, messages, meta = read_bag(bag)
    assert {"/scan", "/cmd_vel", "/map"} <= set(messages), sorted(messages)
    assert connections["/scan"].msgtype == "sensor_msgs/msg/LaserScan"
    assert connections["/map"].msgtype == "nav_msgs/msg/OccupancyGrid"

    # Counts: the latched map exactly once; the streams some of what was sent (not all: the
    # first ones went out before the subscriptions existed), each message once, in order.
    assert len(messages["/map"]) == 1
    scan_ids = [int(scan.scan_time) for _, scan in messages["/scan"]]
    cmd_ids = [round(cmd.twist.linear.x * 100) for _, cmd in messages["/cmd_vel"]]
    for ids in (scan_ids, cmd_ids):
        assert 0 < len(ids) <= pubs.sent and ids == sorted(set(ids)), ids

    # Data: the bytes are what was published.
    for _, scan in messages["/scan"]:
        i = int(scan.scan_time)
        assert scan.header.frame_id == "base_scan"
        assert list(scan.ranges) == pytest.approx([1.0 + i / 100.0] * N_RAYS, abs=1e-6)
    for _, cmd in messages["/cmd_vel"]:
        assert cmd.twist.angular.z == pytest.approx(-cmd.twist.linear.x)
    (_, grid), = messages["/map"]
    assert (grid.info.width, grid.info.height, grid.info.resolution) == (4, 3, 0.25)
    assert list(grid.data) == MAP_DATA
    # Log times are receive times in wall-clock nanoseconds.
    for topic in ("/scan", "/cmd_vel", "/map"):
        assert all(t0 <= stamp <= t1 for stamp, _ in messages[topic]), topic

    # QoS: what the publishers offered, in the connection and in metadata.yaml.
    assert connections["/scan"].ext.offered_qos_profiles[0].reliability == QosReliability.BEST_EFFORT
    assert connections["/cmd_vel"].ext.offered_qos_profiles[0].reliability == QosReliability.RELIABLE
    assert connections["/map"].ext.offered_qos_profiles[0].durability == QosDurability.TRANSIENT_LOCAL
    topics = {t["topic_metadata"]["name"]: t for t in meta["topics_with_message_count"]}
    assert topics["/scan"]["topic_metadata"]["offered_qos_profiles"][0]["reliability"] == "best_effort"
    assert topics["/map"]["topic_metadata"]["offered_qos_profiles"][0]["durability"] == "transient_local"
    assert topics["/map"]["message_count"] == 1
    # ... and in the MCAP channel metadata, which is what a player reads from the bare file.
    assert b"offered_qos_profiles" in (bag / "run.mcap").read_bytes()
    # Distro: the graph's distro in custom_data (rosbags writes its own name as ros_distro).
    assert meta["custom_data"]["ros_distro"] == ros_distro() != "unknown"
    assert meta["custom_data"]["recorder"] == "navkit record"


def test_topic_option_restricts_and_duration_stops(tmp_path: Path, spawn: Any, ros_client: Any) -> None:
    domain = domain_id()
    pubs = Publishers(ros_client(domain))
    # 5 s: on a loaded 2-core machine start-up and discovery alone can take a couple of seconds.
    rec = start_recorder(spawn, domain, str(tmp_path / "only_scan"), "--topic", "scan", "--duration", "5")
    assert pubs.run_until(lambda: rec.proc.poll() is not None, 30.0), rec.output()
    assert rec.proc.returncode == 0, rec.output()
    assert "duration 5 s reached" in rec.output()
    _, messages, meta = read_bag(tmp_path / "only_scan")
    assert set(messages) == {"/scan"}
    assert [t["topic_metadata"]["name"] for t in meta["topics_with_message_count"]] == ["/scan"]
    assert len(messages["/scan"]) > 0


def test_sigterm_closes_the_bag_and_exclude_filters(tmp_path: Path, spawn: Any, ros_client: Any) -> None:
    domain = domain_id()
    pubs = Publishers(ros_client(domain))
    rec = start_recorder(spawn, domain, str(tmp_path / "bag.mcap"), "--exclude", "^/(rosout|parameter_events|scan)$")
    assert pubs.run_until(subscribed(rec, "/cmd_vel", "/map"), 20.0), rec.output()
    # A best-effort publisher joining the reliable cmd_vel later is not heard: said, not hidden.
    from geometry_msgs.msg import TwistStamped
    from rclpy.qos import qos_profile_sensor_data

    pubs.client.node.create_publisher(TwistStamped, "cmd_vel", qos_profile_sensor_data)
    assert pubs.run_until(lambda: "/cmd_vel: new publisher" in rec.output(), 10.0), rec.output()
    rec.proc.send_signal(signal.SIGTERM)
    assert rec.proc.wait(timeout=15) == 0, rec.output()
    assert "stopped by SIGTERM" in rec.output()
    _, messages, _ = read_bag(tmp_path / "bag")
    assert set(messages) == {"/cmd_vel", "/map"}


def test_max_messages_stops(tmp_path: Path, spawn: Any, ros_client: Any) -> None:
    domain = domain_id()
    pubs = Publishers(ros_client(domain))
    rec = start_recorder(spawn, domain, str(tmp_path / "five"), "--topic", "/cmd_vel", "--max-messages", "5")
    assert pubs.run_until(lambda: rec.proc.poll() is not None, 20.0), rec.output()
    assert rec.proc.returncode == 0, rec.output()
    _, messages, meta = read_bag(tmp_path / "five")
    assert len(messages["/cmd_vel"]) == meta["message_count"] == 5


def test_existing_output_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("keep me")
    for extra in ([], ["--overwrite"]):
        done = subprocess.run([*RECORDER, str(tmp_path / "run.mcap"), *extra], capture_output=True, text=True,
                              timeout=60, env=ros_env(domain_id()))
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and str(tmp_path / "run") in lines[0], done.stderr
        assert done.stdout == ""
    assert (tmp_path / "run" / "notes.txt").read_text() == "keep me"  # --overwrite never deletes a non-bag


def test_subscription_qos_follows_the_publishers() -> None:
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

    from navkit.ros_ws.live_recorder import heard_by, qos_to_rosbags, subscription_qos

    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    plain = QoSProfile(depth=10)
    cases = [([qos_profile_sensor_data], ReliabilityPolicy.BEST_EFFORT, DurabilityPolicy.VOLATILE),
             ([plain, qos_profile_sensor_data], ReliabilityPolicy.BEST_EFFORT, DurabilityPolicy.VOLATILE),
             ([plain], ReliabilityPolicy.RELIABLE, DurabilityPolicy.VOLATILE),
             ([latched, latched], ReliabilityPolicy.RELIABLE, DurabilityPolicy.TRANSIENT_LOCAL),
             ([latched, plain], ReliabilityPolicy.RELIABLE, DurabilityPolicy.VOLATILE)]
    for offers, reliability, durability in cases:
        got = subscription_qos(offers)
        assert (got.reliability, got.durability) == (reliability, durability)
        assert all(heard_by(got, offer) for offer in offers)
    assert not heard_by(subscription_qos([plain]), qos_profile_sensor_data)
    assert not heard_by(subscription_qos([latched]), plain)
    qos = qos_to_rosbags(latched)
    assert (qos.reliability.name, qos.durability.name, qos.depth) == ("RELIABLE", "TRANSIENT_LOCAL", 1)
