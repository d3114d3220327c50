"""Train the online-CBF GNN policy (Gao, Yang & Prorok 2023) model-free by evolution strategies (Salimans et al.).

Why ES and not PPO. The deadlock an antipodal swap causes is symmetric: every agent
sees the same picture, so any *shared, deterministic* α mapping that does not use
something which differs between agents leaves them all equally stuck. What breaks it
is a consistent difference between agents (measured: α = 10^cos(goal bearing) solves
100 % of seeds, every fixed α 0 %). Action-space noise (PPO) makes agents differ only
by chance, and its per-agent gradient mostly says "everyone push harder"; a parameter
perturbation, in contrast, *is* a new deterministic state→α mapping, scored by what the
team achieves. PPO with shared weights was tried first and stayed at 0 % on the swap
after 50 iterations; this OpenAI-style ES (antithetic pairs, centred ranks, Adam)
finds working mappings within a few iterations. It is model-free policy search on the
same GNN, rewards and simulator.

CleanRL-style: every hyper-parameter is a field of :class:`TrainConfig` with the reason it
matters, then one loop in :func:`train`:

1. draw this iteration's episodes (scenario file, agent count, fresh seeds), shared by
   every population member (common random numbers: members differ only by parameters),
2. score θ ± σε for P/2 noise vectors by team fitness on those episodes,
3. centred-rank the scores, estimate the gradient, take an Adam step,
4. TensorBoard, periodic held-out evaluation (:func:`~navkit.learning.swarm_rollout.rollout`),
   checkpoints (last, every K, best) and resume from the last one.

Run: ``navkit train online-cbf --config learning/configs/online_cbf.yaml`` (→ :func:`main`).
"""
from __future__ import annotations

import argparse
import math
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from collections.abc import Sequence

import numpy as np
import torch
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from navkit.common.errors import ParameterError
from navkit.common.params import config_from_params
from navkit.common.yaml_file import read_yaml_file
from navkit.common.swarm_state import SwarmState
from navkit.control.online_cbf_policy import OnlineCbfGnn, OnlineCbfPolicy, OnlineCbfPolicyConfig
from navkit.control.swarm_controller import SwarmController
from navkit.learning.swarm_rollout import rollout
from navkit.learning.swarm_task import EpisodeMetrics
from navkit.sim.scenario import ScenarioError
from navkit.sim.swarm_scenario import SwarmScenario, SwarmScenarioSpec, load_swarm_scenario

REPO_ROOT = Path(__file__).resolve().parents[1]
EVAL_SEED_BASE = 1_000_000
"""Evaluation (and benchmark) seeds start here; training seeds are drawn below it, so evaluation is held out."""


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
    """Intra-op threads: the graphs are small; one thread per process is fastest on 2 cores."""
    progress_bar: bool = True
    """Show a tqdm bar (off in tests)."""
    # --- episodes ---
    scenarios: list[str] = field(default_factory=lambda: [
        "scenarios/multi/circle_swap.yaml", "scenarios/multi/narrow_passage.yaml",
        "scenarios/multi/cluttered.yaml", "scenarios/multi/moving_obstacles.yaml"])
    """Swarm scenario files episodes are drawn from (relative paths: cwd, then the repo root)."""
    agents_min: int = 4
    """Fewest agents per episode group: a policy that only saw 8 agents would not transfer to 4 or 12."""
    agents_max: int = 10
    """Most agents per episode group."""
    scenes_per_scenario: int = 2
    """Episodes per scenario file per iteration (every member plays the same ones)."""
    episode_time_s: float = 20.0
    """Cap on a training episode (0 → the scenario's limit): deadlocks stop costing compute early."""
    decision_every: int = 5
    """Control ticks per policy evaluation while training (α held in between): 5× cheaper rollouts. The
    deployed policy runs every tick; α changes smoothly, so the two behave alike."""
    # --- policy ---
    hidden: int = 32
    """GNN width (~12 k parameters at 32): small enough for ES, large enough for the mapping."""
    alpha_min: float = 0.05
    """Lower bound of α (see OnlineCbfPolicyConfig)."""
    alpha_max: float = 20.0
    """Upper bound of α."""
    sensing_radius_m: float = 2.0
    """Graph edges only within this range (match the scenarios' sensing radius)."""
    max_speed_m_s: float = 1.0
    """Velocity feature scale."""
    init_candidates: int = 6
    """Random initialisations scored before ES starts; the best one is the starting point (random search)."""
    init_output_std: float = 3.0
    """Std of the actor's output-layer weights at initialisation: large enough that α varies strongly with
    the state (with the usual 1/√fan-in scale every agent gets α ≈ 1 and the swap stays deadlocked)."""
    # --- fitness (per episode, averaged) ---
    success_weight: float = 1.0
    """Every agent home at once before the time limit: the benchmark's success criterion."""
    arrival_weight: float = 0.5
    """Fraction of agents that reached their goal: partial credit that keeps the search moving."""
    speed_weight: float = 0.3
    """× (1 − time-to-goal / time limit) for successful episodes: faster is better."""
    collision_penalty: float = 2.0
    """Per episode with any collision: never worth it."""
    infeasible_penalty: float = 1.0
    """× fraction of agent-ticks whose QP was infeasible (the agent braked)."""
    # --- ES ---
    iterations: int = 30
    """ES iterations (population evaluation + one update)."""
    population: int = 12
    """Members per iteration (antithetic: population/2 noise vectors, each used as ±)."""
    sigma: float = 0.05
    """Std of the parameter perturbations."""
    learning_rate: float = 0.02
    """Adam step size on the ES gradient estimate."""
    weight_decay: float = 0.005
    """L2 pull toward zero: keeps weights (and tanh units) in a useful range."""
    # --- evaluation & checkpoints ---
    eval_every: int = 10
    """Evaluate the current policy every this many iterations (and at the end), every control tick; 0: never."""
    eval_seeds: int = 10
    """Held-out seeds per evaluation scenario."""
    eval_scenarios: list[str] = field(default_factory=list)
    """Scenarios to evaluate on at their file's agent count (empty → the training scenarios)."""
    checkpoint_every: int = 10
    """Keep iter_XXXX.pt every this many iterations (last.pt is rewritten every iteration); 0: never."""

    def __post_init__(self) -> None:
        """Bounds on every number, so a typo fails at once (named) instead of after an hour or never."""
        bounds: dict[str, tuple[float, float]] = {
            "seed": (0, 2**32 - 1), "torch_threads": (1, 64), "agents_min": (1, 1024), "agents_max": (1, 1024),
            "scenes_per_scenario": (1, 256), "episode_time_s": (0.0, 3600.0), "decision_every": (1, 1000),
            "hidden": (1, 1024), "alpha_min": (1e-6, 1e6), "alpha_max": (1e-6, 1e6), "sensing_radius_m": (1e-3, 200.0),
            "max_speed_m_s": (1e-3, 20.0), "init_candidates": (0, 10_000), "init_output_std": (0.0, 100.0),
            "success_weight": (-1e6, 1e6), "arrival_weight": (-1e6, 1e6), "speed_weight": (-1e6, 1e6),
            "collision_penalty": (0.0, 1e6), "infeasible_penalty": (0.0, 1e6), "iterations": (0, 1_000_000),
            "population": (2, 10_000), "sigma": (1e-9, 10.0), "learning_rate": (1e-9, 10.0),
            "weight_decay": (0.0, 1.0), "eval_every": (0, 1_000_000), "eval_seeds": (1, 10_000),
            "checkpoint_every": (0, 1_000_000)}
        for name, (low, high) in bounds.items():
            value = getattr(self, name)
            if not low <= value <= high:
                raise ValueError(f"{name}: must be in [{low:g}, {high:g}], got {value!r}")
        if self.agents_max < self.agents_min:
            raise ValueError(f"agents_max: must be >= agents_min ({self.agents_min}), got {self.agents_max}")
        if self.population % 2:
            raise ValueError(f"population: must be even (antithetic pairs), got {self.population}")
        if not self.alpha_min < self.alpha_max:
            raise ValueError(f"alpha_max: must exceed alpha_min ({self.alpha_min}), got {self.alpha_max}")
        if not self.scenarios:
            raise ValueError("scenarios: at least one scenario file is required")


class TrainConfigError(ParameterError):
    """A training config file is malformed; names the file and key."""


def _resolve(path: str) -> Path:
    p = Path(path)
    if p.is_absolute() or p.exists():
        return p
    return REPO_ROOT / p


def policy_config(cfg: TrainConfig) -> OnlineCbfPolicyConfig:
    return OnlineCbfPolicyConfig(hidden=cfg.hidden, alpha_min=cfg.alpha_min, alpha_max=cfg.alpha_max,
                                 sensing_radius_m=cfg.sensing_radius_m, max_speed_m_s=cfg.max_speed_m_s)


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
    try:
        cfg = config_from_params(TrainConfig, {str(k): v for k, v in doc.items()}, str(path))
    except ParameterError as exc:
        raise TrainConfigError(exc.source, exc.field, exc.problem) from None
    if cfg.iterations < 1:
        raise TrainConfigError(str(path), "iterations", "must be >= 1 (0 iterations would only write the random "
                                                       "initial policy)")
    for key in ("scenarios", "eval_scenarios"):
        for i, name in enumerate(getattr(cfg, key)):
            if not _resolve(name).is_file():
                raise TrainConfigError(str(path), f"{key}[{i}]", f"scenario file {name} not found")
    check_output_locations(cfg, str(path))
    return cfg


def check_output_locations(cfg: TrainConfig, source: str) -> None:
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


def sample_episodes(specs: Sequence[SwarmScenarioSpec], cfg: TrainConfig, rng: np.random.Generator) -> list[list]:
    """One group of scenes per scenario file, each with its own agent count and fresh training seeds."""
    groups = []
    for spec in specs:
        n = int(rng.integers(cfg.agents_min, cfg.agents_max + 1))
        seeds = rng.integers(0, EVAL_SEED_BASE, size=cfg.scenes_per_scenario)
        scenes = []
        for s in seeds:
            try:
                sc = spec.expand(seed=int(s), num_agents=n)
            except ScenarioError:  # a layout that cannot hold n agents: use the file's own count
                sc = spec.expand(seed=int(s))
            if cfg.episode_time_s > 0:
                sc = replace(sc, time_limit_s=min(sc.time_limit_s, cfg.episode_time_s))
            scenes.append(sc)
        by_count: dict[int, list] = {}
        for sc in scenes:
            by_count.setdefault(sc.num_agents, []).append(sc)
        groups += list(by_count.values())
    return groups


def fitness(model: OnlineCbfGnn, pcfg: OnlineCbfPolicyConfig, groups: list[list], cfg: TrainConfig) -> float:
    policy = OnlineCbfPolicy(pcfg, model)
    rows, played = [], []
    for scenes in groups:
        rows += rollout(scenes, SwarmController.for_scenario(scenes[0]), _HeldPolicy(policy, cfg.decision_every))
        played += scenes
    return episode_fitness(rows, played, cfg)


def evaluate(policy: OnlineCbfPolicy, scenario_files: Sequence[str], num_seeds: int,
             seed_base: int = EVAL_SEED_BASE) -> dict[str, dict[str, float]]:
    """The policy every tick on held-out seeds, per scenario: success rate, collisions, agents at goal."""
    out = {}
    for path in scenario_files:
        spec = load_swarm_scenario(_resolve(path))
        scenes = [spec.expand(seed=seed_base + i) for i in range(num_seeds)]
        rows = rollout(scenes, SwarmController.for_scenario(scenes[0]), policy)
        out[spec.name] = {"success": float(np.mean([r.success for r in rows])),
                          "collisions": float(sum(r.collisions for r in rows)),
                          "agents_at_goal": float(np.mean([r.agents_at_goal / r.num_agents for r in rows]))}
    return out


def _new_model(cfg: TrainConfig, gen: torch.Generator) -> OnlineCbfGnn:
    model = OnlineCbfGnn(cfg.hidden)
    with torch.no_grad():
        for p in model.parameters():  # re-draw from the run's generator: reproducible inits
            if p.dim() > 1:
                bound = 1.0 / math.sqrt(p.shape[1])
                p.copy_(torch.empty_like(p).uniform_(-bound, bound, generator=gen))
            else:
                p.zero_()
        last = model.actor[-1].weight
        last.copy_(torch.randn(last.shape, generator=gen) * cfg.init_output_std)
    return model


def _save_checkpoint(path: Path, theta: torch.Tensor, optimizer: torch.optim.Optimizer, iteration: int,
                     rng: np.random.Generator, gen: torch.Generator, best: float, cfg: TrainConfig) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"iteration": iteration, "theta": theta.detach().clone(), "optimizer": optimizer.state_dict(),
                "numpy_rng": rng.bit_generator.state, "torch_rng": gen.get_state(), "best": best,
                "config": asdict(cfg)}, tmp)
    tmp.replace(path)


def _centred_ranks(x: np.ndarray) -> np.ndarray:
    ranks = np.empty(len(x))
    ranks[np.argsort(x, kind="stable")] = np.arange(len(x))
    return ranks / (len(x) - 1) - 0.5


# ----------------------------------------------------------------------------------------------------------
# The loop
# ----------------------------------------------------------------------------------------------------------

def train(config: TrainConfig) -> Path:
    """Train (or resume) and write the final policy; returns its path."""
    from torch.utils.tensorboard import SummaryWriter
    from tqdm import tqdm

    cfg = config
    torch.set_num_threads(cfg.torch_threads)
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    specs = [load_swarm_scenario(_resolve(p)) for p in cfg.scenarios]
    eval_files = cfg.eval_scenarios or cfg.scenarios
    pcfg = policy_config(cfg)
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    model = _new_model(cfg, gen)
    start, best = 0, -math.inf
    last_path = run_dir / "last.pt"
    resumed = cfg.resume and last_path.is_file()
    if not resumed and cfg.init_candidates > 1:
        # Random search for a starting point: many random GNNs already map state to α unevenly enough
        # to break some deadlocks; start ES from the best of a few.
        groups = sample_episodes(specs, cfg, rng)
        candidates = [_new_model(cfg, gen) for _ in range(cfg.init_candidates)]
        scores = [fitness(m, pcfg, groups, cfg) for m in candidates]
        model = candidates[int(np.argmax(scores))]
    theta = parameters_to_vector(model.parameters()).detach().clone().requires_grad_(True)
    optimizer = torch.optim.Adam([theta], lr=cfg.learning_rate)
    if resumed:
        ck = torch.load(last_path, map_location="cpu", weights_only=True)
        with torch.no_grad():
            theta.copy_(ck["theta"])
        optimizer.load_state_dict(ck["optimizer"])
        rng.bit_generator.state = ck["numpy_rng"]
        gen.set_state(ck["torch_rng"])
        start, best = int(ck["iteration"]), float(ck["best"])
    writer = SummaryWriter(str(run_dir))
    bar = tqdm(range(start, cfg.iterations), initial=start, total=cfg.iterations, disable=not cfg.progress_bar,
               desc="online-cbf ES")
    half = cfg.population // 2
    t0 = time.time()
    for it in bar:
        t_it = time.time()
        groups = sample_episodes(specs, cfg, rng)
        eps = torch.randn((half, theta.numel()), generator=gen)
        scores = np.empty((half, 2))
        for k in range(half):
            for j, sign in enumerate((1.0, -1.0)):
                vector_to_parameters((theta + sign * cfg.sigma * eps[k]).detach(), model.parameters())
                scores[k, j] = fitness(model, pcfg, groups, cfg)
        ranks = _centred_ranks(scores.ravel()).reshape(half, 2)
        weights = torch.as_tensor(ranks[:, 0] - ranks[:, 1], dtype=torch.float32)
        grad = (weights[:, None] * eps).sum(0) / (cfg.population * cfg.sigma)
        optimizer.zero_grad()
        theta.grad = -(grad - cfg.weight_decay * theta.detach())  # Adam minimises: ascend the fitness
        optimizer.step()
        vector_to_parameters(theta.detach(), model.parameters())

        step = it + 1
        writer.add_scalar("train/fitness_mean", float(scores.mean()), step)
        writer.add_scalar("train/fitness_max", float(scores.max()), step)
        writer.add_scalar("time/iteration_s", time.time() - t_it, step)
        writer.add_scalar("time/elapsed_s", time.time() - t0, step)
        bar.set_postfix(fit=f"{scores.mean():.2f}", best_member=f"{scores.max():.2f}", s=f"{time.time() - t_it:.0f}")
        if cfg.eval_every > 0 and (step % cfg.eval_every == 0 or step == cfg.iterations):
            result = evaluate(OnlineCbfPolicy(pcfg, model), eval_files, cfg.eval_seeds)
            for name, r in result.items():
                for key, val in r.items():
                    writer.add_scalar(f"eval/{name}/{key}", val, step)
            score = float(np.mean([r["success"] + 0.5 * r["agents_at_goal"] - 0.1 * r["collisions"]
                                   for r in result.values()]))
            writer.add_scalar("eval/score", score, step)
            bar.write(f"iter {step}: " + ", ".join(f"{k_} {v['success']:.2f} ({v['collisions']:.0f} coll)"
                                                    for k_, v in result.items()))
            if score > best:
                best = score
                OnlineCbfPolicy(pcfg, model).save(run_dir / "best_policy.pt")
        _save_checkpoint(last_path, theta, optimizer, step, rng, gen, best, cfg)
        if cfg.checkpoint_every > 0 and step % cfg.checkpoint_every == 0:
            _save_checkpoint(run_dir / f"iter_{step:04d}.pt", theta, optimizer, step, rng, gen, best, cfg)
    writer.close()
    out = Path(cfg.output) if cfg.output else run_dir / "policy.pt"
    return OnlineCbfPolicy(pcfg, model).save(out)


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
