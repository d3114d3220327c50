"""The online-CBF policy: SE(2) invariance, permutation equivariance, locality, tokens, bounds, NaN guard,
checkpoints and the shipped policy."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from navkit.common.errors import NavkitError
from navkit.common.swarm_state import SwarmState
from navkit.control.online_cbf_policy import (
    NeighbourhoodNet,
    OnlineCbfPolicy,
    OnlineCbfPolicyConfig,
    PolicyCheckpointError,
    alpha_from_action,
    local_features,
)

SHIPPED = Path(__file__).resolve().parents[2] / "control" / "policies" / "online_cbf_gnn.pt"


def _random_policy(seed: int = 0, hidden: int = 16, gain: float = 1.0) -> OnlineCbfPolicy:
    torch.manual_seed(seed)
    cfg = OnlineCbfPolicyConfig(hidden=hidden)
    model = NeighbourhoodNet(cfg)
    with torch.no_grad():  # a larger action layer than the default init, so outputs actually vary
        model.action.weight.normal_(0.0, gain)
    return OnlineCbfPolicy(cfg, model)


def _state(seed: int = 0, b: int = 3, n: int = 7, m: int = 5, dynamics: str = "unicycle") -> SwarmState:
    rng = np.random.default_rng(seed)
    return SwarmState(positions=rng.uniform(-2, 2, (b, n, 2)), headings=rng.uniform(-np.pi, np.pi, (b, n)),
                      velocities=rng.uniform(-1, 1, (b, n, 2)), goals=rng.uniform(-3, 3, (b, n, 2)),
                      active=rng.random((b, n)) > 0.2, obstacle_positions=rng.uniform(-2, 2, (b, m, 2)),
                      obstacle_radii=rng.uniform(0.1, 0.4, (b, m)), obstacle_velocities=rng.uniform(-0.5, 0.5, (b, m, 2)),
                      priorities=rng.random((b, n)), control_dt_s=0.05, dynamics=dynamics)


def _transform(s: SwarmState, angle: float, shift: np.ndarray) -> SwarmState:
    c, si = math.cos(angle), math.sin(angle)
    rot = np.array([[c, -si], [si, c]])
    return SwarmState(s.positions @ rot.T + shift, s.headings + angle, s.velocities @ rot.T, s.goals @ rot.T + shift,
                      s.active, s.obstacle_positions @ rot.T + shift, s.obstacle_radii, s.obstacle_velocities @ rot.T,
                      s.time, s.priorities, s.control_dt_s, s.dynamics)


@pytest.mark.parametrize("dynamics", ["single_integrator", "unicycle"])
def test_outputs_do_not_change_under_any_rotation_and_translation_of_the_scene(dynamics: str) -> None:
    """Exact SE(2) invariance: every input is in the robot's goal frame, none in world coordinates."""
    policy, s = _random_policy(0), _state(0, dynamics=dynamics)
    a = policy(s)
    assert a.std() > 1e-2  # the test would be vacuous with a constant policy
    rng = np.random.default_rng(11)
    for _ in range(20):
        t = _transform(s, rng.uniform(-math.pi, math.pi), rng.uniform(-50, 50, 2))
        np.testing.assert_allclose(policy(t), a, rtol=1e-4, atol=1e-5)


def test_a_lone_robot_gets_the_same_gain_whichever_way_its_goal_lies() -> None:
    """The old policy's compass rule (α 20 heading east, 0.05 heading south) cannot happen."""
    policy = _random_policy(1)
    alphas = []
    for angle in np.linspace(0, 2 * math.pi, 24, endpoint=False):
        goal = 3.0 * np.array([math.cos(angle), math.sin(angle)])
        s = SwarmState(np.zeros((1, 1, 2)), np.full((1, 1), angle), np.zeros((1, 1, 2)), goal[None, None],
                       np.ones((1, 1), bool), np.zeros((1, 0, 2)), np.zeros((1, 0)), np.zeros((1, 0, 2)))
        alphas.append(policy(s)[0, 0])
    np.testing.assert_allclose(alphas, alphas[0], rtol=1e-5)


def test_permuting_robots_and_obstacles_permutes_the_gains() -> None:
    policy, s = _random_policy(1), _state(1)
    perm = np.random.default_rng(2).permutation(s.num_agents)
    operm = np.random.default_rng(3).permutation(s.obstacle_positions.shape[1])
    p = SwarmState(s.positions[:, perm], s.headings[:, perm], s.velocities[:, perm], s.goals[:, perm],
                   s.active[:, perm], s.obstacle_positions[:, operm], s.obstacle_radii[:, operm],
                   s.obstacle_velocities[:, operm], s.time, s.priorities[:, perm], s.control_dt_s, s.dynamics)
    np.testing.assert_allclose(policy(p), policy(s)[:, perm], rtol=1e-4, atol=1e-5)


def test_a_gain_depends_only_on_what_the_robot_senses() -> None:
    policy, s = _random_policy(5), _state(5, b=1, n=6, m=0)
    pos = s.positions.copy()
    pos[0, :, :] = [[0.0, 0.0], [1.0, 0.3], [-0.5, 1.2], [3.5, 0.0], [0.0, -4.0], [-3.0, -3.0]]
    s = SwarmState(pos, s.headings, s.velocities, s.goals, s.active, s.obstacle_positions, s.obstacle_radii,
                   s.obstacle_velocities, 0.0, s.priorities, s.control_dt_s, s.dynamics)
    a = policy(s)
    shift = (np.arange(6) == 0)[None, :, None] * 30.0  # robot 0 (and its goal) leaves everyone's range
    t = SwarmState(s.positions + shift, s.headings, s.velocities, s.goals + shift, s.active, s.obstacle_positions,
                   s.obstacle_radii, s.obstacle_velocities, 0.0, s.priorities, s.control_dt_s, s.dynamics)
    b = policy(t)
    np.testing.assert_allclose(b[0, 3:], a[0, 3:], rtol=1e-5, atol=1e-6)  # robots 3-5 never saw robot 0
    assert not np.allclose(b[0, 1:3], a[0, 1:3])  # robots 1 and 2 did


def test_tokens_break_the_tie_of_a_symmetric_head_on_pair() -> None:
    """Two robots in mirror positions see identical scenes except their tokens: only tokens can split them."""
    policy = _random_policy(2, gain=3.0)
    pos = np.array([[[-1.0, 0.0], [1.0, 0.0]]])
    state = SwarmState(pos, np.array([[0.0, math.pi]]), np.array([[[0.5, 0.0], [-0.5, 0.0]]]), -pos,
                       np.ones((1, 2), bool), np.zeros((1, 0, 2)), np.zeros((1, 0)), np.zeros((1, 0, 2)),
                       priorities=np.array([[0.2, 0.7]]))
    a = policy(state)
    assert abs(a[0, 0] - a[0, 1]) > 1e-3
    tied = SwarmState(state.positions, state.headings, state.velocities, state.goals, state.active,
                      state.obstacle_positions, state.obstacle_radii, state.obstacle_velocities,
                      priorities=np.array([[0.5, 0.5]]))
    b = policy(tied)
    assert b[0, 0] == pytest.approx(b[0, 1], rel=1e-5)


def test_features_are_bounded_and_absent_neighbours_are_zero() -> None:
    cfg = OnlineCbfPolicyConfig()
    s = _state(3, b=2, n=3, m=2)
    f = local_features(s, cfg)
    assert f.ego.shape == (2, 3, 9) and f.neighbours.shape == (2, 3, cfg.k_neighbours, 11)
    flat = f.flat()
    assert np.isfinite(flat).all()
    assert np.abs(flat).max() < 10.0  # strictly inside the final clip: no feature is off its scale
    assert (f.neighbours[:, :, 2:] == 0).all()  # only 2 other robots exist
    assert (f.obstacles[:, :, 2:] == 0).all()


def test_gain_always_within_bounds_even_when_saturated() -> None:
    policy = _random_policy(0, gain=500.0)
    a = np.concatenate([policy(_state(k, b=2, n=10)).ravel() for k in range(5)])
    c = policy.config
    assert (a >= c.alpha_min - 1e-12).all() and (a <= c.alpha_max + 1e-9).all()
    assert a.min() == pytest.approx(c.alpha_min) and a.max() == pytest.approx(c.alpha_max)
    assert policy.fallbacks == 0
    np.testing.assert_allclose(alpha_from_action(np.array([-5.0, 0.0, 5.0]), 0.1, 10.0), [0.1, 1.0, 10.0])


def test_nan_in_the_state_gives_the_fallback_and_is_counted() -> None:
    policy, s = _random_policy(6), _state(6, b=2, n=5, m=0)
    vel = s.velocities.copy()
    vel[1, 2] = np.nan
    bad = SwarmState(s.positions, s.headings, vel, s.goals, s.active, s.obstacle_positions, s.obstacle_radii,
                     s.obstacle_velocities, 0.0, s.priorities, s.control_dt_s, s.dynamics)
    a = policy(bad)
    assert np.isfinite(a).all()
    assert a[1, 2] == policy.config.fallback_alpha
    assert policy.fallbacks == 1
    np.testing.assert_allclose(a[0], policy(s)[0], rtol=1e-6)  # the other scene is untouched
    assert policy.fallbacks == 1
    goals = s.goals.copy()
    goals[0, 3] = np.nan  # a robot without a usable goal falls back, is counted, and stays visible to others
    no_goal = SwarmState(s.positions, s.headings, s.velocities, goals, s.active, s.obstacle_positions,
                         s.obstacle_radii, s.obstacle_velocities, 0.0, s.priorities, s.control_dt_s, s.dynamics)
    g = policy(no_goal)
    assert np.isfinite(g).all() and g[0, 3] == policy.config.fallback_alpha and policy.fallbacks == 2
    np.testing.assert_allclose(g[1], policy(s)[1], rtol=1e-6)
    assert policy.fallbacks == 2
    with torch.no_grad():
        policy.model.action.bias.fill_(float("nan"))  # a broken network: every robot falls back
    out = policy(s)
    assert (out == policy.config.fallback_alpha).all() and policy.fallbacks == 2 + out.size


def test_save_load_round_trip(tmp_path: Path) -> None:
    policy, s = _random_policy(7), _state(7)
    path = policy.save(tmp_path / "p.pt")
    blob = torch.load(path, weights_only=True)
    assert blob["config"]["hidden"] == 16
    np.testing.assert_array_equal(OnlineCbfPolicy.load(path)(s), policy(s))


def test_mismatched_or_missing_checkpoint_names_the_file(tmp_path: Path) -> None:
    path = _random_policy(8, hidden=16).save(tmp_path / "p.pt")
    blob = torch.load(path, weights_only=True)
    blob["config"]["hidden"] = 8
    torch.save(blob, tmp_path / "bad.pt")
    with pytest.raises(PolicyCheckpointError) as err:
        OnlineCbfPolicy.load(tmp_path / "bad.pt")
    assert "bad.pt" in str(err.value) and "state_dict." in str(err.value)
    assert isinstance(err.value, NavkitError)
    with pytest.raises(PolicyCheckpointError, match="missing.pt"):
        OnlineCbfPolicy.load(tmp_path / "missing.pt")
    blob["version"] = 2
    torch.save(blob, tmp_path / "old.pt")
    with pytest.raises(PolicyCheckpointError, match="old.pt: format"):
        OnlineCbfPolicy.load(tmp_path / "old.pt")
    blob = torch.load(path, weights_only=True)
    del blob["state_dict"]
    torch.save(blob, tmp_path / "nokey.pt")
    with pytest.raises(PolicyCheckpointError, match="nokey.pt: state_dict"):
        OnlineCbfPolicy.load(tmp_path / "nokey.pt")


def test_shipped_policy_loads_weights_only_is_small_and_invariant() -> None:
    assert SHIPPED.is_file(), f"missing shipped policy {SHIPPED}"
    assert SHIPPED.stat().st_size < 1_000_000
    torch.load(SHIPPED, weights_only=True)
    policy = OnlineCbfPolicy.load(SHIPPED)
    s = _state(9)
    a = policy(s)
    assert a.shape == (3, 7) and np.isfinite(a).all()
    np.testing.assert_allclose(policy(_transform(s, 2.0, np.array([5.0, -3.0]))), a, rtol=1e-4, atol=1e-5)


def test_the_dense_fast_path_matches_torch_geometric_message_passing() -> None:
    """The library path (torch-geometric MessagePassing, sum + max) is the reference for the padded dense one."""
    from navkit.control.online_cbf_reference import reference_actions

    policy = _random_policy(4, gain=2.0)
    for seed, (b, n, m) in enumerate([(3, 7, 5), (2, 12, 0), (1, 1, 3), (2, 20, 9)]):
        s = _state(seed, b=b, n=n, m=m)
        fast, _ = policy.actions(s)
        np.testing.assert_allclose(fast, reference_actions(policy.model, s).numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("change", [{"dynamics": "tricycle"}, {"control_dt_s": float("nan")},
                                    {"control_dt_s": 0.0}, {"control_dt_s": float("inf")}])
def test_a_state_with_unknown_dynamics_or_a_bad_control_period_is_refused(change: dict) -> None:
    s = _state(0, b=1, n=2)
    args = dict(positions=s.positions, headings=s.headings, velocities=s.velocities, goals=s.goals, active=s.active,
                obstacle_positions=s.obstacle_positions, obstacle_radii=s.obstacle_radii,
                obstacle_velocities=s.obstacle_velocities)
    SwarmState(**args)  # the unchanged state is fine
    with pytest.raises(ValueError, match=next(iter(change))):
        SwarmState(**args, **change)
