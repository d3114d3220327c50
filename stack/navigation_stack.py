"""The navigation stack of one robot, assembled from plugins: observation in, safe command out.

:class:`NavigationStack` chains the planning stage (localisation, obstacle marking, goal
sequencing, global planning), the local controller and the safety filter, each chosen
by name in the parameter file and built through the plugin registry. The in-process
episode calls :meth:`NavigationStack.tick` every control period; the ROS 2 planner,
controller and safety-filter nodes build the same parts one per process. Nothing here
knows whether the robot is simulated: the map arrives through a map source.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from navkit.common.interfaces import CommandObserver, FilterResult, LocalController, MapSource, SafetyFilter
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
        self._command_observer = self.controller if isinstance(self.controller, CommandObserver) else None
        """The controller, when it wants to hear the filtered command (decided once: a Protocol check per tick
        costs ~9 µs)."""
        self.filter: SafetyFilter = registry.build(config.safety_filter)
        self.timer = StageTimer()
        self._last_scan: LaserScan | None = None
        self._goal_image: np.ndarray | None = None

    @property
    def goal_image(self) -> np.ndarray | None:
        """The goal image every control target carries (None: none set)."""
        return self._goal_image

    def set_goal_image(self, image: np.ndarray | None) -> None:
        """Give the local controller a goal image (H, W, 3) uint8, e.g. the camera view from a station, that a
        goal-image controller (``world_model_mpc``) drives to; None takes it away (such a controller then stops).

        The image is copied and frozen, so the caller reusing its buffer cannot change the goal behind the
        controller's back. Path controllers ignore it: the target's path and goal stay the planner's."""
        if image is None:
            self._goal_image = None
            return
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 \
                or 0 in image.shape:
            got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
            raise ValueError(f"goal_image: expected a uint8 RGB image (H, W, 3), got {got}")
        frozen = np.array(image, copy=True)
        frozen.flags.writeable = False
        self._goal_image = frozen

    def control_target(self) -> ControlTarget:
        """What the local controller is asked to reach now: the planner's path (and its end as the goal), plus
        the goal image when one is set."""
        target = ControlTarget.along(self.planning.path_in_odom())
        if self._goal_image is not None:
            target = dataclasses.replace(target, goal_image=self._goal_image)
        return target

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
        command = self.controller.compute(observation, self.control_target())
        t = self.timer.lap("control", t)
        # Every controller's command, the world model's included, reaches the robot only through the filter.
        result = self.filter.filter(command, observation, now)
        if self._command_observer is not None:  # what was executed, not what was wished
            self._command_observer.observe_command(result.command)
        self.timer.lap("safety_filter", t)
        return result
