"""``navkit bench wm``: DINO-WM goal-image planning (Zhou et al., ICML 2025, arXiv 2411.04983), measured in one run.

    navkit bench wm --run pointmaze=control/policies/wm_pointmaze --run warehouse=control/policies/wm_warehouse

(a) **Planners** (``--run pointmaze=DIR``, ``--run wall=DIR``): success rate with its Wilson 95 % interval of
    mpc_cem, mppi, open_cem and gd on ``--pairs`` held-out start/goal pairs with the same fixed budget of model
    steps (``navkit wm eval``'s :func:`~navkit.learning.wm_eval.evaluate`, so the numbers are that command's),
    plus mpc_cem at the paper's CEM settings (300 samples, 30 elites, 10 iterations) as another row; seconds
    per replan and model sample-steps per successful episode (what planning costs on a CPU).
(b) **Warehouse goal images** (``--run warehouse=DIR``): ``--episodes`` episodes of the full stack in MuJoCo,
    the same starts and goals for both methods: the world-model MPC controller driving to the goal *image*
    through the CBF safety filter, and A* + pure pursuit (navkit's default parameters) given the goal's true
    *pose*, also behind the filter. Success (true position within the radius), collisions, time to goal,
    filter interventions, and the world-model controller's planning latency per replan (median, p90).
(c) **Encoders** (``--encoder-run ENV=DIR``, repeatable): the same env with runs whose encoders differ (e.g.
    self-distilled vs random init vs CLS token), each labelled from its own train config: mpc_cem on the
    pointmaze / wall pairs, the world-model method on the warehouse episodes.

Every baseline is measured in the same run, on the same pairs; nothing here asserts a time.
"""
from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from navkit.common.errors import FieldError
from navkit.learning.wm_eval import WmEvalConfig, evaluate, load_model
from navkit.runner.wm_runner import (WarehouseGoalWorld, run_goal_episode, summarise_goal_episodes,
                                     world_model_stack_config)
from navkit.runner.wm_scenario import DEFAULT_PARAMS, MAX_SEED
from navkit.stack.config import DEFAULT_PARAMS_FILE, load_stack_config

PLANNER_ROWS = ("mpc_cem", "mppi", "open_cem", "gd")
PAPER_CEM = {"cem_samples": 300, "cem_elites": 30, "cem_iterations": 10}
"""DINO-WM's CEM budget per plan (the paper's MPC); the other rows use ``navkit wm eval``'s CPU budget. Both go
through ``navkit wm eval``'s planner factory, which builds on :meth:`CemConfig.cpu` (σ floored at 0.05, the mean
scored too), so this row is the paper's budget with those two refinements, not :meth:`CemConfig.paper` exactly."""
PAPER_ROW = "mpc_cem (paper CEM 300/30/10)"
METHOD_LABELS = {"world_model_mpc": "world-model MPC to the goal image + CBF filter",
                 "astar_pure_pursuit": "A* + pure pursuit to the goal pose + CBF filter"}


class WmBenchError(FieldError):
    """A bench request cannot be honoured; names the option at fault."""


def encoder_label(checkpoint: dict[str, Any]) -> str:
    """How a run's encoder was made, from its train config: variant, token kind, weights (random init, the
    self-distilled export of ``navkit perception pretrain``, or another weights file)."""
    tc = checkpoint.get("train_config") or {}
    feature = tc.get("feature", "patch")
    tokens = "CLS token" if feature == "cls" else f"{feature} tokens"
    weights = str(tc.get("weights") or "")
    if not weights:
        init = f"random init (seed {tc.get('encoder_seed', 0)})"
    else:
        init = f"weights {Path(weights).name}"
        meta = Path(weights).with_suffix(".json")
        try:
            if json.loads(meta.read_text()).get("format") == "navkit-dino-pretrain-export":
                init = f"self-distilled ({Path(weights).parent.name})"
        except (OSError, ValueError, AttributeError):
            pass
    return f"{tc.get('encoder', '?')}, {tokens}, {init}"


def _check_run(env: str, folder: Path, option: str) -> dict[str, Any]:
    """Load a run once (before any long work) and check it is ``env``'s; returns its checkpoint."""
    loaded = load_model(folder)
    if loaded.env != env:
        raise WmBenchError("bench wm", option, f"{folder} was trained on {loaded.env or 'unknown'!r} data, not {env!r}")
    return loaded.checkpoint


def _planner_row(label: str, s: Any, cfg: WmEvalConfig) -> dict[str, Any]:
    return {"label": label, "planner": s.planner, "episodes": s.episodes, "successes": s.successes,
            "success_rate": s.success_rate, "success_ci95": list(s.ci95), "median_plan_s": s.median_plan_seconds,
            "sample_steps_per_success": s.sample_steps_per_success, "mean_final_distance": s.mean_final_distance,
            "mean_start_distance": s.mean_start_distance, "wall_s": s.seconds, "env_steps": s.env_steps,
            "cem": {"samples": cfg.cem_samples, "elites": cfg.cem_elites, "iterations": cfg.cem_iterations}}


def planner_comparison(env: str, run: Path, *, pairs: int, seed: int, budget: int | None,
                       progress: bool) -> dict[str, Any]:
    """(a): every planner row on the same held-out pairs with the same step budget, plus the paper's CEM."""
    base = WmEvalConfig(run=str(run), env=env, pairs=pairs, planners=PLANNER_ROWS, seed=seed,
                        **({"step_budget": budget} if budget else {}))
    summaries, _ = evaluate(base, progress=progress)
    rows = [_planner_row(s.planner, s, base) for s in summaries]
    paper = dataclasses.replace(base, planners=("mpc_cem",), **PAPER_CEM)
    summaries, _ = evaluate(paper, progress=progress)
    rows.append(_planner_row(PAPER_ROW, summaries[0], paper))
    return {"run": str(run), "step_budget": base.step_budget, "horizon": base.horizon,
            "proprio_weight": base.proprio_weight, "pairs": pairs, "rows": rows}


def warehouse_comparison(run: Path, *, episodes: int, seed: int, params: Path, time_limit_s: float,
                         success_radius_m: float, goal_ahead_m: tuple[float, float], progress: bool,
                         methods: Sequence[str] = ("world_model_mpc", "astar_pure_pursuit")) -> dict[str, Any]:
    """(b): both methods on the same starts and goals of the run's warehouse."""
    from tqdm import tqdm

    loaded = load_model(run)
    world = WarehouseGoalWorld(loaded, episodes=episodes, seed=seed, goal_ahead_m=goal_ahead_m, source="bench wm")
    configs = {"world_model_mpc": world_model_stack_config(params, run, "best.pt"),
               "astar_pure_pursuit": load_stack_config(DEFAULT_PARAMS_FILE)}
    rows: dict[str, list[dict[str, Any]]] = {m: [] for m in methods}
    plans: dict[str, list[float]] = {m: [] for m in methods}
    with tqdm(total=episodes * len(methods), desc=f"bench wm warehouse ({Path(run).name})", unit="episode",
              disable=not progress) as bar:
        for i in range(episodes):
            for method in methods:
                ep = run_goal_episode(world, i, method, configs[method], success_radius_m=success_radius_m,
                                      time_limit_s=time_limit_s, seed=(seed + i) % 2**63)
                if ep.error is not None:
                    raise ep.error
                rows[method].append(ep.row)
                plans[method].extend(ep.plan_seconds)
                bar.update(1)
                bar.set_postfix_str(", ".join(f"{m.split('_')[0]} {sum(r['success'] for r in rows[m])}/{len(rows[m])}"
                                              for m in methods), refresh=False)
    return {"run": str(run), "encoder": encoder_label(loaded.checkpoint), "episodes": episodes,
            "params": str(params), "baseline_params": str(DEFAULT_PARAMS_FILE), "time_limit_s": time_limit_s,
            "success_radius_m": success_radius_m, "goal_ahead_m": list(goal_ahead_m), "warehouse": world.scenario.name,
            "image_size": world.image_size,
            "methods": {m: {"label": METHOD_LABELS[m], **summarise_goal_episodes(rows[m], plans[m])} for m in methods},
            "per_episode": {m: rows[m] for m in methods}}


def run(runs: dict[str, Path], *, pairs: int = 50, episodes: int = 20,
        encoder_runs: Sequence[tuple[str, Path]] = (), seed: int = 0, budget: int | None = None,
        params: Path | None = None, time_limit_s: float = 60.0, success_radius_m: float = 0.5,
        goal_ahead_m: tuple[float, float] = (2.0, 6.0), progress: bool = True) -> dict[str, Any]:
    """(a) for the pointmaze / wall runs, (b) for the warehouse run, (c) for the encoder runs; every run is
    loaded and checked first, so a bad folder fails in seconds, not after an hour."""
    if not runs and not encoder_runs:
        raise WmBenchError("bench wm", "--run", "give at least one ENV=FOLDER (pointmaze, wall or warehouse)")
    if not 0 <= seed <= MAX_SEED:
        raise WmBenchError("bench wm", "--seed", f"must be in [0, {MAX_SEED}], got {seed}")
    params = Path(params) if params is not None else DEFAULT_PARAMS
    checkpoints = {env: _check_run(env, Path(folder), "--run") for env, folder in runs.items()}
    encoder_checkpoints = [_check_run(env, Path(folder), "--encoder-run") for env, folder in encoder_runs]
    warehouse_runs = [Path(f) for env, f in [*runs.items(), *encoder_runs] if env == "warehouse"]
    if warehouse_runs:
        world_model_stack_config(params, warehouse_runs[0], "best.pt")  # a bad parameter file fails now, too
    out: dict[str, Any] = {"pairs": pairs, "episodes": episodes, "seed": seed, "planning": {}, "warehouse": None,
                           "encoders": []}
    for env in ("pointmaze", "wall"):
        if env in runs:
            out["planning"][env] = planner_comparison(env, runs[env], pairs=pairs, seed=seed, budget=budget,
                                                      progress=progress)
            out["planning"][env]["encoder"] = encoder_label(checkpoints[env])
    warehouse_args: dict[str, Any] = {"episodes": episodes, "seed": seed, "params": params, "time_limit_s": time_limit_s,
                      "success_radius_m": success_radius_m, "goal_ahead_m": goal_ahead_m, "progress": progress}
    if "warehouse" in runs:
        out["warehouse"] = warehouse_comparison(runs["warehouse"], **warehouse_args)
    for (env, folder), ck in zip(encoder_runs, encoder_checkpoints):
        entry: dict[str, Any] = {"env": env, "run": str(folder), "label": encoder_label(ck)}
        if env == "warehouse":
            r = warehouse_comparison(folder, methods=("world_model_mpc",), **warehouse_args)
            entry.update({k: v for k, v in r["methods"]["world_model_mpc"].items() if k != "label"})
        else:
            cfg = WmEvalConfig(run=str(folder), env=env, pairs=pairs, planners=("mpc_cem",), seed=seed,
                               **({"step_budget": budget} if budget else {}))
            summaries, _ = evaluate(cfg, progress=progress)
            entry.update({k: v for k, v in _planner_row("mpc_cem", summaries[0], cfg).items() if k != "label"})
        out["encoders"].append(entry)
    return out


def _num(value: Any, fmt: str = ".2f") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return format(value, fmt)


def _ci(ci: Sequence[float]) -> str:
    return f"[{_num(ci[0])}, {_num(ci[1])}]"


def format_table(r: dict[str, Any]) -> str:
    lines: list[str] = []
    for env, p in r["planning"].items():
        lines += [f"(a) {env}: {p['pairs']} held-out pairs, budget {p['step_budget']} model steps, MPC horizon "
                  f"{p['horizon']}; run {p['run']} ({p['encoder']})",
                  f"  {'planner':<32}{'success':>8}{'95% CI':>14}{'s/replan':>10}{'sample-steps/success':>22}"
                  f"{'final dist':>11}"]
        for row in p["rows"]:
            lines.append(f"  {row['label']:<32}{_num(row['success_rate']):>8}{_ci(row['success_ci95']):>14}"
                         f"{_num(row['median_plan_s'], '.3f'):>10}{_num(row['sample_steps_per_success'], '.0f'):>22}"
                         f"{_num(row['mean_final_distance'], '.3f'):>11}")
        lines.append("")
    w = r.get("warehouse")
    if w:
        lines += [f"(b) warehouse goal images: {w['episodes']} episodes in {w['warehouse']} (goal {w['goal_ahead_m'][0]:g}-"
                  f"{w['goal_ahead_m'][1]:g} m ahead, success within {w['success_radius_m']:g} m, limit "
                  f"{w['time_limit_s']:g} s); run {w['run']} ({w['encoder']})",
                  f"  {'method':<50}{'success':>8}{'95% CI':>14}{'collisions':>11}{'time to goal':>13}"
                  f"{'filter int./ep':>15}{'plan s median / p90':>21}"]
        for m in w["methods"].values():
            plan = f"{_num(m['median_plan_s'], '.3f')} / {_num(m['p90_plan_s'], '.3f')}" if m["plans_timed"] else "-"
            lines.append(f"  {m['label']:<50}{_num(m['success_rate']):>8}{_ci(m['success_ci95']):>14}"
                         f"{m['collisions']:>11}{_num(m['time_to_goal_s_mean'], '.1f'):>13}"
                         f"{_num(m['filter_interventions_per_episode'], '.1f'):>15}{plan:>21}")
        lines.append("")
    if r["encoders"]:
        lines += ["(c) encoders", f"  {'env':<10}{'encoder':<52}{'success':>8}{'95% CI':>14}{'s/replan':>10}"]
        for e in r["encoders"]:
            lines.append(f"  {e['env']:<10}{e['label'][:50]:<52}{_num(e['success_rate']):>8}{_ci(e['success_ci95']):>14}"
                         f"{_num(e['median_plan_s'], '.3f'):>10}")
    return "\n".join(lines).rstrip()
