"""The navigation stack for one robot, robot-agnostic: sensed data in, command out.

:class:`PlanningStage` (perception -> goal sequencing -> global planning) and the
control stage (path tracking -> CBF safety filter) are what the ROS 2 planner,
controller and safety-filter nodes wrap, and what :class:`NavigationStack` chains for
the in-process runner. Nothing here knows whether the robot is simulated.
"""
from __future__ import annotations

import time
from collections import defaultdict

import numpy as np

from navkit.common.sensor_data import LaserScan, Odometry, VelocityCommand
from navkit.control.cbf_filter import CbfSafetyFilter, FilterResult
from navkit.control.pure_pursuit import PurePursuit
from navkit.perception.scan_obstacles import scan_to_world_points
from navkit.planning.global_planner import GlobalPlanner, GlobalPlannerConfig, NoPathFound
from navkit.planning.goal_sequencer import GoalSequencer, GoalSequencerConfig
from navkit.planning.occupancy_grid import OccupancyGrid
from navkit.runner.stack_config import PlannerNodeConfig, StackConfig
from navkit.sim.scenario import Scenario


def planner_grid(scenario: Scenario, resolution_m: float) -> OccupancyGrid:
    """The planner's static map: only obstacles marked ``mapped`` (the rest it must see)."""
    boxes = [(*b.center, *b.size, b.yaw) for b in scenario.boxes if b.mapped]
    circles = [(*c.center, c.radius) for c in scenario.cylinders if c.mapped]
    return OccupancyGrid.from_shapes(scenario.bounds, boxes, circles, resolution_m)


class PlanningStage:
    """Lidar hits -> obstacle layer; goal sequence; (re)plan when needed or blocked."""

    def __init__(self, scenario: Scenario, node: PlannerNodeConfig, planner: GlobalPlannerConfig) -> None:
        self.node = node
        self.planner = GlobalPlanner(planner, planner_grid(scenario, planner.resolution_m))
        self.goals = GoalSequencer(scenario.goals, GoalSequencerConfig(goal_tolerance_m=scenario.goal_tolerance_m))
        self.path: np.ndarray | None = None
        self.plans: list[np.ndarray] = []
        self.replans = 0
        self.plan_failures = 0
        self._next_check = 0.0

    def observe(self, scan: LaserScan, odom: Odometry) -> None:
        if odom.is_finite():
            self.planner.observe(scan_to_world_points(scan, odom.pose, max_range_m=self.node.observe_range_m))

    def update(self, now: float, odom: Odometry) -> bool:
        """Advance goals and replan if due; True when ``path`` changed."""
        if not odom.is_finite():
            return False
        changed = False
        if self.goals.update((odom.pose.x, odom.pose.y)) or self.goals.done:
            changed = self.path is not None
            self.path = None
        if self.goals.done:
            return changed
        if self.path is None or now >= self._next_check:
            blocked = self.path is not None and self.planner.path_blocked(self.path, (odom.pose.x, odom.pose.y))
            if self.path is None or blocked:
                self._replan(odom)
                changed = True
            self._next_check = now + 1.0 / self.node.rate_hz
        return changed

    def _replan(self, odom: Odometry) -> None:
        goal = self.goals.current()
        try:
            self.path = self.planner.plan(odom.pose, goal)
            self.plans.append(self.path)
            self.replans += 1
        except NoPathFound:
            # What the lidar marked may have closed every route; forget it once (obstacles
            # move) and try again at the next check rather than driving blind.
            self.planner.grid.clear_dynamic()
            self.plan_failures += 1
            self.path = None


class NavigationStack:
    """Planning stage + path tracker + safety filter, timed per stage."""

    def __init__(self, scenario: Scenario, config: StackConfig) -> None:
        self.config = config
        self.planning = PlanningStage(scenario, config.planner, config.global_planner)
        self.tracker = PurePursuit(config.pure_pursuit)
        self.filter = CbfSafetyFilter(config.cbf)
        self.stage_time: dict[str, list[float]] = defaultdict(list)

    def timed(self, stage: str, t0: float) -> float:
        t1 = time.perf_counter()
        self.stage_time[stage].append(t1 - t0)
        return t1

    def tick(self, now: float, odom: Odometry, scan: LaserScan | None, new_scan: bool) -> FilterResult:
        """One control period; the result's ``command`` goes to the robot."""
        t = time.perf_counter()
        if new_scan and scan is not None:
            self.planning.observe(scan, odom)
        t = self.timed("perception", t)
        if self.planning.update(now, odom):
            self.tracker.reset()
        t = self.timed("planning", t)
        path = self.planning.path
        v, w = (0.0, 0.0) if path is None or not odom.is_finite() else self.tracker.compute(odom.pose, path)
        t = self.timed("control", t)
        result = self.filter.filter(VelocityCommand(now, v, w), scan, now)
        self.timed("safety_filter", t)
        return result
