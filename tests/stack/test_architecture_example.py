"""docs/ARCHITECTURE.md's "add a local controller" walk-through, run as written.

The python block of that section is executed, its plugin registered in a fresh registry,
selected by name in a parameter file, and driven through a real in-process episode:
if the document's code or the plugin machinery drift apart, this fails.
"""
from __future__ import annotations

import re
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from navkit.common.errors import ParameterError
from navkit.common.plugins import PluginRegistry
from navkit.learning.navigation_episode import NavigationEpisode
from navkit.sim.mujoco_backend import MujocoRobot
from navkit.sim.scenario import load_scenario
from navkit.stack.config import DEFAULT_PARAMS_FILE, load_stack_config
from navkit.stack.navigation_stack import NavigationStack
from navkit.stack.plugin_catalog import default_registry

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "ARCHITECTURE.md"


def _example_namespace() -> dict[str, Any]:
    section = DOC.read_text().split("## Add a local controller", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None, "the walk-through lost its code block"
    module = types.ModuleType("architecture_example")
    sys.modules[module.__name__] = module  # dataclasses look their module up while the class is built
    try:
        exec(compile(code.group(1), str(DOC), "exec"), module.__dict__)
    finally:
        del sys.modules[module.__name__]
    return module.__dict__


def _registry_with_example() -> PluginRegistry:
    registry = default_registry()
    registry.register(_example_namespace()["PLUGIN"])
    return registry


def test_the_documented_controller_is_chosen_by_name_and_drives(tmp_path: Path) -> None:
    registry = _registry_with_example()
    params = tmp_path / "params.yaml"
    params.write_text(DEFAULT_PARAMS_FILE.read_text().replace("plugin: pure_pursuit", "plugin: straight_line")
                      .replace("      lookahead_m: 0.6\n      v_max: 0.7\n      omega_max: 1.5\n", "      speed: 0.3\n"))
    config = load_stack_config(params, registry=registry)
    assert config.local_controller.name == "straight_line" and config.local_controller.config.speed == 0.3
    scenario = load_scenario(REPO / "scenarios" / "short_aisle.yaml")
    robot = MujocoRobot(scenario)
    try:
        stack = NavigationStack(config, goals=scenario.goals, goal_tolerance_m=scenario.goal_tolerance_m,
                                scenario=scenario, registry=registry)
        assert type(stack.controller).__name__ == "StraightLine"
        episode = NavigationEpisode(scenario, config, robot, stack=stack, time_limit_s=15.0)
        episode.reset()
        start = robot.true_pose()
        goal = scenario.goals[0]
        while not (step := episode.step()).truncated and not step.terminated:
            pass
        end = robot.true_pose()
        metrics = episode.summary()
    finally:
        robot.close()
    before = ((start.x - goal[0]) ** 2 + (start.y - goal[1]) ** 2) ** 0.5
    after = ((end.x - goal[0]) ** 2 + (end.y - goal[1]) ** 2) ** 0.5
    assert after < before - 2.0, (before, after)  # it drove towards the goal
    assert metrics["collisions"] == 0
    assert sum(metrics["filter_status_counts"].values()) == metrics["control_ticks"]  # every command was filtered


def test_an_unregistered_plugin_name_is_refused_with_the_known_ones(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(DEFAULT_PARAMS_FILE.read_text().replace("plugin: pure_pursuit", "plugin: straight_line"))
    with pytest.raises(ParameterError) as err:
        load_stack_config(params)  # the default registry does not have the example
    assert err.value.field == "local_controller.plugin" and "pure_pursuit" in err.value.problem


def test_the_example_config_rejects_unknown_parameters(tmp_path: Path) -> None:
    registry = _registry_with_example()
    params = tmp_path / "params.yaml"
    params.write_text(DEFAULT_PARAMS_FILE.read_text().replace("plugin: pure_pursuit", "plugin: straight_line"))
    with pytest.raises(ParameterError) as err:  # pure pursuit's lookahead_m is not the example's parameter
        load_stack_config(params, registry=registry)
    assert err.value.field == "local_controller.lookahead_m"
