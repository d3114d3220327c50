"""MujocoSwarm: physics agrees with the vectorised kinematics, and adds detectable contact."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from navkit.control.swarm_controller import FixedAlpha, SwarmController
from navkit.sim.mujoco_swarm import MujocoSwarm, build_swarm_mjcf
from navkit.common.errors import SimulationDiverged
from navkit.sim.kinematic_swarm import KinematicSwarm
from navkit.sim.swarm_scenario import MovingObstacle, SwarmScenario, load_swarm_scenario

MULTI = Path(__file__).resolve().parents[2] / "scenarios" / "multi"
AGREE_M = 0.03
"""'A few cm': the actuators' ~3 ms lag is the only modelled difference."""


def _scenario(name: str, n: int | None = None) -> SwarmScenario:
    return load_swarm_scenario(MULTI / f"{name}.yaml").expand(num_agents=n)


def _two_agents(dynamics: str = "single_integrator") -> SwarmScenario:
    """Two agents 2 m apart on the x axis, facing each other."""
    base = _scenario("circle_swap", 2)
    starts = np.array([[-1.0, 0.0, 0.0], [1.0, 0.0, np.pi]])
    goals = np.array([[1.0, 0.0], [-1.0, 0.0]])
    return replace(base, dynamics=dynamics, starts=starts, goals=goals)


def _open_loop(sc: SwarmScenario, steps: int, seed: int = 0) -> np.ndarray:
    """(steps, 1, N, 2) piecewise-constant random commands within the agents' limits."""
    rng = np.random.default_rng(seed)
    u = np.empty((steps, 1, sc.num_agents, 2))
    for k in range(0, steps, 10):
        if sc.dynamics == "unicycle":
            u[k:k + 10, ..., 0] = rng.uniform(-0.3, 0.8, (1, sc.num_agents))
            u[k:k + 10, ..., 1] = rng.uniform(-1.5, 1.5, (1, sc.num_agents))
        else:
            u[k:k + 10] = rng.uniform(-0.7, 0.7, (1, sc.num_agents, 2))
    return u


def _angle_error(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs((a - b + np.pi) % (2 * np.pi) - np.pi)


def test_mjcf_has_the_required_pieces() -> None:
    xml = build_swarm_mjcf(_scenario("moving_obstacles"))
    assert '<quality shadowsize="0"/>' in xml and 'integrator="implicitfast"' in xml
    assert xml.count('type="slide"') == 2 * 8 and xml.count('type="hinge"') == 8
    assert xml.count("<velocity ") == 3 * 8 and xml.count('mocap="true"') == 3
    assert 'projection="orthographic"' in xml


@pytest.mark.parametrize("dynamics", ["single_integrator", "unicycle"])
def test_open_loop_agrees_with_swarm_env(dynamics: str) -> None:
    # Spread 4 agents far apart so random commands never make them touch (pure kinematics).
    sc = replace(_scenario("circle_swap", 4), dynamics=dynamics)
    env, sim = KinematicSwarm([sc]), MujocoSwarm(sc)
    for u in _open_loop(sc, 60):
        a, b = env.step(u), sim.step(u)
        assert not b.agent_collision.any()
    assert np.abs(a.state.positions - b.state.positions).max() < AGREE_M
    assert abs(a.state.time - b.state.time) < 1e-9
    if dynamics == "unicycle":
        assert _angle_error(a.state.headings, b.state.headings).max() < 0.02
    # The simulator's velocities are the commanded ones once the actuators settled.
    np.testing.assert_allclose(b.state.velocities, a.state.velocities, atol=0.01)


@pytest.mark.parametrize("name", ["circle_swap", "circle_swap_unicycle"])
def test_closed_loop_with_controller_agrees_for_five_seconds(name: str) -> None:
    sc = _scenario(name, 6)
    controller, alpha = SwarmController.for_scenario(sc), FixedAlpha(1.0)
    env, sim = KinematicSwarm([sc]), MujocoSwarm(sc)
    s_env, s_sim = env.state, sim.state
    worst = 0.0
    for _ in range(int(round(5.0 / sc.control_dt_s))):
        s_env = env.step(controller.act(s_env, alpha(s_env)).u).state
        step = sim.step(controller.act(s_sim, alpha(s_sim)).u)
        s_sim = step.state
        worst = max(worst, float(np.abs(s_env.positions - s_sim.positions).max()))
        assert not step.agent_collision.any()
    assert worst < AGREE_M, worst
    assert abs(s_sim.time - 5.0) < 1e-9
    # The team actually moved (an agreement of two stationary teams would prove nothing).
    assert np.linalg.norm(s_sim.positions[0] - sc.starts[:, :2], axis=1).min() > 1.0


@pytest.mark.parametrize("dynamics", ["single_integrator", "unicycle"])
def test_agents_driven_into_each_other_collide(dynamics: str) -> None:
    sc = _two_agents(dynamics)
    sim = MujocoSwarm(sc)
    u = np.array([[[1.0, 0.0], [-1.0, 0.0]]]) if dynamics == "single_integrator" else np.array([[[1.0, 0.0], [1.0, 0.0]]])
    hits = []
    for _ in range(40):
        step = sim.step(u)
        hits.append(bool(step.agent_collision.all()))
        a_ov, _, _, _ = sim.overlap()
        assert step.agent_collision[0].tolist() == a_ov.tolist()  # contact list and geometry agree
    # Closing at 2 m/s over 1.6 m of free gap: contact after ~0.8 s, then they keep pushing.
    first = hits.index(True)
    assert 14 <= first <= 18 and all(hits[first:])
    # Physical contact: they are stopped near touching distance, not passed through each other.
    x = sim.positions[:, 0]
    assert x[0] < x[1] and 2 * sc.agent_radius_m - 0.05 < x[1] - x[0] <= 2 * sc.agent_radius_m
    assert step.min_agent_distance[0] < 2 * sc.agent_radius_m


def test_agent_driven_into_an_obstacle_collides() -> None:
    sc = replace(_two_agents(), static_obstacles=np.array([[0.0, -1.0, 0.3]]))
    sim = MujocoSwarm(sc)
    hit = False
    for _ in range(40):
        step = sim.step(np.array([[[1.0, -1.0], [0.0, 0.0]]]))
        hit |= bool(step.obstacle_collision[0, 0])
        assert not step.obstacle_collision[0, 1]
    assert hit
    gap = np.linalg.norm(sim.positions[0] - [0.0, -1.0]) - 0.3 - sc.agent_radius_m
    assert -0.05 < gap < 0.0


def test_moving_obstacle_follows_its_trajectory() -> None:
    sc = _scenario("moving_obstacles")
    sim = MujocoSwarm(sc)
    n_static = len(sc.static_obstacles)
    for _ in range(60):  # 3 s: long enough to see them move
        step = sim.step(np.zeros((1, sc.num_agents, 2)))
    for k, ob in enumerate(sc.moving_obstacles):
        expected, velocity = ob.position_velocity(sim.time)
        body = sim.data.body(f"moving_{k}")
        np.testing.assert_allclose(body.xpos[:2], expected, atol=1e-9)
        np.testing.assert_allclose(step.state.obstacle_positions[0, n_static + k], expected, atol=1e-9)
        np.testing.assert_allclose(step.state.obstacle_velocities[0, n_static + k], velocity)
        assert np.linalg.norm(expected - np.asarray(ob.start)) > 0.5


def test_moving_obstacle_pushes_a_parked_agent() -> None:
    ob = MovingObstacle(start=(-2.0, 0.0), end=(2.0, 0.0), radius=0.3, speed_m_s=0.5)
    sc = replace(_two_agents(), starts=np.array([[0.0, 0.0, 0.0], [0.0, 3.0, 0.0]]),
                 goals=np.array([[0.0, 0.0], [0.0, 3.0]]), moving_obstacles=(ob,))
    sim = MujocoSwarm(sc)
    collided = False
    for _ in range(120):  # contact after ~3 s (1.5 m of gap at 0.5 m/s)
        collided |= bool(sim.step(np.zeros((1, 2, 2))).obstacle_collision[0, 0])
    assert collided
    assert sim.positions[0, 0] > 0.3  # shoved along +x by the obstacle (velocity control holds it only softly)


def test_state_matches_swarm_state_conventions() -> None:
    sc = _scenario("circle_swap_unicycle", 5)
    sim = MujocoSwarm(sc)
    s = sim.state
    assert s.positions.shape == (1, 5, 2) and s.headings.shape == (1, 5) and s.active.all()
    np.testing.assert_allclose(s.positions[0], sc.starts[:, :2])
    np.testing.assert_allclose(s.headings[0], sc.starts[:, 2])
    for _ in range(10):
        sim.step(np.array([[[0.0, 3.0]] * 5]))  # spin: headings stay wrapped to [-pi, pi)
    assert np.all(np.abs(sim.state.headings) <= np.pi)
    sim.reset()
    np.testing.assert_allclose(sim.state.positions[0], sc.starts[:, :2])
    assert sim.time == 0.0


def test_non_finite_commands_stop_the_agent() -> None:
    sc = _two_agents()
    sim = MujocoSwarm(sc)
    sim.step(np.array([[[np.nan, np.inf], [0.0, 0.0]]]))
    np.testing.assert_allclose(sim.positions, sc.starts[:, :2], atol=1e-6)


def test_divergence_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # MuJoCo writes MUJOCO_LOG.TXT into the working directory on warnings
    sim = MujocoSwarm(_two_agents())
    sim.data.qvel[0] = np.inf
    with pytest.raises(SimulationDiverged, match="diverged"):
        sim.step(np.zeros((1, 2, 2)))


def test_render_topdown_shows_the_agents() -> None:
    sc = _scenario("moving_obstacles")
    sim = MujocoSwarm(sc)
    frame = sim.render_topdown(240, 200)
    assert frame.shape == (200, 240, 3) and frame.dtype == np.uint8
    assert frame.std() > 5  # not a blank image
    sim.close()
