"""Vectorised swarm kinematics: integration, limits, collisions, goals, batching."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from navkit.sim.kinematic_swarm import FAR_AWAY_M, KinematicSwarm
from navkit.sim.swarm_scenario import load_swarm_scenario

MULTI = Path(__file__).resolve().parents[2] / "scenarios" / "multi"


@pytest.fixture
def circle():
    return load_swarm_scenario(MULTI / "circle_swap.yaml").expand(seed=0, num_agents=4)


def test_single_integrator_moves_by_u_dt_and_caps_speed(circle) -> None:
    env = KinematicSwarm([circle])
    p0 = env.positions.copy()
    u = np.zeros((1, 4, 2))
    u[0, 0] = [0.5, 0.0]
    u[0, 1] = [3.0, 4.0]  # 5 m/s asked, 1 m/s allowed
    env.step(u)
    dt = circle.control_dt_s
    np.testing.assert_allclose(env.positions[0, 0] - p0[0, 0], [0.5 * dt, 0.0])
    np.testing.assert_allclose(np.linalg.norm(env.positions[0, 1] - p0[0, 1]), circle.max_speed_m_s * dt)
    np.testing.assert_allclose(env.positions[0, 2:], p0[0, 2:])


def test_non_finite_command_means_stop(circle) -> None:
    env = KinematicSwarm([circle])
    p0 = env.positions.copy()
    env.step(np.full((1, 4, 2), np.nan))
    np.testing.assert_array_equal(env.positions, p0)


def test_unicycle_drives_an_arc() -> None:
    sc = load_swarm_scenario(MULTI / "circle_swap_unicycle.yaml").expand(seed=0, num_agents=2)
    env = KinematicSwarm([sc])
    p0, th0 = env.positions[0, 0].copy(), env.headings[0, 0]
    steps = int(round(np.pi / 0.5 / sc.control_dt_s))  # half a turn at 0.5 rad/s
    for _ in range(steps):
        env.step(np.array([[[0.5, 0.5], [0.0, 0.0]]]))
    # Radius v/ω = 1 m: the arc ends at R(sin θ, 1 − cos θ) in the start frame (θ ≈ π).
    theta = steps * sc.control_dt_s * 0.5
    fwd, side = np.array([np.cos(th0), np.sin(th0)]), np.array([-np.sin(th0), np.cos(th0)])
    expected = np.sin(theta) * fwd + (1.0 - np.cos(theta)) * side
    np.testing.assert_allclose(env.positions[0, 0] - p0, expected, atol=1e-3)
    turned = (env.headings[0, 0] - th0) % (2 * np.pi)
    assert turned == pytest.approx(theta % (2 * np.pi), abs=1e-9)


def test_collisions_and_goal_arrival(circle) -> None:
    env = KinematicSwarm([circle])
    # Put agents 0 and 1 on top of each other, agent 2 on its goal.
    env.positions[0, 0] = [0.0, 0.0]
    env.positions[0, 1] = [0.1, 0.0]
    env.positions[0, 2] = circle.goals[2]
    step = env.step(np.zeros((1, 4, 2)))
    assert step.agent_collision[0].tolist() == [True, True, False, False]
    assert step.at_goal[0, 2] and not step.at_goal[0, 0]
    assert not step.state.active[0, 2]
    assert step.min_agent_distance[0] == pytest.approx(0.1)


def test_batches_pad_obstacles_far_away() -> None:
    spec = load_swarm_scenario(MULTI / "cluttered.yaml")
    scenes = [spec.expand(seed=s) for s in range(3)]
    few = replace(scenes[1], static_obstacles=scenes[1].static_obstacles[:2])
    env = KinematicSwarm([scenes[0], few, scenes[2]])
    state = env.state
    assert state.obstacle_positions.shape[1] == max(s.num_obstacles for s in scenes)
    assert np.all(state.obstacle_positions[1, 2:] == FAR_AWAY_M)
    assert np.all(state.obstacle_radii[1, 2:] == 0.0)


def test_mixed_agent_counts_are_refused() -> None:
    spec = load_swarm_scenario(MULTI / "circle_swap.yaml")
    with pytest.raises(ValueError, match="same agent count"):
        KinematicSwarm([spec.expand(num_agents=4), spec.expand(num_agents=6)])
