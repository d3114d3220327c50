"""The navigation stack of one robot, assembled from plugins: observation in, safe command out.

:class:`NavigationStack` chains the planning stage (localisation, obstacle marking, goal
sequencing, global planning), the local controller and the safety filter, each chosen
by name in the parameter file and built through the plugin registry. The in-process
episode calls :meth:`NavigationStack.tick` every control period; the ROS 2 planner,
controller and safety-filter nodes build the same parts one per process. Nothing here
knows whether the robot is simulated: the map arrives through a map source.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from navkit.common.interfaces import FilterResult, LocalController, MapSource, SafetyFilter
from navkit.common.observation import ControlTarget, Observation
from navkit.common.occupancy_grid import OccupancyGrid
from navkit.common.plugins import PluginChoice, PluginRegistry
from navkit.common.sensor_data import LaserScan
from navkit.common.timing import StageTimer
from navkit.perception.scan_localizer import ScanLocalizerConfig
from navkit.stack.config import PlannerNodeConfig, StackConfig
from navkit.stack.planning_stage import PlanningStage
from navkit.stack.plugin_catalog import default_registry

STAGES = ("perception", "planning", "control", "safety_filter")
"""What :meth:`NavigationStack.tick` times, in order."""


def build_map_source(choice: PluginChoice, registry: PluginRegistry, resolution_m: float,
                     scenario: Any = None, grid: OccupancyGrid | None = None) -> MapSource:
    """The chosen map source; a ``scenario`` source falls back to the given scenario object, and
    ``grid`` is the map a ``map_topic`` source received."""
    if grid is not None:
        return registry.build(choice, resolution_m=resolution_m, scenario=scenario, grid=grid)
    return registry.build(choice, resolution_m=resolution_m, scenario=scenario)


def build_planning_stage(node: PlannerNodeConfig, map_source: PluginChoice, global_planner: PluginChoice,
                         localizer: ScanLocalizerConfig, registry: PluginRegistry, *,
                         goals: Sequence[tuple[float, float]], goal_tolerance_m: float,
                         scenario: Any = None, map_grid: OccupancyGrid | None = None) -> PlanningStage:
    """Map source -> grid -> planner plugin on that grid -> the planning stage (both wirings use this)."""
    grid = build_map_source(map_source, registry, global_planner.config.resolution_m, scenario, map_grid).load()
    planner = registry.build(global_planner, grid=grid)
    return PlanningStage(node, grid, planner, localizer, goals, goal_tolerance_m)


class NavigationStack:
    """Planning stage + local controller + safety filter, timed per stage."""

    def __init__(self, config: StackConfig, *, goals: Sequence[tuple[float, float]], goal_tolerance_m: float,
                 scenario: Any = None, registry: PluginRegistry | None = None) -> None:
        """``scenario`` is only the fallback of a ``scenario`` map source (simulation)."""
        registry = registry or default_registry()
        self.config = config
        self.planning = build_planning_stage(config.planner, config.map_source, config.global_planner,
                                             config.localizer, registry, goals=goals,
                                             goal_tolerance_m=goal_tolerance_m, scenario=scenario)
        self.controller: LocalController = registry.build(config.local_controller)
        self.filter: SafetyFilter = registry.build(config.safety_filter)
        self.timer = StageTimer()
        self._last_scan: LaserScan | None = None

    def tick(self, observation: Observation) -> FilterResult:
        """One control period; the result's ``command`` goes to the robot."""
        now, odom, scan = observation.stamp, observation.odom, observation.scan
        t = time.perf_counter()
        if scan is not None and scan is not self._last_scan and odom is not None:
            self._last_scan = scan
            self.planning.observe(scan, odom)
        t = self.timer.lap("perception", t)
        if odom is not None and self.planning.update(now, odom):
            self.controller.reset()
        t = self.timer.lap("planning", t)
        command = self.controller.compute(observation, ControlTarget.along(self.planning.path_in_odom()))
        t = self.timer.lap("control", t)
        result = self.filter.filter(command, observation, now)
        self.timer.lap("safety_filter", t)
        return result
