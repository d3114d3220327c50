"""``navkit wm train`` / ``navkit wm eval`` (DINO-WM, Zhou et al., ICML 2025, arXiv 2411.04983) at toy size:
collect -> train -> plan end to end with a falling loss, bit-exact resume, a feature cache that is reused for
the same encoder weights and rebuilt for others, evaluation fields, and one-line exit-2 errors."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from navkit.learning.wm_dataset import collect
from navkit.learning.wm_eval import WmEvalConfig, evaluate, sample_pairs, wilson_interval
from navkit.learning.wm_eval import main as eval_main
from navkit.learning.wm_training import WmTrainConfig, train
from navkit.learning.wm_training import main as train_main
from navkit.perception.image_encoder import DinoEncoder
from navkit.perception.vit import PRESETS, DinoVisionTransformer
from navkit.sim.wm_envs import make_wm_env

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def wall_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return collect("wall", 10, 20, tmp_path_factory.mktemp("wmdata") / "wall", seed=0, progress=False, image_size=32)


def _cfg(data: Path, out: Path, **overrides: Any) -> WmTrainConfig:
    base = WmTrainConfig(data=str(data), encoder="tiny", history=1, frameskip=2, depth=1, mlp_dim=64, batch_size=16,
                         lr=2e-3, steps=40, eval_every=10, val_fraction=0.2, out=str(out), run_name="run",
                         progress=False)
    return replace(base, **overrides)


@pytest.fixture(scope="module")
def trained(wall_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return train(_cfg(wall_data, tmp_path_factory.mktemp("wmruns")))


def test_end_to_end_loss_falls_and_artifacts_exist(trained: Any) -> None:
    first, last = trained.train_loss[0][1], trained.train_loss[-1][1]
    assert trained.steps == 40 and last < first, trained.train_loss
    assert len(trained.val_loss) == 4 and np.isfinite(trained.best_val)
    for name in ("best.pt", "last.pt", "val_loss.png"):
        assert (trained.run_dir / name).is_file(), name
    assert list(trained.run_dir.glob("events.out.tfevents.*")), "no TensorBoard log"
    best = torch.load(trained.best_path, map_location="cpu", weights_only=False)
    assert best["env"] == "wall" and best["train_config"]["encoder"] == "tiny"
    assert best["predictor_config"]["num_patches"] == 16 and best["predictor_config"]["latent_dim"] == 96


def test_resume_is_exact(wall_data: Path, tmp_path: Path) -> None:
    whole = train(_cfg(wall_data, tmp_path / "a", steps=20))
    train(_cfg(wall_data, tmp_path / "b", steps=10))
    resumed = train(_cfg(wall_data, tmp_path / "b", steps=20))
    assert resumed.steps == 20
    sa = torch.load(whole.last_path, map_location="cpu", weights_only=False)
    sb = torch.load(resumed.last_path, map_location="cpu", weights_only=False)
    for name, value in sa["predictor"].items():
        assert torch.allclose(value, sb["predictor"][name], atol=1e-6, rtol=0), name
    assert [v for _, v in sa["val_hist"]] == pytest.approx([v for _, v in sb["val_hist"]], abs=1e-6)


def test_feature_cache_reused_and_invalidated(wall_data: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}
    original = DinoEncoder.features

    def counting(self: DinoEncoder, images: np.ndarray) -> Any:
        calls["n"] += len(images)
        return original(self, images)

    monkeypatch.setattr(DinoEncoder, "features", counting)
    first = train(_cfg(wall_data, tmp_path, steps=2, run_name="one"))
    assert first.cache_built and calls["n"] >= 10 * 21
    calls["n"] = 0
    again = train(_cfg(wall_data, tmp_path, steps=2, run_name="two"))
    assert not again.cache_built and calls["n"] == 0 and again.cache == first.cache
    reseeded = train(_cfg(wall_data, tmp_path, steps=2, run_name="three", encoder_seed=1))
    assert reseeded.cache_built and reseeded.cache != first.cache
    weights = tmp_path / "tiny.pth"
    torch.save(DinoVisionTransformer(PRESETS["tiny"], seed=7).state_dict(), weights)
    loaded = train(_cfg(wall_data, tmp_path, steps=2, run_name="four", weights=str(weights)))
    assert loaded.cache_built and loaded.cache not in (first.cache, reseeded.cache)
    calls["n"] = 0
    with torch.no_grad():  # the same file with other numbers in it: a new key, never the stale features
        state = torch.load(weights)
        state["patch_embed.proj.weight"] += 0.01
        torch.save(state, weights)
    changed = train(_cfg(wall_data, tmp_path, steps=2, run_name="five", weights=str(weights)))
    assert changed.cache_built and changed.cache != loaded.cache and calls["n"] >= 10 * 21


def test_eval_runs_every_planner(trained: Any) -> None:
    cfg = WmEvalConfig(run=str(trained.run_dir), env="wall", pairs=2, planners=("mpc_cem", "mppi", "open_cem", "gd"),
                       step_budget=2, horizon=2, cem_samples=8, cem_elites=2, cem_iterations=1, gd_iterations=2)
    summaries, rows = evaluate(cfg)
    assert [s.planner for s in summaries] == list(cfg.planners) and len(rows) == 8
    for s in summaries:
        assert s.episodes == 2 and 0.0 <= s.success_rate <= 1.0 and s.ci95[0] <= s.success_rate <= s.ci95[1]
        assert np.isfinite(s.mean_final_distance) and s.median_plan_seconds > 0 and s.env_steps == 4
    mpc = [r for r in rows if r.planner == "mpc_cem"]
    assert all(r.replans == 2 for r in mpc)  # replans after every model step
    assert all(r.replans == 1 for r in rows if r.planner in ("open_cem", "gd"))  # open loop: one plan


def test_pairs_cross_the_wall_and_wilson() -> None:
    env = make_wm_env("wall", 32)
    for start, goal in sample_pairs(env, 5, seed=0):
        assert (start[0] < 0.5) != (goal[0] < 0.5) and start[2] == goal[2]
    assert wilson_interval(0, 10)[0] == pytest.approx(0.0) and wilson_interval(10, 10)[1] == pytest.approx(1.0)
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.490, abs=2e-3) and hi == pytest.approx(0.943, abs=2e-3)


def _one_line_exit_2(capsys: pytest.CaptureFixture[str], code: int) -> str:
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    return err


def test_bad_input_is_one_line_exit_2(wall_data: Path, trained: Any, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = ["--out", str(tmp_path), "--quiet"]
    assert "no such dataset" in _one_line_exit_2(capsys, train_main(["--data", str(tmp_path / "nope"), *out]))
    assert "pointmaze" in _one_line_exit_2(capsys, train_main(["--data", str(wall_data), "--env", "pointmaze", *out]))
    assert "--steps" in _one_line_exit_2(capsys, train_main(["--data", str(wall_data), "--steps", "0", *out]))
    assert "frameskip" in _one_line_exit_2(capsys, train_main(["--data", str(wall_data), "--frameskip", "15",
                                                               *out]))
    run = ["--run", str(trained.run_dir), "--pairs", "1", "--quiet"]
    assert "not 'pointmaze'" in _one_line_exit_2(capsys, eval_main([*run, "--env", "pointmaze"]))
    assert "no such run" in _one_line_exit_2(capsys, eval_main(["--run", str(tmp_path / "x"), "--env", "wall"]))
