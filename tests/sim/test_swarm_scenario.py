"""Swarm scenario files: every shipped one expands; seeds, resizing and errors behave."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from navkit.sim.scenario import ScenarioError
from navkit.sim.swarm_scenario import MovingObstacle, is_swarm_scenario, load_swarm_scenario

MULTI = Path(__file__).resolve().parents[2] / "scenarios" / "multi"
BASE = """\
name: t
kind: swarm
bounds: [-5, -5, 5, 5]
agents: {count: 4, radius_m: 0.2, layout: {type: circle, radius_m: 3.0}}
"""


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "s.yaml"
    p.write_text(text)
    return p


@pytest.mark.parametrize("path", sorted(MULTI.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_swarm_scenarios_expand(path: Path) -> None:
    assert is_swarm_scenario(path)
    spec = load_swarm_scenario(path)
    a, b, again = spec.expand(seed=1), spec.expand(seed=2), spec.expand(seed=1)
    assert a.starts.shape == (a.num_agents, 3) and a.goals.shape == (a.num_agents, 2)
    np.testing.assert_array_equal(a.starts, again.starts)  # a seed is a scenario
    assert not np.array_equal(a.starts, b.starts)  # and another seed is another one
    # Starts and goals never overlap each other.
    d = np.linalg.norm(a.starts[:, None, :2] - a.starts[None, :, :2], axis=2) + np.eye(a.num_agents) * 9
    assert d.min() >= 2 * a.agent_radius_m


def test_single_robot_scenario_is_not_a_swarm() -> None:
    assert not is_swarm_scenario(MULTI.parents[0] / "warehouse_demo.yaml")


def test_circle_goals_are_antipodal_and_resizable(tmp_path: Path) -> None:
    spec = load_swarm_scenario(_write(tmp_path, BASE.replace("layout: {type: circle, radius_m: 3.0}",
                                                           "layout: {type: circle, radius_m: 3.0, jitter_m: 0.0}")))
    sc = spec.expand(num_agents=12)
    assert sc.num_agents == 12
    np.testing.assert_allclose(sc.goals, -sc.starts[:, :2], atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(sc.starts[:, :2], axis=1), 3.0)


@pytest.mark.parametrize("change, field", [
    ("dynamics: hovercraft\n", "dynamics"),
    ("agents: {count: 4, layout: {type: spiral}}\n", "agents.layout.type"),
    ("agents: {count: 40, radius_m: 0.3, layout: {type: circle, radius_m: 1.0}}\n", "agents.layout"),
    ("colour: red\n", "colour"),
    ("obstacles: [{center: [3.0, 0.0], radius: 0.5}]\n", "agents.layout"),
])
def test_bad_swarm_scenarios_name_the_field(tmp_path: Path, change: str, field: str) -> None:
    text = BASE
    key = change.split(":")[0]
    if key in ("agents",):
        text = "\n".join(l for l in BASE.splitlines() if not l.startswith("agents")) + "\n"
    with pytest.raises(ScenarioError) as err:
        load_swarm_scenario(_write(tmp_path, text + change))
    assert err.value.field == field
    assert "s.yaml" in str(err.value)


def test_missing_bounds_and_file() -> None:
    with pytest.raises(ScenarioError, match="not found"):
        load_swarm_scenario("nope.yaml")


def test_moving_obstacle_shuttles_at_constant_speed() -> None:
    ob = MovingObstacle(start=(0.0, 0.0), end=(2.0, 0.0), radius=0.3, speed_m_s=0.5)
    p, v = ob.position_velocity(1.0)
    np.testing.assert_allclose(p, [0.5, 0.0])
    np.testing.assert_allclose(v, [0.5, 0.0])
    p, v = ob.position_velocity(5.0)  # 4 s out, 1 s back
    np.testing.assert_allclose(p, [1.5, 0.0])
    np.testing.assert_allclose(v, [-0.5, 0.0])


@pytest.mark.parametrize("change, field, problem", [
    ("control_dt_s: 1000000.0\n", "control_dt_s", "<= 0.5"),
    ("control_dt_s: 0.0\n", "control_dt_s", ">= 0.001"),
    ("random_obstacles: {count: 10000000, region: [-1, -1, 1, 1]}\n", "random_obstacles.count", "<= 2,000"),
    ("goal_tolerance_m: 1000000.0\n", "goal_tolerance_m", "<= 2"),
    ("seed: -1\n", "seed", ">= 0"),
    ("time_limit_s: 1.0e+300\n", "time_limit_s", "<= 3600"),
    ("bollard_walls: [{from: [-900, 2], to: [900, 2], spacing_m: 0.01}]\n", "bollard_walls[0].spacing_m", "limit"),
])
def test_swarm_bounds_name_field_and_bound(tmp_path: Path, change: str, field: str, problem: str) -> None:
    """Issue 6: each of these hung, exhausted memory or was silently accepted."""
    with pytest.raises(ScenarioError) as err:
        load_swarm_scenario(_write(tmp_path, BASE + change))
    assert err.value.field == field
    assert problem in err.value.problem


def test_too_many_agents_is_refused_with_the_bound(tmp_path: Path) -> None:
    spec = load_swarm_scenario(_write(tmp_path, BASE))
    with pytest.raises(ScenarioError, match="1024"):
        spec.expand(num_agents=100_000)


def test_an_unreadable_file_is_an_error_not_a_single_robot_scenario(tmp_path: Path) -> None:
    """Issue 6 (9): is_swarm_scenario used to answer False for a file it could not read."""
    path = tmp_path / "utf16.yaml"
    path.write_bytes("kind: swarm\n".encode("utf-16"))
    with pytest.raises(ScenarioError, match="UTF-16"):
        is_swarm_scenario(path)
    with pytest.raises(ScenarioError, match="not found"):
        is_swarm_scenario(tmp_path / "missing.yaml")


def test_a_circle_with_spacing_grows_with_the_team_and_resized_bounds_follow() -> None:
    spec = load_swarm_scenario(MULTI / "circle_swap.yaml")
    small, big = spec.expand(seed=0, num_agents=8), spec.expand(seed=0, num_agents=64)
    assert np.linalg.norm(small.starts[0, :2]) < 3.3  # the file's 3 m circle holds 8 robots 1.2 m apart
    assert np.linalg.norm(big.starts[:, :2], axis=1).min() > 64 * 1.2 / (2 * np.pi) - 0.3
    pts = np.concatenate([big.starts[:, :2], big.goals])
    assert big.bounds[0] < pts[:, 0].min() and big.bounds[2] > pts[:, 0].max()
    assert big.priorities is not None and big.priorities.shape == (64,)
    assert len(set(np.round(big.priorities, 9))) == 64  # distinct tokens: ties are broken


@pytest.mark.parametrize("name", ["moving_obstacles", "narrow_passage", "posts"])
def test_a_transformed_scene_moves_everything_together(name: str) -> None:
    sc = load_swarm_scenario(MULTI / f"{name}.yaml").expand(seed=4)
    angle, shift = 1.1, np.array([7.0, -3.0])
    t = sc.transformed(angle, (7.0, -3.0))
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    np.testing.assert_allclose(t.starts[:, :2], sc.starts[:, :2] @ rot.T + shift, atol=1e-12)
    np.testing.assert_allclose(t.goals, sc.goals @ rot.T + shift, atol=1e-12)
    np.testing.assert_allclose(np.cos(t.starts[:, 2] - sc.starts[:, 2]), np.cos(angle), atol=1e-12)
    for time_s in (0.0, 3.3, 17.0):
        p0, r0, v0 = sc.obstacles_at(time_s)
        p1, r1, v1 = t.obstacles_at(time_s)
        np.testing.assert_allclose(p1, p0 @ rot.T + shift, atol=1e-9)
        np.testing.assert_allclose(v1, v0 @ rot.T, atol=1e-9)
        np.testing.assert_array_equal(r1, r0)
    pts = np.concatenate([t.starts[:, :2], t.goals])
    assert (pts >= np.array(t.bounds[:2])).all() and (pts <= np.array(t.bounds[2:])).all()
    np.testing.assert_array_equal(t.priorities, sc.priorities)


def test_at_rate_changes_the_control_period_within_bounds() -> None:
    sc = load_swarm_scenario(MULTI / "crossing.yaml").expand(seed=0)
    assert sc.at_rate(10).control_dt_s == pytest.approx(0.1) and sc.at_rate(50).control_dt_s == pytest.approx(0.02)
    with pytest.raises(ValueError, match="rate_hz"):
        sc.at_rate(1.0)


def test_moving_obstacle_velocity_is_what_a_robot_senses() -> None:
    """Sensed velocity = displacement over the last control period (a tracker), not the true one."""
    sc = load_swarm_scenario(MULTI / "moving_obstacles.yaml").expand(seed=0)
    k = len(sc.static_obstacles)
    ob = sc.moving_obstacles[0]
    period = 2 * np.linalg.norm(np.subtract(ob.end, ob.start)) / ob.speed_m_s
    t_turn = period / 2  # the obstacle reverses here
    _, _, sensed = sc.obstacles_at(t_turn + 0.5 * sc.control_dt_s)
    _, _, true = sc.obstacles_at(t_turn + 0.5 * sc.control_dt_s, sensed=False)
    assert np.dot(sensed[k], true[k]) < np.dot(true[k], true[k])  # the reversal shows up a period late
    _, _, steady = sc.obstacles_at(1.0)
    np.testing.assert_allclose(steady[k], sc.obstacles_at(1.0, sensed=False)[2][k], atol=1e-9)
    assert sc.obstacles_at(0.0)[2][k].tolist() == [0.0, 0.0]  # nothing seen before the first period
