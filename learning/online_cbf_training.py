"""Train the online-CBF policy (Gao, Yang & Prorok 2023) model-free by evolution strategies (Salimans et al. 2017).

The policy (:class:`~navkit.control.online_cbf_policy.NeighbourhoodNet`) picks every robot's
CBF gain α from what it senses in its own goal frame. ES perturbs the whole parameter
vector, scores each perturbed policy by what the *team* achieves (every robot home, no
collision, fast), and steps along the rank-weighted perturbations: a team-level signal, no
per-robot credit assignment, and no gradient through the QP. :mod:`navkit.learning.online_cbf_ppo`
trains the same network by PPO; ``learning/configs/online_cbf_ppo_10M.yaml`` and this trainer's
``online_cbf.yaml`` compare the two at equal environment steps (``navkit bench online-cbf --policy``).

Generalisation is designed in: episodes come from scenario *families* with drawn team
sizes, seeds and control rates (:mod:`navkit.learning.swarm_families`), and the model is
selected on families it never trains on (``selection_families``).

CleanRL-style: every hyper-parameter is a field of :class:`TrainConfig` with the reason it
matters, then one loop in :func:`train`:

1. draw this iteration's episodes (families, sizes, rates, fresh seeds), shared by every
   population member (common random numbers: members differ only by parameters),
2. score θ ± σε for P/2 noise vectors by team fitness on those episodes (``workers`` processes),
3. centred-rank the members by mean fitness over families, estimate the gradient, take an Adam step,
4. TensorBoard, periodic model selection on held-out families and seeds, checkpoints (last,
   every K, best) and exact resume from the last one; stop at ``iterations`` or ``max_env_steps``.

Run: ``navkit train online-cbf --config learning/configs/online_cbf.yaml`` (→ :func:`main`).
"""
from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from navkit.common.errors import ParameterError, brief
from navkit.common.params import config_from_params
from navkit.common.swarm_state import SwarmState
from navkit.common.yaml_file import read_yaml_file
from navkit.control.online_cbf_policy import (NeighbourhoodNet, OnlineCbfPolicy, OnlineCbfPolicyConfig,
                                               PolicyCheckpointError)
from navkit.control.swarm_controller import SwarmController
from navkit.learning.swarm_families import (EVAL_SEED_BASE, Family, FamilyError, draw_groups, parse_family)
from navkit.learning.swarm_rollout import rollout
from navkit.learning.swarm_task import EpisodeMetrics
from navkit.sim.swarm_scenario import SwarmScenario

DEFAULT_FAMILIES = [
    "scenarios/multi/circle_swap.yaml 2-24", "scenarios/multi/circle_swap_unicycle.yaml 2-12",
    "scenarios/multi/crossing.yaml 4-12", "scenarios/multi/cluttered.yaml 4-10",
    "scenarios/multi/moving_obstacles.yaml 4-10", "scenarios/multi/narrow_passage.yaml 4-8",
    "scenarios/multi/posts.yaml 4-10"]
DEFAULT_SELECTION = ["scenarios/multi/random_rooms.yaml", "scenarios/multi/two_way_corridor.yaml"]


@dataclass
class TrainConfig:
    # --- experiment ---
    seed: int = 0
    """Seeds numpy (episode sampling) and torch (init, ES noise): same seed, same run."""
    run_dir: str = "runs/online_cbf/default"
    """TensorBoard logs and checkpoints (last.pt, iter_XXXX.pt, best_policy.pt) go here; runs/ is git-ignored."""
    output: str = ""
    """Where the final policy is written; empty → <run_dir>/policy.pt."""
    resume: bool = True
    """Continue from <run_dir>/last.pt when it exists (parameters, optimizer, iteration, RNG states)."""
    torch_threads: int = 1
    """Intra-op threads per process: the networks are small; one thread per process is fastest."""
    workers: int = 1
    """Processes scoring population members in parallel (2 on a 2-core machine)."""
    progress_bar: bool = True
    """Show a tqdm bar (off in tests)."""
    init_policy: str = ""
    """Start a fresh run from this policy checkpoint's weights instead of a random network (fine-tuning a
    shipped policy under a changed fitness or episode length); its shape must match ``hidden``/``k_*`` and
    its α range ``alpha_min``/``alpha_max``. It is scored for model selection before the first update, so
    the run only replaces it with a policy that scores better. Ignored when resuming."""
    # --- episodes ---
    families: list[str] = field(default_factory=lambda: list(DEFAULT_FAMILIES))
    """Training families, ``"FILE"`` or ``"FILE MIN-MAX"`` (team sizes drawn per episode)."""
    selection_families: list[str] = field(default_factory=lambda: list(DEFAULT_SELECTION))
    """Families never trained on, scored (with the training families) to pick the best checkpoint;
    empty → the training families only."""
    rates_hz: list[float] = field(default_factory=lambda: [10.0, 20.0, 50.0])
    """Control rates drawn per episode (the policy reads Δt; the filter caps α·Δt at 1)."""
    scenes_per_family: int = 2
    """Episodes per family per iteration (every member plays the same ones)."""
    episode_time_s: float = 30.0
    """Cap on a training episode (0 → the scenario's limit): deadlocks stop costing compute early."""
    decision_every: int = 4
    """Control ticks per policy evaluation while training (α held in between): cheaper rollouts. The
    deployed policy runs every tick; model selection evaluates it that way."""
    # --- policy ---
    hidden: int = 32
    """Width of every hidden layer (~11 k parameters at 32)."""
    k_neighbours: int = 6
    """Nearest sensed robots a robot's decision uses."""
    k_obstacles: int = 6
    """Nearest sensed obstacles a robot's decision uses."""
    alpha_min: float = 0.1
    """Smallest α the policy can output."""
    alpha_max: float = 20.0
    """Largest α (the filter caps α·Δt at 1 anyway)."""
    # --- fitness (per episode, averaged) ---
    success_weight: float = 1.0
    """Every agent home at once before the time limit with no collision: the benchmark's success."""
    arrival_weight: float = 0.5
    """Fraction of agents that reached their goal: partial credit that keeps the search moving."""
    speed_weight: float = 0.5
    """× (1 − time-to-goal / time limit) for successful episodes: faster is better."""
    collision_penalty: float = 3.0
    """Per episode with any collision: never worth it."""
    infeasible_penalty: float = 1.0
    """× fraction of agent-ticks whose QP was infeasible (the fallback command was used)."""
    # --- ES ---
    iterations: int = 40
    """ES iterations (population evaluation + one update)."""
    max_env_steps: int = 0
    """Stop once this many robot control periods have been simulated (0: no budget); for comparing trainers."""
    population: int = 16
    """Members per iteration (antithetic: population/2 noise vectors, each used as ±)."""
    sigma: float = 0.05
    """Std of the parameter perturbations."""
    learning_rate: float = 0.02
    """Adam step size on the ES gradient estimate."""
    weight_decay: float = 0.005
    """L2 pull toward zero: keeps weights (and tanh units) in a useful range."""
    # --- evaluation & checkpoints ---
    eval_every: int = 5
    """Score the current policy for model selection every this many iterations (and at the end); 0: never."""
    eval_seeds: int = 10
    """Held-out seeds per family in model selection."""
    checkpoint_every: int = 10
    """Keep iter_XXXX.pt every this many iterations (last.pt is rewritten every iteration); 0: never."""

    def __post_init__(self) -> None:
        """Bounds on every number, so a typo fails at once (named) instead of after an hour or never."""
        bounds: dict[str, tuple[float, float]] = {
            "seed": (0, 2**32 - 1), "torch_threads": (1, 64), "workers": (1, 64), "scenes_per_family": (1, 256),
            "episode_time_s": (0.0, 3600.0), "decision_every": (1, 1000), "hidden": (1, 256),
            "k_neighbours": (1, 256), "k_obstacles": (1, 256), "alpha_min": (1e-6, 1e3), "alpha_max": (1e-6, 1e3),
            "success_weight": (-1e6, 1e6), "arrival_weight": (-1e6, 1e6), "speed_weight": (-1e6, 1e6),
            "collision_penalty": (0.0, 1e6), "infeasible_penalty": (0.0, 1e6), "iterations": (0, 1_000_000),
            "max_env_steps": (0, 10**15), "population": (2, 10_000), "sigma": (1e-9, 10.0),
            "learning_rate": (1e-9, 10.0), "weight_decay": (0.0, 1.0), "eval_every": (0, 1_000_000),
            "eval_seeds": (1, 10_000), "checkpoint_every": (0, 1_000_000)}
        for name, (low, high) in bounds.items():
            value = getattr(self, name)
            if not low <= value <= high:
                raise ValueError(f"{name}: must be in [{low:g}, {high:g}], got {value!r}")
        if self.population % 2:
            raise ValueError(f"population: must be even (antithetic pairs), got {self.population}")
        if not self.alpha_min < self.alpha_max:
            raise ValueError(f"alpha_max: must exceed alpha_min ({self.alpha_min}), got {self.alpha_max}")
        if not self.families:
            raise ValueError("families: at least one scenario family is required")
        for rate in self.rates_hz:
            if not 2.0 <= rate <= 1000.0:
                raise ValueError(f"rates_hz: every rate must be in [2, 1000] Hz, got {rate}")


class TrainConfigError(ParameterError):
    """A training config file is malformed; names the file and key."""


def policy_config(cfg: TrainConfig) -> OnlineCbfPolicyConfig:
    return OnlineCbfPolicyConfig(hidden=cfg.hidden, k_neighbours=cfg.k_neighbours, k_obstacles=cfg.k_obstacles,
                                 alpha_min=cfg.alpha_min, alpha_max=cfg.alpha_max)


def load_config(path: str | Path) -> TrainConfig:
    """YAML → TrainConfig through :func:`~navkit.common.params.config_from_params` (types, unknown keys)
    and :meth:`TrainConfig.__post_init__` (bounds); any problem raises :class:`TrainConfigError`."""
    path = Path(path)
    doc = read_yaml_file(path, TrainConfigError, "training config") or {}
    if not isinstance(doc, dict):
        raise TrainConfigError(str(path), "<root>", "expected a mapping of TrainConfig fields")
    nested = sorted(str(k) for k, v in doc.items() if isinstance(v, dict) or "." in str(k))
    if nested:
        raise TrainConfigError(str(path), nested[0], "expected a plain TrainConfig field (the file is flat)")
    if doc.get("method", "es") != "es":
        raise TrainConfigError(str(path), "method", f"this file is for method {doc.get('method')!r}; "
                                                    "use navkit train online-cbf, which dispatches on it")
    try:
        cfg = config_from_params(TrainConfig, {str(k): v for k, v in doc.items() if str(k) != "method"}, str(path))
    except ParameterError as exc:
        raise TrainConfigError(exc.source, exc.field, exc.problem) from None
    if cfg.iterations < 1:
        raise TrainConfigError(str(path), "iterations", "must be >= 1 (0 iterations would only write the random "
                                                       "initial policy)")
    load_families(cfg, str(path))
    check_output_locations(cfg, str(path))
    if cfg.init_policy:
        warm_start_model(cfg.init_policy, policy_config(cfg))  # a bad checkpoint fails now, naming itself
    return cfg


def load_families(cfg: Any, source: str) -> tuple[list[Family], list[Family]]:
    """(training, selection) families of a config with ``families`` and ``selection_families`` (both
    trainers' configs); a bad entry raises :class:`TrainConfigError` naming it."""
    out: list[list[Family]] = []
    for key in ("families", "selection_families"):
        fams = []
        for i, entry in enumerate(getattr(cfg, key)):
            try:
                fams.append(parse_family(entry))
            except FamilyError as exc:
                raise TrainConfigError(source, f"{key}[{i}]", str(exc)) from None
        out.append(fams)
    return out[0], out[1]


def check_output_locations(cfg: Any, source: str) -> None:
    """Fail before training, not after it, when ``run_dir`` or ``output`` cannot be written."""
    import tempfile

    run_dir = Path(cfg.run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise TrainConfigError(source, "run_dir", f"{run_dir} exists and is not a folder")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=run_dir, prefix=".navkit-write-test-"):
            pass
    except OSError as exc:
        raise TrainConfigError(source, "run_dir", f"cannot write in {run_dir} ({exc.strerror or exc})") from None
    if cfg.output:
        output = Path(cfg.output)
        if output.is_dir():
            raise TrainConfigError(source, "output", f"{output} is a folder; name the policy file to write")
        parent = output.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            raise TrainConfigError(source, "output", f"cannot write {output}")


# ----------------------------------------------------------------------------------------------------------
# Fitness
# ----------------------------------------------------------------------------------------------------------

class _HeldPolicy:
    """Evaluates the policy every ``every`` calls and repeats its α in between (cheaper training rollouts)."""

    def __init__(self, policy: OnlineCbfPolicy, every: int) -> None:
        self.policy, self.every, self.calls, self.alpha = policy, max(1, every), 0, None

    def __call__(self, state: SwarmState) -> np.ndarray:
        if self.alpha is None or self.calls % self.every == 0:
            self.alpha = self.policy(state)
        self.calls += 1
        return self.alpha


def env_steps(rows: Sequence[EpisodeMetrics], scenes: Sequence[SwarmScenario]) -> int:
    """Robot control periods simulated for these episodes (what 'equal environment steps' counts)."""
    return int(sum(round(r.episode_time_s / sc.control_dt_s) * r.num_agents for r, sc in zip(rows, scenes)))


def episode_fitness(rows: Sequence[EpisodeMetrics], scenes: Sequence[SwarmScenario], cfg: TrainConfig) -> float:
    """Mean team fitness of a set of episodes (see the fitness fields of :class:`TrainConfig`)."""
    scores = []
    for r, sc in zip(rows, scenes):
        ticks = max(r.episode_time_s / sc.control_dt_s, 1.0)
        score = (cfg.success_weight * r.success + cfg.arrival_weight * r.agents_at_goal / r.num_agents
                 - cfg.collision_penalty * (r.collisions > 0)
                 - cfg.infeasible_penalty * r.infeasible / (r.num_agents * ticks))
        if r.success:
            score += cfg.speed_weight * (1.0 - r.mean_time_to_goal_s / sc.time_limit_s)
        scores.append(score)
    return float(np.mean(scores))


def play(policy: OnlineCbfPolicy, groups: Sequence[Sequence[SwarmScenario]], decision_every: int = 1
         ) -> tuple[list[EpisodeMetrics], list[SwarmScenario]]:
    """Every group rolled out with ``policy`` (evaluated every ``decision_every`` ticks); metrics rows and
    the scenes they belong to, in order."""
    rows: list[EpisodeMetrics] = []
    played: list[SwarmScenario] = []
    for scenes in groups:
        source = policy if decision_every == 1 else _HeldPolicy(policy, decision_every)
        rows += rollout(list(scenes), SwarmController.for_scenario(scenes[0]), source)
        played += scenes
    return rows, played


def fitness_by_family(model: NeighbourhoodNet, pcfg: OnlineCbfPolicyConfig,
                      groups: Sequence[Sequence[SwarmScenario]], cfg: TrainConfig
                      ) -> tuple[float, dict[str, float], int]:
    """(team fitness over every episode, {family: team fitness}, environment steps) of one parameter vector."""
    rows, played = play(OnlineCbfPolicy(pcfg, model), groups, cfg.decision_every)
    by_family: dict[str, list[int]] = {}
    for i, sc in enumerate(played):
        by_family.setdefault(sc.name, []).append(i)
    scores = {name: episode_fitness([rows[i] for i in idx], [played[i] for i in idx], cfg)
              for name, idx in by_family.items()}
    return episode_fitness(rows, played, cfg), scores, env_steps(rows, played)


def selection_score(policy: OnlineCbfPolicy, families: Sequence[Family], num_seeds: int,
                    seed: int = 0, rates_hz: Sequence[float] = (10.0, 20.0, 50.0)) -> dict[str, dict[str, float]]:
    """The policy every tick on held-out seeds of each family (sizes and rates drawn as in training, from ``seed``)."""
    out: dict[str, dict[str, float]] = {}
    for k, fam in enumerate(families):
        rng = np.random.default_rng([seed, k])
        groups = draw_groups([fam], num_seeds, rates_hz, rng, seed_base=EVAL_SEED_BASE)
        rows, _ = play(policy, groups)
        out[fam.name] = {"success": float(np.mean([r.success for r in rows])),
                         "collisions": float(sum(r.collisions for r in rows)),
                         "agents_at_goal": float(np.mean([r.agents_at_goal / r.num_agents for r in rows]))}
    return out


def new_model(pcfg: OnlineCbfPolicyConfig, gen: torch.Generator) -> NeighbourhoodNet:
    """A freshly initialised network drawn from ``gen`` (reproducible); its action layer starts at zero, so
    every robot starts at the geometric-mean α and ES moves away from there."""
    model = NeighbourhoodNet(pcfg)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                bound = 1.0 / math.sqrt(p.shape[1])
                p.copy_(torch.empty_like(p).uniform_(-bound, bound, generator=gen))
            else:
                p.zero_()
        model.action.weight.zero_()
    return model


def warm_start_model(path: str | Path, pcfg: OnlineCbfPolicyConfig) -> NeighbourhoodNet:
    """The network of the policy checkpoint at ``path``, checked against the run's policy shape and α range
    (:class:`TrainConfigError` on ``init_policy`` when they differ)."""
    try:
        policy = OnlineCbfPolicy.load(path)
    except PolicyCheckpointError as exc:
        raise TrainConfigError(str(path), "init_policy", f"{exc.field}: {exc.problem}") from None
    # Everything that shapes the network or its input features must match (the fallback α does not).
    for key in ("hidden", "k_neighbours", "k_obstacles", "alpha_min", "alpha_max", "sensing_radius_m",
                "max_speed_m_s", "agent_radius_m"):
        if getattr(policy.config, key) != getattr(pcfg, key):
            raise TrainConfigError(str(path), "init_policy", f"its {key} {getattr(policy.config, key)!r} differs "
                                   f"from the run's {getattr(pcfg, key)!r}")
    return policy.model


def _save_checkpoint(path: Path, theta: torch.Tensor, optimizer: torch.optim.Optimizer, iteration: int,
                     rng: np.random.Generator, gen: torch.Generator, best: float, steps: int, cfg: TrainConfig) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"iteration": iteration, "theta": theta.detach().clone(), "optimizer": optimizer.state_dict(),
                "numpy_rng": rng.bit_generator.state, "torch_rng": gen.get_state(), "best": best,
                "env_steps": steps, "config": asdict(cfg)}, tmp)
    tmp.replace(path)


def _centred_ranks(x: np.ndarray) -> np.ndarray:
    ranks = np.empty(len(x))
    ranks[np.argsort(x, kind="stable")] = np.arange(len(x))
    return ranks / (len(x) - 1) - 0.5


# Worker processes score members; each keeps its own network and reads only the parameter vector.
_WORKER: dict[str, object] = {}


def _worker_init(pcfg: OnlineCbfPolicyConfig, cfg: TrainConfig) -> None:
    torch.set_num_threads(1)
    _WORKER["model"], _WORKER["pcfg"], _WORKER["cfg"] = NeighbourhoodNet(pcfg), pcfg, cfg


def _worker_score(args: tuple[np.ndarray, list]) -> tuple[float, dict[str, float], int]:
    theta, groups = args
    model: NeighbourhoodNet = _WORKER["model"]  # type: ignore[assignment]
    vector_to_parameters(torch.as_tensor(theta), model.parameters())
    return fitness_by_family(model, _WORKER["pcfg"], groups, _WORKER["cfg"])  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------------------
# The loop
# ----------------------------------------------------------------------------------------------------------

def train(config: TrainConfig) -> Path:
    """Train (or resume) and write the final policy (the best by model selection, when any ran); returns its path."""
    from torch.utils.tensorboard import SummaryWriter
    from tqdm import tqdm

    cfg = config
    torch.set_num_threads(cfg.torch_threads)
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    families, selection = load_families(cfg, "<config>")
    pcfg = policy_config(cfg)
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    model = new_model(pcfg, gen)
    start, best, steps = 0, -math.inf, 0
    last_path = run_dir / "last.pt"
    theta = parameters_to_vector(model.parameters()).detach().clone().requires_grad_(True)
    optimizer = torch.optim.Adam([theta], lr=cfg.learning_rate)
    if cfg.resume and last_path.is_file():
        try:
            ck = torch.load(last_path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a truncated or foreign file: say which, not a torch traceback
            raise TrainConfigError(str(last_path), "<file>", f"unreadable checkpoint ({type(exc).__name__}); "
                                   "use --fresh to start over") from None
        saved = ck.get("config", {})
        for key in ("hidden", "k_neighbours", "k_obstacles", "population", "seed"):  # what shapes theta and the RNG
            if key in saved and key in asdict(cfg) and saved[key] != getattr(cfg, key):
                raise TrainConfigError(str(run_dir), key, f"{brief(getattr(cfg, key))} differs from the checkpoint's "
                                       f"{brief(saved[key])} in {last_path}; use --fresh (or another run_dir)")
        with torch.no_grad():
            theta.copy_(ck["theta"])
        optimizer.load_state_dict(ck["optimizer"])
        rng.bit_generator.state = ck["numpy_rng"]
        gen.set_state(ck["torch_rng"])
        start, best, steps = int(ck["iteration"]), float(ck["best"]), int(ck["env_steps"])
    else:
        (run_dir / "best_policy.pt").unlink(missing_ok=True)  # a fresh run must not ship an older run's best
        if cfg.init_policy:
            model = warm_start_model(cfg.init_policy, pcfg)
            with torch.no_grad():
                theta.copy_(parameters_to_vector(model.parameters()))
    vector_to_parameters(theta.detach(), model.parameters())
    writer = SummaryWriter(str(run_dir))
    pool = (multiprocessing.get_context("fork").Pool(cfg.workers, _worker_init, (pcfg, cfg)) if cfg.workers > 1
            else None)
    bar = tqdm(range(start, cfg.iterations), initial=start, total=cfg.iterations, disable=not cfg.progress_bar,
               desc="online-cbf ES")
    half = cfg.population // 2
    t0 = time.time()
    step = start
    if start == 0 and cfg.init_policy and cfg.eval_every > 0:  # the policy to beat is the one we start from
        best = select(OnlineCbfPolicy(pcfg, model), families + selection, cfg.eval_seeds, writer, 0, 0, best,
                      run_dir, bar.write, rates_hz=cfg.rates_hz)
    try:
        for it in bar:
            if cfg.max_env_steps and steps >= cfg.max_env_steps:
                break
            t_it = time.time()
            groups = draw_groups(families, cfg.scenes_per_family, cfg.rates_hz, rng,
                                 episode_time_s=cfg.episode_time_s)
            eps = torch.randn((half, theta.numel()), generator=gen)
            members = [(theta + sign * cfg.sigma * eps[k]).detach().numpy()
                       for k in range(half) for sign in (1.0, -1.0)]
            if pool is not None:
                results = pool.map(_worker_score, [(m, groups) for m in members])
            else:
                results = []
                for m in members:
                    vector_to_parameters(torch.as_tensor(m), model.parameters())
                    results.append(fitness_by_family(model, pcfg, groups, cfg))
            names = sorted(results[0][1])
            per_family = np.array([[r[1][name] for name in names] for r in results])  # (P, F), for the logs
            scores = np.array([r[0] for r in results]).reshape(half, 2)
            steps += sum(r[2] for r in results)
            # Rank the members by their fitness over all episodes. (Ranking within each family and averaging
            # was tried: it weighs a family's noise, e.g. tiny time-to-goal differences where every member
            # succeeds, as much as real differences elsewhere, and the selection score fell from 1.20 to 0.87.)
            ranks = _centred_ranks(scores.ravel()).reshape(half, 2)
            weights = torch.as_tensor(ranks[:, 0] - ranks[:, 1], dtype=torch.float32)
            grad = (weights[:, None] * eps).sum(0) / (cfg.population * cfg.sigma)
            optimizer.zero_grad()
            theta.grad = -(grad - cfg.weight_decay * theta.detach())  # Adam minimises: ascend the fitness
            optimizer.step()
            vector_to_parameters(theta.detach(), model.parameters())

            step = it + 1
            writer.add_scalar("train/fitness_mean", float(scores.mean()), step)
            for f, name in enumerate(names):
                writer.add_scalar(f"train/fitness/{name}", float(per_family[:, f].mean()), step)
            writer.add_scalar("train/fitness_max", float(scores.max()), step)
            writer.add_scalar("train/env_steps", steps, step)
            writer.add_scalar("time/iteration_s", time.time() - t_it, step)
            writer.add_scalar("time/elapsed_s", time.time() - t0, step)
            bar.set_postfix(fit=f"{scores.mean():.2f}", best_member=f"{scores.max():.2f}",
                            steps=f"{steps / 1e6:.1f}M", s=f"{time.time() - t_it:.0f}")
            last_iteration = step == cfg.iterations or bool(cfg.max_env_steps and steps >= cfg.max_env_steps)
            if cfg.eval_every > 0 and (step % cfg.eval_every == 0 or last_iteration):
                best = select(OnlineCbfPolicy(pcfg, model), families + selection, cfg.eval_seeds, writer, step,
                              steps, best, run_dir, bar.write, rates_hz=cfg.rates_hz)
            _save_checkpoint(last_path, theta, optimizer, step, rng, gen, best, steps, cfg)
            if cfg.checkpoint_every > 0 and step % cfg.checkpoint_every == 0:
                _save_checkpoint(run_dir / f"iter_{step:04d}.pt", theta, optimizer, step, rng, gen, best, steps, cfg)
    finally:
        if pool is not None:
            pool.close()
            pool.join()
        writer.close()
    out = Path(cfg.output) if cfg.output else run_dir / "policy.pt"
    best_path = run_dir / "best_policy.pt"
    final = OnlineCbfPolicy.load(best_path) if best_path.is_file() else OnlineCbfPolicy(pcfg, model)
    return final.save(out)


def select(policy: OnlineCbfPolicy, families: Sequence[Family], eval_seeds: int, writer: object, step: int,
           steps: int, best: float, run_dir: Path, log: object, rates_hz: Sequence[float] = (10.0, 20.0, 50.0)
           ) -> float:
    """Model selection: score on held-out seeds of training and held-out families; save the policy as
    ``best_policy.pt`` when it beats ``best``; returns the new best score. Both trainers use it."""
    result = selection_score(policy, families, eval_seeds, rates_hz=rates_hz)
    for name, r in result.items():
        for key, val in r.items():
            writer.add_scalar(f"eval/{name}/{key}", val, step)  # type: ignore[attr-defined]
    score = float(np.mean([r["success"] + 0.5 * r["agents_at_goal"] - (r["collisions"] > 0) for r in result.values()]))
    writer.add_scalar("eval/score", score, step)  # type: ignore[attr-defined]
    writer.add_scalar("eval/score_by_env_steps", score, steps)  # type: ignore[attr-defined]
    log(f"iter {step} ({steps / 1e6:.1f}M steps): score {score:.3f}; "  # type: ignore[operator]
        + ", ".join(f"{k} {v['success']:.2f}" + (f" ({v['collisions']:.0f} coll)" if v["collisions"] else "")
                    for k, v in result.items()))
    if score > best:
        policy.save(run_dir / "best_policy.pt")
        return score
    return best


def main(argv: Sequence[str] | None = None) -> int:
    """``navkit train online-cbf --config FILE [--fresh]``: read the YAML into TrainConfig and train (resuming
    from the run's last checkpoint unless ``--fresh``)."""
    parser = argparse.ArgumentParser(prog="navkit train online-cbf", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="YAML file with TrainConfig fields")
    parser.add_argument("--fresh", action="store_true", help="ignore an existing last.pt and start over")
    args = parser.parse_args(argv)
    cfg = load_config(args.config)
    if args.fresh:
        cfg.resume = False
    path = train(cfg)
    print(f"policy written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
