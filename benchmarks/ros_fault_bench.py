"""What happens to a moving robot when the software under it fails, measured on the demo launch.

Two faults, each injected while the AGV drives (odometry speed above 0.3 m/s) in
``scenarios/short_aisle.yaml`` run as four ROS 2 processes by ``navkit launch``:

* **a frozen safety filter** (SIGSTOP): nothing commands the wheels any more; the bridge's
  driver watchdog must stop them. Reported: wall and simulated seconds from the freeze
  until odometry reads under 0.02 m/s, and until the launcher, seeing no heartbeat, has
  stopped every node.
* **a killed launcher** (SIGKILL): every node must exit with it. Reported: wall seconds
  until no node process is left.

    navkit bench ros-faults [--repeats 3]
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from navkit.common.json_output import to_json

REPO_ROOT = Path(__file__).resolve().parents[1]
LAUNCH = REPO_ROOT / "ros_ws" / "launch" / "demo.launch.yaml"
SCENARIO = REPO_ROOT / "scenarios" / "short_aisle.yaml"
NODES = ("robot_bridge", "planner", "controller", "safety_filter")
MOVING_M_S = 0.3
STOPPED_M_S = 0.02
HEARTBEAT_TIMEOUT_S = 5.0


def _node_pids(launcher: int) -> dict[str, int]:
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2:].split()[1]) != launcher:
            continue
        for name in NODES:
            if f"{name}_node" in cmdline:
                found[name] = int(entry.name)
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


class _OdomWatcher:
    """An rclpy client on the launch's domain that keeps the latest odometry (sim time, speed)."""

    def __init__(self, domain: int) -> None:
        import rclpy
        from nav_msgs.msg import Odometry
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.signals import SignalHandlerOptions

        self.rclpy = rclpy
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain, signal_handler_options=SignalHandlerOptions.NO)
        self.node = rclpy.create_node("navkit_fault_bench", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.sim_time = 0.0
        self.speed = 0.0
        self.node.create_subscription(Odometry, "odom", self._on_odom, 10)

    def _on_odom(self, msg: Any) -> None:
        self.sim_time = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        self.speed = abs(msg.twist.twist.linear.x)

    def spin_until(self, condition: Any, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if condition():
                return True
            self.executor.spin_once(timeout_sec=0.01)
        return bool(condition())

    def close(self) -> None:
        self.executor.remove_node(self.node)
        self.node.destroy_node()
        self.executor.shutdown()
        self.rclpy.try_shutdown(context=self.context)


def _start(domain: int, out: Path) -> subprocess.Popen:
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    argv = [sys.executable, "-m", "navkit.cli.main", "launch", str(LAUNCH), f"scenario:={SCENARIO}",
            f"output_dir:={out}", "--heartbeat-timeout", str(HEARTBEAT_TIMEOUT_S)]
    return subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL, start_new_session=True)


def _cleanup(launch: subprocess.Popen, pids: dict[str, int]) -> None:
    for pid in [launch.pid, *pids.values()]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    launch.wait(timeout=10)


def _one(fault: str, domain: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        launch = _start(domain, Path(tmp))
        watcher = _OdomWatcher(domain)
        pids: dict[str, int] = {}
        try:
            if not watcher.spin_until(lambda: watcher.speed > MOVING_M_S, 60.0):
                raise RuntimeError("the robot never started moving")
            pids = _node_pids(launch.pid)
            if len(pids) != len(NODES):
                raise RuntimeError(f"found nodes {sorted(pids)}")
            start_wall, start_sim = time.monotonic(), watcher.sim_time
            if fault == "frozen_filter":
                os.kill(pids["safety_filter"], signal.SIGSTOP)
                watcher.spin_until(lambda: watcher.speed < STOPPED_M_S, 10.0)
                stop_wall, stop_sim = time.monotonic() - start_wall, watcher.sim_time - start_sim
                launch.wait(timeout=HEARTBEAT_TIMEOUT_S + 30.0)
                gone = time.monotonic() - start_wall
                return {"wheels_stopped_wall_s": round(stop_wall, 3), "wheels_stopped_sim_s": round(stop_sim, 3),
                        "launch_stopped_wall_s": round(gone, 3), "launcher_exit_code": launch.returncode}
            os.kill(launch.pid, signal.SIGKILL)
            while any(_alive(p) for p in pids.values()) and time.monotonic() - start_wall < 20.0:
                time.sleep(0.01)
            left = [name for name, p in pids.items() if _alive(p)]
            return {"nodes_gone_wall_s": round(time.monotonic() - start_wall, 3), "nodes_left": left}
        finally:
            watcher.close()
            _cleanup(launch, pids)


def run(repeats: int = 1, domain: int = 77) -> dict[str, Any]:
    frozen = [_one("frozen_filter", domain) for _ in range(repeats)]
    killed = [_one("killed_launcher", domain) for _ in range(repeats)]

    def median(rows: list[dict[str, Any]], key: str) -> float:
        return float(np.median([r[key] for r in rows]))

    return {"repeats": repeats, "frozen_filter": frozen, "killed_launcher": killed,
            "wheels_stopped_wall_s_median": median(frozen, "wheels_stopped_wall_s"),
            "wheels_stopped_sim_s_median": median(frozen, "wheels_stopped_sim_s"),
            "launch_stopped_wall_s_median": median(frozen, "launch_stopped_wall_s"),
            "nodes_gone_wall_s_median": median(killed, "nodes_gone_wall_s"),
            "nodes_left": sum(len(r["nodes_left"]) for r in killed)}


def format_table(r: dict[str, Any]) -> str:
    return "\n".join([
        f"faults injected into the demo launch while the AGV drives ({r['repeats']} repeat(s), medians)",
        f"  {'safety filter frozen (SIGSTOP): wheels stopped':<58}{r['wheels_stopped_sim_s_median']:>7.2f} sim s "
        f"({r['wheels_stopped_wall_s_median']:.2f} wall s)",
        f"  {'  ... every node stopped by the launcher (no heartbeat)':<58}{r['launch_stopped_wall_s_median']:>7.2f} wall s",
        f"  {'launcher killed (SIGKILL): every node exited':<58}{r['nodes_gone_wall_s_median']:>7.2f} wall s "
        f"({r['nodes_left']} left running)",
    ])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    result = run(args.repeats)
    print(to_json(result) if args.json else format_table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
