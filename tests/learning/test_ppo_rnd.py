"""PPO + RND pieces: novelty falls where the predictor trained, advantages by hand, dormant ratio, smoke and resume."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from navkit.learning.ppo_rnd import (ActorCritic, PpoRnd, PpoRndConfig, RndNetworks, combined_advantages,
                                     dormant_ratio, gae)


def test_intrinsic_reward_falls_on_trained_states_and_stays_high_on_new_ones() -> None:
    torch.manual_seed(0)
    rnd = RndNetworks(8, 64, 32)
    opt = torch.optim.Adam(rnd.predictor.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    seen = torch.as_tensor(rng.normal(0, 1, (256, 8)) * [1, 1, 1, 1, 0, 0, 0, 0], dtype=torch.float32)
    novel = torch.as_tensor(rng.normal(0, 1, (256, 8)) * [0, 0, 0, 0, 1, 1, 1, 1] + 2.0, dtype=torch.float32)
    with torch.no_grad():
        before_seen, before_novel = float(rnd.error(seen).mean()), float(rnd.error(novel).mean())
    for _ in range(400):
        opt.zero_grad()
        rnd.error(seen).mean().backward()
        opt.step()
    with torch.no_grad():
        after_seen, after_novel = float(rnd.error(seen).mean()), float(rnd.error(novel).mean())
    assert after_seen < 0.1 * before_seen
    assert after_novel > 5 * after_seen and after_novel > 0.3 * before_novel
    assert all(not p.requires_grad for p in rnd.target.parameters())


def test_two_stream_advantages_match_a_hand_computed_example() -> None:
    # One env, three steps; the episode ends after step 1 (index 1).
    rew = np.array([[0.0], [1.0], [0.0]])
    rew_int = np.array([[0.5], [0.2], [0.1]])
    v = np.array([[0.1], [0.2], [0.3]])
    vi = np.array([[0.4], [0.3], [0.2]])
    done = np.array([[0.0], [1.0], [0.0]])
    last, last_i = np.array([0.5]), np.array([0.6])
    g, gi, lam = 0.9, 0.8, 0.5
    adv, ret = gae(rew, v, last, done, g, lam)
    # Extrinsic (episodic): δ2 = 0 + .9*.5 - .3 = .15; δ1 = 1 - .2 = .8 (cut); δ0 = 0 + .9*.2 - .1 = .08.
    np.testing.assert_allclose(adv[:, 0], [0.08 + 0.9 * 0.5 * 0.8, 0.8, 0.15])
    np.testing.assert_allclose(ret, adv + v)
    adv_i, _ = gae(rew_int, vi, last_i, done, gi, lam, episodic=False)
    d2 = 0.1 + 0.8 * 0.6 - 0.2
    d1 = 0.2 + 0.8 * 0.2 - 0.3
    d0 = 0.5 + 0.8 * 0.3 - 0.4
    a2 = d2
    a1 = d1 + 0.8 * 0.5 * a2  # not cut: novelty does not end with the episode
    np.testing.assert_allclose(adv_i[:, 0], [d0 + 0.8 * 0.5 * a1, a1, a2])
    np.testing.assert_allclose(combined_advantages(adv, adv_i, 2.0, 1.0), 2 * adv + adv_i)


def test_dormant_ratio_counts_dead_units() -> None:
    net = ActorCritic(4, 2, hidden=8)
    obs = torch.randn(64, 4)
    assert dormant_ratio(net.actor, obs) == pytest.approx(0.0, abs=0.13)
    with torch.no_grad():
        net.actor[0].weight[:4] = 0.0  # 4 of 8 first-layer units output tanh(0) = 0
        net.actor[0].bias[:4] = 0.0
    assert dormant_ratio(net.actor, obs) >= 4 / 16


def test_compact_ppo_with_rnd_trains_a_few_rollouts_with_finite_losses() -> None:
    from navkit.learning.envs.warehouse_explore_env import WarehouseExploreVecEnv

    env = WarehouseExploreVecEnv(4, 0)
    learner = PpoRnd(29, 2, 4, PpoRndConfig(n_steps=64, n_epochs=2, minibatches=2, obs_norm_steps=8), seed=0)
    before = {k: v.clone() for k, v in learner.policy.state_dict().items()}
    for _ in range(3):
        stats = learner.update(learner.collect(env))
    assert learner.num_timesteps == 3 * 64 * 4
    assert all(np.isfinite(v) for v in stats.values()) and stats["rnd"] > 0 and "intrinsic_reward_mean" in stats
    assert any(not torch.equal(before[k], v) for k, v in learner.policy.state_dict().items())


@pytest.mark.parametrize("algo", ["ppo", "ppo_rnd"])
def test_training_resumes_exactly(tmp_path: Path, algo: str) -> None:
    from navkit.learning.rnd_agv_training import RndAgvConfig, train

    base = RndAgvConfig(algo=algo, num_envs=4, n_steps=32, n_epochs=2, minibatches=2, eval_every_steps=128,
                        eval_layouts=2, progress_bar=False)
    a = train(replace(base, run_dir=str(tmp_path / "straight"), total_env_steps=384, resume=False))
    train(replace(base, run_dir=str(tmp_path / "resumed"), total_env_steps=128, resume=False))
    b = train(replace(base, run_dir=str(tmp_path / "resumed"), total_env_steps=384, resume=True))
    la = torch.load(tmp_path / "straight" / "last.pt", weights_only=False)
    lb = torch.load(tmp_path / "resumed" / "last.pt", weights_only=False)
    if algo == "ppo":
        from stable_baselines3 import PPO

        pa = PPO.load(tmp_path / "straight" / "last.sb3.zip").policy.state_dict()
        pb = PPO.load(tmp_path / "resumed" / "last.sb3.zip").policy.state_dict()
    else:
        pa, pb = la["learner"]["policy"], lb["learner"]["policy"]
    for key in pa:
        torch.testing.assert_close(pa[key], pb[key], rtol=0, atol=0)
    assert la["env"]["seeds"].tolist() == lb["env"]["seeds"].tolist()
    assert a.is_file() and b.is_file()
    rows = (tmp_path / "resumed" / "curve.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 3  # header + evaluations at 128, 256, 384 steps


def test_resuming_with_a_config_that_shaped_the_checkpoint_changed_is_a_clear_error(tmp_path: Path) -> None:
    from navkit.learning.rnd_agv_training import RndAgvConfig, RndAgvConfigError, train

    base = RndAgvConfig(algo="ppo_rnd", num_envs=2, n_steps=32, n_epochs=1, minibatches=2, eval_every_steps=0,
                        progress_bar=False, run_dir=str(tmp_path / "run"), total_env_steps=64)
    train(base)
    with pytest.raises(RndAgvConfigError, match="num_envs.*--fresh"):
        train(replace(base, num_envs=3, total_env_steps=128))
    with pytest.raises(RndAgvConfigError, match="algo.*--fresh"):
        train(replace(base, algo="ppo", total_env_steps=128))
    assert train(replace(base, num_envs=3, total_env_steps=128, resume=False)).is_file()  # --fresh starts over


@pytest.mark.slow
def test_the_compact_ppo_learns_like_sb3_ppo_on_the_baseline_task(tmp_path: Path) -> None:
    """The check behind using a compact PPO for RND: without RND it learns the task as SB3's PPO does
    (same budget, same seed; held-out success after 600 k steps; measured ~0.4 for both, on the env without
    the safety filter in the loop, where this check was made)."""
    from navkit.learning.rnd_agv_training import RndAgvConfig, train

    scores = {}
    for algo in ("ppo", "ppo_own"):
        cfg = RndAgvConfig(algo=algo, total_env_steps=600_000, eval_every_steps=200_000, eval_layouts=50,
                           run_dir=str(tmp_path / algo), progress_bar=False, safety_filter=False)
        train(cfg)
        rows = (tmp_path / algo / "curve.csv").read_text().strip().splitlines()[1:]
        scores[algo] = max(float(r.split(",")[1]) for r in rows)
    assert scores["ppo"] >= 0.2 and scores["ppo_own"] >= 0.2, scores
    assert abs(scores["ppo"] - scores["ppo_own"]) <= 0.25, scores


def _train_shipped_config(tmp_path: Path, **overrides: object) -> dict:
    from navkit.control.learned_controller import load_agv_policy
    from navkit.learning.rnd_agv_training import load_config, train

    repo = Path(__file__).resolve().parents[2]
    cfg = load_config(repo / "learning" / "configs" / "rnd_agv.yaml", run_dir=str(tmp_path / "run"),
                      output=str(tmp_path / "policy.pt"), progress_bar=False, **overrides)
    _, _, meta = load_agv_policy(train(cfg))
    return meta


def test_the_shipped_config_runs_end_to_end_on_a_tiny_budget(tmp_path: Path) -> None:
    """The plumbing of the slow test below (config file, overrides, best-checkpoint export) on a tiny budget."""
    meta = _train_shipped_config(tmp_path, total_env_steps=512, eval_every_steps=256, eval_layouts=2, num_envs=4)
    assert meta["algo"] == "ppo" and meta["env_steps"] <= 512 and 0.0 <= meta["held_out_success"] <= 1.0


@pytest.mark.slow
def test_the_shipped_config_trains_a_policy_that_reaches_80_percent_of_held_out_goals(tmp_path: Path) -> None:
    """The full run behind control/policies/rnd_agv.pt (~40 min on 2 busy cores): its best checkpoint reaches
    >= 80 % of the 50 held-out validation warehouses behind the safety filter (shipped: 0.88 at 1.6 M steps)."""
    meta = _train_shipped_config(tmp_path)
    assert meta["held_out_success"] >= 0.8, meta
