"""The online-CBF GNN policy: invariances, locality, bounds, NaN guard, checkpoints, the shipped policy."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from navkit.common.errors import NavkitError
from navkit.common.swarm_state import SwarmState
from navkit.control.online_cbf_policy import (
    OnlineCbfGnn,
    OnlineCbfPolicy,
    OnlineCbfPolicyConfig,
    PolicyCheckpointError,
    build_graph,
)

SHIPPED = Path(__file__).resolve().parents[2] / "control" / "policies" / "online_cbf_gnn.pt"


def _random_policy(seed: int = 0, hidden: int = 32) -> OnlineCbfPolicy:
    torch.manual_seed(seed)
    model = OnlineCbfGnn(hidden)
    with torch.no_grad():  # larger actor output than the near-zero init, so outputs actually vary
        model.actor[-1].weight.normal_(0.0, 1.0)
    return OnlineCbfPolicy(OnlineCbfPolicyConfig(hidden=hidden), model)


def _state(seed: int = 0, b: int = 3, n: int = 7, m: int = 5) -> SwarmState:
    rng = np.random.default_rng(seed)
    return SwarmState(positions=rng.uniform(-3, 3, (b, n, 2)), headings=rng.uniform(-np.pi, np.pi, (b, n)),
                      velocities=rng.uniform(-1, 1, (b, n, 2)), goals=rng.uniform(-3, 3, (b, n, 2)),
                      active=rng.random((b, n)) > 0.2, obstacle_positions=rng.uniform(-3, 3, (b, m, 2)),
                      obstacle_radii=rng.uniform(0.1, 0.4, (b, m)), obstacle_velocities=rng.uniform(-0.5, 0.5, (b, m, 2)))


def _shift(s: SwarmState, d: np.ndarray) -> SwarmState:
    return SwarmState(s.positions + d, s.headings, s.velocities, s.goals + d, s.active, s.obstacle_positions + d,
                      s.obstacle_radii, s.obstacle_velocities)


def test_translation_leaves_alpha_unchanged():
    policy, s = _random_policy(), _state()
    a = policy(s)
    b = policy(_shift(s, np.array([13.7, -4.2])))
    assert a.std() > 1e-3  # the test would be vacuous with a constant policy
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_permuting_agents_permutes_alpha():
    policy, s = _random_policy(1), _state(1)
    perm = np.random.default_rng(2).permutation(s.num_agents)
    operm = np.random.default_rng(3).permutation(s.obstacle_positions.shape[1])
    p = SwarmState(s.positions[:, perm], s.headings[:, perm], s.velocities[:, perm], s.goals[:, perm],
                   s.active[:, perm], s.obstacle_positions[:, operm], s.obstacle_radii[:, operm],
                   s.obstacle_velocities[:, operm])
    np.testing.assert_allclose(policy(p), policy(s)[:, perm], rtol=1e-4, atol=1e-5)


def test_edges_only_within_sensing_radius_and_into_agents():
    s = _state(4, b=2, n=9, m=6)
    radius = 1.5
    g = build_graph(s, radius)
    b, n, m = 2, 9, 6
    src, dst = g.edge_index.numpy()
    assert (dst < b * n).all()  # receivers are agents
    pos = np.concatenate([s.positions.reshape(-1, 2), s.obstacle_positions.reshape(-1, 2)])
    rad = np.concatenate([np.zeros(b * n), s.obstacle_radii.reshape(-1)])
    d = np.linalg.norm(pos[src] - pos[dst], axis=1) - rad[src]
    assert (d <= radius + 1e-6).all()
    # and every pair within range is an edge (same scene, not self)
    expected = 0
    for k in range(b):
        da = np.linalg.norm(s.positions[k, :, None] - s.positions[k, None], axis=-1)
        expected += int(((da <= radius) & ~np.eye(n, dtype=bool)).sum())
        do = np.linalg.norm(s.positions[k, :, None] - s.obstacle_positions[k, None], axis=-1) - s.obstacle_radii[k]
        expected += int((do <= radius).sum())
    assert len(src) == expected
    scene = np.concatenate([np.repeat(np.arange(b), n), np.repeat(np.arange(b), m)])
    assert (scene[src] == scene[dst]).all()


def test_alpha_depends_only_on_what_an_agent_senses():
    policy, s = _random_policy(5), _state(5, b=1, n=6, m=0)
    a = policy(s)
    moved = s.positions.copy()
    far = np.linalg.norm(s.positions[0] - s.positions[0, 0], axis=1) > 2.0 + 1e-6
    far[0] = False
    moved[0, 0] += [30.0, 30.0]  # agent 0 leaves everyone's range (its own goal moves with it)
    t = SwarmState(moved, s.headings, s.velocities, s.goals + (np.arange(6) == 0)[None, :, None] * 30.0, s.active,
                   s.obstacle_positions, s.obstacle_radii, s.obstacle_velocities)
    b_ = policy(t)
    np.testing.assert_allclose(b_[0, far], a[0, far], rtol=1e-5, atol=1e-6)


def test_output_always_within_bounds():
    cfg = OnlineCbfPolicyConfig(hidden=16, alpha_min=0.05, alpha_max=20.0)
    torch.manual_seed(0)
    model = OnlineCbfGnn(16)
    with torch.no_grad():
        model.actor[-1].weight.normal_(0.0, 200.0)  # saturate the squash on both sides
    policy = OnlineCbfPolicy(cfg, model)
    a = np.concatenate([policy(_state(k, b=2, n=10)).ravel() for k in range(5)])
    assert (a >= cfg.alpha_min).all() and (a <= cfg.alpha_max).all()
    assert a.min() < 0.1 and a.max() > 10.0
    assert policy.fallbacks == 0


def test_nan_in_state_gives_fallback_and_counts():
    policy, s = _random_policy(6), _state(6, b=2, n=5, m=0)
    vel = s.velocities.copy()
    vel[1, 2] = np.nan
    bad = SwarmState(s.positions, s.headings, vel, s.goals, s.active, s.obstacle_positions, s.obstacle_radii,
                     s.obstacle_velocities)
    a = policy(bad)
    assert np.isfinite(a).all()
    assert a[1, 2] == policy.config.fallback_alpha
    assert policy.fallbacks >= 1
    before = policy.fallbacks
    clean = policy(s)
    assert policy.fallbacks == before
    np.testing.assert_allclose(a[0], clean[0], rtol=1e-6)  # other scenes untouched
    # and a non-finite network output is caught too
    z_bad = np.array([np.nan, 1.0, 100.0])
    out = policy.guard(z_bad, np.zeros(3, dtype=bool))
    assert out[0] == policy.config.fallback_alpha and out[2] == policy.config.fallback_alpha and out[1] == 1.0
    assert policy.fallbacks == before + 2


def test_save_load_round_trip(tmp_path):
    policy, s = _random_policy(7), _state(7)
    path = policy.save(tmp_path / "p.pt")
    blob = torch.load(path, weights_only=True)
    assert blob["config"]["hidden"] == 32
    loaded = OnlineCbfPolicy.load(path)
    np.testing.assert_array_equal(loaded(s), policy(s))


def test_mismatched_or_missing_checkpoint_names_the_file(tmp_path):
    path = _random_policy(8, hidden=32).save(tmp_path / "p.pt")
    blob = torch.load(path, weights_only=True)
    blob["config"]["hidden"] = 16
    torch.save(blob, tmp_path / "bad.pt")
    with pytest.raises(PolicyCheckpointError) as err:
        OnlineCbfPolicy.load(tmp_path / "bad.pt")
    assert "bad.pt" in str(err.value) and "state_dict." in str(err.value)
    assert isinstance(err.value, NavkitError)
    with pytest.raises(PolicyCheckpointError, match="missing.pt"):
        OnlineCbfPolicy.load(tmp_path / "missing.pt")
    del blob["state_dict"]
    torch.save(blob, tmp_path / "nokey.pt")
    with pytest.raises(PolicyCheckpointError, match="nokey.pt: state_dict"):
        OnlineCbfPolicy.load(tmp_path / "nokey.pt")


def test_shipped_policy_loads_weights_only_and_is_small():
    assert SHIPPED.is_file(), f"missing shipped policy {SHIPPED}"
    assert SHIPPED.stat().st_size < 1_000_000
    torch.load(SHIPPED, weights_only=True)
    policy = OnlineCbfPolicy.load(SHIPPED)
    a = policy(_state(9))
    assert a.shape == (3, 7) and np.isfinite(a).all()
