"""Swarm controller + rollout: batching is exact, the filter keeps teams apart, scoring is right."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from navkit.control.swarm_controller import FixedAlpha, NominalConfig, SwarmController, nominal_commands
from navkit.learning.swarm_rollout import rollout
from navkit.sim.kinematic_swarm import KinematicSwarm
from navkit.sim.swarm_scenario import load_swarm_scenario

MULTI = Path(__file__).resolve().parents[2] / "scenarios" / "multi"


def test_batched_scenes_do_not_see_each_other() -> None:
    spec = load_swarm_scenario(MULTI / "cluttered.yaml")
    a, b = spec.expand(seed=3), spec.expand(seed=4)
    ctrl = SwarmController.for_scenario(a)
    both = ctrl.act(KinematicSwarm([a, b]).state, 1.0).u
    alone_a = ctrl.act(KinematicSwarm([a]).state, 1.0).u
    alone_b = ctrl.act(KinematicSwarm([b]).state, 1.0).u
    np.testing.assert_allclose(both[0], alone_a[0], atol=1e-9)
    np.testing.assert_allclose(both[1], alone_b[0], atol=1e-9)


def test_nominal_commands_point_at_goals_and_saturate() -> None:
    sc = load_swarm_scenario(MULTI / "circle_swap.yaml").expand(seed=0, num_agents=4)
    state = KinematicSwarm([sc]).state
    u = nominal_commands(state, "single_integrator", 1.0, SwarmController.for_scenario(sc).nominal)
    direction = (state.goals - state.positions) / np.linalg.norm(state.goals - state.positions, axis=-1, keepdims=True)
    np.testing.assert_allclose(u, direction, atol=1e-9)  # far from goal: unit speed toward it


def test_filter_keeps_a_circle_swap_collision_free_and_no_filter_does_not() -> None:
    spec = load_swarm_scenario(MULTI / "circle_swap.yaml")
    scenes = [spec.expand(seed=s, num_agents=6) for s in range(3)]
    rows = rollout(scenes, SwarmController.for_scenario(scenes[0]), FixedAlpha(1.0))
    assert all(r.collisions == 0 for r in rows)
    assert all(r.min_separation_m >= 2 * scenes[0].agent_radius_m for r in rows)

    class Unfiltered(SwarmController):
        def act(self, state, alpha):  # the nominal command, straight to the robots
            a = super().act(state, alpha)
            return type(a)(u=a.u_nom, u_nom=a.u_nom, alpha=a.alpha, status=a.status, min_h=a.min_h)

    straight = NominalConfig(keep_right=0.0)  # plain go-to-goal: everyone meets in the middle
    bare = rollout(scenes, Unfiltered.for_scenario(scenes[0], nominal=straight), FixedAlpha(1.0))
    assert all(r.collisions > 0 for r in bare)


def test_the_symmetric_swap_deadlock_is_broken_by_keeping_right_or_by_unequal_gains() -> None:
    # Plain go-to-goal: every fixed α deadlocks an 8-robot swap (everyone meets in the middle and
    # waits). Two ways out: robots keep right (the default nominal), or their gains differ.
    spec = load_swarm_scenario(MULTI / "circle_swap.yaml")
    scenes = [spec.expand(seed=s) for s in range(4)]
    plain = SwarmController.for_scenario(scenes[0], nominal=NominalConfig(keep_right=0.0))
    fixed = rollout(scenes, plain, FixedAlpha(1.0))

    def by_bearing(state):
        off = state.goals - state.positions
        return 10.0 ** np.cos(np.arctan2(off[..., 1], off[..., 0]))

    varied = rollout(scenes, plain, by_bearing)
    keep_right = rollout(scenes, SwarmController.for_scenario(scenes[0]), FixedAlpha(1.0))
    assert sum(r.success for r in fixed) == 0
    for rows in (varied, keep_right):
        assert sum(r.success for r in rows) == len(scenes)
        for r in rows:
            assert r.collisions == 0 and r.agents_at_goal == r.num_agents
            assert r.path_length_ratio >= 1.0 and 0 < r.mean_time_to_goal_s <= r.episode_time_s


def test_priority_rule_lets_the_highest_token_nearby_go_and_the_rest_yield() -> None:
    from navkit.common.swarm_state import SwarmState
    from navkit.control.right_of_way import PriorityRule
    from navkit.stack.plugin_catalog import default_registry

    rule = PriorityRule(alpha_go=3.0, alpha_yield=0.3, conflict_radius_m=1.5)
    pos = np.array([[[0.0, 0.0], [1.0, 0.0], [5.0, 0.0], [5.5, 0.0]]])
    state = SwarmState(pos, np.zeros((1, 4)), np.zeros((1, 4, 2)), pos + 3.0, np.array([[True, True, True, False]]),
                       np.zeros((1, 0, 2)), np.zeros((1, 0)), np.zeros((1, 0, 2)),
                       priorities=np.array([[0.2, 0.9, 0.1, 0.8]]))
    # robot 0 is outranked by robot 1; robot 2's only rival (robot 3) has arrived, so robot 2 goes.
    np.testing.assert_array_equal(rule(state), [[0.3, 3.0, 3.0, 3.0]])
    registry = default_registry()
    built = registry.build(registry.choose("cbf_policy", {"cbf_policy.plugin": "priority_rule",
                                                          "cbf_policy.alpha_yield": 0.5}, "test"))
    assert built.alpha_yield == 0.5 and built.alpha_go == 3.0
    import pytest

    with pytest.raises(ValueError, match="alpha_go"):
        PriorityRule(alpha_go=-1.0)


def test_rotating_a_scene_by_a_right_angle_gives_the_same_episode() -> None:
    """Every input of the nominal, the filter and the policy is relative, and the octagonal speed
    limit is symmetric under 90° turns: a rotated scene has the same outcome. (Rounding in the
    rotated coordinates grows over a 30 s episode, so times agree to a few percent, not exactly.)"""
    from navkit.control.online_cbf_policy import NeighbourhoodNet, OnlineCbfPolicy, OnlineCbfPolicyConfig

    import torch

    torch.manual_seed(0)
    cfg = OnlineCbfPolicyConfig(hidden=16)
    model = NeighbourhoodNet(cfg)
    with torch.no_grad():
        model.action.weight.normal_(0.0, 1.0)
    policy = OnlineCbfPolicy(cfg, model)
    sc = load_swarm_scenario(MULTI / "moving_obstacles.yaml").expand(seed=2, num_agents=6)
    base = rollout([sc], SwarmController.for_scenario(sc), policy)[0]
    assert base.agents_at_goal > 0
    for quarter in (1, 2, 3):
        turned = sc.transformed(quarter * np.pi / 2)
        row = rollout([turned], SwarmController.for_scenario(turned), policy)[0]
        assert (row.success, row.collisions, row.agents_at_goal) == (base.success, base.collisions, base.agents_at_goal)
        assert abs(row.mean_time_to_goal_s - base.mean_time_to_goal_s) <= 0.05 * base.mean_time_to_goal_s


def test_aggressive_gains_stay_collision_free_at_10_20_and_50_hz() -> None:
    """The discrete-time barrier (γ = min(α·Δt, 1)) holds at any rate, whatever α a policy asks for."""
    for name, n in (("circle_swap", 8), ("moving_obstacles", 8), ("cluttered", 8)):
        spec = load_swarm_scenario(MULTI / f"{name}.yaml")
        for rate in (10.0, 20.0, 50.0):
            scenes = [spec.expand(seed=s, num_agents=n).at_rate(rate) for s in range(3)]
            rows = rollout(scenes, SwarmController.for_scenario(scenes[0]), FixedAlpha(100.0))
            assert all(r.collisions == 0 for r in rows), (name, rate, [r.collisions for r in rows])
            assert all(r.min_separation_m >= 2 * scenes[0].agent_radius_m for r in rows)
