"""Helpers for the multi-process ROS 2 tests: isolated domains, process handles, an rclpy client.

Every subprocess gets ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` and its own
``ROS_DOMAIN_ID``, so tests cannot hear each other, a parallel test session, or a robot on
the network. The fixtures built on these (``spawn``, ``ros_client``) live in conftest.py.
"""
from __future__ import annotations

import itertools
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_LAUNCH = REPO_ROOT / "ros_ws" / "launch" / "demo.launch.yaml"
SCENARIO = REPO_ROOT / "scenarios" / "short_aisle.yaml"
PARAMS = REPO_ROOT / "ros_ws" / "config" / "navkit.params.yaml"


def node_argv(module: str) -> list[str]:
    """The argv that starts one navkit node module (as the launcher does)."""
    return [sys.executable, "-c", f"import sys; from navkit.ros_ws.navkit_nodes.{module} import main; sys.exit(main())"]


# The navigation nodes are lifecycle nodes; run by hand (no lifecycle manager) they bring themselves up.
AUTOSTART = ["--ros-args", "-p", "autostart:=true"]
FILTER_NODE = node_argv("safety_filter_node") + AUTOSTART
CONTROLLER_NODE = node_argv("controller_node") + AUTOSTART
PLANNER_NODE = node_argv("planner_node") + AUTOSTART

_domains = itertools.count()


def domain_id() -> int:
    """A ROS domain in 1..100 that no other test of this session uses (and, by pid, unlikely another session)."""
    return 1 + (os.getpid() * 17 + next(_domains)) % 100


def ros_env(domain: int) -> dict[str, str]:
    return dict(os.environ, ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
                PYTHONUNBUFFERED="1")


def launch_argv(output_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "navkit.cli.main", "launch", str(DEMO_LAUNCH), f"scenario:={SCENARIO}",
            "real_time_factor:=2.0", f"output_dir:={output_dir}", *extra]


# ------------------------------------------------------------------ processes


def children(pid: int) -> list[int]:
    """Direct children of ``pid``, read from /proc (no psutil)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may contain spaces, so split after the last ')'.
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == pid:
            out.append(int(entry.name))
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def launched_nodes(launcher_pid: int, names: tuple[str, ...]) -> dict[str, int]:
    """The pids of the launcher's node processes, by node module name (``safety_filter`` ...)."""
    found = {}
    for pid in children(launcher_pid):
        for name in names:
            if f"{name}_node" in cmdline(pid):
                found[name] = pid
    return found


@dataclass
class Proc:
    """A subprocess in its own process group, with output to a file (never a full pipe)."""

    proc: subprocess.Popen
    log: Path
    extra_pids: list[int] = field(default_factory=list)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        """SIGINT the group (a launcher then stops its nodes), then SIGKILL whatever is left."""
        pids = [p for p in set(self.extra_pids) | set(children(self.proc.pid)) if alive(p)]
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=10.0)
            except subprocess.TimeoutExpired:
                pass
        for pid in pids + [self.proc.pid]:
            for kill in (lambda p: os.killpg(p, signal.SIGKILL), lambda p: os.kill(p, signal.SIGKILL)):
                try:
                    kill(pid)
                except (ProcessLookupError, PermissionError):
                    pass
        self.proc.wait(timeout=10.0)


def start_process(argv: list[str], env: dict[str, str], log: Path) -> Proc:
    with log.open("wb") as f:
        proc = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                cwd=REPO_ROOT, start_new_session=True)
    return Proc(proc, log)


# ------------------------------------------------------------------ rclpy in the test process


class RosClient:
    """An rclpy node in its own context and domain, spun by hand with deadlines."""

    def __init__(self, domain: int, monkeypatch: pytest.MonkeyPatch) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.signals import SignalHandlerOptions

        # rcl reads the discovery range from the environment at init.
        monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
        self.rclpy = rclpy
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain, signal_handler_options=SignalHandlerOptions.NO)
        self.node = rclpy.create_node("navkit_test_client", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def now(self) -> Any:
        return self.node.get_clock().now()

    def spin_until(self, condition: Callable[[], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if condition():
                return True
            self.executor.spin_once(timeout_sec=0.02)
        return condition()

    def spin_for(self, seconds: float) -> None:
        self.spin_until(lambda: False, seconds)

    def close(self) -> None:
        # Take the node out of the executor before destroying either: destroying a node an
        # executor still waits on crashed rclpy (a rare segfault in teardown).
        self.executor.remove_node(self.node)
        self.node.destroy_node()
        self.executor.shutdown()
        self.rclpy.try_shutdown(context=self.context)


def twist_msg(client: RosClient, v: float, omega: float, age_s: float = 0.0) -> Any:
    from geometry_msgs.msg import TwistStamped
    from rclpy.duration import Duration

    msg = TwistStamped()
    msg.header.stamp = (client.now() - Duration(nanoseconds=int(age_s * 1e9))).to_msg()
    msg.header.frame_id = "base_link"
    msg.twist.linear.x = v
    msg.twist.angular.z = omega
    return msg


def publish_scan_mount(client: RosClient, frame: str = "base_scan") -> Any:
    """Latch ``base_link -> frame`` (on the base's axis) on /tf_static, as a robot's description does: the
    navigation nodes use a scan only once TF can place it. Keep the returned broadcaster alive."""
    from navkit.common.geometry import RigidTransform
    from navkit.ros_ws.navkit_nodes.tf_tree import StaticTfBroadcaster, transform_msg

    broadcaster = StaticTfBroadcaster(client.node)
    broadcaster.send(transform_msg("base_link", frame, 0.0, RigidTransform((0.0, 0.0, 0.2))))
    return broadcaster


def scan_msg(client: RosClient, obstacle_m: float | None = None) -> Any:
    """A 180-ray half-circle scan, stamped now: all 'no return' (+inf), or a wall ``obstacle_m`` ahead."""
    from sensor_msgs.msg import LaserScan

    n = 180
    msg = LaserScan()
    msg.header.stamp = client.now().to_msg()
    msg.header.frame_id = "base_scan"
    msg.angle_min = -math.pi / 2
    msg.angle_increment = math.pi / (n - 1)
    msg.angle_max = math.pi / 2
    msg.range_min, msg.range_max = 0.05, 10.0
    ranges = [math.inf] * n
    if obstacle_m is not None:
        for i in range(n):
            angle = msg.angle_min + i * msg.angle_increment
            if abs(angle) < 0.5:
                ranges[i] = obstacle_m / math.cos(angle)
    msg.ranges = ranges
    return msg
