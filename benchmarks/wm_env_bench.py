"""World-model environment throughput: can a CPU collect DINO-WM-sized datasets?

DINO-WM (Zhou et al. 2025, arXiv 2411.04983) trains on 2,000 x 100 PointMaze steps and
1,920 x 50 Wall steps. Per environment (:mod:`navkit.sim.wm_envs`) this measures:

* ``physics_steps_per_s``: simulator steps alone (MuJoCo ``mj_step`` for PointMaze, the
  AGV's 2 ms steps inside ``MujocoRobot.advance`` for the warehouse, the segment/wall
  update for Wall), without rendering;
* ``render_fps``: observation images per second at ``size``;
* ``env_steps_per_s``: ``step`` (control period + image + proprio) with the collection policy;
* ``dataset_minutes``: what the paper-sized dataset would take at that rate.

Timings are wall clock on this machine, single process.
"""
from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from navkit.common.json_output import to_json
from navkit.sim.wm_envs import WM_ENV_NAMES, make_wm_env

PAPER_STEPS = {"pointmaze": 2000 * 100, "wall": 1920 * 50, "warehouse": 2000 * 100}
"""Steps of the dataset sizes in the paper (the warehouse: as PointMaze)."""


def _physics(env: Any, seconds: float) -> float:
    """Simulator steps per second, no rendering."""
    name = env.name
    n, start = 0, time.perf_counter()
    if name == "pointmaze":
        import mujoco

        while time.perf_counter() - start < seconds:
            mujoco.mj_step(env.model, env.data, nstep=500)
            n += 500
    elif name == "wall":
        rng = np.random.default_rng(0)
        moves = rng.uniform(-0.05, 0.05, (1000, 2))
        while time.perf_counter() - start < seconds:
            for dx, dy in moves:
                env._move(float(dx), float(dy))
            n += len(moves)
    else:
        from navkit.common.sensor_data import VelocityCommand
        from navkit.sim.mjcf_builder import PHYSICS_TIMESTEP_S

        while time.perf_counter() - start < seconds:
            env.robot.apply_command(VelocityCommand(env.robot.now(), 0.0, 0.5))
            env.robot.advance(0.1)
            n += int(round(0.1 / PHYSICS_TIMESTEP_S))
    return n / (time.perf_counter() - start)


def _rate(fn: Any, seconds: float) -> float:
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        n += 1
    return n / (time.perf_counter() - start)


def run(envs: tuple[str, ...] = WM_ENV_NAMES, size: int = 64, seconds: float = 2.0) -> dict[str, Any]:
    """One row per environment (see the module docstring)."""
    rows = []
    for name in envs:
        env = make_wm_env(name, image_size=size)
        try:
            env.reset(0)
            physics = _physics(env, seconds)
            env.reset(0)
            fps = _rate(env.render, seconds)
            env.reset(1)
            steps = _rate(lambda e=env: e.step(e.random_action()), seconds)
        finally:
            env.close()
        rows.append({"env": name, "size": size, "physics_steps_per_s": round(physics, 1),
                     "render_fps": round(fps, 1), "env_steps_per_s": round(steps, 1),
                     "dataset_steps": PAPER_STEPS[name],
                     "dataset_minutes": round(PAPER_STEPS[name] / steps / 60.0, 1)})
    return {"rows": rows}


def format_table(result: dict[str, Any]) -> str:
    head = f"{'env':<10} {'size':>5} {'physics steps/s':>16} {'render fps':>11} {'env steps/s':>12} {'paper set (min)':>16}"
    lines = [head, "-" * len(head)]
    for r in result["rows"]:
        lines.append(f"{r['env']:<10} {r['size']:>5} {r['physics_steps_per_s']:>16,.0f} {r['render_fps']:>11,.0f} "
                     f"{r['env_steps_per_s']:>12,.0f} {r['dataset_minutes']:>16.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = run(size=args.size, seconds=args.seconds)
    print(to_json(result) if args.json else format_table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
