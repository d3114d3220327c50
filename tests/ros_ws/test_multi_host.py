"""Two hosts: the robot (bridge) in one network namespace, the navigation stack in another, joined by a
veth pair, DDS over UDP between them (no shared memory, no loopback shortcut).

Killing the navigation host mid-run must stop the robot within its driver watchdog (0.5 s): the
wheels cannot keep the last command when the commanding side vanishes from the network.
Needs root (``ip netns``); skipped with the reason where the machine does not allow it.
"""
from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ros_helpers import DEMO_LAUNCH, PARAMS, SCENARIO, domain_id, node_argv

pytestmark = pytest.mark.ros

NS = ("navkit_robot", "navkit_nav")
ADDRESSES = ("10.231.77.1/24", "10.231.77.2/24")
WATCHDOG_S = 0.5

# Prints "t_wall t_sim v" for every odometry message the robot side publishes (run inside the robot's namespace).
_OBSERVER = """
import sys, time, rclpy
from nav_msgs.msg import Odometry
from rclpy.qos import qos_profile_sensor_data
rclpy.init()
node = rclpy.create_node("observer")
node.create_subscription(Odometry, "odom",
    lambda m: print(f"{time.time():.4f} {m.header.stamp.sec + m.header.stamp.nanosec * 1e-9:.4f} "
                    f"{m.twist.twist.linear.x:.4f}", flush=True), qos_profile_sensor_data)
try:
    rclpy.spin(node)
except BaseException:
    pass
"""


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=20)


@pytest.fixture()
def two_hosts() -> Iterator[None]:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root (ip netns)")
    for ns in NS:
        _run("ip", "netns", "del", ns)
    made = _run("ip", "netns", "add", NS[0])
    if made.returncode != 0:
        pytest.skip(f"ip netns add failed here: {made.stderr.strip()}")
    try:
        steps = [("ip", "netns", "add", NS[1]),
                 ("ip", "link", "add", "nk_veth0", "type", "veth", "peer", "name", "nk_veth1"),
                 ("ip", "link", "set", "nk_veth0", "netns", NS[0]), ("ip", "link", "set", "nk_veth1", "netns", NS[1])]
        for i, ns in enumerate(NS):
            dev = f"nk_veth{i}"
            steps += [("ip", "netns", "exec", ns, "ip", "addr", "add", ADDRESSES[i], "dev", dev),
                      ("ip", "netns", "exec", ns, "ip", "link", "set", dev, "up", "multicast", "on"),
                      ("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")]
        for step in steps:
            done = _run(*step)
            if done.returncode != 0:
                pytest.skip(f"{' '.join(step)} failed: {done.stderr.strip()}")
        yield
    finally:
        for ns in NS:
            _run("ip", "netns", "del", ns)


def _spawn(ns: str, argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as f:
        return subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdout=f, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env, start_new_session=True)


def _kill(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def test_killing_the_navigation_host_stops_the_robot(two_hosts: None, tmp_path: Path) -> None:
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain_id()), ROS_AUTOMATIC_DISCOVERY_RANGE="SUBNET",
               FASTDDS_BUILTIN_TRANSPORTS="UDPv4", PYTHONUNBUFFERED="1")
    robot = _spawn(NS[0], node_argv("robot_bridge_node") + [
        "--ros-args", "--params-file", str(PARAMS), "-p", f"scenario:={SCENARIO}", "-p", "real_time_factor:=1.0",
        "-p", f"output_dir:={tmp_path / 'out'}"], env, tmp_path / "robot.log")
    observer = _spawn(NS[0], [sys.executable, "-c", _OBSERVER], env, tmp_path / "observer.log")
    # The navigation host runs the same launch file; its robot is "external": the bridge across the link.
    nav = _spawn(NS[1], [sys.executable, "-m", "navkit.cli.main", "launch", str(DEMO_LAUNCH), "robot:=external",
                         f"scenario:={SCENARIO}", "use_sim_time:=true"], env, tmp_path / "nav.log")
    try:
        def moving() -> bool:
            lines = (tmp_path / "observer.log").read_text().split("\n")[-20:]
            speeds = [float(x.split()[2]) for x in lines if len(x.split()) == 3]
            return len(speeds) > 5 and min(speeds[-5:]) > 0.2

        deadline = time.monotonic() + 60.0
        while time.monotonic() < deadline and not moving():
            time.sleep(0.2)
        assert moving(), ((tmp_path / "nav.log").read_text()[-3000:], (tmp_path / "robot.log").read_text()[-2000:])
        killed = time.time()
        _kill(nav)  # the whole navigation host's processes, at once
        time.sleep(2.0)
    finally:
        _kill(nav)
        _kill(observer, signal.SIGINT)
        _kill(robot, signal.SIGINT)
    samples = [tuple(map(float, line.split())) for line in (tmp_path / "observer.log").read_text().splitlines()
               if len(line.split()) == 3]
    before = [sim for wall, sim, _ in samples if wall <= killed]
    assert before, "no odometry before the kill"
    # Timed on the robot's own (simulated) clock, which its watchdog runs on: a loaded machine that runs
    # the simulation slower than real time must not turn into a longer-looking stop.
    killed_sim = before[-1]
    after = [(sim - killed_sim, v) for wall, sim, v in samples if wall > killed]
    assert len(after) > 20, f"too little odometry after the kill: {after}"
    assert after[0][1] > 0.2, f"the robot was not driving at the kill: {after[:10]}"
    # Braking starts where the speed first falls 20 % below the highest speed since the kill (it may
    # still have been accelerating when the commands stopped).
    fastest, brake = 0.0, math.inf
    for dt, v in after:
        fastest = max(fastest, v)
        if v < 0.8 * fastest:
            brake = dt
            break
    assert math.isfinite(brake), f"the robot never slowed down: {after[-10:]}"
    still = [dt for dt, v in after if abs(v) > 0.02]
    stop_s = max(still) if still else 0.0
    # SIGKILL sends no farewell zero: the robot rolls on until its watchdog finds the last command 0.5 s
    # old, then brakes (one 20 ms control period later), then spins down.
    # + detection (20 % of the speed lost takes ~2 samples) + the odometry hop that dates the kill.
    assert 0.3 < brake < WATCHDOG_S + 0.2, (brake, after[:40])
    assert stop_s < brake + 0.4, (stop_s, after[:40])
    print(f"navigation host killed: braking after {brake:.3f} s, standing after {stop_s:.3f} s (robot clock)")
