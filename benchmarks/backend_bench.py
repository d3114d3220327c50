"""MuJoCo vs PyBullet: what each simulator costs, and whether the stack behaves the same in both.

For each ``robot_backend`` plugin the full in-process stack runs the scenario for a few
seeds (no rendering, as in :mod:`navkit.benchmarks.closed_loop_bench`); the table gives
the closed-loop real-time factor, goals and collisions, and the raw costs underneath it:
physics steps per wall second (``advance`` with a fresh command every control period,
no sensors), one lidar scan and one camera frame. The two true trajectories of each
seed are then compared, by time (where each robot is at the same instant) and by arc
length (where each path runs, however fast it was driven): a stack that only works
because of one engine's contact model shows up here as a large difference.
"""
from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from navkit.common.json_output import to_json
from navkit.common.sensor_data import VelocityCommand
from navkit.runner.in_process import InProcessRunner, RunOptions, RunResult
from navkit.sim.mjcf_builder import PHYSICS_TIMESTEP_S
from navkit.sim.scenario import Scenario, load_scenario
from navkit.stack.config import DEFAULT_PARAMS_FILE, StackConfig, load_stack_config
from navkit.stack.plugin_catalog import default_registry

BACKENDS = ("mujoco", "pybullet")
"""The ``robot_backend`` plugins compared; the first is the reference for trajectory differences."""
PHYSICS_PROBE_S = 5.0
"""Simulated seconds of the raw physics measurement."""
SENSOR_PROBE_CALLS = 50
"""Lidar scans and camera frames timed per backend."""
ARC_STATIONS = 200
"""Points at which the two paths are compared by arc length."""


def make_robot(backend: str, scenario: Scenario, stack: StackConfig) -> Any:
    """A robot through the plugin registry, as ``robot:=NAME`` builds it (the registered factory is what is measured)."""
    registry = default_registry(entry_points=False)
    choice = registry.choose("robot_backend", {"robot_backend.plugin": backend}, "backend_bench", prefix="robot_backend")
    return registry.build(choice, scenario=scenario, cmd_timeout_s=stack.bridge.cmd_timeout_s)


def trajectory_difference(times_a: np.ndarray, xy_a: np.ndarray, times_b: np.ndarray, xy_b: np.ndarray,
                          *, stations: int = ARC_STATIONS) -> dict[str, float]:
    """How far apart two runs' true paths are (m).

    ``time_*``: at every control tick of either run, holding a run's last position after it
    ended (the robot stands at its final goal), so a robot that is merely slower counts.
    ``arc_*``: at the same fractions of each path's length, so only where the paths run counts.
    ``final``: between the end positions.
    """
    ta, tb = np.asarray(times_a, dtype=float), np.asarray(times_b, dtype=float)
    a, b = np.asarray(xy_a, dtype=float).reshape(-1, 2), np.asarray(xy_b, dtype=float).reshape(-1, 2)
    if len(ta) < 2 or len(tb) < 2 or len(ta) != len(a) or len(tb) != len(b):
        raise ValueError("trajectory_difference: each run needs at least two (time, x, y) samples, as many times as "
                         "positions")
    grid = np.union1d(ta, tb)
    pa = np.stack([np.interp(grid, ta, a[:, k]) for k in range(2)], axis=1)
    pb = np.stack([np.interp(grid, tb, b[:, k]) for k in range(2)], axis=1)
    by_time = np.linalg.norm(pa - pb, axis=1)
    u = np.linspace(0.0, 1.0, stations)
    by_arc = np.linalg.norm(_at_arc_fractions(a, u) - _at_arc_fractions(b, u), axis=1)
    return {"time_mean": float(by_time.mean()), "time_max": float(by_time.max()),
            "arc_mean": float(by_arc.mean()), "arc_max": float(by_arc.max()),
            "final": float(np.linalg.norm(a[-1] - b[-1]))}


def _at_arc_fractions(xy: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """Points at the given fractions (0..1) of a polyline's length (its start if it never moved)."""
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(xy, axis=0), axis=1))])
    if s[-1] <= 0.0:
        return np.repeat(xy[:1], len(fractions), axis=0)
    return np.stack([np.interp(fractions * s[-1], s, xy[:, k]) for k in range(2)], axis=1)


def measure_costs(backend: str, scenario: Scenario, stack: StackConfig, *, physics_s: float = PHYSICS_PROBE_S,
                  sensor_calls: int = SENSOR_PROBE_CALLS) -> dict[str, float | None]:
    """Raw physics steps/s, ms per lidar scan and per camera frame (None without a camera).

    The robot wiggles on the spot (forward and back while turning), so it stays clear of the
    walls in any scenario and the physics is measured on rolling wheels, not a robot at rest.
    """
    robot = make_robot(backend, scenario, stack)
    try:
        dt = 1.0 / stack.bridge.control_rate_hz
        ticks = max(1, int(round(physics_s / dt)))
        start = time.perf_counter()
        for i in range(ticks):
            robot.apply_command(VelocityCommand(robot.now(), 0.3 * math.sin(2.0 * math.pi * i * dt), 0.8))
            robot.advance(dt)
        physics_wall = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(sensor_calls):
            robot.read_scan()
        lidar_ms = (time.perf_counter() - start) / sensor_calls * 1e3
        camera_ms = None
        if scenario.sensors.camera.enabled:
            start = time.perf_counter()
            for _ in range(sensor_calls):
                robot.read_camera()
            camera_ms = (time.perf_counter() - start) / sensor_calls * 1e3
        steps = ticks * dt / PHYSICS_TIMESTEP_S
    finally:
        robot.close()
    return {"physics_steps_per_s": steps / physics_wall, "lidar_ms": lidar_ms, "camera_ms": camera_ms}


def run(scenario_path: Path, seeds: int = 3, params: Path = DEFAULT_PARAMS_FILE, *,
        physics_s: float = PHYSICS_PROBE_S, sensor_calls: int = SENSOR_PROBE_CALLS) -> dict[str, Any]:
    """Every backend on seeds 0..``seeds``-1 of one scenario, then the pairwise trajectory differences."""
    if seeds < 1:
        raise ValueError(f"seeds: must be >= 1, got {seeds}")
    base = load_scenario(scenario_path)
    stack = load_stack_config(params)
    runs: dict[str, list[RunResult]] = {}
    backends: dict[str, dict[str, Any]] = {}
    for backend in BACKENDS:
        results = []
        for seed in range(seeds):
            sc = base.with_overrides(seed=seed)
            robot = make_robot(backend, sc, stack)
            try:
                results.append(InProcessRunner(sc, stack, robot).run(RunOptions()))
            finally:
                robot.close()
        runs[backend] = results
        rows = [r.metrics for r in results]
        rtf = [m["real_time_factor"] for m in rows]
        backends[backend] = {
            "real_time_factor_median": float(np.median(rtf)),
            "real_time_factor_min": float(np.min(rtf)),
            "goals_reached": sum(m["goals_reached"] for m in rows),
            "goals_total": sum(m["goals_total"] for m in rows),
            "success": sum(bool(m["success"]) for m in rows),
            "collisions": sum(m["collisions"] for m in rows),
            "aborted": sum(bool(m.get("aborted", False)) for m in rows),
            "sim_time_s": [m["sim_time_s"] for m in rows],
            "final_odometry_drift_m": [m["final_odometry_drift_m"] for m in rows],
            **measure_costs(backend, base, stack, physics_s=physics_s, sensor_calls=sensor_calls),
        }
    reference, other = BACKENDS
    per_seed = [trajectory_difference(a.times, a.true_xy, b.times, b.true_xy)
                for a, b in zip(runs[reference], runs[other])]
    worst = {key: max(d[key] for d in per_seed) for key in per_seed[0]}
    return {
        "scenario": base.name,
        "seeds": seeds,
        "control_rate_hz": stack.bridge.control_rate_hz,
        "physics_timestep_s": PHYSICS_TIMESTEP_S,
        "backends": backends,
        "trajectory_difference_m": {"between": [reference, other], "per_seed": per_seed, "worst": worst},
    }


def format_table(r: dict[str, Any]) -> str:
    names = list(r["backends"])
    rows: list[tuple[str, Any]] = [
        ("closed-loop real-time factor (median)", lambda b: f"{b['real_time_factor_median']:.1f}x"),
        ("closed-loop real-time factor (worst)", lambda b: f"{b['real_time_factor_min']:.1f}x"),
        ("goals reached", lambda b: f"{b['goals_reached']}/{b['goals_total']}"),
        ("runs succeeded", lambda b: f"{b['success']}/{r['seeds']}"),
        ("collisions", lambda b: f"{b['collisions']}"),
        ("aborted runs", lambda b: f"{b['aborted']}"),
        ("physics steps/s (raw)", lambda b: f"{b['physics_steps_per_s']:,.0f}"),
        ("lidar ms/scan", lambda b: f"{b['lidar_ms']:.3f}"),
        ("camera ms/frame", lambda b: "-" if b["camera_ms"] is None else f"{b['camera_ms']:.3f}"),
    ]
    lines = [f"backends: {r['scenario']}, {r['seeds']} seeds, control at {r['control_rate_hz']:.0f} Hz, physics "
             f"{r['physics_timestep_s'] * 1e3:g} ms, no rendering in the loop",
             f"  {'':<40}" + "".join(f"{n:>14}" for n in names)]
    for label, cell in rows:
        lines.append(f"  {label:<40}" + "".join(f"{cell(r['backends'][n]):>14}" for n in names))
    diff = r["trajectory_difference_m"]
    w = diff["worst"]
    lines += ["",
              f"  true trajectories, {' vs '.join(diff['between'])} (worst seed, m):",
              f"    same time:       mean {w['time_mean']:.3f}  max {w['time_max']:.3f}",
              f"    same arc length: mean {w['arc_mean']:.3f}  max {w['arc_max']:.3f}",
              f"    final position:  {w['final']:.3f}"]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--scenario", type=Path, default=Path(__file__).resolve().parents[1] / "scenarios" / "short_aisle.yaml")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    if a.seeds < 1:
        p.error(f"--seeds: must be >= 1, got {a.seeds}")
    r = run(a.scenario, a.seeds)
    print(to_json(r) if a.json else format_table(r))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
