"""The online-CBF trainers: config errors, family parsing, a short ES run improves its policy, exact resume,
PPO trains the deployed network and exports it without loss."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from navkit.control.online_cbf_policy import OnlineCbfPolicy, local_features
from navkit.learning.online_cbf_training import (
    TrainConfig,
    TrainConfigError,
    fitness_by_family,
    load_config,
    load_families,
    new_model,
    policy_config,
    train,
)
from navkit.learning.swarm_families import FamilyError, draw_groups, parse_family

REPO = Path(__file__).resolve().parents[2]
SWAP = "scenarios/multi/circle_swap.yaml"


def _tiny(tmp_path: Path, iterations: int, **changes) -> TrainConfig:
    cfg = TrainConfig(seed=3, run_dir=str(tmp_path / "run"), progress_bar=False, families=[f"{SWAP} 3-4"],
                      selection_families=[], rates_hz=[20.0], scenes_per_family=3, episode_time_s=10.0,
                      decision_every=10, hidden=8, iterations=iterations, population=6, sigma=0.3,
                      learning_rate=0.1, eval_every=0, checkpoint_every=0)
    return replace(cfg, **changes)


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("iterations: 3\nlerning_rate: 0.1\n")
    with pytest.raises(TrainConfigError, match="lerning_rate"):
        load_config(bad)
    bad.write_text("population: 5\n")
    with pytest.raises(TrainConfigError, match="population"):
        load_config(bad)
    bad.write_text("families: ['scenarios/multi/nowhere.yaml']\n")
    with pytest.raises(TrainConfigError, match=r"families\[0\].*not found"):
        load_config(bad)
    bad.write_text(f"selection_families: ['{SWAP} 8-4']\n")
    with pytest.raises(TrainConfigError, match=r"selection_families\[0\].*MIN <= MAX"):
        load_config(bad)
    bad.write_text("rates_hz: [0.5]\n")
    with pytest.raises(TrainConfigError, match="rates_hz"):
        load_config(bad)
    cfg = load_config(REPO / "learning" / "configs" / "online_cbf.yaml")
    train_fams, held_out = load_families(cfg, "x")
    assert {f.name for f in train_fams}.isdisjoint({f.name for f in held_out})  # selection is on unseen families


def test_families_draw_sizes_rates_and_batchable_groups() -> None:
    fam = parse_family(f"{SWAP} 2-24")
    assert fam.agents == (2, 24)
    for bad in (f"{SWAP} 4", f"{SWAP} x-4", f"{SWAP} 0-3", "a b c"):
        with pytest.raises(FamilyError):
            parse_family(bad)
    corridor = parse_family("scenarios/multi/two_way_corridor.yaml")
    groups = draw_groups([fam, corridor], 12, [10.0, 50.0], np.random.default_rng(0), episode_time_s=5.0)
    scenes = [sc for g in groups for sc in g]
    assert len(scenes) == 24
    sizes = {sc.num_agents for sc in scenes if sc.name == "circle_swap"}
    assert len(sizes) > 3 and min(sizes) >= 2 and max(sizes) <= 24
    assert {sc.control_dt_s for sc in scenes} == {0.1, 0.02}
    assert all(sc.time_limit_s == 5.0 for sc in scenes)
    for g in groups:  # one batch: same family, size, dynamics and rate
        assert len({(sc.name, sc.num_agents, sc.dynamics, sc.control_dt_s) for sc in g}) == 1


def _score(policy_path: Path, cfg: TrainConfig) -> float:
    """Fitness on fixed held-aside episodes (not the ones training drew)."""
    policy = OnlineCbfPolicy.load(policy_path)
    families, _ = load_families(cfg, "test")
    groups = draw_groups(families, 8, cfg.rates_hz, np.random.default_rng(12345), seed_base=5_000_000,
                         episode_time_s=cfg.episode_time_s)
    return fitness_by_family(policy.model, policy_config(cfg), groups, cfg)[0]


def test_short_es_training_improves_on_its_starting_policy(tmp_path: Path) -> None:
    # Start from a deliberately timid policy; ES must find a better one.
    cfg = _tiny(tmp_path, 0, alpha_min=0.1, alpha_max=20.0)
    gen = torch.Generator().manual_seed(cfg.seed)
    start = OnlineCbfPolicy(policy_config(cfg), new_model(policy_config(cfg), gen))
    with torch.no_grad():
        start.model.action.bias.fill_(-0.6)  # α ≈ 0.3: slow, swaps time out
    start_path = start.save(tmp_path / "start.pt")
    before = _score(start_path, cfg)
    trained = train(_tiny(tmp_path / "b", iterations=5, init_policy=str(start_path)))  # warm start from it
    after = _score(trained, cfg)
    print(f"fitness before {before:.3f} after {after:.3f}")
    assert after > before + 0.2, (before, after)


def test_resume_reproduces_an_uninterrupted_run(tmp_path: Path) -> None:
    straight = train(_tiny(tmp_path / "straight", iterations=3))
    interrupted = _tiny(tmp_path / "resumed", iterations=1)
    train(interrupted)
    resumed = train(replace(interrupted, iterations=3))  # picks up last.pt at iteration 1
    a = OnlineCbfPolicy.load(straight).model.state_dict()
    b = OnlineCbfPolicy.load(resumed).model.state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_resuming_with_another_network_or_a_damaged_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    cfg = _tiny(tmp_path / "run", iterations=1)
    train(cfg)
    with pytest.raises(TrainConfigError, match="hidden.*--fresh"):
        train(replace(cfg, iterations=2, hidden=cfg.hidden * 2))
    (Path(cfg.run_dir) / "last.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(TrainConfigError, match="last.pt: <file>: unreadable"):
        train(replace(cfg, iterations=2))


def test_warm_start_must_fit_the_run_and_is_the_policy_to_beat(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = _tiny(tmp_path / "a", iterations=1)
    start = OnlineCbfPolicy(policy_config(cfg), new_model(policy_config(cfg), torch.Generator().manual_seed(0)))
    path = start.save(tmp_path / "start.pt")
    with pytest.raises(TrainConfigError, match="init_policy: its hidden 8 differs from the run's 16"):
        train(_tiny(tmp_path / "b", iterations=1, hidden=16, init_policy=str(path)))
    with pytest.raises(TrainConfigError, match="nothing.pt: init_policy: <file>: policy checkpoint not found"):
        train(_tiny(tmp_path / "b", iterations=1, init_policy=str(tmp_path / "nothing.pt")))
    # The start's weights are loaded (not the run's own seed-3 initialisation: with a negligible step the
    # result is the start) and, with model selection on, scored before the first update.
    run = _tiny(tmp_path / "c", iterations=1, init_policy=str(path), eval_every=1, eval_seeds=1, learning_rate=1e-9)
    shipped = OnlineCbfPolicy.load(train(run)).model.state_dict()
    assert "iter 0 (0.0M steps): score" in capsys.readouterr().out
    for key, value in start.model.state_dict().items():
        torch.testing.assert_close(shipped[key], value, rtol=0, atol=1e-6)


def test_env_step_budget_stops_training(tmp_path: Path) -> None:
    cfg = _tiny(tmp_path, iterations=50, max_env_steps=1)
    train(cfg)
    ck = torch.load(Path(cfg.run_dir) / "last.pt", weights_only=True)
    assert ck["iteration"] == 1 and ck["env_steps"] > 0


def test_ppo_trains_the_deployed_network_and_exports_it_exactly(tmp_path: Path) -> None:
    from navkit.learning.online_cbf_ppo import PpoConfig, export_policy, make_env, make_model, train_ppo

    cfg = PpoConfig(seed=0, run_dir=str(tmp_path / "ppo"), progress_bar=False, families=[f"{SWAP} 3-3"],
                    selection_families=[], rates_hz=[20.0], groups_per_family=1, scenes_per_group=2,
                    episode_time_s=3.0, hidden=8, total_env_steps=1200, n_steps=32, minibatches=2, n_epochs=2,
                    eval_every_steps=0, eval_seeds=1)
    families, _ = load_families(cfg, "test")
    env = make_env(cfg, families, 0)
    model = make_model(cfg, env)
    before = {k: v.clone() for k, v in model.policy.state_dict().items()}
    model.learn(total_timesteps=600)
    assert any(not torch.equal(before[k], v) for k, v in model.policy.state_dict().items())
    obs = env.reset()
    mean = model.policy.get_distribution(torch.as_tensor(obs)).distribution.mean.detach().numpy()[:, 0]
    policy = export_policy(model, cfg.policy)
    state = env.groups[0].sim.state
    flat = local_features(state, cfg.policy).flat().reshape(-1, obs.shape[1])
    np.testing.assert_allclose(flat, obs, atol=1e-6)  # the env observes exactly what the policy reads
    actions, _ = policy.actions(state)
    np.testing.assert_allclose(actions.reshape(-1), mean, rtol=1e-5, atol=1e-6)
    path = train_ppo(cfg)
    assert OnlineCbfPolicy.load(path).config.hidden == 8
