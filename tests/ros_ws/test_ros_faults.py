"""Issue 6 on the wire: bad messages into running nodes give zero commands and live nodes;
nodes die with their launcher however it dies; a hung node stops the launch.
"""
from __future__ import annotations

import json
import math
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ros_helpers import (publish_scan_mount, CONTROLLER_NODE, FILTER_NODE, PARAMS, PLANNER_NODE, SCENARIO, Proc, RosClient, alive,
                         domain_id, launch_argv, launched_nodes, ros_env, scan_msg, twist_msg)

pytestmark = pytest.mark.ros

NODE_NAMES = ("robot_bridge", "planner", "controller", "safety_filter")


def _all_zero(msgs: list[tuple[float, float]]) -> bool:
    return bool(msgs) and all(v == 0.0 and w == 0.0 for v, w in msgs)


# ------------------------------------------------------------------ bad scans into the safety filter node


def _bad_scans(client: RosClient) -> dict[str, Any]:
    scans = {}
    empty = scan_msg(client)
    empty.ranges = []
    scans["no rays"] = empty
    negative = scan_msg(client)
    negative.ranges = [-1.0] * 180
    scans["all ranges negative"] = negative
    inverted = scan_msg(client)
    inverted.range_min, inverted.range_max = 5.0, 1.0
    scans["range_max below range_min"] = inverted
    flat = scan_msg(client)
    flat.angle_increment = 0.0
    scans["zero angle increment"] = flat
    frame = scan_msg(client)
    frame.header.frame_id = "camera_link"
    scans["wrong frame"] = frame
    return scans


def test_safety_filter_node_stops_on_scans_that_show_nothing(spawn: Callable[..., Proc],
                                                             ros_client: Callable[[int], RosClient]) -> None:
    from geometry_msgs.msg import TwistStamped
    from sensor_msgs.msg import LaserScan

    domain = domain_id()
    node = spawn(FILTER_NODE + ["--ros-args", "-p", "use_sim_time:=false"], ros_env(domain), "safety_filter")
    client = ros_client(domain)
    out: list[tuple[float, float]] = []
    client.node.create_subscription(TwistStamped, "cmd_vel", lambda m: out.append((m.twist.linear.x, m.twist.angular.z)),
                                    50)
    cmd_pub = client.node.create_publisher(TwistStamped, "cmd_vel_nav", 10)
    scan_pub = client.node.create_publisher(LaserScan, "scan", 10)
    mount = publish_scan_mount(client)  # noqa: F841 - keeps the latched mount alive
    assert client.spin_until(lambda: cmd_pub.get_subscription_count() and scan_pub.get_subscription_count()
                             and client.node.count_publishers("cmd_vel"), 20.0), node.output()

    def drive_with(scan: Any) -> list[tuple[float, float]]:
        start = len(out)
        scan_pub.publish(scan)
        client.spin_for(0.05)
        cmd_pub.publish(twist_msg(client, 0.5, 0.1))
        client.spin_until(lambda: len(out) > start + 1, 2.0)
        client.spin_for(0.1)
        return out[start:]

    # The scan subscription is best effort (SensorDataQoS): a scan sent before the filter's reader has
    # matched this publisher is lost, as on a robot where the next scan follows 0.1 s later. So the
    # baseline resends until a scan got through.
    good: list[tuple[float, float]] = []
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline and not (good and good[-1] == pytest.approx((0.5, 0.1))):
        good = drive_with(scan_msg(client))
    assert good and good[-1] == pytest.approx((0.5, 0.1)), good  # the baseline moves
    for name, bad in _bad_scans(client).items():
        bad.header.stamp = client.now().to_msg()
        result = drive_with(bad)
        assert _all_zero(result), (name, result)
        assert node.proc.poll() is None, f"{name} killed the filter node:\n{node.output()}"
    assert drive_with(scan_msg(client))[-1] == pytest.approx((0.5, 0.1))  # and it drives again

    node.proc.send_signal(signal.SIGINT)
    assert node.proc.wait(timeout=10.0) == 0
    log = node.output()
    assert "invalid input (scan has no rays): commanding zero" in log, log
    assert "Traceback" not in log, log


# ------------------------------------------------------------------ future-stamped odometry into the controller


def test_controller_refuses_odometry_stamped_in_the_future(spawn: Callable[..., Proc],
                                                          ros_client: Callable[[int], RosClient]) -> None:
    """One odometry message stamped +1000 s, then silence, used to leave it commanding 0.7 m/s."""
    from geometry_msgs.msg import PoseStamped, TwistStamped
    from nav_msgs.msg import Odometry, Path as PathMsg
    from rclpy.duration import Duration

    from navkit.ros_ws.navkit_nodes.planner_node import PLAN_QOS

    domain = domain_id()
    node = spawn(CONTROLLER_NODE + ["--ros-args", "--params-file", str(PARAMS), "-p", "use_sim_time:=false"],
                 ros_env(domain), "controller")
    client = ros_client(domain)
    out: list[tuple[float, float]] = []
    client.node.create_subscription(TwistStamped, "cmd_vel_nav",
                                    lambda m: out.append((m.twist.linear.x, m.twist.angular.z)), 100)
    plan_pub = client.node.create_publisher(PathMsg, "plan", PLAN_QOS)
    odom_pub = client.node.create_publisher(Odometry, "odom", 10)
    assert client.spin_until(lambda: odom_pub.get_subscription_count() and plan_pub.get_subscription_count()
                             and client.node.count_publishers("cmd_vel_nav"), 20.0), node.output()
    path = PathMsg()
    path.header.frame_id = "odom"
    for x in (0.0, 2.0, 4.0, 6.0):
        pose = PoseStamped()
        pose.pose.position.x = x
        pose.pose.orientation.w = 1.0
        path.poses.append(pose)
    plan_pub.publish(path)

    def odom(ahead_s: float) -> Any:
        msg = Odometry()
        msg.header.stamp = (client.now() + Duration(nanoseconds=int(ahead_s * 1e9))).to_msg()
        msg.header.frame_id, msg.child_frame_id = "odom", "base_link"
        msg.pose.pose.orientation.w = 1.0
        return msg

    for _ in range(10):
        odom_pub.publish(odom(0.0))
        client.spin_for(0.05)
    assert any(v > 0.3 for v, _ in out), (out, node.output())  # fresh odometry + a plan: it drives

    odom_pub.publish(odom(1000.0))
    client.spin_for(0.3)
    start = len(out)
    client.spin_for(0.5)  # silence after the future-stamped message
    after = out[start:]
    assert _all_zero(after), after
    assert node.proc.poll() is None, node.output()
    node.proc.send_signal(signal.SIGINT)
    assert node.proc.wait(timeout=10.0) == 0
    assert "odometry stale or invalid" in node.output()


# ------------------------------------------------------------------ bad goals into the planner


def test_planner_rejects_bad_goals_and_keeps_running(spawn: Callable[..., Proc],
                                                     ros_client: Callable[[int], RosClient]) -> None:
    """One NaN goal_pose used to kill the planner (uncaught ValueError)."""
    from geometry_msgs.msg import PoseStamped
    from nav_msgs.msg import Odometry, Path as PathMsg

    from navkit.ros_ws.navkit_nodes.planner_node import PLAN_QOS

    domain = domain_id()
    node = spawn(PLANNER_NODE + ["--ros-args", "--params-file", str(PARAMS), "-p", "use_sim_time:=false",
                                 "-p", f"scenario:={SCENARIO}"], ros_env(domain), "planner")
    client = ros_client(domain)
    paths: list[list[tuple[float, float]]] = []
    client.node.create_subscription(
        PathMsg, "plan", lambda m: paths.append([(p.pose.position.x, p.pose.position.y) for p in m.poses]), PLAN_QOS)
    goal_pub = client.node.create_publisher(PoseStamped, "goal_pose", 10)
    odom_pub = client.node.create_publisher(Odometry, "odom", 10)
    assert client.spin_until(lambda: goal_pub.get_subscription_count() and odom_pub.get_subscription_count(), 20.0)

    def odom() -> Any:
        msg = Odometry()
        msg.header.stamp = client.now().to_msg()
        msg.header.frame_id, msg.child_frame_id = "odom", "base_link"
        msg.pose.pose.position.x, msg.pose.pose.position.y = 1.0, 1.0  # short_aisle's start
        msg.pose.pose.orientation.w = 1.0
        return msg

    def goal(x: float, y: float, frame: str = "map") -> Any:
        msg = PoseStamped()
        msg.header.stamp = client.now().to_msg()
        msg.header.frame_id = frame
        msg.pose.position.x, msg.pose.position.y = x, y
        msg.pose.orientation.w = 1.0
        return msg

    for bad in (goal(math.nan, 2.0), goal(3.0, math.inf), goal(3.0, 2.0, frame="base_link"), goal(500.0, 2.0)):
        goal_pub.publish(bad)
        odom_pub.publish(odom())
        client.spin_for(0.2)
        assert node.proc.poll() is None, f"a bad goal killed the planner:\n{node.output()}"
    good_x, good_y = 6.0, 1.0
    goal_pub.publish(goal(good_x, good_y))
    for _ in range(20):
        odom_pub.publish(odom())
        if client.spin_until(lambda: bool(paths) and math.dist(paths[-1][-1], (good_x, good_y)) < 0.3, 0.2):
            break
    assert paths and math.dist(paths[-1][-1], (good_x, good_y)) < 0.3, (paths[-1:], node.output())
    node.proc.send_signal(signal.SIGINT)
    assert node.proc.wait(timeout=10.0) == 0
    log = node.output()
    assert log.count("goal_pose rejected") == 4, log
    assert "Traceback" not in log, log


def test_a_params_file_with_duplicate_keys_stops_the_node(spawn: Callable[..., Proc], tmp_path: Path) -> None:
    dup = tmp_path / "dup.params.yaml"
    dup.write_text("safety_filter:\n  ros__parameters:\n    cbf:\n      alpha: 1.0\n      alpha: 50.0\n")
    node = spawn(FILTER_NODE + ["--ros-args", "--params-file", str(dup)], ros_env(domain_id()), "dup")
    assert node.proc.wait(timeout=30.0) == 2
    lines = [line for line in node.output().splitlines() if line.strip()]
    assert len(lines) == 1 and "duplicate key 'alpha'" in lines[0] and str(dup) in lines[0], lines


# ------------------------------------------------------------------ the launcher dies, a node hangs


def _start_demo(spawn: Callable[..., Proc], tmp_path: Path, *extra: str) -> tuple[Proc, dict[str, int]]:
    launch = spawn(launch_argv(tmp_path / "out", *extra), ros_env(domain_id()), "launch")
    deadline = time.monotonic() + 30.0
    nodes: dict[str, int] = {}
    while time.monotonic() < deadline and len(nodes) < len(NODE_NAMES):
        nodes = launched_nodes(launch.proc.pid, NODE_NAMES)
        time.sleep(0.1)
    assert len(nodes) == len(NODE_NAMES), launch.output()
    launch.extra_pids.extend(nodes.values())
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline and "managed nodes are active" not in launch.output():
        time.sleep(0.1)
    assert "managed nodes are active" in launch.output(), launch.output()
    time.sleep(2.0)  # running: bridge stepping, filter publishing
    return launch, nodes


def _gone_within(pids: list[int], seconds: float) -> float | None:
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if not any(alive(p) for p in pids):
            return time.monotonic() - start
        time.sleep(0.05)
    return None


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGHUP])
def test_nodes_die_with_their_launcher(sig: signal.Signals, spawn: Callable[..., Proc], tmp_path: Path) -> None:
    """SIGKILL or SIGHUP of ``navkit launch`` used to leave its nodes running, re-parented to PID 1."""
    launch, nodes = _start_demo(spawn, tmp_path)
    os.kill(launch.proc.pid, sig)
    took = _gone_within(list(nodes.values()), 10.0)
    assert took is not None, f"nodes outlived the launcher: {[n for n, p in nodes.items() if alive(p)]}"
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["aborted"] is True  # the bridge left what it measured
    if sig == signal.SIGHUP:
        assert launch.proc.wait(timeout=10.0) == 0
        assert "received SIGHUP; stopping all nodes" in launch.output()


def test_a_stopped_node_stops_the_launch(spawn: Callable[..., Proc], tmp_path: Path) -> None:
    launch, nodes = _start_demo(spawn, tmp_path, "--heartbeat-timeout", "2.0")
    os.kill(nodes["safety_filter"], signal.SIGSTOP)
    assert launch.proc.wait(timeout=40.0) == 1
    # Two watchers can notice first, both ending the launch: the launcher's heartbeat, or the lifecycle
    # manager's state check (get_state unanswered), which shuts the launch down through on_exit.
    out = launch.output()
    by_launcher = "safety_filter stopped responding" in out and "(process stopped)" in out
    by_manager = "managed node 'safety_filter' is gone: get_state unanswered" in out
    assert by_launcher or by_manager, out[-3000:]
    assert _gone_within(list(nodes.values()), 10.0) is not None
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["watchdog_trips"] >= 1  # with the filter frozen, the driver watchdog stopped the wheels
