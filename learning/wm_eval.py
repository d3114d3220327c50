"""``navkit wm eval``: zero-shot goal-image planning with a trained DINO-WM predictor.

    navkit wm eval --run runs/wm/wall_tiny_patch_h1_s0 --env wall --pairs 50 --planner mpc_cem --planner mppi

After Zhou et al., "DINO-WM" (ICML 2025, arXiv 2411.04983). For each of N held-out start/goal pairs
(drawn with the env's own ``sample_state`` from a seed stream that data collection never uses; on Wall
the goal lies on the other side of the wall, behind the same door, as in the paper) the goal image is
rendered and encoded, and a planner drives the env from the start for a FIXED budget of model steps.
The planner sees only the model (:class:`~navkit.planning.dino_wm.DinoWmModel`): the env is never
consulted inside it, only stepped with the chosen actions and observed through the camera (and proprio)
between plans. Success is the env's own test at the end of the budget, whatever the model believes.

Planners (all through :class:`~navkit.planning.latent_planners.Mpc`, so they share one budget rule):

* ``mpc_cem``: CEM, replanning after every model step (the paper's MPC);
* ``mppi``: MPPI, replanning after every model step;
* ``open_cem``: CEM planned once over the whole budget, executed blind (the paper's open-loop CEM);
* ``gd``: gradient descent through the predictor, planned once, executed blind (the paper's GD);
* ``mpc_gd``: gradient descent replanning after every step (not in the paper; cheap to add).

Reported per planner: success rate with its Wilson 95 % interval, mean final distance, median planning
time per replan, and model sample-steps per successful episode (what planning costs on a CPU).
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from navkit.common.cli_args import CliParser, int_in
from navkit.common.json_output import to_json
from navkit.common.errors import FieldError, NavkitError, brief
from navkit.perception.wm_features import build_encoder, encode_features
from navkit.planning.dino_wm import LatentHistory
from navkit.planning.latent_planners import (
    ActionPlanner,
    CemConfig,
    CemPlanner,
    GradientPlanner,
    GradientPlannerConfig,
    LatentModel,
    Mpc,
    MpcConfig,
    MppiConfig,
    MppiPlanner,
)
from navkit.sim.wm_envs import WmEnv, make_wm_env
from navkit.stack.world_model_loader import LoadedModel, WorldModelLoadError
from navkit.stack.world_model_loader import load_model as _load_run

__all__ = ["EVAL_ENVS", "PLANNERS", "EpisodeResult", "LoadedModel", "PlannerSummary", "WmEvalConfig", "WmEvalError",
           "build_encoder", "encode_features", "evaluate", "load_model", "main", "sample_pairs", "wilson_interval"]

PROG = "navkit wm eval"
PLANNERS = ("mpc_cem", "mppi", "open_cem", "gd", "mpc_gd")
EVAL_ENVS = ("wall", "pointmaze", "warehouse")
DEFAULT_BUDGETS = {"wall": 6, "pointmaze": 10, "warehouse": 6}
"""Model steps per episode when ``--budget`` is not given. Sized so that a planner with a PERFECT model can
reach every held-out goal: on the U-maze an open-loop CEM on the true simulator reaches 0.75 of pairs in
6 model steps (30 env steps; pairs on opposite arms need a 3-4.6 m path) and 0.95 in 10; on Wall a perfect
controller needs at most 26 env steps (6 model steps suffice)."""
EVAL_SEED_TAG = 0x5EED_E7A1
"""Mixed into every pair's seed: collection seeds ``reset`` with ``[episode_seed, 0|1]``, pairs come from
``[EVAL_SEED_TAG, seed, pair]``, so the two streams never coincide."""


class WmEvalError(FieldError):
    """An evaluation request cannot be honoured; names the run or option at fault."""


@dataclass
class WmEvalConfig:
    """Every knob of ``navkit wm eval``."""

    run: str = ""
    """Run folder written by ``navkit wm train`` (holds ``best.pt``)."""
    checkpoint: str = "best.pt"
    env: str = "wall"
    pairs: int = 50
    planners: tuple[str, ...] = ("mpc_cem", "mppi", "open_cem", "gd")
    seed: int = 0
    """Seed of the held-out pair stream (see :data:`EVAL_SEED_TAG`)."""
    step_budget: int = 0
    """Model steps executed per episode (x frameskip env steps): the same for every planner; 0 takes the
    env's :data:`DEFAULT_BUDGETS` entry."""
    horizon: int = 5
    """MPC planning horizon in model steps (5 in the paper); open-loop planners plan the whole budget."""
    proprio_weight: float = 0.1
    """α of the planning cost MSE(patches) + α·MSE(proprio); the goal's proprio is part of the goal observation."""
    cem_samples: int = 64
    cem_elites: int = 8
    cem_iterations: int = 4
    """CEM budget per plan (default: :meth:`CemConfig.cpu`; the paper's is 300 / 30 / 10)."""
    gd_iterations: int = 100
    torch_threads: int = 1

    def __post_init__(self) -> None:
        if self.env not in EVAL_ENVS:
            raise ValueError(f"env: expected one of {', '.join(EVAL_ENVS)}, got {brief(self.env)}")
        if self.step_budget == 0:
            self.step_budget = DEFAULT_BUDGETS[self.env]
        bad = [p for p in self.planners if p not in PLANNERS]
        if bad or not self.planners:
            raise ValueError(f"planners: expected some of {', '.join(PLANNERS)}, got {brief(list(self.planners))}")
        ints = {"pairs": (1, 100_000), "seed": (0, 2**31 - 1), "step_budget": (1, 10_000), "horizon": (1, 1000),
                "cem_samples": (1, 100_000), "cem_elites": (1, 100_000), "cem_iterations": (1, 1000),
                "gd_iterations": (1, 100_000), "torch_threads": (1, 256)}
        for name, (low, high) in ints.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"{name}: expected an integer in [{low}, {high}], got {brief(value)}")
        if self.cem_elites > self.cem_samples:
            raise ValueError(f"cem_elites: must be <= cem_samples ({self.cem_samples}), got {self.cem_elites}")
        if not math.isfinite(self.proprio_weight) or self.proprio_weight < 0:
            raise ValueError(f"proprio_weight: expected a finite number >= 0, got {brief(self.proprio_weight)}")


# ------------------------------------------------------------------------------------------ model


def load_model(run: str | Path, checkpoint: str = "best.pt", proprio_weight: float = 0.1) -> LoadedModel:
    """Rebuild encoder + predictor of a ``navkit wm train`` run (see :mod:`navkit.stack.world_model_loader`,
    where loading lives so the robot's controller plugin can use it too); a missing or foreign run is a
    :class:`WmEvalError` naming the file and field, as before."""
    try:
        return _load_run(run, checkpoint, proprio_weight)
    except WorldModelLoadError as exc:
        raise WmEvalError(exc.source, exc.field, exc.problem) from None


# ------------------------------------------------------------------------------------------ pairs


def _pair_rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng([EVAL_SEED_TAG, seed, index])


def sample_pairs(env: WmEnv, n: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` (start, goal) states from the held-out stream; on Wall the goal is across the wall (same door),
    elsewhere any goal not already satisfied at the start."""
    pairs = []
    for i in range(n):
        rng = _pair_rng(seed, i)
        start = env.sample_state(rng)
        for _ in range(10_000):
            goal = env.sample_state(rng)
            if env.name == "wall":
                wall: Any = env  # WallEnv: its geometry is not part of the WmEnv protocol
                wall_x = float(wall.config.wall_x)
                goal[2] = start[2]  # the door is part of the state: a goal image is only meaningful with it
                if (goal[0] < wall_x) == (start[0] < wall_x):
                    continue
                try:
                    env.set_state(goal)
                except NavkitError:
                    continue
            env.set_state(start)
            if not env.success(goal):
                break
        else:
            raise WmEvalError(env.name, "sample_state", f"pair {i}: no goal found away from the start")
        pairs.append((start, goal))
    return pairs


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (sensible at 0 %, 100 % and small n, unlike the normal one)."""
    if n <= 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


# ------------------------------------------------------------------------------------------ episodes


class _TimedPlanner:
    """Wraps a planner to record the wall time of every plan (the median per replan is reported)."""

    def __init__(self, planner: ActionPlanner) -> None:
        self.planner = planner
        self.times: list[float] = []

    def plan(self, model: LatentModel, obs_latent_state: object, goal_latent: Tensor, horizon: int,
             warm_start: Tensor | None = None) -> Tensor:
        t0 = time.perf_counter()
        out = self.planner.plan(model, obs_latent_state, goal_latent, horizon, warm_start)
        self.times.append(time.perf_counter() - t0)
        return out


def _make_mpc(name: str, cfg: WmEvalConfig, seed: int) -> tuple[_TimedPlanner, Mpc]:
    cem = CemConfig.cpu(samples=cfg.cem_samples, elites=cfg.cem_elites, iterations=cfg.cem_iterations, seed=seed)
    gd = GradientPlannerConfig(iterations=cfg.gd_iterations, seed=seed)
    planner: ActionPlanner
    if name in ("mpc_cem", "open_cem"):
        planner = CemPlanner(cem)
    elif name == "mppi":
        planner = MppiPlanner(MppiConfig(seed=seed))
    else:
        planner = GradientPlanner(gd)
    timed = _TimedPlanner(planner)
    if name.startswith("mpc") or name == "mppi":
        mc = MpcConfig(horizon=min(cfg.horizon, cfg.step_budget), execute_steps=1, step_budget=cfg.step_budget)
    else:  # open loop: one plan over the whole budget, executed without looking
        mc = MpcConfig(horizon=cfg.step_budget, execute_steps=cfg.step_budget, step_budget=cfg.step_budget)
    return timed, Mpc(timed, mc)


@dataclass
class EpisodeResult:
    """One planner on one pair."""

    planner: str
    pair: int
    success: bool
    final_distance: float
    start_distance: float
    replans: int
    sample_steps: int
    plan_times: list[float] = field(default_factory=list)


def run_episode(loaded: LoadedModel, env: WmEnv, start: np.ndarray, goal: np.ndarray, name: str,
                cfg: WmEvalConfig, pair: int) -> EpisodeResult:
    """One budgeted episode: the planner plans on the model only; the env is stepped with its actions."""
    model = loaded.model
    obs = env.set_state(goal)
    goal_frame = loaded.frame(obs.visual, obs.proprio)
    obs = env.set_state(start)
    start_distance = env.goal_distance(goal)
    step_dim = model.predictor.config.step_action_dim
    state = {"hist": LatentHistory.single(loaded.frame(obs.visual, obs.proprio), step_dim)}

    def observe() -> LatentHistory:
        return state["hist"]

    def execute(action: Tensor) -> None:
        o = None
        for a in model.env_actions(action[None]):
            o = env.step(a)
        assert o is not None
        state["hist"] = state["hist"].append(action, loaded.frame(o.visual, o.proprio), loaded.history)

    timed, mpc = _make_mpc(name, cfg, seed=pair)
    result = mpc.run(model, observe, execute, goal_frame)
    return EpisodeResult(planner=name, pair=pair, success=bool(env.success(goal)),
                         final_distance=float(env.goal_distance(goal)), start_distance=float(start_distance),
                         replans=result.replans, sample_steps=result.model_sample_steps, plan_times=timed.times)


@dataclass
class PlannerSummary:
    """One planner over all pairs."""

    planner: str
    episodes: int
    successes: int
    success_rate: float
    ci95: tuple[float, float]
    mean_final_distance: float
    mean_start_distance: float
    median_plan_seconds: float
    sample_steps_per_success: float
    """Mean model sample-steps spent in a successful episode (NaN if none succeeded)."""
    seconds: float
    env_steps: int
    """Env steps each episode ran (budget x frameskip)."""


def summarise(name: str, episodes: list[EpisodeResult], seconds: float, env_steps: int) -> PlannerSummary:
    n = len(episodes)
    k = sum(e.success for e in episodes)
    times = [t for e in episodes for t in e.plan_times]
    ok = [e.sample_steps for e in episodes if e.success]
    return PlannerSummary(planner=name, episodes=n, successes=k, success_rate=k / n if n else math.nan,
                          ci95=wilson_interval(k, n),
                          mean_final_distance=float(np.mean([e.final_distance for e in episodes])),
                          mean_start_distance=float(np.mean([e.start_distance for e in episodes])),
                          median_plan_seconds=statistics.median(times) if times else math.nan,
                          sample_steps_per_success=float(np.mean(ok)) if ok else math.nan, seconds=seconds,
                          env_steps=env_steps)


def evaluate(cfg: WmEvalConfig, progress: bool = False) -> tuple[list[PlannerSummary], list[EpisodeResult]]:
    """Run every planner of ``cfg`` on the same held-out pairs; returns summaries and per-episode rows."""
    torch.set_num_threads(cfg.torch_threads)
    loaded = load_model(cfg.run, cfg.checkpoint, cfg.proprio_weight)
    ck = loaded.checkpoint
    if ck.get("env") != cfg.env:
        raise WmEvalError(str(cfg.run), "env", f"the run was trained on {ck.get('env')!r} data, not {cfg.env!r}")
    env_config = None
    if cfg.env == "wall" and ck.get("env_config"):
        from navkit.sim.wm_wall import WallConfig

        env_config = WallConfig(**ck["env_config"])
    env = make_wm_env(cfg.env, int(ck["image_size"][0]), env_config)
    from tqdm import tqdm

    summaries: list[PlannerSummary] = []
    rows: list[EpisodeResult] = []
    try:
        pairs = sample_pairs(env, cfg.pairs, cfg.seed)
        for name in cfg.planners:
            t0 = time.perf_counter()
            episodes = []
            for i, (start, goal) in enumerate(tqdm(pairs, desc=f"wm eval {name}", disable=not progress)):
                episodes.append(run_episode(loaded, env, start, goal, name, cfg, i))
            rows.extend(episodes)
            env_steps = cfg.step_budget * loaded.model.predictor.config.frameskip
            summaries.append(summarise(name, episodes, time.perf_counter() - t0, env_steps))
    finally:
        env.close()
    return summaries, rows


def format_table(summaries: list[PlannerSummary], cfg: WmEvalConfig) -> str:
    """The summaries as a fixed-width table (one row per planner)."""
    env_steps = summaries[0].env_steps if summaries else 0
    head = (f"{cfg.env}: {cfg.pairs} held-out pairs, budget {cfg.step_budget} model steps = {env_steps} env steps, "
            f"MPC horizon {cfg.horizon}, proprio weight {cfg.proprio_weight:g}")
    lines = [head, f"{'planner':<9} {'success':>7} {'95% CI':>13} {'final dist':>10} {'start dist':>10} "
                   f"{'s/replan':>9} {'steps/success':>13} {'wall s':>7}"]
    for s in summaries:
        lines.append(f"{s.planner:<9} {s.success_rate:>7.2f} {f'[{s.ci95[0]:.2f}, {s.ci95[1]:.2f}]':>13} "
                     f"{s.mean_final_distance:>10.3f} {s.mean_start_distance:>10.3f} {s.median_plan_seconds:>9.3f} "
                     f"{s.sample_steps_per_success:>13.0f} {s.seconds:>7.1f}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ CLI


def build_parser() -> argparse.ArgumentParser:
    d = WmEvalConfig()
    p = CliParser(prog=PROG, description="Zero-shot goal-image planning with a trained DINO-WM run on held-out "
                                       "start/goal pairs. Zhou et al., DINO-WM, ICML 2025, arXiv 2411.04983")
    p.add_argument("--run", type=Path, required=True, metavar="DIR", help="run folder of navkit wm train")
    p.add_argument("--checkpoint", default=d.checkpoint, help="(default: %(default)s)")
    p.add_argument("--env", choices=EVAL_ENVS, required=True)
    p.add_argument("--pairs", type=int_in(1, 100_000), default=d.pairs, help="(default: %(default)s)")
    p.add_argument("--planner", action="append", choices=PLANNERS, default=None,
                   help=f"repeatable (default: {' '.join(d.planners)})")
    p.add_argument("--seed", type=int_in(0, 2**31 - 1), default=d.seed, help="pair stream seed")
    p.add_argument("--budget", type=int_in(1, 10_000), default=0,
                   help="model steps per episode (default: wall 6, pointmaze 10, warehouse 6)")
    p.add_argument("--horizon", type=int_in(1, 1000), default=d.horizon, help="MPC horizon in model steps")
    p.add_argument("--proprio-weight", type=float, default=d.proprio_weight, help="(default: %(default)s)")
    p.add_argument("--cem-samples", type=int_in(1, 100_000), default=d.cem_samples)
    p.add_argument("--cem-elites", type=int_in(1, 100_000), default=d.cem_elites)
    p.add_argument("--cem-iterations", type=int_in(1, 1000), default=d.cem_iterations)
    p.add_argument("--gd-iterations", type=int_in(1, 100_000), default=d.gd_iterations)
    p.add_argument("--json", action="store_true", help="print the summaries as JSON instead of a table")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``navkit wm eval``; returns the exit code (0 done, 2 bad input, 130 interrupted)."""
    try:
        args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:  # argparse: --help (0) or a one-line usage error (2); returned, not raised
        return exc.code if isinstance(exc.code, int) else 2
    try:
        cfg = WmEvalConfig(run=str(args.run), checkpoint=args.checkpoint, env=args.env, pairs=args.pairs,
                           planners=tuple(args.planner or WmEvalConfig().planners), seed=args.seed,
                           step_budget=args.budget, horizon=args.horizon, proprio_weight=args.proprio_weight,
                           cem_samples=args.cem_samples, cem_elites=args.cem_elites,
                           cem_iterations=args.cem_iterations, gd_iterations=args.gd_iterations)
        summaries, _ = evaluate(cfg, progress=not args.quiet)
    except (NavkitError, ValueError, OSError) as exc:
        print(f"{PROG}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    if args.json:
        doc = {"config": asdict(cfg), "results": [asdict(s) for s in summaries]}
        print(to_json(doc))
    else:
        print(format_table(summaries, cfg))
    return 0


if __name__ == "__main__":
    sys.exit(main())
