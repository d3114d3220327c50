"""Planners that optimise action sequences through a latent world model, and MPC around them.

DINO-WM (Zhou, Pan, LeCun, Pinto, ICML 2025, arXiv 2411.04983) plans purely in latent space: roll
candidate action sequences through the learned predictor and score the last predicted frame
against the goal image's latents. No simulator is consulted: the planners here see only a
:class:`LatentModel` (``rollout_latents`` + ``latent_cost``), an opaque start state and a goal
latent, so whatever they return is what the model believes, and nothing else.

* :class:`CemPlanner`: the cross-entropy method, the paper's planner (Gaussian μ = 0, σ = 1 in
  normalised action space, 300 samples, top-30 elites, 10 iterations, horizon 5).
* :class:`MppiPlanner`: model-predictive path integral, a softer cousin of CEM that averages all
  samples weighted by exp(-cost / temperature) instead of keeping a hard elite set.
* :class:`GradientPlanner`: Adam on the actions through the differentiable model, projected onto the
  box. The paper found it far worse than CEM on learned latents (bumpy cost landscapes, local
  minima); it is here as the cheap baseline and for smooth, near-convex costs.
* :class:`Mpc`: receding horizon with a fixed step budget, as navkit evaluates: plan, execute the
  first ``execute_steps`` model steps, warm-start the next plan with the rest of this one, repeat
  until the budget is spent; it reports how many model evaluations that took.

All actions are model steps (``frameskip · A`` numbers) in normalised units inside the box [-1, 1];
a model maps them to the robot's units (e.g. :meth:`navkit.planning.dino_wm.DinoWmModel.env_actions`).
Planners are interchangeable behind :class:`ActionPlanner`, as MuJoCo MPC's planners are.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from navkit.common.errors import brief

__all__ = ["ActionPlanner", "CemConfig", "CemPlanner", "CountingModel", "GradientPlanner", "GradientPlannerConfig",
           "LatentModel", "Mpc", "MpcConfig", "MpcResult", "MppiConfig", "MppiPlanner"]

ACTION_LOW = -1.0
"""Lower edge of the normalised action box."""
ACTION_HIGH = 1.0
"""Upper edge of the normalised action box."""


@runtime_checkable
class LatentModel(Protocol):
    """What a latent planner may use of a world model, and nothing more (torch, differentiable in the actions)."""

    action_dim: int
    """Numbers per model-step action (``frameskip · A``)."""

    def rollout_latents(self, state: object, actions: Tensor) -> Tensor:
        """Predicted latents (N, T, ...) for N action sequences (N, T, action_dim) from one start ``state``."""

    def latent_cost(self, predicted: Tensor, goal: Tensor) -> Tensor:
        """(N,) cost of each predicted sequence (N, T, ...) with respect to ``goal``; lower is better."""


@runtime_checkable
class ActionPlanner(Protocol):
    """One plan from the model's current state to a goal: an action sequence in the box [-1, 1]."""

    def plan(self, model: LatentModel, obs_latent_state: object, goal_latent: Tensor, horizon: int,
             warm_start: Tensor | None = None) -> Tensor:
        """(horizon, model.action_dim) actions; ``warm_start`` (horizon, action_dim) seeds the search."""


class CountingModel:
    """A :class:`LatentModel` that counts what planning costs: rollout calls and sampled model steps (N·T).

    The planners' cost on a CPU is almost exactly sample-steps x the predictor's per-step time, so
    this is the number to budget and to compare planners by."""

    def __init__(self, model: LatentModel) -> None:
        self.model = model
        self.action_dim = model.action_dim
        self.calls = 0
        self.sample_steps = 0

    def rollout_latents(self, state: object, actions: Tensor) -> Tensor:
        self.calls += 1
        self.sample_steps += actions.shape[0] * actions.shape[1]
        return self.model.rollout_latents(state, actions)

    def latent_cost(self, predicted: Tensor, goal: Tensor) -> Tensor:
        return self.model.latent_cost(predicted, goal)


def _check_positive_ints(cfg: object, names: tuple[str, ...]) -> None:
    for name in names:
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: expected an integer >= 1, got {brief(value)}")


def _check_positive_floats(cfg: object, names: tuple[str, ...]) -> None:
    for name in names:
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise ValueError(f"{name}: expected a finite number > 0, got {brief(value)}")


def _initial_mean(model: LatentModel, horizon: int, warm_start: Tensor | None) -> Tensor:
    """The search's starting sequence: the warm start (checked, clipped to the box) or zeros (the box centre)."""
    if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
        raise ValueError(f"horizon: expected an integer >= 1, got {brief(horizon)}")
    if warm_start is None:
        return torch.zeros(horizon, model.action_dim)
    if tuple(warm_start.shape) != (horizon, model.action_dim):
        raise ValueError(f"warm_start: expected {(horizon, model.action_dim)}, got {tuple(warm_start.shape)}")
    if not bool(torch.isfinite(warm_start).all()):
        raise ValueError("warm_start: contains NaN or Inf")
    return warm_start.detach().float().clamp(ACTION_LOW, ACTION_HIGH)


def _costs(model: LatentModel, state: object, goal: Tensor, actions: Tensor) -> Tensor:
    """(N,) model costs; a non-finite cost (a diverged rollout) ranks last instead of poisoning the update."""
    cost = model.latent_cost(model.rollout_latents(state, actions), goal).detach()
    return torch.nan_to_num(cost, nan=math.inf)


# ------------------------------------------------------------------------------------------- CEM


@dataclass(frozen=True)
class CemConfig:
    """Cross-entropy method; the defaults are the paper's (:meth:`paper`)."""

    samples: int = 300
    """Action sequences sampled per iteration; cost per plan is samples x horizon x iterations model steps."""
    elites: int = 30
    """Lowest-cost samples the Gaussian is refitted to."""
    iterations: int = 10
    """Refits per plan."""
    init_std: float = 1.0
    """σ of the first Gaussian in normalised units (1: the whole box is explored)."""
    min_std: float = 0.0
    """Floor on σ, so a refit on near-identical elites can never freeze the search (0 in the paper)."""
    include_mean: bool = False
    """Also score the current mean each iteration: a good warm start then survives sampling noise."""
    seed: int = 0
    """Seed of the planner's own generator, so a plan is reproducible."""

    def __post_init__(self) -> None:
        _check_positive_ints(self, ("samples", "elites", "iterations"))
        _check_positive_floats(self, ("init_std",))
        if self.elites > self.samples:
            raise ValueError(f"elites: must be <= samples ({self.samples}), got {self.elites}")
        if not math.isfinite(self.min_std) or self.min_std < 0:
            raise ValueError(f"min_std: expected a finite number >= 0, got {brief(self.min_std)}")

    @classmethod
    def paper(cls, **overrides: object) -> CemConfig:
        """DINO-WM's CEM: 300 samples, top-30 elites, 10 iterations, σ = 1 (15 000 model steps a plan at horizon 5)."""
        return replace(cls(samples=300, elites=30, iterations=10, init_std=1.0), **overrides)  # type: ignore[arg-type]

    @classmethod
    def cpu(cls, **overrides: object) -> CemConfig:
        """A CPU budget: 64 samples, top-8, 4 iterations (1 280 model steps per plan at horizon 5, ~12x fewer
        than the paper's), with the mean scored too and σ floored at 0.05 so fewer iterations still converge
        without collapsing; on the ``cpu`` predictor preset a plan takes about a second on one core (measured)."""
        base = cls(samples=64, elites=8, iterations=4, init_std=1.0, min_std=0.05, include_mean=True)
        return replace(base, **overrides)  # type: ignore[arg-type]


class CemPlanner:
    """CEM in normalised action space: sample from N(μ, σ²) clipped to the box, refit to the elites, return μ."""

    def __init__(self, config: CemConfig | None = None) -> None:
        self.config = config or CemConfig()
        self._gen = torch.Generator().manual_seed(self.config.seed)

    def plan(self, model: LatentModel, obs_latent_state: object, goal_latent: Tensor, horizon: int,
             warm_start: Tensor | None = None) -> Tensor:
        c = self.config
        mu = _initial_mean(model, horizon, warm_start)
        std = torch.full_like(mu, c.init_std)
        for _ in range(c.iterations):
            noise = torch.randn((c.samples, *mu.shape), generator=self._gen)
            cand = (mu + std * noise).clamp(ACTION_LOW, ACTION_HIGH)
            if c.include_mean:
                cand = torch.cat([mu[None], cand], dim=0)
            cost = _costs(model, obs_latent_state, goal_latent, cand)
            if not bool(torch.isfinite(cost).any()):
                continue  # every rollout diverged: no sample says anything, keep μ (as MPPI does)
            elite = cand[torch.topk(cost, c.elites, largest=False).indices]
            mu = elite.mean(dim=0)
            std = elite.std(dim=0, unbiased=False).clamp_min(c.min_std)
        return mu.clamp(ACTION_LOW, ACTION_HIGH)


# ------------------------------------------------------------------------------------------ MPPI


@dataclass(frozen=True)
class MppiConfig:
    """Model-predictive path integral: every sample counts, weighted by exp(-cost / temperature)."""

    samples: int = 128
    """Action sequences per iteration."""
    iterations: int = 4
    """Weighted updates per plan (MPPI on a robot often does 1 per control step; a warm start carries the rest)."""
    noise_std: float = 0.5
    """σ of the exploration noise in normalised units; fixed, unlike CEM's refitted σ."""
    temperature: float = 0.05
    """λ: small follows the best samples (CEM-like), large averages broadly (smoother, slower)."""
    normalize_costs: bool = True
    """Divide costs by their spread before the softmax, so λ means the same for any latent space's cost scale."""
    seed: int = 0
    """Seed of the planner's own generator."""

    def __post_init__(self) -> None:
        _check_positive_ints(self, ("samples", "iterations"))
        _check_positive_floats(self, ("noise_std", "temperature"))


class MppiPlanner:
    """MPPI: μ ← μ + Σ_i w_i ε_i with w = softmax(-(cost - min cost) / λ), samples clipped to the box."""

    def __init__(self, config: MppiConfig | None = None) -> None:
        self.config = config or MppiConfig()
        self._gen = torch.Generator().manual_seed(self.config.seed)

    def plan(self, model: LatentModel, obs_latent_state: object, goal_latent: Tensor, horizon: int,
             warm_start: Tensor | None = None) -> Tensor:
        c = self.config
        mu = _initial_mean(model, horizon, warm_start)
        for _ in range(c.iterations):
            noise = torch.randn((c.samples, *mu.shape), generator=self._gen) * c.noise_std
            noise[0] = 0.0  # the current mean is always one of the samples
            cand = (mu + noise).clamp(ACTION_LOW, ACTION_HIGH)
            cost = _costs(model, obs_latent_state, goal_latent, cand)
            if not bool(torch.isfinite(cost).any()):
                continue  # every rollout diverged: no sample says anything, keep μ
            shifted = cost - cost.min()
            if c.normalize_costs:
                spread = shifted[torch.isfinite(shifted)].max()
                shifted = shifted / spread if spread > 0 else shifted
            weights = torch.softmax(-shifted / c.temperature, dim=0)
            mu = (weights[:, None, None] * cand).sum(dim=0)  # clipped samples keep μ inside the box
        return mu.clamp(ACTION_LOW, ACTION_HIGH)


# -------------------------------------------------------------------------------- gradient descent


@dataclass(frozen=True)
class GradientPlannerConfig:
    """Projected Adam on the action sequence through the differentiable model."""

    iterations: int = 100
    """Adam steps per plan; each is one forward and one backward rollout of every restart (~3 forwards)."""
    learning_rate: float = 0.1
    """Initial Adam step size in normalised action units (the box is 2 wide)."""
    final_lr_fraction: float = 0.01
    """The step size decays (cosine) to this fraction: Adam's steps do not shrink with the gradient, so
    without decay the actions keep oscillating around the optimum by about the step size."""
    restarts: int = 2
    """Sequences optimised in parallel from different starts; the lowest final cost is returned."""
    init_std: float = 0.3
    """Spread of the restarts around the warm start (the first restart starts exactly on it)."""
    seed: int = 0
    """Seed of the planner's own generator."""

    def __post_init__(self) -> None:
        _check_positive_ints(self, ("iterations", "restarts"))
        _check_positive_floats(self, ("learning_rate", "init_std", "final_lr_fraction"))
        if self.final_lr_fraction > 1.0:
            raise ValueError(f"final_lr_fraction: expected a number in (0, 1], got {brief(self.final_lr_fraction)}")


class GradientPlanner:
    """Adam over actions, clamped to the box after every step; gradients go to the actions only (never
    into the model's parameters, which stay untouched by planning)."""

    def __init__(self, config: GradientPlannerConfig | None = None) -> None:
        self.config = config or GradientPlannerConfig()
        self._gen = torch.Generator().manual_seed(self.config.seed)

    def plan(self, model: LatentModel, obs_latent_state: object, goal_latent: Tensor, horizon: int,
             warm_start: Tensor | None = None) -> Tensor:
        c = self.config
        mu = _initial_mean(model, horizon, warm_start)
        init = mu + c.init_std * torch.randn((c.restarts, *mu.shape), generator=self._gen)
        init[0] = mu
        actions = init.clamp(ACTION_LOW, ACTION_HIGH).requires_grad_(True)
        opt = torch.optim.Adam([actions], lr=c.learning_rate)
        decay = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=c.iterations,
                                                           eta_min=c.learning_rate * c.final_lr_fraction)
        with torch.enable_grad():
            for _ in range(c.iterations):
                cost = model.latent_cost(model.rollout_latents(obs_latent_state, actions), goal_latent)
                (grad,) = torch.autograd.grad(cost.sum(), actions)
                opt.zero_grad(set_to_none=True)
                actions.grad = torch.nan_to_num(grad, nan=0.0, posinf=0.0, neginf=0.0)
                opt.step()
                decay.step()
                with torch.no_grad():
                    actions.clamp_(ACTION_LOW, ACTION_HIGH)
        final = actions.detach()
        with torch.no_grad():
            cost = _costs(model, obs_latent_state, goal_latent, final)
        return final[int(torch.argmin(cost))]


# ------------------------------------------------------------------------------------------- MPC


@dataclass(frozen=True)
class MpcConfig:
    """Receding-horizon control with a fixed step budget (navkit's evaluation protocol)."""

    horizon: int = 5
    """Model steps planned each time (5 in the paper)."""
    execute_steps: int = 1
    """Model steps executed from each plan before replanning; more is cheaper, fewer reacts faster."""
    step_budget: int = 25
    """Model steps executed in total: the episode ends when they are spent, whatever the model believes."""
    shrink_horizon: bool = True
    """Near the end, plan only the steps the budget has left, so the cost (scored on the last predicted
    frame) scores where the robot will actually be when the budget runs out, not a frame it never reaches."""

    def __post_init__(self) -> None:
        _check_positive_ints(self, ("horizon", "execute_steps", "step_budget"))
        if self.execute_steps > self.horizon:
            raise ValueError(f"execute_steps: must be <= horizon ({self.horizon}), got {self.execute_steps}")


@dataclass(frozen=True)
class MpcResult:
    """What one budgeted MPC episode did and what planning cost."""

    actions: Tensor
    """(step_budget, action_dim) the model-step actions executed, in order."""
    replans: int
    """Plans made."""
    model_calls: int
    """``rollout_latents`` calls (batched evaluations) over all plans."""
    model_sample_steps: int
    """Sampled model steps (samples x horizon, summed over calls): the number CPU time scales with."""
    plan_seconds: float
    """Wall time spent planning (excludes observing and executing)."""


class Mpc:
    """Plan, execute ``execute_steps`` model steps, shift the rest of the plan in as the next warm start
    (its new tail at the box centre, μ = 0, as a fresh plan would start), replan, until the budget is spent;
    with ``shrink_horizon`` the last plans end exactly when the budget does.

    The world is reached only through the two callables :meth:`run` is given, between plans: ``observe``
    gives the planner's start state (e.g. a :class:`~navkit.planning.dino_wm.LatentHistory` of encoded
    camera frames), ``execute`` applies one model-step action. The planner only ever sees the model.
    """

    def __init__(self, planner: ActionPlanner, config: MpcConfig | None = None) -> None:
        self.planner = planner
        self.config = config or MpcConfig()

    def run(self, model: LatentModel, observe: Callable[[], object], execute: Callable[[Tensor], None],
            goal_latent: Tensor) -> MpcResult:
        c = self.config
        counted = CountingModel(model)
        executed: list[Tensor] = []
        warm: Tensor | None = None
        replans = 0
        plan_seconds = 0.0
        while len(executed) < c.step_budget:
            left = c.step_budget - len(executed)
            horizon = min(c.horizon, left) if c.shrink_horizon else c.horizon
            if warm is not None:
                warm = torch.cat([warm, torch.zeros(max(0, horizon - len(warm)), model.action_dim)])[:horizon]
            state = observe()
            t0 = time.perf_counter()
            plan = self.planner.plan(counted, state, goal_latent, horizon, warm_start=warm).detach()
            plan_seconds += time.perf_counter() - t0
            replans += 1
            if tuple(plan.shape) != (horizon, model.action_dim) or not bool(torch.isfinite(plan).all()):
                raise ValueError(f"planner returned {tuple(plan.shape)} (finite: {bool(torch.isfinite(plan).all())}), "
                                 f"expected finite {(horizon, model.action_dim)}")
            steps = min(c.execute_steps, left)
            for k in range(steps):
                execute(plan[k].clone())
                executed.append(plan[k])
            warm = plan[steps:]  # padded with the box centre (μ = 0) to the next horizon above
        return MpcResult(actions=torch.stack(executed), replans=replans, model_calls=counted.calls,
                         model_sample_steps=counted.sample_steps, plan_seconds=plan_seconds)
