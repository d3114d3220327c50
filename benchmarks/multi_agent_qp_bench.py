"""Decentralized multi-agent CBF filter: batched exact QP vs per-agent loops (numpy, cvxpy).

Each step is a fresh random scene (agents packed at ~1 per m², moving obstacles, random
nominal commands and per-agent α), filtered by :class:`MultiAgentCbfFilter`. Timed per step:

* ``filter``: the whole batched tick (constraint building + :func:`solve_qp_2d_batched`);
* ``batched QP``: :func:`solve_qp_2d_batched` alone on that tick's rows;
* ``loop exact``: :func:`solve_qp_2d` called once per agent on the same rows;
* ``loop cvxpy``: the DPP-compiled cvxpy/Clarabel reference once per agent, on a subset of
  steps only (it is ~1000× slower); its answers are also the agreement check.

    python -m navkit.benchmarks.multi_agent_qp_bench --agents 16 --steps 200
"""
from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from navkit.common.json_output import to_json
from navkit.control.batched_qp import solve_qp_2d_batched
from navkit.control.multi_agent_cbf import AgentStatus, MultiAgentCbfConfig, MultiAgentCbfFilter
from navkit.control.qp_reference import ReferenceQp
from navkit.control.small_qp import solve_qp_2d

_N_OBSTACLES = 8


def _scene(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Agents ≥ 0.5 m apart in a square holding ~1 agent per m², plus moving obstacles."""
    side = math.sqrt(n) * 1.2
    pts: list[np.ndarray] = []
    while len(pts) < n:
        cand = rng.uniform(0.0, side, size=2)
        if all(np.hypot(*(cand - p)) > 0.5 for p in pts):
            pts.append(cand)
    return {
        "positions": np.array(pts),
        "u_nom": rng.normal(scale=0.8, size=(n, 2)),
        "alpha": rng.uniform(0.3, 3.0, n),
        "obstacle_positions": rng.uniform(-0.5, side + 0.5, size=(_N_OBSTACLES, 2)),
        "obstacle_radii": rng.uniform(0.05, 0.3, _N_OBSTACLES),
        "obstacle_velocities": rng.normal(scale=0.2, size=(_N_OBSTACLES, 2)),
    }


def _stats(times_s: list[float], per: int) -> dict[str, float]:
    us = np.asarray(times_s) * 1e6
    return {
        "step_median_us": float(np.median(us)),
        "step_p99_us": float(np.percentile(us, 99)),
        "agent_median_us": float(np.median(us)) / per,
        "agent_p99_us": float(np.percentile(us, 99)) / per,
    }


def run(n_agents: int = 16, steps: int = 200, seed: int = 0, cvxpy_steps: int = 20) -> dict[str, Any]:
    """Time the batched filter and the per-agent loops on the same random scenes."""
    if n_agents < 1:
        raise ValueError(f"n_agents: must be >= 1, got {n_agents}")
    if steps < 1:
        raise ValueError(f"steps: must be >= 1, got {steps}")
    if cvxpy_steps < 0:
        raise ValueError(f"cvxpy_steps: must be >= 0, got {cvxpy_steps}")
    rng = np.random.default_rng(seed)
    filt = MultiAgentCbfFilter(MultiAgentCbfConfig())
    w = np.ones(2)
    scenes = [_scene(rng, n_agents) for _ in range(steps)]
    cvxpy_every = max(1, steps // max(cvxpy_steps, 1))
    reference: ReferenceQp | None = None

    times: dict[str, list[float]] = {"filter": [], "batched_qp": [], "loop_exact": [], "loop_cvxpy": []}
    rows_per_agent: list[int] = []
    status_counts = {s.name: 0 for s in AgentStatus}
    max_diff_exact = max_diff_cvxpy = 0.0
    feas_disagree = 0
    for step, s in enumerate(scenes):
        t0 = time.perf_counter()
        res = filt.filter(s["positions"], None, s["u_nom"], s["alpha"], s["obstacle_positions"],
                          s["obstacle_radii"], s["obstacle_velocities"])
        times["filter"].append(time.perf_counter() - t0)
        for st in res.status:
            status_counts[AgentStatus(int(st)).name] += 1
        A, b, mask = filt.constraints(s["positions"], None, s["u_nom"], s["alpha"], s["obstacle_positions"],
                                      s["obstacle_radii"], s["obstacle_velocities"])
        rows_per_agent.extend(int(x) for x in mask.sum(axis=1))

        t0 = time.perf_counter()
        sol = solve_qp_2d_batched(w, s["u_nom"], A, b, mask)
        times["batched_qp"].append(time.perf_counter() - t0)

        per_agent = [(A[i][mask[i]], b[i][mask[i]]) for i in range(n_agents)]
        t0 = time.perf_counter()
        loop = [solve_qp_2d(w, s["u_nom"][i], Ai, bi) for i, (Ai, bi) in enumerate(per_agent)]
        times["loop_exact"].append(time.perf_counter() - t0)
        for i, one in enumerate(loop):
            feas_disagree += int(one.feasible != bool(sol.feasible[i]))
            if one.feasible and sol.feasible[i]:
                max_diff_exact = max(max_diff_exact, float(np.abs(one.u - sol.u[i]).max()))

        if cvxpy_steps and step % cvxpy_every == 0 and len(times["loop_cvxpy"]) < cvxpy_steps:
            if reference is None:
                reference = ReferenceQp(A.shape[1])
            t0 = time.perf_counter()
            refs = [reference.solve(w, s["u_nom"][i], Ai, bi) for i, (Ai, bi) in enumerate(per_agent)]
            times["loop_cvxpy"].append(time.perf_counter() - t0)
            for i, ref in enumerate(refs):
                feas_disagree += int(ref.feasible != bool(sol.feasible[i]))
                if ref.feasible and sol.feasible[i]:
                    max_diff_cvxpy = max(max_diff_cvxpy, float(np.abs(ref.u - sol.u[i]).max()))

    solvers = {name: _stats(t, n_agents) for name, t in times.items() if t}
    return {
        "n_agents": n_agents,
        "steps": steps,
        "cvxpy_steps": len(times["loop_cvxpy"]),
        "seed": seed,
        "rows_per_agent_mean": float(np.mean(rows_per_agent)),
        "rows_per_agent_max": int(np.max(rows_per_agent)),
        "status_counts": status_counts,
        "solvers": solvers,
        "feasibility_disagreements": feas_disagree,
        "max_abs_diff_batched_vs_exact_loop": max_diff_exact,
        "max_abs_diff_batched_vs_cvxpy": max_diff_cvxpy,
    }


def format_table(result: dict[str, Any]) -> str:
    """Aligned plain-text table of a :func:`run` result."""
    names = {
        "filter": "batched filter (rows + QP)",
        "batched_qp": "batched QP only",
        "loop_exact": "loop solve_qp_2d per agent",
        "loop_cvxpy": "loop cvxpy DPP per agent",
    }
    base = result["solvers"]["filter"]["step_median_us"]
    header = (f"{'method':<30}{'step med µs':>13}{'step p99 µs':>13}{'agent med µs':>14}"
              f"{'agent p99 µs':>14}{'× filter':>10}")
    lines = [
        f"Multi-agent CBF-QP: {result['n_agents']} agents, {result['steps']} steps "
        f"(cvxpy on {result['cvxpy_steps']}), rows/agent mean {result['rows_per_agent_mean']:.1f} "
        f"max {result['rows_per_agent_max']}, seed {result['seed']}",
        header,
        "-" * len(header),
    ]
    for key, label in names.items():
        s = result["solvers"].get(key)
        if s is None:
            continue
        lines.append(f"{label:<30}{s['step_median_us']:>13.1f}{s['step_p99_us']:>13.1f}{s['agent_median_us']:>14.2f}"
                     f"{s['agent_p99_us']:>14.2f}{s['step_median_us'] / base:>10.1f}")
    lines.append("-" * len(header))
    counts = ", ".join(f"{k} {v}" for k, v in result["status_counts"].items())
    lines.append(f"statuses: {counts}")
    lines.append(
        f"feasibility disagreements {result['feasibility_disagreements']}, "
        f"max |u_batched - u_loop| {result['max_abs_diff_batched_vs_exact_loop']:.2e}, "
        f"max |u_batched - u_cvxpy| {result['max_abs_diff_batched_vs_cvxpy']:.2e}"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m navkit.benchmarks.multi_agent_qp_bench",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=16, help="number of agents")
    parser.add_argument("--steps", type=int, default=200, help="control ticks (random scenes)")
    parser.add_argument("--cvxpy-steps", type=int, default=20, help="ticks also solved by the cvxpy loop")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the raw result as JSON instead of a table")
    args = parser.parse_args(argv)
    result = run(n_agents=args.agents, steps=args.steps, seed=args.seed, cvxpy_steps=args.cvxpy_steps)
    print(to_json(result) if args.json else format_table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
