"""The ES trainer: config errors, a short seeded run improves its policy, resume is exact."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from navkit.control.online_cbf_policy import OnlineCbfPolicy
from navkit.learning.online_cbf_training import (
    TrainConfig,
    TrainConfigError,
    fitness,
    load_config,
    policy_config,
    sample_episodes,
    train,
)
from navkit.sim.swarm_scenario import load_swarm_scenario

REPO = Path(__file__).resolve().parents[2]


def _tiny(tmp_path: Path, iterations: int, **changes) -> TrainConfig:
    cfg = TrainConfig(seed=3, run_dir=str(tmp_path / "run"), progress_bar=False,
                      scenarios=["scenarios/multi/circle_swap.yaml"], agents_min=4, agents_max=4,
                      scenes_per_scenario=3, episode_time_s=12.0, decision_every=10, hidden=8,
                      init_candidates=1, iterations=iterations, population=6, sigma=0.1, learning_rate=0.1,
                      eval_every=0, checkpoint_every=0)
    return replace(cfg, **changes)


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("iterations: 3\nlerning_rate: 0.1\n")
    with pytest.raises(TrainConfigError, match="lerning_rate"):
        load_config(bad)
    bad.write_text("population: 5\n")
    with pytest.raises(TrainConfigError, match="population"):
        load_config(bad)
    assert load_config(REPO / "learning" / "configs" / "online_cbf.yaml").population % 2 == 0


def _score(policy_path: Path, cfg: TrainConfig) -> float:
    """Fitness on fixed held-aside episodes (not the ones training drew)."""
    policy = OnlineCbfPolicy.load(policy_path)
    specs = [load_swarm_scenario(REPO / p) for p in cfg.scenarios]
    groups = sample_episodes(specs, replace(cfg, scenes_per_scenario=6), np.random.default_rng(12345))
    return fitness(policy.model, policy_config(cfg), groups, cfg)


def test_short_training_improves_on_its_starting_policy(tmp_path: Path) -> None:
    start = train(_tiny(tmp_path / "a", iterations=0))
    trained = train(_tiny(tmp_path / "b", iterations=6))
    before, after = _score(start, _tiny(tmp_path, 0)), _score(trained, _tiny(tmp_path, 0))
    print(f"fitness before {before:.3f} after {after:.3f}")
    assert after > before + 0.1, (before, after)


def test_resume_reproduces_an_uninterrupted_run(tmp_path: Path) -> None:
    straight = train(_tiny(tmp_path / "straight", iterations=3))
    interrupted = _tiny(tmp_path / "resumed", iterations=1)
    train(interrupted)
    resumed = train(replace(interrupted, iterations=3))  # picks up last.pt at iteration 1
    a = OnlineCbfPolicy.load(straight).model.state_dict()
    b = OnlineCbfPolicy.load(resumed).model.state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
