"""``navkit run`` on ``kind: world_model`` files against tiny REAL ``navkit wm train`` runs made here: the warehouse
through the full stack in MuJoCo (outputs, metrics, the goal | camera | overhead video, and the robot only ever
receiving the CBF filter's commands), and PointMaze's budgeted MPC episodes (goal | view video)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from navkit.cli.main import main
from navkit.common.sensor_data import VelocityCommand
from navkit.control.cbf_filter import CbfSafetyFilter
from navkit.learning.wm_dataset import collect
from navkit.learning.wm_training import WmTrainConfig, train
from navkit.runner.wm_runner import (CAPTION_PX, GAP_PX, LABEL_PX, TILE_PX, WarehouseGoalWorld, overhead_width,
                                     upscale_nearest)
from navkit.sim.mujoco_backend import MujocoRobot
from navkit.stack.world_model_loader import load_model

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[2]
IMAGE = 32


def tiny_run(base: Path, env: str, history: int) -> Path:
    """3 random trajectories of 12 steps at 32 px, 4 optimiser steps of a 1-layer predictor (seconds)."""
    data = collect(env, 3, 12, base / f"data_{env}", seed=0, progress=False, image_size=IMAGE)
    return train(WmTrainConfig(data=str(data), encoder="tiny", history=history, frameskip=2, depth=1, mlp_dim=64,
                               batch_size=8, steps=4, eval_every=0, val_fraction=0.0, out=str(base / "runs"),
                               run_name=env, progress=False)).run_dir


@pytest.fixture(scope="module")
def warehouse_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_run(tmp_path_factory.mktemp("wm_run_cli"), "warehouse", 2)


def small_params(tmp_path: Path) -> Path:
    """The shipped world-model parameter file with a tiny CEM budget (the test's CPU time, not its meaning)."""
    text = (REPO / "scenarios" / "wm" / "world_model_mpc.params.yaml").read_text()
    for key, value in (("horizon", 2), ("samples", 8), ("elites", 2), ("iterations", 1)):
        lines = [ln for ln in text.splitlines() if ln.strip().startswith(f"{key}:")]
        assert len(lines) == 1, key
        text = text.replace(lines[0], f"      {key}: {value}")
    path = tmp_path / "small.params.yaml"
    path.write_text(text)
    return path


def _gif_frames(path: Path) -> list[np.ndarray]:
    from PIL import Image, ImageSequence

    with Image.open(path) as im:
        assert im.format == "GIF"
        return [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(im)]


def test_warehouse_goal_image_run_through_the_filter(warehouse_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    scenario = tmp_path / "wm_warehouse.yaml"
    scenario.write_text(yaml.safe_dump({
        "name": "tiny_goal_image", "kind": "world_model", "env": "warehouse", "run": str(warehouse_run),
        "episodes": 1, "seed": 0, "goal_ahead_m": [2.0, 3.0], "params": str(small_params(tmp_path)),
        "time_limit_s": 2.0, "success_radius_m": 0.5}))
    # Spy on what the filter returns and on what the robot is told (the goal view is rendered by another robot
    # of the same class, which is never commanded).
    filtered: list[VelocityCommand] = []
    applied: list[VelocityCommand] = []
    real_filter, real_apply = CbfSafetyFilter.filter, MujocoRobot.apply_command

    def spy_filter(self: CbfSafetyFilter, cmd: VelocityCommand, observation: Any, now: float) -> Any:
        result = real_filter(self, cmd, observation, now)
        filtered.append(result.command)
        return result

    def spy_apply(self: MujocoRobot, cmd: VelocityCommand) -> None:
        applied.append(cmd)
        real_apply(self, cmd)

    monkeypatch.setattr(CbfSafetyFilter, "filter", spy_filter)
    monkeypatch.setattr(MujocoRobot, "apply_command", spy_apply)
    out = tmp_path / "out"
    code = main(["run", str(scenario), "--out", str(out), "--no-progress", "--video-fps", "2"])
    assert code in (0, 1)  # a 4-step model need not reach its goal; bad input would be 2
    printed = capsys.readouterr().out
    assert "filter interventions" in printed and "controller replans" in printed

    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["files"]) == {"metrics.json", "trajectory.gif"}
    assert metrics["kind"] == "world_model" and metrics["env"] == "warehouse" and metrics["episodes"] == 1
    for key in ("success", "successes", "success_rate", "success_ci95", "collisions", "time_to_goal_s_mean",
                "filter_interventions", "filter_infeasible", "replans", "median_plan_s", "p90_plan_s", "stops",
                "params", "success_radius_m", "controller"):
        assert key in metrics, key
    (row,) = metrics["per_episode"]
    for key in ("success", "outcome", "collisions", "time_to_goal_s", "final_distance_m", "start_distance_m",
                "filter_interventions", "replans", "median_plan_s", "p90_plan_s", "stops", "sample_steps"):
        assert key in row, key
    assert 2.0 <= row["start_distance_m"] <= 3.0 and row["collisions"] == 0 and metrics["collisions"] == 0
    assert row["replans"] > 0 and row["goal_encodings"] == 1 and metrics["controller"]["run"] == str(warehouse_run)
    assert row["outcome"] in ("success", "time_limit")

    # Every command the robot received was the filter's output, one per control tick, in order.
    assert len(applied) == len(filtered) == row["control_ticks"] > 50
    assert all(a is f for a, f in zip(applied, filtered))

    # The video: goal image | robot camera | overhead, side by side; the goal panel is the goal view throughout.
    world = WarehouseGoalWorld(load_model(warehouse_run), episodes=1, seed=0, goal_ahead_m=(2.0, 3.0))
    frames = _gif_frames(out / "trajectory.gif")
    width = 2 * TILE_PX + overhead_width(world.scenario) + 2 * GAP_PX
    assert len(frames) >= 3 and all(f.shape == (LABEL_PX + TILE_PX + CAPTION_PX, width, 3) for f in frames)
    goal_tile = upscale_nearest(world.goal_views[0], TILE_PX).astype(float)
    for f in frames:
        panel = f[LABEL_PX:LABEL_PX + TILE_PX, :TILE_PX].astype(float)
        assert np.abs(panel - goal_tile).mean() < 12.0  # GIF palettes quantise a little
    views = [f[LABEL_PX:LABEL_PX + TILE_PX, TILE_PX + GAP_PX:2 * TILE_PX + GAP_PX].astype(float) for f in frames]
    assert np.abs(views[0] - goal_tile).mean() > 12.0  # the start's view is not the goal's


def test_pointmaze_episodes_show_the_goal_beside_the_view(tmp_path: Path) -> None:
    run = tiny_run(tmp_path, "pointmaze", 1)
    scenario = tmp_path / "wm_pointmaze.yaml"
    scenario.write_text(yaml.safe_dump({
        "kind": "world_model", "env": "pointmaze", "run": str(run), "episodes": 2, "seed": 3,
        "planning": {"step_budget": 3, "horizon": 2, "samples": 8, "elites": 2, "iterations": 1}}))
    out = tmp_path / "out"
    assert main(["run", str(scenario), "--out", str(out), "--no-progress", "--json"]) in (0, 1)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["env"] == "pointmaze" and metrics["planner"] == "mpc_cem" and metrics["episodes"] == 2
    assert metrics["seed"] == 3 and metrics["env_steps_per_episode"] == 6
    assert [r["pair"] for r in metrics["per_episode"]] == [0, 1]
    assert all(r["replans"] == 3 and isinstance(r["success"], bool) for r in metrics["per_episode"])
    frames = _gif_frames(out / "trajectory.gif")
    # One frame per env step and the start, per episode; two camera-sized panels side by side.
    assert len(frames) == 2 * (6 + 1)
    assert all(f.shape == (LABEL_PX + TILE_PX + CAPTION_PX, 2 * TILE_PX + GAP_PX, 3) for f in frames)
    goal = frames[0][LABEL_PX:LABEL_PX + TILE_PX, :TILE_PX].astype(float)
    assert all(np.abs(f[LABEL_PX:LABEL_PX + TILE_PX, :TILE_PX] - goal).mean() < 12.0 for f in frames[:7])


REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name, env", [("pointmaze", "pointmaze"), ("warehouse_goal_image", "warehouse")])
def test_the_shipped_scenarios_name_shipped_runs_that_load(name: str, env: str) -> None:
    from navkit.runner.wm_scenario import load_world_model_scenario

    sc = load_world_model_scenario(REPO / "scenarios" / "wm" / f"{name}.yaml")
    loaded = load_model(sc.run, sc.checkpoint)
    assert loaded.env == env and sc.env == env
    assert (Path(sc.run) / sc.checkpoint).stat().st_size < 3_000_000  # small enough to live in git


def test_the_shipped_warehouse_scenario_runs_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # One second per episode cannot cover a goal 2-6 m ahead (0.8 m/s at most, success within 0.5 m): exit 1,
    # and every episode still writes its metrics; none collides (the filter is on).
    code = main(["run", str(REPO / "scenarios" / "wm" / "warehouse_goal_image.yaml"), "--out", str(tmp_path),
                 "--time-limit", "1", "--video", "none", "--no-progress"])
    assert code == 1
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert len(metrics["per_episode"]) == metrics["episodes"] == 10 and metrics["collisions"] == 0
    assert metrics["successes"] == 0 and metrics["replans"] > 0
