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
