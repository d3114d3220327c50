"""Safety-filter QP: exact 2-D solver vs cvxpy (DPP re-solve) vs OSQP (warm, fixed sparsity).

Instances come from random lidar scans through ``CbfSafetyFilter.constraints``, so K and
the constraint geometry are what the filter really solves each tick. The generic solvers
get their fairest setup: compiled/factorised once for ``k + 4`` padded rows, then only
their data is updated per instance.

    python -m navkit.benchmarks.qp_bench --n 500 --k 16
"""
from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import osqp
import scipy.sparse as sp

from navkit.common.json_output import to_json
from navkit.control.cbf_filter import CbfFilterConfig, CbfSafetyFilter
from navkit.control.qp_reference import ReferenceQp
from navkit.control.small_qp import solve_qp_2d

_BOX_ROWS = 4


def _random_scan_points(rng: np.random.Generator, n_rays: int = 360) -> np.ndarray:
    """A cluttered-room scan (base frame): random distance per ray, with gaps; a few scans intrude."""
    nearest = 0.3 if rng.random() < 0.05 else rng.uniform(0.45, 1.5)  # a few intrude: infeasible
    ranges = rng.uniform(nearest, 4.0, n_rays)
    ranges[rng.random(n_rays) < 0.4] = np.inf
    angles = -math.pi + 2.0 * math.pi / n_rays * np.arange(n_rays)
    ok = np.isfinite(ranges)
    return np.stack([ranges[ok] * np.cos(angles[ok]), ranges[ok] * np.sin(angles[ok])], axis=1)


def _instances(n: int, k: int, seed: int) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    rng = np.random.default_rng(seed)
    filt = CbfSafetyFilter(CbfFilterConfig(max_constraints=k))
    weights = np.array([1.0, filt.config.omega_weight])
    out = []
    for _ in range(n):
        A, b = filt.constraints(_random_scan_points(rng))
        u_nom = np.array([rng.uniform(-0.3, 1.0), rng.uniform(-2.0, 2.0)])
        out.append((u_nom, A, b))
    return weights, out


class _OsqpPadded:
    """OSQP set up once with a dense (k_max, 2) constraint pattern; per instance only q, A, l, u change."""

    def __init__(self, weights: np.ndarray, k_max: int) -> None:
        self.k_max = k_max
        self.weights = weights
        pattern = sp.csc_matrix(np.ones((k_max, 2)))  # every entry stored: the sparsity never changes
        self.solver = osqp.OSQP()
        self.solver.setup(
            P=sp.csc_matrix(np.diag(weights)),
            q=np.zeros(2),
            A=pattern,
            l=np.full(k_max, -np.inf),
            u=np.full(k_max, np.inf),
            verbose=False,
            polishing=False,
            eps_abs=1e-7,
            eps_rel=1e-7,
        )

    def solve(self, u_nom: np.ndarray, A: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, bool]:
        k = A.shape[0]
        A_pad = np.zeros((self.k_max, 2))
        A_pad[:k] = A
        lower = np.full(self.k_max, -1.0)  # padded rows read 0·u >= -1
        lower[:k] = b
        self.solver.update(q=-self.weights * u_nom, l=lower, u=np.full(self.k_max, np.inf), Ax=A_pad.ravel(order="F"))
        result = self.solver.solve(raise_error=False)
        solved = result.info.status_val in (1, 2)  # solved, solved inaccurate
        return np.asarray(result.x, dtype=float), solved


def _stats(times_s: list[float]) -> dict[str, float]:
    us = np.asarray(times_s) * 1e6
    return {"median_us": float(np.median(us)), "p99_us": float(np.percentile(us, 99))}


def run(n_instances: int = 500, k: int = 16, seed: int = 0) -> dict[str, Any]:
    """Time the three solvers on the same instances; returns timings, speed ratios and agreement."""
    if n_instances < 1:
        raise ValueError(f"n_instances: must be >= 1, got {n_instances}")
    if k < 1:
        raise ValueError(f"k: must be >= 1, got {k}")
    weights, instances = _instances(n_instances, k, seed)
    k_max = k + _BOX_ROWS
    reference = ReferenceQp(k_max)
    osqp_solver = _OsqpPadded(weights, k_max)
    # One pass per solver, so each runs with its own code and data warm in cache, as it
    # would inside the filter loop; per-instance times keep the p99.
    solvers_fn = {
        "fast": lambda u_nom, A, b: solve_qp_2d(weights, u_nom, A, b),
        "cvxpy": lambda u_nom, A, b: reference.solve(weights, u_nom, A, b),
        "osqp": lambda u_nom, A, b: osqp_solver.solve(u_nom, A, b),
    }
    times: dict[str, list[float]] = {}
    answers: dict[str, list[Any]] = {}
    for name, solve in solvers_fn.items():
        times[name], answers[name] = [], []
        for u_nom, A, b in instances:
            t0 = time.perf_counter()
            answer = solve(u_nom, A, b)
            times[name].append(time.perf_counter() - t0)
            answers[name].append(answer)
    rows = [A.shape[0] for _, A, _ in instances]
    err_cvxpy = err_osqp = 0.0
    n_feasible = disagreements = 0
    for fast, ref, (u_osqp, osqp_ok) in zip(answers["fast"], answers["cvxpy"], answers["osqp"]):
        if fast.feasible != ref.feasible:
            disagreements += 1
        if fast.feasible and ref.feasible:
            n_feasible += 1
            err_cvxpy = max(err_cvxpy, float(np.abs(fast.u - ref.u).max()))
            if osqp_ok:
                err_osqp = max(err_osqp, float(np.abs(fast.u - u_osqp).max()))
    solvers = {name: _stats(t) for name, t in times.items()}
    fast_median = solvers["fast"]["median_us"]
    return {
        "n_instances": n_instances,
        "k": k,
        "seed": seed,
        "rows_mean": float(np.mean(rows)),
        "rows_max": int(np.max(rows)),
        "n_feasible": n_feasible,
        "feasibility_disagreements": disagreements,
        "solvers": solvers,
        "ratio_cvxpy_over_fast": solvers["cvxpy"]["median_us"] / fast_median,
        "ratio_osqp_over_fast": solvers["osqp"]["median_us"] / fast_median,
        "max_abs_diff_fast_vs_cvxpy": err_cvxpy,
        "max_abs_diff_fast_vs_osqp": err_osqp,
    }


def format_table(result: dict[str, Any]) -> str:
    """Aligned plain-text table of a :func:`run` result."""
    names = {"fast": "exact 2-D (solve_qp_2d)", "cvxpy": "cvxpy DPP + Clarabel", "osqp": "OSQP (update + solve)"}
    ratios = {"fast": 1.0, "cvxpy": result["ratio_cvxpy_over_fast"], "osqp": result["ratio_osqp_over_fast"]}
    header = f"{'solver':<26}{'median µs':>12}{'p99 µs':>12}{'× fast':>10}"
    lines = [
        f"QP benchmark: {result['n_instances']} instances, k={result['k']} sectors "
        f"(rows mean {result['rows_mean']:.1f}, max {result['rows_max']}), seed {result['seed']}",
        header,
        "-" * len(header),
    ]
    for key, label in names.items():
        s = result["solvers"][key]
        lines.append(f"{label:<26}{s['median_us']:>12.1f}{s['p99_us']:>12.1f}{ratios[key]:>10.1f}")
    lines.append("-" * len(header))
    lines.append(
        f"feasible {result['n_feasible']}/{result['n_instances']}, feasibility disagreements "
        f"{result['feasibility_disagreements']}, max |u_fast - u_cvxpy| {result['max_abs_diff_fast_vs_cvxpy']:.2e}, "
        f"max |u_fast - u_osqp| {result['max_abs_diff_fast_vs_osqp']:.2e}"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m navkit.benchmarks.qp_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500, help="number of instances")
    parser.add_argument("--k", type=int, default=16, help="angular sectors (max CBF rows; 4 box rows are added)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the raw result as JSON instead of a table")
    args = parser.parse_args(argv)
    result = run(n_instances=args.n, k=args.k, seed=args.seed)
    print(to_json(result) if args.json else format_table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
