"""Latent planners (CEM, MPPI, gradient) and budgeted MPC on a toy latent model with KNOWN dynamics, so
"reached the goal" is checked against the truth; and proof that planners touch nothing but the model."""
from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import Tensor

from navkit.planning.dino_wm import DinoWmModel, DinoWmPredictor, LatentHistory, PredictorConfig
from navkit.planning.latent_planners import (ActionPlanner, CemConfig, CemPlanner, CountingModel, GradientPlanner,
                                             GradientPlannerConfig, LatentModel, Mpc, MpcConfig, MppiConfig,
                                             MppiPlanner)

torch.set_num_threads(1)

PATCHES = 4
STEP = 0.1
"""Toy dynamics: z_{t+1} = z_t + 0.1·a, a in [-1, 1]^2, so one model step moves at most 0.1 per axis."""


class ToyModel:
    """Latent = a 2-D position tiled over 4 patches (flattened); dynamics known exactly."""

    action_dim = 2

    def rollout_latents(self, state: object, actions: Tensor) -> Tensor:
        assert isinstance(state, Tensor)
        traj = state + STEP * torch.cumsum(actions, dim=1)  # (N, T, 2)
        return traj.repeat(1, 1, PATCHES)

    def latent_cost(self, predicted: Tensor, goal: Tensor) -> Tensor:
        return (predicted[:, -1] - goal).pow(2).mean(dim=-1)


def latent(pos: tuple[float, float]) -> Tensor:
    return torch.tensor(pos).repeat(PATCHES)


def true_end(start: tuple[float, float], plan: Tensor) -> Tensor:
    """Where the plan really ends (the toy world's dynamics, independent of the planner)."""
    return torch.tensor(start) + STEP * plan.sum(dim=0)


PLANNERS: dict[str, ActionPlanner] = {
    "cem_paper": CemPlanner(CemConfig.paper()),
    "cem_cpu": CemPlanner(CemConfig.cpu()),
    "mppi": MppiPlanner(MppiConfig()),
    "gradient": GradientPlanner(GradientPlannerConfig()),
}
TOLERANCE = {"cem_paper": 0.03, "cem_cpu": 0.03, "mppi": 0.03, "gradient": 0.005}


@pytest.mark.parametrize("name", list(PLANNERS))
def test_each_planner_reaches_a_reachable_goal_on_known_dynamics(name: str) -> None:
    start, goal = (0.0, 0.0), (0.3, -0.2)
    plan = PLANNERS[name].plan(ToyModel(), torch.tensor(start), latent(goal), horizon=5)
    assert plan.shape == (5, 2) and bool(torch.isfinite(plan).all())
    assert plan.abs().max() <= 1.0
    err = float(torch.linalg.norm(true_end(start, plan) - torch.tensor(goal)))
    assert err < TOLERANCE[name], err
    # Not vacuous: doing nothing leaves the robot far from the goal.
    assert float(torch.linalg.norm(true_end(start, torch.zeros(5, 2)) - torch.tensor(goal))) > 0.3


@pytest.mark.parametrize("name", list(PLANNERS))
def test_an_unreachable_goal_saturates_the_box_but_never_leaves_it(name: str) -> None:
    plan = PLANNERS[name].plan(ToyModel(), torch.zeros(2), latent((5.0, -5.0)), horizon=5)
    assert plan.abs().max() <= 1.0
    # Heads for it on both axes, mostly near full speed.
    assert float(plan[:, 0].mean()) > 0.6 and float(plan[:, 1].mean()) < -0.6


def test_warm_start_is_checked_and_a_good_one_survives() -> None:
    model = ToyModel()
    with pytest.raises(ValueError, match="warm_start"):
        CemPlanner().plan(model, torch.zeros(2), latent((0.3, 0.0)), 5, warm_start=torch.zeros(4, 2))
    with pytest.raises(ValueError, match="horizon"):
        CemPlanner().plan(model, torch.zeros(2), latent((0.3, 0.0)), 0)
    # The exact answer as warm start: a one-iteration CEM that also scores its mean keeps it.
    exact = torch.tensor([[0.6, 0.0]] * 5)
    plan = CemPlanner(CemConfig(samples=8, elites=1, iterations=1, include_mean=True)).plan(
        model, torch.zeros(2), latent((0.3, 0.0)), 5, warm_start=exact)
    assert torch.allclose(plan, exact)


def test_counting_model_counts_calls_and_sample_steps() -> None:
    counted = CountingModel(ToyModel())
    CemPlanner(CemConfig(samples=10, elites=2, iterations=3)).plan(counted, torch.zeros(2), latent((0.1, 0.1)), 4)
    assert counted.calls == 3 and counted.sample_steps == 3 * 10 * 4
    assert isinstance(counted, LatentModel) and isinstance(ToyModel(), LatentModel)


def test_mpc_reaches_the_goal_within_a_fixed_step_budget_and_reports_its_cost() -> None:
    """The goal is 8 model steps away at full speed, beyond one 5-step horizon: only replanning gets there."""
    world = {"pos": torch.zeros(2), "steps": 0}
    goal = (0.8, -0.6)

    def execute(action: Tensor) -> None:
        assert action.shape == (2,) and action.abs().max() <= 1.0
        world["pos"] = world["pos"] + STEP * action  # type: ignore[operator]
        world["steps"] += 1  # type: ignore[operator]

    cem = CemConfig.cpu()
    mpc = Mpc(CemPlanner(cem), MpcConfig(horizon=5, execute_steps=2, step_budget=15))
    result = mpc.run(ToyModel(), lambda: world["pos"], execute, latent(goal))
    assert world["steps"] == 15 and result.actions.shape == (15, 2)
    assert float(torch.linalg.norm(world["pos"] - torch.tensor(goal))) < 0.02  # type: ignore[operator]
    # Plans at steps 0, 2, ..., 14; the horizon shrinks to the budget left (5, 5, 5, 5, 5, 5, 3, 1 steps).
    horizons = [min(5, 15 - k) for k in range(0, 15, 2)]
    assert result.replans == len(horizons) == math.ceil(15 / 2)
    assert result.model_calls == len(horizons) * cem.iterations
    assert result.model_sample_steps == sum(horizons) * cem.iterations * (cem.samples + 1)  # +1: the scored mean
    assert result.plan_seconds > 0
    # Negative control: one open-loop plan of the same horizon cannot get there.
    plan = CemPlanner(cem).plan(ToyModel(), torch.zeros(2), latent(goal), 5)
    assert float(torch.linalg.norm(true_end((0.0, 0.0), plan) - torch.tensor(goal))) > 0.3


class SimulatorTouched(AssertionError):
    """Raised by anything a planner must never reach."""


class Tripwire:
    """A simulator stand-in: any attribute access at all raises."""

    def __getattribute__(self, name: str) -> object:
        raise SimulatorTouched(f"planner touched the simulator ({name})")


class SealedState:
    """An opaque start state: only the model may open it (via object.__getattribute__)."""

    def __init__(self, pos: Tensor) -> None:
        object.__setattr__(self, "_pos", pos)
        object.__setattr__(self, "simulator", Tripwire())

    def __getattribute__(self, name: str) -> object:
        raise SimulatorTouched(f"planner looked inside the state ({name})")


class GuardedModel:
    """The toy model behind a proxy that records every attribute used and refuses all but the protocol."""

    ALLOWED = {"action_dim", "rollout_latents", "latent_cost"}

    def __init__(self) -> None:
        self.used: set[str] = set()
        self.calls = 0
        self.simulator = Tripwire()
        self._toy = ToyModel()

    def __getattribute__(self, name: str) -> object:
        if name.startswith("_") or name in {"used", "calls", "ALLOWED"}:
            return object.__getattribute__(self, name)
        if name not in GuardedModel.ALLOWED:
            raise SimulatorTouched(f"planner used model.{name}")
        object.__getattribute__(self, "used").add(name)
        return object.__getattribute__(self, name)

    @property
    def action_dim(self) -> int:
        return 2

    def rollout_latents(self, state: object, actions: Tensor) -> Tensor:
        self.calls += 1
        pos = object.__getattribute__(state, "_pos")
        return self._toy.rollout_latents(pos, actions)

    def latent_cost(self, predicted: Tensor, goal: Tensor) -> Tensor:
        return self._toy.latent_cost(predicted, goal)


@pytest.mark.parametrize("name", list(PLANNERS))
def test_planners_use_only_the_model(name: str) -> None:
    model = GuardedModel()
    plan = PLANNERS[name].plan(model, SealedState(torch.zeros(2)), latent((0.3, -0.2)), horizon=5)
    assert model.used <= GuardedModel.ALLOWED and "rollout_latents" in model.used and model.calls > 0
    assert float(torch.linalg.norm(true_end((0.0, 0.0), plan) - torch.tensor((0.3, -0.2)))) < 0.05


def test_mpc_touches_the_world_only_between_plans() -> None:
    planning = {"now": False}
    world_calls: list[str] = []

    class Watched:
        def __init__(self, inner: ActionPlanner) -> None:
            self.inner = inner

        def plan(self, *args: object, **kwargs: object) -> Tensor:
            planning["now"] = True
            try:
                return self.inner.plan(*args, **kwargs)
            finally:
                planning["now"] = False

    pos = {"p": torch.zeros(2)}

    def observe() -> object:
        if planning["now"]:
            raise SimulatorTouched("observed during planning")
        world_calls.append("observe")
        return SealedState(pos["p"])

    def execute(action: Tensor) -> None:
        if planning["now"]:
            raise SimulatorTouched("executed during planning")
        world_calls.append("execute")
        pos["p"] = pos["p"] + STEP * action

    model = GuardedModel()
    result = Mpc(Watched(CemPlanner(CemConfig.cpu())), MpcConfig(horizon=5, execute_steps=3, step_budget=7)).run(
        model, observe, execute, latent((0.5, 0.2)))
    assert world_calls == ["observe", "execute", "execute", "execute"] * 2 + ["observe", "execute"]
    assert result.replans == 3 and result.model_calls == model.calls
    assert model.used <= GuardedModel.ALLOWED


def test_gradient_planner_leaves_the_predictor_untouched_and_all_planners_run_on_dino_wm() -> None:
    torch.manual_seed(0)
    cfg = PredictorConfig.cpu(num_patches=4, latent_dim=8, frameskip=2, proprio_dim=2, depth=1, heads=2, head_dim=8,
                              mlp_dim=16, action_emb_dim=4, proprio_emb_dim=4)
    pred = DinoWmPredictor(cfg)
    model = DinoWmModel(lambda im: torch.zeros(len(im), cfg.num_patches, cfg.latent_dim), pred)
    assert isinstance(model, LatentModel)
    g = torch.Generator().manual_seed(0)
    state = LatentHistory(torch.randn(2, cfg.frame_dim, generator=g), torch.zeros(1, cfg.step_action_dim))
    goal = torch.randn(cfg.frame_dim, generator=g)
    before = [q.detach().clone() for q in pred.parameters()]
    for planner in (CemPlanner(CemConfig(samples=16, elites=4, iterations=2)),
                    MppiPlanner(MppiConfig(samples=16, iterations=2)),
                    GradientPlanner(GradientPlannerConfig(iterations=5, restarts=2))):
        plan = planner.plan(model, state, goal, horizon=3)
        assert plan.shape == (3, cfg.step_action_dim) and plan.abs().max() <= 1.0
        # Planning improves the model's own cost over doing nothing (or at least does not worsen it).
        with torch.no_grad():
            planned = model.latent_cost(model.rollout_latents(state, plan[None]), goal)
            idle = model.latent_cost(model.rollout_latents(state, torch.zeros(1, 3, cfg.step_action_dim)), goal)
        assert float(planned) <= float(idle) + 1e-6
    assert all(q.grad is None for q in pred.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, pred.parameters()))


@pytest.mark.parametrize("make", [lambda: CemConfig(elites=400), lambda: CemConfig(samples=0),
                                  lambda: MppiConfig(temperature=0.0), lambda: GradientPlannerConfig(restarts=0),
                                  lambda: MpcConfig(horizon=3, execute_steps=4)])
def test_configs_reject_bad_values(make: Callable[[], object]) -> None:
    with pytest.raises(ValueError):
        make()
