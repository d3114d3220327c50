"""ROS 2 latency of the safety filter node: ``scan`` published -> the ``cmd_vel`` it causes received.

The filter node runs as its own process (``use_sim_time`` false, the shipped parameter
file, loopback-only discovery on a private domain), as in the launch: a lifecycle node,
brought to active by its ``autostart`` parameter, scans arriving best effort (SensorDataQoS)
as a lidar driver publishes them. This
process publishes one nominal ``cmd_vel_nav`` (v = 0.5 m/s), then ``scan`` messages at
``rate_hz``: 180 rays over 360° in an aisle with a box 1.5 m ahead, so each scan gives the
filter a real constrained QP. With ``filter_on_scan`` the node re-filters on every scan;
we wait for that reply before the next scan (ping-pong), so each reply belongs to exactly
one scan, and time publish -> receipt on the wall clock. Two DDS hops, two Python
processes and the filter itself are inside the number: what the wheels wait after a
sensor update.

    python -m navkit.benchmarks.ros_latency_bench --n 500 --rate 50
"""
from __future__ import annotations

import argparse
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from navkit.common.json_output import to_json
from navkit.stack.config import DEFAULT_PARAMS_FILE

WARMUP = 20
"""Scans whose latency is discarded: DDS discovery, first allocations and JIT-less warm caches."""
TARGET_MEDIAN_MS = 3.0
"""Median scan -> cmd_vel latency the safety filter node must stay under."""
NOMINAL_V = 0.5
"""Nominal forward speed (m/s) the filter is asked for."""
OBSTACLE_M = 1.5
"""Distance of the box ahead of the robot."""
REPLY_TIMEOUT_S = 1.0
"""A scan without a reply within this is counted as lost."""
CMD_REFRESH_S = 0.2
"""The nominal command is re-sent this often: the filter refuses commands older than 0.5 s."""
_FILTER_ARGV = [sys.executable, "-c",
                "import sys; from navkit.ros_ws.navkit_nodes.safety_filter_node import main; sys.exit(main())"]


def aisle_scan_ranges(n_rays: int = 180, aisle_half_width_m: float = 1.0, obstacle_m: float = OBSTACLE_M,
                      obstacle_half_width_m: float = 0.3, range_max_m: float = 8.0, noise_std_m: float = 0.01,
                      seed: int = 0) -> np.ndarray:
    """Ranges (from -π, 360°) of a robot in an aisle of shelves with a box ``obstacle_m`` ahead."""
    angles = -math.pi + 2.0 * math.pi / n_rays * np.arange(n_rays)
    c, s = np.cos(angles), np.sin(angles)
    with np.errstate(divide="ignore", invalid="ignore"):
        walls = np.where(np.abs(s) > 1e-9, aisle_half_width_m / np.abs(s), np.inf)
        box = np.where(c > 1e-9, obstacle_m / c, np.inf)
    box = np.where(np.abs(box * s) <= obstacle_half_width_m, box, np.inf)
    ranges = np.minimum(walls, box)
    ranges = ranges + np.random.default_rng(seed).normal(0.0, noise_std_m, n_rays)
    return np.where(ranges < range_max_m, ranges, np.inf).astype(np.float32)


def _default_domain_id() -> int:
    """101..200: clear of the domains the ROS 2 integration tests pick (1..100)."""
    return 101 + os.getpid() % 100


@contextmanager
def _env(**values: str) -> Iterator[None]:
    """Set environment variables for the block (rcl reads the discovery range at init)."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=5.0)
            return
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=5.0)


def run(n_scans: int = 500, rate_hz: float = 50.0, *, domain_id: int | None = None,
        params_file: str | Path = DEFAULT_PARAMS_FILE) -> dict[str, Any]:
    """Ping-pong ``n_scans`` scans through a safety filter node; latencies after the first ``WARMUP``."""
    if n_scans <= WARMUP:
        raise ValueError(f"n_scans: must be > {WARMUP} (the first {WARMUP} are warm-up), got {n_scans}")
    if not (math.isfinite(rate_hz) and rate_hz > 0):
        raise ValueError(f"rate_hz: must be > 0, got {rate_hz}")
    domain = _default_domain_id() if domain_id is None else domain_id
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", PYTHONUNBUFFERED="1")
    with tempfile.TemporaryDirectory(prefix="navkit_ros_latency_") as tmp:
        log = Path(tmp) / "safety_filter.log"
        with log.open("wb") as f:
            proc = subprocess.Popen(
                _FILTER_ARGV + ["--ros-args", "--params-file", str(params_file), "-p", "use_sim_time:=false",
                                "-p", "autostart:=true"],
                stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        try:
            with _env(ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST"):
                result = _ping_pong(n_scans, rate_hz, domain, lambda: proc.poll() is None,
                                    lambda: log.read_text(errors="replace")[-2000:])
        finally:
            _stop(proc)
    result.update({"domain_id": domain, "rate_hz": rate_hz, "n_scans": n_scans, "warmup": WARMUP})
    return result


def _ping_pong(n_scans: int, rate_hz: float, domain: int, node_alive: Callable[[], bool],
               node_log: Callable[[], str]) -> dict[str, Any]:
    import rclpy
    from geometry_msgs.msg import TwistStamped
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, qos_profile_sensor_data
    from rclpy.signals import SignalHandlerOptions
    from sensor_msgs.msg import LaserScan

    from navkit.common.geometry import RigidTransform
    from navkit.ros_ws.navkit_nodes.tf_tree import StaticTfBroadcaster, transform_msg

    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain, signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node("navkit_latency_bench", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    replies: list[tuple[float, float, float, float]] = []  # (receipt perf_counter, stamp s, v, omega)

    def on_cmd(msg: TwistStamped) -> None:
        t = time.perf_counter()
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        replies.append((t, stamp, msg.twist.linear.x, msg.twist.angular.z))

    qos = QoSProfile(depth=10)  # the filter node's own QoS for commands
    node.create_subscription(TwistStamped, "cmd_vel", on_cmd, qos)
    cmd_pub = node.create_publisher(TwistStamped, "cmd_vel_nav", qos)
    scan_pub = node.create_publisher(LaserScan, "scan", qos_profile_sensor_data)  # as a lidar driver publishes
    # The lidar's mount, latched as a robot description publishes it: the filter uses a scan only once TF places it.
    mount = StaticTfBroadcaster(node)
    mount.send(transform_msg("base_link", "base_scan", 0.0, RigidTransform((0.0, 0.0, 0.2))))

    scan = LaserScan()
    scan.header.frame_id = "base_scan"
    scan.angle_min = -math.pi
    scan.angle_increment = 2.0 * math.pi / 180
    scan.angle_max = scan.angle_min + scan.angle_increment * 179
    scan.range_min, scan.range_max = 0.12, 8.0
    scan.ranges = aisle_scan_ranges()
    cmd = TwistStamped()
    cmd.header.frame_id = "base_link"
    cmd.twist.linear.x = NOMINAL_V

    def wait_reply(after_stamp: float, timeout_s: float) -> tuple[float, float, float, float] | None:
        """The first reply stamped at or after ``after_stamp`` (older ones answer earlier messages)."""
        deadline = time.perf_counter() + timeout_s
        while True:
            while replies:
                reply = replies.pop(0)
                if reply[1] >= after_stamp:
                    return reply
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return None
            executor.spin_once(timeout_sec=min(remaining, 0.1))

    def send_cmd(timeout_s: float) -> bool:
        now = node.get_clock().now()
        cmd.header.stamp = now.to_msg()
        cmd_pub.publish(cmd)
        return wait_reply(now.nanoseconds * 1e-9, timeout_s) is not None

    try:
        # Discovery: until the filter answers the nominal command (with zero: no scan yet).
        deadline = time.monotonic() + 30.0
        while not send_cmd(0.5):
            if not node_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the safety filter node never answered on ROS domain {domain}:\n{node_log()}")
        last_cmd = time.monotonic()
        latencies_ms: list[float] = []
        v_out: list[float] = []
        lost = 0
        period = 1.0 / rate_hz
        next_t = time.perf_counter()
        for i in range(n_scans):
            if time.monotonic() - last_cmd > CMD_REFRESH_S:
                send_cmd(REPLY_TIMEOUT_S)  # its reply is not a scan's: not timed
                last_cmd = time.monotonic()
            next_t = max(next_t + period, time.perf_counter()) if i else time.perf_counter()
            while (pause := next_t - time.perf_counter()) > 0:
                time.sleep(pause)
            now = node.get_clock().now()
            scan.header.stamp = now.to_msg()
            t0 = time.perf_counter()
            scan_pub.publish(scan)
            reply = wait_reply(now.nanoseconds * 1e-9, REPLY_TIMEOUT_S)
            if reply is None:
                lost += 1
                continue
            if i >= WARMUP:
                latencies_ms.append((reply[0] - t0) * 1e3)
                v_out.append(reply[2])
        if not node_alive():
            raise RuntimeError(f"the safety filter node died during the benchmark:\n{node_log()}")
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)

    lat = np.asarray(latencies_ms)
    stats = ({"median_ms": float(np.median(lat)), "p90_ms": float(np.percentile(lat, 90)),
              "p99_ms": float(np.percentile(lat, 99)), "max_ms": float(lat.max())} if lat.size else
             {"median_ms": math.nan, "p90_ms": math.nan, "p99_ms": math.nan, "max_ms": math.nan})
    return {
        "count": int(lat.size),
        "lost": lost,
        **stats,
        "target_median_ms": TARGET_MEDIAN_MS,
        "passed": bool(lat.size and stats["median_ms"] <= TARGET_MEDIAN_MS),
        "v_out_median": float(np.median(v_out)) if v_out else math.nan,
        "latencies_ms": [round(x, 4) for x in latencies_ms],
    }


def format_table(result: dict[str, Any]) -> str:
    """Aligned plain-text table of a :func:`run` result."""
    header = (f"{'path':<28}{'count':>7}{'median ms':>11}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}"
              f"{'target':>11}{'result':>8}")
    row = (f"{'scan -> cmd_vel (DDS)':<28}{result['count']:>7}{result['median_ms']:>11.2f}{result['p90_ms']:>9.2f}"
           f"{result['p99_ms']:>9.2f}{result['max_ms']:>9.2f}{'med <= ' + format(result['target_median_ms'], 'g'):>11}"
           f"{'PASS' if result['passed'] else 'FAIL':>8}")
    return "\n".join([
        f"ROS 2 latency: safety filter node in its own process, {result['n_scans']} scans at {result['rate_hz']:g} Hz "
        f"(first {result['warmup']} discarded), Fast DDS on loopback, domain {result['domain_id']}",
        header,
        "-" * len(header),
        row,
        "-" * len(header),
        f"lost replies {result['lost']}; filtered v median {result['v_out_median']:.3f} m/s "
        f"(nominal {NOMINAL_V}, box {OBSTACLE_M} m ahead)",
    ])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m navkit.benchmarks.ros_latency_bench",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500, help=f"scans to send (the first {WARMUP} are warm-up)")
    parser.add_argument("--rate", type=float, default=50.0, help="scan rate in Hz")
    parser.add_argument("--domain-id", type=int, default=None, help="ROS_DOMAIN_ID (default: 101 + pid %% 100)")
    parser.add_argument("--json", action="store_true", help="print the raw result as JSON instead of a table")
    args = parser.parse_args(argv)
    result = run(n_scans=args.n, rate_hz=args.rate, domain_id=args.domain_id)
    print(to_json(result) if args.json else format_table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
