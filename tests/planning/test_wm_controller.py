"""The DINO-WM MPC local controller (Zhou et al., DINO-WM, arXiv 2411.04983) on a toy world model of KNOWN
dynamics: the image's pixels encode a 2-D position, the latent is that position and each env action moves it,
so "reached the goal image" is checked against the truth. Also: every fail-safe gives exactly zero and counts
its reason, env actions are held one control period each and plans happen only at model-step boundaries, a new
goal image is encoded once, and the config refuses bad values naming the field."""
from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor

from navkit.common.geometry import Pose2D
from navkit.common.observation import ControlTarget, Observation
from navkit.common.sensor_data import CameraImage, Odometry, VelocityCommand
from navkit.planning.dino_wm import LatentHistory
from navkit.planning.wm_controller import (STOP_REASONS, WorldModelMpcConfig, WorldModelMpcController,
                                           odometry_proprio)

torch.set_num_threads(1)

STEP = 0.05
"""Toy dynamics: one env action a in [-1, 1]^2 held one control period moves the position by STEP·a."""
FRAMESKIP = 3
PERIOD = 0.1
V_MAX, OMEGA_MAX = 0.5, 2.0


def image_of(pos: tuple[float, float] | np.ndarray) -> np.ndarray:
    """A 4 x 4 RGB image whose red/green channels encode the position in [-1, 1]^2 (1/127.5 resolution)."""
    img = np.zeros((4, 4, 3), dtype=np.uint8)
    for c in range(2):
        img[:, :, c] = int(round((float(np.clip(pos[c], -1.0, 1.0)) + 1.0) * 127.5))
    return img


class ToyModel:
    """Latent = position (2,); a model step of FRAMESKIP env actions moves it by STEP x their sum."""

    action_dim = FRAMESKIP * 2

    def rollout_latents(self, state: Any, actions: Tensor) -> Tensor:
        assert isinstance(state, LatentHistory)
        step = actions.reshape(actions.shape[0], actions.shape[1], FRAMESKIP, 2).sum(dim=2)
        return state.frames[-1] + STEP * torch.cumsum(step, dim=1)

    def latent_cost(self, predicted: Tensor, goal: Tensor) -> Tensor:
        return (predicted[:, -1] - goal).pow(2).mean(dim=-1)

    def env_actions(self, plan: Tensor) -> np.ndarray:
        return plan.detach().reshape(-1, 2).numpy().astype(np.float64)

    def model_actions(self, env: np.ndarray) -> Tensor:
        return torch.as_tensor(np.asarray(env, dtype=np.float32)).reshape(-1, self.action_dim)


class ToyRun:
    """A :class:`~navkit.planning.wm_controller.WorldModelRun` around :class:`ToyModel`; records every frame call."""

    def __init__(self, history: int = 2) -> None:
        self.model = ToyModel()
        self.history = history
        self.frameskip = FRAMESKIP
        self.control_period_s = PERIOD
        self.v_max = V_MAX
        self.omega_max = OMEGA_MAX
        self.calls: list[tuple[np.ndarray, np.ndarray | None]] = []

    def frame(self, visual: np.ndarray, proprio: np.ndarray | None = None) -> Tensor:
        self.calls.append((visual.copy(), None if proprio is None else np.array(proprio)))
        return torch.tensor(visual[0, 0, :2], dtype=torch.float32) / 127.5 - 1.0


class ScriptedPlanner:
    """Returns a fixed plan (or NaN) and records what it was given."""

    def __init__(self, plan: Tensor) -> None:
        self.fixed = plan
        self.calls: list[tuple[LatentHistory, Tensor | None]] = []

    def plan(self, model: Any, obs_latent_state: object, goal_latent: Tensor, horizon: int,
             warm_start: Tensor | None = None) -> Tensor:
        assert isinstance(obs_latent_state, LatentHistory)
        self.calls.append((obs_latent_state, None if warm_start is None else warm_start.clone()))
        return self.fixed[:horizon].clone()


def config(tmp_path: Path, **overrides: Any) -> WorldModelMpcConfig:
    base = WorldModelMpcConfig(run=str(tmp_path), horizon=4, samples=64, elites=8, iterations=4)
    return replace(base, **overrides)


def observe(t: float, pos: np.ndarray | tuple[float, float], *, image_age: float = 0.0,
            odom: Odometry | None | str = "ok") -> Observation:
    """The robot at ``pos`` at time t: the camera sees it, odometry reads it (x, y, yaw 0)."""
    if odom == "ok":
        odom = Odometry(t, Pose2D(float(pos[0]), float(pos[1]), 0.0), 0.1, 0.0)
    assert not isinstance(odom, str)
    return Observation(stamp=t, odom=odom, cameras={"front": CameraImage(t - image_age, image_of(pos))})


def move(pos: np.ndarray, cmd: VelocityCommand, dt: float) -> np.ndarray:
    """The toy world: a command held for dt moves the position as the model says it does."""
    return pos + STEP * (dt / PERIOD) * np.array([cmd.v / V_MAX, cmd.omega / OMEGA_MAX])


def test_drives_the_toy_state_to_the_goal_image_and_stops_there(tmp_path: Path) -> None:
    run = ToyRun()
    ctrl = WorldModelMpcController(config(tmp_path, arrive_cost=4e-4), run)
    goal = (0.4, -0.3)
    target = ControlTarget(goal_image=image_of(goal))
    pos, dt = np.zeros(2), 0.05
    moved = False
    for i in range(120):
        cmd = ctrl.compute(observe(i * dt, pos), target)
        assert abs(cmd.v) <= V_MAX + 1e-12 and abs(cmd.omega) <= OMEGA_MAX + 1e-12
        moved = moved or cmd.v != 0.0
        pos = move(pos, cmd, dt)
        if ctrl.arrived:
            break
    assert moved and ctrl.arrived, (pos, ctrl.stats)
    assert float(np.linalg.norm(pos - np.array(goal))) < 0.05, pos
    assert sum(ctrl.stats.stops.values()) == 0 and ctrl.stats.goal_encodings == 1
    assert ctrl.stats.replans >= 3 and ctrl.stats.sample_steps > 0 and ctrl.stats.median_plan_s > 0
    # Arrived: zero from now on (no hunting around the goal), and no more plans.
    replans = ctrl.stats.replans
    for k in range(1, 10):
        cmd = ctrl.compute(observe(i * dt + k * dt, pos), target)
        assert (cmd.v, cmd.omega) == (0.0, 0.0)
    assert ctrl.stats.replans == replans
    # The camera frames were encoded with odometry as proprio; the goal image with none.
    assert run.calls[0][1] is None
    assert np.allclose(run.calls[1][1], odometry_proprio(Odometry(0.0, Pose2D(0.0, 0.0, 0.0), 0.1, 0.0)))


def test_actions_are_held_a_control_period_and_plans_only_happen_at_model_step_boundaries(tmp_path: Path) -> None:
    plan = torch.tensor([[0.1, 0.2, 0.3, -0.4, -0.5, 0.6],
                         [0.7, 0.8, 0.9, 1.0, -1.0, 0.0],
                         [0.2, 0.2, 0.2, 0.2, 0.2, 0.2],
                         [0.3, 0.3, 0.3, 0.3, 0.3, 0.3]])
    planner = ScriptedPlanner(plan)
    ctrl = WorldModelMpcController(config(tmp_path), ToyRun(history=2), planner=planner)
    target = ControlTarget(goal_image=image_of((0.5, 0.5)))
    dt = 0.02  # 50 Hz ticks, 10 Hz control periods, a model step every 0.3 s
    env = plan[0].reshape(FRAMESKIP, 2).numpy()
    replans_at = []
    for i in range(46):  # t = 0 .. 0.9
        t = i * dt
        before = ctrl.stats.replans
        cmd = ctrl.compute(observe(t, (0.0, 0.0)), target)
        if ctrl.stats.replans != before:
            replans_at.append(round(t, 6))
        k = int(round((t % 0.3) / dt, 6) // 5)  # control period within the model step
        assert cmd.v == pytest.approx(float(env[k, 0]) * V_MAX) and cmd.omega == pytest.approx(float(env[k, 1]) * OMEGA_MAX)
    assert replans_at == [0.0, 0.3, 0.6, 0.9]
    # Receding horizon: each plan starts from the rest of the previous one, the new tail at the box centre.
    first_state, first_warm = planner.calls[0]
    assert first_warm is None and first_state.frames.shape[0] == 1
    second_state, second_warm = planner.calls[1]
    assert second_warm is not None and torch.equal(second_warm, torch.cat([plan[1:], torch.zeros(1, 6)]))
    # The history holds the frames seen at the boundaries and the model-step action executed between them.
    assert second_state.frames.shape[0] == 2 and torch.equal(second_state.actions[0], plan[0])
    assert planner.calls[3][0].frames.shape[0] == 2  # at most H = 2 frames


def _zero(cmd: VelocityCommand) -> bool:
    return cmd.v == 0.0 and cmd.omega == 0.0


NAN_ODOM = Odometry(0.0, Pose2D(math.nan, 0.0, 0.0), 0.0, 0.0)
FAIL_CASES = {
    "no_goal_image": lambda t, goal: (observe(t, (0, 0)), ControlTarget()),
    "bad_goal_image": lambda t, goal: (observe(t, (0, 0)), ControlTarget(goal_image=goal.astype(np.float32))),
    "no_camera": lambda t, goal: (Observation(stamp=t, odom=observe(t, (0, 0)).odom), ControlTarget(goal_image=goal)),
    "bad_image": lambda t, goal: (Observation(stamp=t, odom=observe(t, (0, 0)).odom, cameras={"front": CameraImage(t, np.zeros((4, 4), np.uint8))}), ControlTarget(goal_image=goal)),
    "stale_image": lambda t, goal: (observe(t, (0, 0), image_age=1.5), ControlTarget(goal_image=goal)),
    "future_image": lambda t, goal: (observe(t, (0, 0), image_age=-0.2), ControlTarget(goal_image=goal)),
    "no_odometry": lambda t, goal: (observe(t, (0, 0), odom=None), ControlTarget(goal_image=goal)),
    "bad_odometry": lambda t, goal: (observe(t, (0, 0), odom=NAN_ODOM), ControlTarget(goal_image=goal)),
    "bad_stamp": lambda t, goal: (observe(math.nan, (0, 0)), ControlTarget(goal_image=goal)),
}


@pytest.mark.parametrize("reason", [*FAIL_CASES, "bad_plan"])
def test_each_fail_safe_gives_exactly_zero_and_counts_its_reason(tmp_path: Path, reason: str) -> None:
    full = torch.ones(4, 6)
    planner = ScriptedPlanner(full)
    ctrl = WorldModelMpcController(config(tmp_path), ToyRun(), planner=planner)
    goal = image_of((0.9, 0.9))
    moving = ctrl.compute(observe(0.0, (0, 0)), ControlTarget(goal_image=goal))
    assert moving.v == pytest.approx(V_MAX) and moving.omega == pytest.approx(OMEGA_MAX)  # driving before the fault
    if reason == "bad_plan":
        planner.fixed = torch.full((4, 6), math.nan)
        obs, target = observe(0.3, (0, 0)), ControlTarget(goal_image=goal)  # the next model step's plan is NaN
    else:
        obs, target = FAIL_CASES[reason](0.1, goal)
    cmd = ctrl.compute(obs, target)
    assert _zero(cmd), cmd
    assert ctrl.stats.stops == {r: int(r == reason) for r in STOP_REASONS}
    # The chain of executed actions is broken: the next good tick plans afresh from a single frame.
    planner.fixed = full
    again = ctrl.compute(observe(0.4, (0, 0)), ControlTarget(goal_image=goal))
    assert again.v == pytest.approx(V_MAX) and planner.calls[-1][0].frames.shape[0] == 1


def test_a_new_goal_image_is_encoded_once_and_replaces_the_plan(tmp_path: Path) -> None:
    run = ToyRun()
    ctrl = WorldModelMpcController(config(tmp_path), run)
    right = image_of((0.8, 0.0))
    cmd = None
    for i in range(4):  # the same array, then equal copies: one encoding
        cmd = ctrl.compute(observe(i * 0.1, (0, 0)), ControlTarget(goal_image=right if i < 2 else right.copy()))
    assert ctrl.stats.goal_encodings == 1 and cmd is not None and cmd.v > 0.2
    replans = ctrl.stats.replans
    cmd = ctrl.compute(observe(0.4, (0, 0)), ControlTarget(goal_image=image_of((-0.8, 0.0))))
    assert ctrl.stats.goal_encodings == 2 and cmd.v < -0.2  # turned round at once, not after the model step
    assert ctrl.stats.replans == replans + 1
    ctrl.reset()
    ctrl.compute(observe(0.5, (0, 0)), ControlTarget(goal_image=image_of((-0.8, 0.0))))
    assert ctrl.stats.goal_encodings == 3  # reset forgets the goal


def test_reset_clears_history_warm_start_goal_and_arrival(tmp_path: Path) -> None:
    planner = ScriptedPlanner(torch.zeros(4, 6))
    ctrl = WorldModelMpcController(config(tmp_path, arrive_cost=1e-3), ToyRun(), planner=planner)
    target = ControlTarget(goal_image=image_of((0.0, 0.0)))
    ctrl.compute(observe(0.0, (0.0, 0.0)), target)
    assert ctrl.arrived and not planner.calls  # already there: no plan at all
    ctrl.reset()
    assert not ctrl.arrived
    ctrl.compute(observe(1.0, (0.5, 0.0)), target)
    assert not ctrl.arrived and planner.calls[-1][1] is None and planner.calls[-1][0].frames.shape[0] == 1


def test_time_going_back_restarts_the_model_step_clock(tmp_path: Path) -> None:
    planner = ScriptedPlanner(torch.full((4, 6), 0.5))
    ctrl = WorldModelMpcController(config(tmp_path), ToyRun(), planner=planner)
    target = ControlTarget(goal_image=image_of((0.9, 0.0)))
    ctrl.compute(observe(5.0, (0, 0)), target)
    ctrl.compute(observe(0.0, (0, 0)), target)  # a simulator reset: the clock went back
    assert ctrl.stats.replans == 2 and planner.calls[-1][0].frames.shape[0] == 1


@pytest.mark.parametrize("field_name, value", [
    ("planner", "rrt"), ("horizon", 0), ("horizon", True), ("samples", 0), ("elites", 100), ("iterations", 0),
    ("seed", -1), ("proprio_weight", -1.0), ("arrive_cost", math.nan), ("max_image_age_s", 0.0), ("camera", ""),
    ("checkpoint", ""), ("run", "/no/such/run/folder"), ("run", 3)])
def test_config_refuses_bad_values_naming_the_field(tmp_path: Path, field_name: str, value: Any) -> None:
    with pytest.raises(ValueError, match=f"^{field_name}: "):
        config(tmp_path, **{field_name: value})


def test_defaults_work_and_every_config_field_documents_why() -> None:
    import ast
    import inspect

    from navkit.planning import wm_controller

    assert WorldModelMpcConfig().run == ""  # a plugin's config has working defaults (the run is checked at build)
    tree = ast.parse(inspect.getsource(wm_controller.WorldModelMpcConfig))
    body = tree.body[0].body  # type: ignore[attr-defined]
    documented = {node.target.id for node, doc in zip(body, body[1:])
                  if isinstance(node, ast.AnnAssign) and isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant)}
    from dataclasses import fields

    assert {f.name for f in fields(WorldModelMpcConfig)} <= documented


def test_the_history_records_what_the_filter_let_through_not_the_plan(tmp_path: Path) -> None:
    """A filter that braked or steered must not leave the model believing its own plan was executed: the
    action appended to the latent history is built from the commands observe_command reported."""
    plan = torch.full((4, FRAMESKIP * 2), 0.5)
    planner = ScriptedPlanner(plan)
    ctrl = WorldModelMpcController(config(tmp_path), ToyRun(), planner=planner)
    target = ControlTarget(goal_image=image_of((0.9, 0.9)))
    filtered = [VelocityCommand(0.0, 0.0, 0.0), VelocityCommand(0.1, 0.25 * V_MAX, -OMEGA_MAX)]
    for k in range(FRAMESKIP):
        t = k * PERIOD
        cmd = ctrl.compute(observe(t, (0.0, 0.0)), target)
        assert (cmd.v, cmd.omega) == (0.5 * V_MAX, 0.5 * OMEGA_MAX)  # the plan's wish
        if k < len(filtered):
            ctrl.observe_command(filtered[k])
    ctrl.compute(observe(FRAMESKIP * PERIOD, (0.0, 0.0)), target)  # next model step: replan with the history
    history = planner.calls[-1][0]
    executed = history.actions[-1].reshape(FRAMESKIP, 2)
    expected = np.array([[0.0, 0.0], [0.25, -1.0]] + [[0.5, 0.5]] * (FRAMESKIP - 2))  # unreported: the plan's
    np.testing.assert_allclose(executed.numpy(), expected, atol=1e-6)


class NanRun(ToyRun):
    """A run whose camera frames turn non-finite on demand (e.g. absurd odometry through the proprio stats)."""

    def __init__(self) -> None:
        super().__init__()
        self.broken = False
        self.fail_goal = False

    def frame(self, visual: np.ndarray, proprio: np.ndarray | None = None) -> Tensor:
        if proprio is None and self.fail_goal:
            raise RuntimeError("encoder failed")
        out = super().frame(visual, proprio)
        return out * math.nan if self.broken and proprio is not None else out


def test_a_non_finite_frame_stops_instead_of_planning_on_nan(tmp_path: Path) -> None:
    # On NaN latents every CEM cost is NaN, yet CEM still returns a finite (arbitrary) plan: it must not drive.
    run = NanRun()
    ctrl = WorldModelMpcController(config(tmp_path), run)
    goal = ControlTarget(goal_image=image_of((0.9, 0.9)))
    assert not _zero(ctrl.compute(observe(0.0, (0, 0)), goal))
    run.broken = True
    cmd = ctrl.compute(observe(0.3, (0, 0)), goal)  # the next model step
    assert _zero(cmd) and ctrl.stats.stops["bad_frame"] == 1


def test_a_goal_that_fails_to_encode_leaves_nothing_of_the_old_goal(tmp_path: Path) -> None:
    run = NanRun()
    ctrl = WorldModelMpcController(config(tmp_path), run)
    ctrl.compute(observe(0.0, (0, 0)), ControlTarget(goal_image=image_of((0.9, 0.0))))
    run.fail_goal = True
    with pytest.raises(RuntimeError):
        ctrl.compute(observe(0.05, (0, 0)), ControlTarget(goal_image=image_of((-0.9, 0.0))))
    run.fail_goal = False
    # A caller that carries on: the failed goal is encoded again and the robot heads for it, not the old one.
    cmd = ctrl.compute(observe(0.1, (0, 0)), ControlTarget(goal_image=image_of((-0.9, 0.0))))
    assert cmd.v < 0.0, cmd


def test_small_clock_skew_is_tolerated_but_a_future_image_is_not(tmp_path: Path) -> None:
    ctrl = WorldModelMpcController(config(tmp_path), ToyRun())
    goal = ControlTarget(goal_image=image_of((0.9, 0.9)))
    assert not _zero(ctrl.compute(observe(0.0, (0, 0), image_age=-0.02), goal))  # a 20 ms sim-clock step ahead
    assert _zero(ctrl.compute(observe(0.1, (0, 0), image_age=-0.2), goal))
    assert ctrl.stats.stops["future_image"] == 1
