"""Online CBF (policy-tuned α) vs fixed-α CBFs and a right-of-way rule, measured in one run.

For every scenario row (a file, at a team size), control rate and seed, the same episodes
run with each method:

* ``fixed α=…``: the grid a user would try by hand (the oracle "best fixed" is the grid's best
  on these very seeds: the strongest fixed baseline there can be);
* ``fixed, tuned``: the α chosen per row on *training* seeds (what a user tuning honestly gets);
* ``priority rule``: :class:`~navkit.control.right_of_way.PriorityRule` (hand-written yielding by token);
* ``online``: the policy checkpoint.

Seeds start at ``SEED_OFFSET``, disjoint from the trainer's training (< 10⁶) and model-selection
seeds. The online policy is also run on every row rotated by 90°, 180° and 270° (a policy
that reads world headings changes its outcome; one in the robots' own frames must not).
Success rates carry Wilson 95 % intervals; the target checks at the end compare the online
policy with the best fixed α and the rule on every row and rate. Also timed: policy + QP cost
per agent per step on one core at 64 robots.
"""
from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from navkit.common.json_output import to_json
from navkit.control.right_of_way import PriorityRule
from navkit.control.shipped import SHIPPED_ONLINE_CBF_POLICY
from navkit.control.swarm_controller import FixedAlpha, SwarmController
from navkit.learning.swarm_rollout import rollout
from navkit.learning.swarm_task import EpisodeMetrics
from navkit.sim.swarm_scenario import SwarmScenario, SwarmScenarioSpec, load_swarm_scenario

REPO = Path(__file__).resolve().parents[1]
MULTI = REPO / "scenarios" / "multi"
DEFAULT_ROWS: list[tuple[Path, int | None]] = [
    *[(MULTI / "circle_swap.yaml", n) for n in (4, 8, 16, 32)],
    *[(MULTI / f"{name}.yaml", None) for name in ("circle_swap_unicycle", "two_way_corridor", "narrow_passage",
                                                  "crossing", "cluttered", "posts", "moving_obstacles",
                                                  "random_rooms")]]
DEFAULT_POLICY = SHIPPED_ONLINE_CBF_POLICY
ALPHA_GRID = (0.1, 0.3, 1.0, 3.0, 10.0)
RATES_HZ = (10.0, 20.0, 50.0)
ROTATIONS_DEG = (90.0, 180.0, 270.0)
SEED_OFFSET = 2_000_000
TUNING_SEED_OFFSET = 1_000
"""Seeds the ``fixed, tuned`` row picks its α on: inside the trainer's training range, never benchmarked."""
BATCH = 25
"""Scenes stepped together (memory and speed sweet spot on 2 cores)."""
ONLINE = "online"
RULE = "priority rule"
TUNED = "fixed, tuned"


@dataclass(frozen=True)
class Row:
    """One benchmark row: a scenario file at a team size (None: the file's own)."""

    path: Path
    agents: int | None

    def spec(self) -> SwarmScenarioSpec:
        return load_swarm_scenario(self.path)

    def scenes(self, seeds: Sequence[int], rate_hz: float, rotation_deg: float = 0.0) -> list[SwarmScenario]:
        spec = self.spec()
        out = []
        for s in seeds:
            sc = spec.expand(seed=s, num_agents=self.agents).at_rate(rate_hz)
            out.append(sc.transformed(math.radians(rotation_deg)) if rotation_deg else sc)
        return out

    def label(self) -> str:
        spec = self.spec()
        return f"{spec.name} ×{self.agents}" if self.agents else spec.name


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a success rate (honest at 0 and 1, unlike p ± 2σ)."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def summarise(rows: list[EpisodeMetrics]) -> dict[str, Any]:
    ttg = [r.mean_time_to_goal_s for r in rows if r.success]
    plr = [r.path_length_ratio for r in rows if r.success]
    wins = int(sum(r.success for r in rows))
    return {
        "episodes": len(rows),
        "success_rate": wins / len(rows),
        "success_ci95": list(wilson(wins, len(rows))),
        "collisions": int(sum(r.collisions for r in rows)),
        "robot_robot": int(sum(r.agent_collisions for r in rows)),
        "robot_obstacle": int(sum(r.obstacle_collisions for r in rows)),
        "obstacle_into_stopped": int(sum(r.obstacle_into_stopped for r in rows)),
        "min_separation_m": float(min(r.min_separation_m for r in rows)),
        "min_obstacle_gap_m": float(min(r.min_obstacle_gap_m for r in rows)),
        "infeasible": int(sum(r.infeasible for r in rows)),
        "mean_time_to_goal_s": float(np.mean(ttg)) if ttg else math.nan,
        "path_length_ratio": float(np.mean(plr)) if plr else math.nan,
        "agents_at_goal_mean": float(np.mean([r.agents_at_goal for r in rows])),
        "per_seed_success": [bool(r.success) for r in rows],
        "per_seed_ttg": [float(r.mean_time_to_goal_s) for r in rows],
    }


_POLICY: dict[str, Any] = {}


def _source(method: Any) -> Any:
    if method == ONLINE:
        return _POLICY["online"]
    if method == RULE:
        return PriorityRule()
    return FixedAlpha(float(method))


def _episodes(row: Row, method: Any, seeds: Sequence[int], rate_hz: float, rotation_deg: float = 0.0
              ) -> list[EpisodeMetrics]:
    scenes = row.scenes(seeds, rate_hz, rotation_deg)
    controller = SwarmController.for_scenario(scenes[0])
    out: list[EpisodeMetrics] = []
    for i in range(0, len(scenes), BATCH):
        out += rollout(scenes[i:i + BATCH], controller, _source(method))
    return out


def _unit(args: tuple) -> tuple[tuple, dict[str, Any]]:
    key, row, method, seeds, rate, rotation = args
    import torch

    torch.set_num_threads(1)
    return key, summarise(_episodes(row, method, seeds, rate, rotation))


def _best(methods: dict[str, dict[str, Any]], keys: Sequence[str]) -> str:
    """Highest success, then shortest time-to-goal (how a user picks from a grid)."""
    return max(keys, key=lambda k: (methods[k]["success_rate"],
                                    -np.nan_to_num(methods[k]["mean_time_to_goal_s"], nan=1e9)))


def time_policy_and_qp(policy: Any, scenario_path: Path, num_agents: int = 64, steps: int = 100) -> dict[str, float]:
    """Wall time per agent per step of (policy + QP) for one team, single-threaded torch."""
    import torch

    from navkit.sim.kinematic_swarm import KinematicSwarm

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        spec = load_swarm_scenario(scenario_path)
        resizable = spec.doc.get("agents", {}).get("layout", {}).get("type") != "explicit"
        sc = spec.expand(seed=SEED_OFFSET, num_agents=num_agents if resizable else None)
        env = KinematicSwarm([sc])
        controller = SwarmController.for_scenario(sc)
        source = policy if policy is not None else FixedAlpha(1.0)
        t_policy, t_qp, t_reference = [], [], []
        state = env.state
        for k in range(steps):
            t0 = time.perf_counter()
            alpha = source(state)
            t1 = time.perf_counter()
            action = controller.act(state, alpha)
            t2 = time.perf_counter()
            if policy is not None and k % 10 == 0:  # the torch-geometric reference of the same network
                from navkit.control.online_cbf_reference import reference_actions

                reference_actions(policy.model, state)
                t_reference.append(time.perf_counter() - t2)
            state = env.step(action.u).state
            t_policy.append(t1 - t0)
            t_qp.append(t2 - t1)
    finally:
        torch.set_num_threads(threads)
    per_agent = 1e6 / sc.num_agents
    return {"num_agents": sc.num_agents, "policy_us_per_agent": float(np.median(t_policy)) * per_agent,
            "qp_us_per_agent": float(np.median(t_qp)) * per_agent,
            "total_us_per_agent": float(np.median(np.add(t_policy, t_qp))) * per_agent,
            "policy_torch_geometric_us_per_agent": float(np.median(t_reference)) * per_agent if t_reference else math.nan}


def run(rows: Sequence[Row] | None = None, seeds: int = 50, policy_path: Path | None = DEFAULT_POLICY,
        rates_hz: Sequence[float] = RATES_HZ, rotations_deg: Sequence[float] = ROTATIONS_DEG,
        tuning_seeds: int = 20, jobs: int = 1, progress: bool = True, timing_agents: int = 64) -> dict[str, Any]:
    """Every method on every row, rate and seed; see the module docstring. ``jobs`` > 1 runs work units in
    that many processes (each single-threaded)."""
    rows = list(rows) if rows is not None else [Row(p, n) for p, n in DEFAULT_ROWS]
    policy = None
    if policy_path is not None:  # a missing or broken checkpoint is an error naming the file
        from navkit.control.online_cbf_policy import OnlineCbfPolicy

        policy = OnlineCbfPolicy.load(policy_path)
    _POLICY["online"] = policy
    # Every file is read and expanded at every rate before anything runs: a bad one must not cost the others' hours.
    for row in rows:
        for rate in rates_hz:
            row.scenes([SEED_OFFSET], rate)
    labels = [row.label() for row in rows]
    if len(set(labels)) != len(labels):
        raise ValueError("two rows share a name: give each scenario file a distinct name")
    bench_seeds = [SEED_OFFSET + s for s in range(seeds)]
    tune_seeds = [TUNING_SEED_OFFSET + s for s in range(tuning_seeds)]
    units: list[tuple] = []
    for row, label in zip(rows, labels):
        for alpha in ALPHA_GRID:
            units.append((("tune", label, alpha), row, alpha, tune_seeds, 20.0, 0.0))
        for rate in rates_hz:
            for method in [*ALPHA_GRID, RULE] + ([ONLINE] if policy else []):
                units.append((("bench", label, rate, method), row, method, bench_seeds, rate, 0.0))
        if policy:
            for rot in rotations_deg:
                units.append((("rotated", label, rot), row, ONLINE, bench_seeds, 20.0, rot))
    results: dict[tuple, dict[str, Any]] = {}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(units), desc="online-cbf bench", unit="run")
    t0 = time.perf_counter()
    if jobs > 1:
        import multiprocessing

        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            for key, summary in pool.imap_unordered(_unit, units):
                results[key] = summary
                if bar is not None:
                    bar.update(1)
    else:
        for unit in units:
            key, summary = _unit(unit)
            results[key] = summary
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    out: dict[str, Any] = {"seeds": seeds, "seed_offset": SEED_OFFSET, "alpha_grid": list(ALPHA_GRID),
                           "rates_hz": list(rates_hz), "rotations_deg": list(rotations_deg),
                           "tuning_seeds": tuning_seeds, "policy": str(policy_path) if policy else None,
                           "wall_s": round(time.perf_counter() - t0, 1), "rows": {}}
    for row, label in zip(rows, labels):
        tuning = {f"{a:g}": results[("tune", label, a)] for a in ALPHA_GRID}
        tuned_alpha = float(_best(tuning, list(tuning)))
        first = row.scenes([SEED_OFFSET], rates_hz[0])[0]
        entry: dict[str, Any] = {"file": str(row.path), "num_agents": first.num_agents, "dynamics": first.dynamics,
                                 "tuned_alpha": tuned_alpha, "rates": {}}
        for rate in rates_hz:
            methods = {f"fixed α={a:g}": results[("bench", label, rate, a)] for a in ALPHA_GRID}
            best = _best(methods, list(methods))
            methods[TUNED] = dict(results[("bench", label, rate, tuned_alpha)], alpha=tuned_alpha)
            methods[RULE] = results[("bench", label, rate, RULE)]
            if policy:
                methods[ONLINE] = results[("bench", label, rate, ONLINE)]
            entry["rates"][f"{rate:g}"] = {"best_fixed": best, "methods": methods}
        if policy:
            entry["rotated"] = {f"{r:g}": results[("rotated", label, r)] for r in rotations_deg}
        out["rows"][label] = entry
    out["timing"] = time_policy_and_qp(policy, rows[0].path, timing_agents)
    out["targets"] = check_targets(out) if policy else {}
    return out


def _paired_ttg_ratio(a: dict[str, Any], b: dict[str, Any]) -> float:
    """Mean time-to-goal of ``a`` over ``b`` on the seeds where both succeeded (NaN if none)."""
    both = [i for i, (x, y) in enumerate(zip(a["per_seed_success"], b["per_seed_success"])) if x and y]
    if not both:
        return math.nan
    return float(np.mean([a["per_seed_ttg"][i] for i in both]) / np.mean([b["per_seed_ttg"][i] for i in both]))


def same_rate(a: dict[str, Any], b: dict[str, Any], z: float = 1.96) -> bool:
    """Two success rates equal within seed noise (two-proportion test at 95 %, pooled variance)."""
    n1, n2 = a["episodes"], b["episodes"]
    pooled = (a["success_rate"] * n1 + b["success_rate"] * n2) / (n1 + n2)
    sd = math.sqrt(max(pooled * (1 - pooled), 0.0) * (1 / n1 + 1 / n2))
    return abs(a["success_rate"] - b["success_rate"]) <= z * sd + 1e-12


def check_targets(result: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets, checked on these numbers (each with the values behind it)."""
    checks: list[dict[str, Any]] = []
    for label, entry in result["rows"].items():
        for rate, r in entry["rates"].items():
            m = r["methods"]
            online, best, rule = m[ONLINE], m[r["best_fixed"]], m[RULE]
            hi = online["success_ci95"][1]
            checks.append({
                "row": label, "rate_hz": float(rate), "online_success": online["success_rate"],
                "online_collisions": online["collisions"],
                "best_fixed": r["best_fixed"], "best_fixed_success": best["success_rate"],
                "rule_success": rule["success_rate"],
                "zero_collisions": online["collisions"] == 0,
                "at_least_best_fixed": best["success_rate"] <= hi,
                "at_least_rule": rule["success_rate"] <= hi,
                "ttg_vs_best_fixed": _paired_ttg_ratio(online, best)})
        base = entry["rates"].get("20", next(iter(entry["rates"].values())))["methods"][ONLINE]
        for rot, rr in entry.get("rotated", {}).items():
            checks.append({"row": label, "rotation_deg": float(rot), "success": rr["success_rate"],
                           "success_unrotated": base["success_rate"], "collisions": rr["collisions"],
                           "unchanged": same_rate(base, rr)})
    rate_checks = [c for c in checks if "rate_hz" in c]
    rot_checks = [c for c in checks if "rotation_deg" in c]
    t = result["timing"]
    return {"checks": checks,
            "all_zero_collisions": all(c["zero_collisions"] for c in rate_checks)
            and all(c["collisions"] == 0 for c in rot_checks),
            "all_at_least_best_fixed": all(c["at_least_best_fixed"] for c in rate_checks),
            "all_at_least_rule": all(c["at_least_rule"] for c in rate_checks),
            "rotations_unchanged": all(c["unchanged"] for c in rot_checks),
            "timing_within_100us": t["total_us_per_agent"] <= 100.0}


def _fmt_rate(m: dict[str, Any]) -> str:
    lo, hi = m["success_ci95"]
    return f"{m['success_rate']:.2f} [{lo:.2f},{hi:.2f}]"


def format_table(result: dict[str, Any]) -> str:
    lines = [f"online CBF benchmark: {result['seeds']} held-out seeds per row (from {result['seed_offset']}); "
             f"policy: {result['policy'] or 'none'}; {result['wall_s']:.0f} s",
             "success with its 95 % interval; collisions = robot-robot / robot-obstacle / obstacle-into-stopped; "
             "* = best fixed α on these seeds"]
    head = (f"  {'method':<16}{'success [95% CI]':>19}{'collisions':>13}{'min sep m':>10}{'infeasible':>11}"
            f"{'time-to-goal s':>15}{'path ratio':>11}")
    for label, entry in result["rows"].items():
        for rate, r in entry["rates"].items():
            lines += ["", f"{label} ({entry['num_agents']} robots, {entry['dynamics']}, {rate} Hz); "
                          f"tuned on training seeds: α={entry['tuned_alpha']:g}", head]
            for method, m in r["methods"].items():
                mark = " *" if method == r["best_fixed"] else ""
                coll = f"{m['robot_robot']}/{m['robot_obstacle']}/{m['obstacle_into_stopped']}"
                lines.append(f"  {method + mark:<16}{_fmt_rate(m):>19}{coll:>13}{m['min_separation_m']:>10.3f}"
                             f"{m['infeasible']:>11d}{m['mean_time_to_goal_s']:>15.2f}{m['path_length_ratio']:>11.3f}")
        if entry.get("rotated"):
            lines.append("  online, rotated: " + ", ".join(
                f"{rot}° {_fmt_rate(m)} ({m['collisions']} coll)" for rot, m in entry["rotated"].items()))
    t = result["timing"]
    lines += ["", f"policy + QP per agent per step ({t['num_agents']} robots, 1 thread): policy "
                  f"{t['policy_us_per_agent']:.0f} µs + QP {t['qp_us_per_agent']:.0f} µs = "
                  f"{t['total_us_per_agent']:.0f} µs (target <= 100 µs); the same network through torch-geometric "
                  f"{t['policy_torch_geometric_us_per_agent']:.0f} µs"]
    tg = result.get("targets") or {}
    if tg:
        lines += ["", "targets (online policy):",
                  f"  zero collisions on every row, rate and rotation: {_yes(tg['all_zero_collisions'])}",
                  f"  success >= best fixed α on every row and rate (95 % CI): {_yes(tg['all_at_least_best_fixed'])}",
                  f"  success >= priority rule on every row and rate (95 % CI): {_yes(tg['all_at_least_rule'])}",
                  f"  outcome unchanged under 90/180/270° rotation: {_yes(tg['rotations_unchanged'])}",
                  f"  policy + QP <= 100 µs per agent: {_yes(tg['timing_within_100us'])}"]
        for c in tg["checks"]:
            if "rate_hz" in c and not (c["zero_collisions"] and c["at_least_best_fixed"] and c["at_least_rule"]):
                lines.append(f"    short: {c['row']} at {c['rate_hz']:g} Hz: online {c['online_success']:.2f} "
                             f"({c['online_collisions']} coll) vs {c['best_fixed']} {c['best_fixed_success']:.2f}, "
                             f"rule {c['rule_success']:.2f}")
            if "rotation_deg" in c and not c["unchanged"]:
                lines.append(f"    changed: {c['row']} rotated {c['rotation_deg']:g}°: {c['success']:.2f} vs "
                             f"{c['success_unrotated']:.2f}")
        ratios = [c["ttg_vs_best_fixed"] for c in tg["checks"] if "rate_hz" in c and math.isfinite(c["ttg_vs_best_fixed"])]
        if ratios:
            lines.append(f"  time-to-goal vs best fixed α where both succeed: median ×{np.median(ratios):.2f}, "
                         f"worst ×{max(ratios):.2f}")
    return "\n".join(lines)


def _yes(ok: bool) -> str:
    return "yes" if ok else "NO"


def parse_rows(scenarios: Sequence[Path] | None, agents: Sequence[int] | None) -> list[Row]:
    """``--scenario`` files × ``--agents`` sizes (explicit layouts keep their own); defaults: DEFAULT_ROWS."""
    if not scenarios:
        if agents:
            return [Row(MULTI / "circle_swap.yaml", n) for n in agents]
        return [Row(p, n) for p, n in DEFAULT_ROWS]
    rows = []
    for path in scenarios:
        explicit = load_swarm_scenario(path).doc.get("agents", {}).get("layout", {}).get("type") == "explicit"
        rows += [Row(Path(path), None)] if explicit or not agents else [Row(Path(path), n) for n in agents]
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", type=Path, action="append", help="swarm scenario YAML (repeatable)")
    p.add_argument("--agents", type=int, action="append", help="team size (repeatable)")
    p.add_argument("--seeds", type=int, default=50)
    p.add_argument("--policy", type=Path, default=DEFAULT_POLICY)
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    for name in ("seeds", "jobs"):  # as `navkit bench online-cbf` checks them: before any run, not after
        if getattr(a, name) < 1:
            p.error(f"--{name}: must be >= 1, got {getattr(a, name)}")
    if any(n < 1 for n in a.agents or []):
        p.error("--agents: every team size must be >= 1")
    r = run(parse_rows(a.scenario, a.agents), a.seeds, a.policy, jobs=a.jobs, progress=not a.json)
    print(to_json(r) if a.json else format_table(r))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
