"""The ``world_model_mpc`` local controller plugin (DINO-WM MPC, Zhou et al., arXiv 2411.04983) on a tiny REAL
``navkit wm train`` run of the warehouse env: chosen by the parameter file alone, driving in the run's units
in closed loop with the env, one-line errors naming the parameter for a bad run, the loader exposing the run's
env units, and, in the navigation stack, a goal image reaching the controller while its command never
bypasses the CBF safety filter."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from navkit.common.errors import ParameterError
from navkit.common.geometry import Pose2D
from navkit.common.interfaces import FilterStatus
from navkit.common.observation import ControlTarget, Observation
from navkit.common.sensor_data import CameraImage, LaserScan, Odometry, VelocityCommand
from navkit.learning.wm_dataset import collect
from navkit.learning.wm_training import WmTrainConfig, train
from navkit.planning.wm_controller import STOP_REASONS, WorldModelMpcController
from navkit.sim.scenario import load_scenario
from navkit.sim.wm_envs import make_wm_env
from navkit.stack.config import DEFAULT_PARAMS_FILE, load_stack_config
from navkit.stack.navigation_stack import NavigationStack
from navkit.stack.plugin_catalog import default_registry
from navkit.stack.world_model_loader import WorldModelLoadError, load_model

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[2]
IMAGE = 32
PURE_PURSUIT = "      plugin: pure_pursuit\n      lookahead_m: 0.6\n      v_max: 0.7\n      omega_max: 1.5\n"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny warehouse run: 3 trajectories of 12 steps at 32 px, 4 optimiser steps (seconds on one core)."""
    base = tmp_path_factory.mktemp("wm_plugin")
    data = collect("warehouse", 3, 12, base / "data", seed=0, progress=False, image_size=IMAGE)
    result = train(WmTrainConfig(data=str(data), encoder="tiny", history=2, frameskip=2, depth=1, mlp_dim=64,
                                 batch_size=8, steps=4, eval_every=0, val_fraction=0.0, out=str(base / "runs"),
                                 run_name="run", progress=False))
    return result.run_dir


def params_file(tmp_path: Path, run: str | Path, **extra: Any) -> Path:
    """The shipped parameter file with only the local controller swapped: selecting it is a parameter change."""
    text = DEFAULT_PARAMS_FILE.read_text()
    assert PURE_PURSUIT in text, "the shipped parameter file changed its local_controller block"
    settings = {"run": str(run), "horizon": 2, "samples": 8, "elites": 2, "iterations": 1, **extra}
    block = "      plugin: world_model_mpc\n" + "".join(f"      {k}: {v}\n" for k, v in settings.items())
    path = tmp_path / "params.yaml"
    path.write_text(text.replace(PURE_PURSUIT, block).replace("localize: true", "localize: false"))
    return path


def odometry_of(proprio: np.ndarray, t: float) -> Odometry:
    """The warehouse env's proprio (x, y, cos yaw, sin yaw, v, ω) as the odometry message it came from."""
    x, y, c, s, v, w = (float(p) for p in proprio)
    return Odometry(t, Pose2D(x, y, math.atan2(s, c)), v, w)


def test_the_plugin_is_chosen_by_the_parameter_file_and_drives_in_the_runs_units(run_dir: Path,
                                                                                  tmp_path: Path) -> None:
    config = load_stack_config(params_file(tmp_path, run_dir))
    assert config.local_controller.name == "world_model_mpc" and config.local_controller.config.samples == 8
    ctrl = default_registry().build(config.local_controller)
    assert isinstance(ctrl, WorldModelMpcController)
    env_config = torch.load(run_dir / "best.pt", weights_only=True)["env_config"]
    assert (ctrl.v_max, ctrl.omega_max, ctrl.control_period_s) == (env_config["v_max"], env_config["omega_max"],
                                                                    env_config["control_period_s"])
    assert ctrl.frameskip == 2 and ctrl.history_len == 2
    env = make_wm_env("warehouse", IMAGE)
    try:
        goal = env.reset(7).visual  # the camera view from somewhere else in the warehouse
        obs = env.reset(3)
        target = ControlTarget(goal_image=goal)
        dt, moved = 0.05, False
        for i in range(24):  # 1.2 s: two ticks per control period, six model steps, closed loop with the env
            t = i * dt
            cmd = ctrl.compute(Observation(stamp=t, odom=odometry_of(obs.proprio, t),
                                           cameras={"front": CameraImage(t, obs.visual)}), target)
            assert cmd.is_finite() and abs(cmd.v) <= ctrl.v_max + 1e-9 and abs(cmd.omega) <= ctrl.omega_max + 1e-9
            moved = moved or (cmd.v, cmd.omega) != (0.0, 0.0)
            if i % 2 == 1:
                obs = env.step(np.array([cmd.v / ctrl.v_max, cmd.omega / ctrl.omega_max]))
    finally:
        env.close()
    assert moved and ctrl.stats.replans == 6 and ctrl.stats.goal_encodings == 1
    assert sum(ctrl.stats.stops.values()) == 0 and math.isfinite(ctrl.stats.last_cost)
    # A camera of another size than the run's frames is resized to them, not refused.
    big = np.random.default_rng(0).integers(0, 256, (72, 96, 3), dtype=np.uint8)
    cmd = ctrl.compute(Observation(stamp=2.0, odom=odometry_of(obs.proprio, 2.0),
                                   cameras={"front": CameraImage(2.0, big)}), ControlTarget(goal_image=big))
    assert cmd.is_finite() and ctrl.stats.goal_encodings == 2


def test_the_loader_exposes_the_runs_env_units(run_dir: Path) -> None:
    loaded = load_model(run_dir, proprio_weight=0.0)
    assert loaded.env == "warehouse" and (loaded.v_max, loaded.omega_max, loaded.control_period_s) == (0.8, 1.5, 0.1)
    assert (loaded.frameskip, loaded.history, loaded.image_size) == (2, 2, (IMAGE, IMAGE))
    small = np.zeros((IMAGE, IMAGE, 3), np.uint8)
    assert loaded.frame(small, np.zeros(6)).shape == loaded.frame(np.zeros((48, 64, 3), np.uint8)).shape
    # navkit wm eval still loads through its own name and error type.
    from navkit.learning.wm_eval import WmEvalError
    from navkit.learning.wm_eval import load_model as eval_load

    assert eval_load(run_dir).history == 2
    with pytest.raises(WmEvalError, match="no such run folder"):
        eval_load(run_dir.parent / "nope")


def _one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    text = str(exc.value)
    assert "\n" not in text, text
    return text


def test_a_bad_run_is_one_line_naming_the_parameter(run_dir: Path, tmp_path: Path) -> None:
    missing = tmp_path / "no_such_run"
    with pytest.raises(ParameterError) as exc:
        load_stack_config(params_file(tmp_path, missing))
    text = _one_line(exc)
    assert "params.yaml" in text and "local_controller" in text and "run: no such run folder" in text
    registry = default_registry()

    def build(run: Path | str) -> Any:
        return registry.build(load_stack_config(params_file(tmp_path, run), registry=registry).local_controller)

    with pytest.raises(ParameterError) as exc:
        build('""')  # YAML's empty string, the default: no run named
    assert "local_controller.run: empty" in _one_line(exc)
    empty = tmp_path / "empty_run"
    empty.mkdir()
    with pytest.raises(WorldModelLoadError) as exc:
        build(empty)
    assert "local_controller.checkpoint: missing" in _one_line(exc)
    (empty / "best.pt").write_text("not a checkpoint")
    with pytest.raises(WorldModelLoadError) as exc:
        build(empty)
    assert "best.pt: local_controller.checkpoint: not a navkit wm train checkpoint" in _one_line(exc)
    ck = torch.load(run_dir / "best.pt", weights_only=True)
    del ck["env_config"]["v_max"]  # e.g. a Wall run: no velocity commands to scale
    foreign = tmp_path / "foreign_run"
    foreign.mkdir()
    torch.save(ck, foreign / "best.pt")
    with pytest.raises(WorldModelLoadError) as exc:
        build(foreign)
    # A field inside the checkpoint is named as it is there, not as a parameter that does not exist.
    assert "best.pt: env_config.v_max: expected a number > 0" in _one_line(exc)


class FullAhead:
    """A planner that always asks for full speed straight ahead (the scripted worst case for the filter)."""

    def plan(self, model: Any, obs_latent_state: object, goal_latent: torch.Tensor, horizon: int,
             warm_start: torch.Tensor | None = None) -> torch.Tensor:
        plan = torch.zeros(horizon, model.action_dim)
        plan[:, 0::2] = 1.0
        return plan


def _scan(t: float, ahead_m: float | None) -> LaserScan:
    """A 360° scan: nothing anywhere, except (if given) a wall ``ahead_m`` in front across ±20°."""
    angles = -math.pi + np.arange(180) * (2 * math.pi / 180)
    ranges = np.full(180, np.inf)
    if ahead_m is not None:
        ranges[np.abs(angles) <= math.radians(20)] = ahead_m
    return LaserScan(t, -math.pi, 2 * math.pi / 180, 0.12, 8.0, ranges)


def test_in_the_stack_the_goal_image_arrives_and_the_command_never_bypasses_the_filter(run_dir: Path,
                                                                                        tmp_path: Path) -> None:
    scenario = load_scenario(REPO / "scenarios" / "short_aisle.yaml")
    stack = NavigationStack(load_stack_config(params_file(tmp_path, run_dir)), goals=scenario.goals,
                            goal_tolerance_m=scenario.goal_tolerance_m, scenario=scenario)
    ctrl = stack.controller
    assert isinstance(ctrl, WorldModelMpcController)
    ctrl.planner = FullAhead()
    seen: list[tuple[VelocityCommand, ControlTarget]] = []
    compute = ctrl.compute

    def spy(observation: Observation, target: ControlTarget) -> VelocityCommand:
        cmd = compute(observation, target)
        seen.append((cmd, target))
        return cmd

    ctrl.compute = spy  # type: ignore[method-assign]
    told: list[VelocityCommand] = []
    observe_command = ctrl.observe_command

    def told_spy(command: VelocityCommand) -> None:
        told.append(command)
        observe_command(command)

    ctrl.observe_command = told_spy  # type: ignore[method-assign]
    rng = np.random.default_rng(1)
    goal = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    stack.set_goal_image(goal)
    goal[:] = 0  # the stack keeps its own copy: the caller's buffer is not the goal
    with pytest.raises(ValueError, match="goal_image"):
        stack.set_goal_image(goal.astype(np.float32))

    def tick(t: float, ahead_m: float | None) -> tuple[Any, Observation]:
        obs = Observation(stamp=t, odom=Odometry(t, Pose2D(1.0, 1.0, 0.0), 0.0, 0.0), scan=_scan(t, ahead_m),
                          cameras={"front": CameraImage(t, rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))})
        return stack.tick(obs), obs

    # Clear ahead: the filter passes the world model's full-speed command (so the next check is not vacuous).
    result, _ = tick(0.0, None)
    raw, target = seen[-1]
    assert raw.v == pytest.approx(ctrl.v_max) and result.status is FilterStatus.PASS
    assert result.command.v == pytest.approx(raw.v)
    assert target.goal_image is not None and not np.array_equal(target.goal_image, goal)
    assert np.array_equal(target.path, ControlTarget.along(stack.planning.path_in_odom()).path)
    # An obstacle close ahead: every tick, the robot gets the filter's braked command, never the raw one.
    for i in range(1, 11):
        t = 0.02 * i
        result, obs = tick(t, 0.7)
        raw, _ = seen[-1]
        assert raw.v == pytest.approx(ctrl.v_max)  # the world model still wants full speed at the obstacle
        assert result.status is FilterStatus.MODIFIED and result.command.v < 0.2 * raw.v, result
        expected = stack.filter.filter(raw, obs, t).command
        assert (result.command.v, result.command.omega) == pytest.approx((expected.v, expected.omega))
        assert told[-1] is result.command  # the controller hears what was sent, for its action history
    # Already inside the margin: the filter stops or backs away, whatever the controller says.
    result, _ = tick(0.24, 0.4)
    assert seen[-1][0].v == pytest.approx(ctrl.v_max) and result.command.v <= 0.0, result
    # No goal image: the controller itself stops (and says why), and the filter passes the zero.
    stack.set_goal_image(None)
    result, _ = tick(0.26, None)
    assert (seen[-1][0].v, result.command.v) == (0.0, 0.0) and ctrl.stats.stops["no_goal_image"] == 1
    assert set(ctrl.stats.stops) == set(STOP_REASONS)


@pytest.mark.parametrize("edit, field", [
    (lambda ck: ck.__setitem__("proprio_std", [0.0] * len(ck["proprio_std"])), "proprio_std"),
    (lambda ck: ck.__setitem__("proprio_mean", [0.0] * 3), "proprio_mean"),
    (lambda ck: ck.__setitem__("action_high", list(ck["action_low"])), "action_high"),
    (lambda ck: ck.__setitem__("action_low", [-1.0] * 3), "action_low"),
    (lambda ck: ck["train_config"].__setitem__("feature", "foo"), "train_config.feature"),
    (lambda ck: ck["train_config"].__setitem__("feature", "cls"), "train_config"),
    (lambda ck: ck["train_config"].__setitem__("encoder", "vit_zz"), "train_config.encoder"),
])
def test_a_checkpoint_that_would_fail_on_the_robot_fails_at_load_naming_the_field(run_dir: Path, tmp_path: Path,
                                                                                  edit: Any, field: str) -> None:
    """Checked at load, not on the first command mid-drive (a traceback in-process, a dead node over ROS 2)."""
    ck = torch.load(run_dir / "best.pt", weights_only=True)
    edit(ck)
    bad = tmp_path / "bad"
    bad.mkdir()
    torch.save(ck, bad / "best.pt")
    with pytest.raises(WorldModelLoadError) as err:
        load_model(bad)
    assert err.value.field == field, str(err.value)


def test_a_camera_of_another_aspect_ratio_is_centre_cropped_not_squashed(run_dir: Path) -> None:
    loaded = load_model(run_dir)
    h, w = loaded.image_size
    square = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    wide = np.zeros((h, w * 2, 3), np.uint8)  # the same view with dark margins left and right
    wide[:, w // 2:w // 2 + w] = square
    torch.testing.assert_close(loaded.frame(wide), loaded.frame(square))
