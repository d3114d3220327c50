"""Closed-loop speed: simulated seconds per wall second at 50 Hz control, per-stage time.

Runs the in-process stack without rendering (rendering is a separate, optional cost)
on a scenario for a few seeds, and reports the real-time factor and the time each
stage takes per call, measured in this run.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any
from collections.abc import Sequence

import numpy as np

from navkit.common.json_output import to_json
from navkit.learning.navigation_episode import STAGES
from navkit.runner.in_process import InProcessRunner, RunOptions
from navkit.stack.config import DEFAULT_PARAMS_FILE, load_stack_config
from navkit.sim.mujoco_backend import MujocoRobot
from navkit.sim.scenario import load_scenario


def run(scenario_path: Path, seeds: int = 3, params: Path = DEFAULT_PARAMS_FILE) -> dict[str, Any]:
    base = load_scenario(scenario_path)
    stack = load_stack_config(params)
    rows = []
    for seed in range(seeds):
        sc = base.with_overrides(seed=seed)
        robot = MujocoRobot(sc, cmd_timeout_s=stack.bridge.cmd_timeout_s)
        m = InProcessRunner(sc, stack, robot).run(RunOptions()).metrics
        rows.append(m)
    rtf = [m["real_time_factor"] for m in rows]
    return {
        "scenario": base.name,
        "control_rate_hz": stack.bridge.control_rate_hz,
        "seeds": seeds,
        "success": sum(m["success"] for m in rows),
        "collisions": sum(m["collisions"] for m in rows),
        "sim_time_s": [m["sim_time_s"] for m in rows],
        "real_time_factor_median": float(np.median(rtf)),
        "real_time_factor_min": float(np.min(rtf)),
        "stage_ms_mean": {s: float(np.mean([m["stage_ms"][s]["mean"] for m in rows if s in m["stage_ms"]]))
                          for s in STAGES},
        "stage_ms_p99": {s: float(np.max([m["stage_ms"][s]["p99"] for m in rows if s in m["stage_ms"]]))
                         for s in STAGES},
    }


def format_table(r: dict[str, Any]) -> str:
    lines = [
        f"closed loop: {r['scenario']}, {r['seeds']} seeds, control at {r['control_rate_hz']:.0f} Hz, no rendering",
        f"  success {r['success']}/{r['seeds']}, collisions {r['collisions']}, sim time per run {r['sim_time_s']} s",
        f"  real-time factor: median {r['real_time_factor_median']:.1f}x, worst {r['real_time_factor_min']:.1f}x"
        "  (target >= 50x)",
        "",
        f"  {'stage':<15}{'mean ms/call':>14}{'p99 ms/call':>14}",
    ]
    for s in STAGES:
        lines.append(f"  {s:<15}{r['stage_ms_mean'][s]:>14.3f}{r['stage_ms_p99'][s]:>14.3f}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--scenario", type=Path, default=Path(__file__).resolve().parents[1] / "scenarios" / "warehouse_demo.yaml")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    r = run(a.scenario, a.seeds)
    print(to_json(r) if a.json else format_table(r))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
