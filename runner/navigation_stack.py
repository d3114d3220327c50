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

from navkit.common.errors import ParameterError
from navkit.common.sensor_data import LaserScan, Odometry, Pose2D, VelocityCommand
from navkit.control.cbf_filter import CbfSafetyFilter, FilterResult
from navkit.control.pure_pursuit import PurePursuit
from navkit.perception.scan_localizer import ScanLocalizer, ScanLocalizerConfig
from navkit.perception.scan_obstacles import scan_to_world_points
from navkit.planning.global_planner import GlobalPlanner, GlobalPlannerConfig, NoPathFound
from navkit.planning.goal_sequencer import GoalSequencer, GoalSequencerConfig
from navkit.planning.occupancy_grid import OccupancyGrid
from navkit.runner.stack_config import PlannerNodeConfig, StackConfig
from navkit.sim.scenario import Scenario


KNOWN_OBSTACLE_M = 0.1
"""Lidar hits closer than this to a mapped obstacle are that obstacle, not a new one."""
MAX_GRID_CELLS = 25_000_000
"""Largest planning grid (a few float layers of it must fit in memory and A* must finish)."""
SCAN_INVALID_FRACTION = 0.5
"""Planning and localisation use a scan while at most half its rays are invalid readings."""
WALL_BORDER_M = 0.3
"""Map margin outside the walls, so walls are mapped shapes the localiser can match."""


def planner_grid(scenario: Scenario, resolution_m: float) -> OccupancyGrid:
    """The robot's static map: only obstacles marked ``mapped`` (the rest it must see).

    Walls are drawn as boxes inside a slightly larger grid: the planner keeps out of
    them either way, and the scan localiser needs them in the map to match against.
    """
    boxes = [(*b.center, *b.size, b.yaw) for b in scenario.boxes if b.mapped]
    circles = [(*c.center, c.radius) for c in scenario.cylinders if c.mapped]
    bounds = scenario.bounds
    if scenario.walls:
        xmin, ymin, xmax, ymax = bounds
        t, cx, cy = WALL_BORDER_M, (xmin + xmax) / 2.0, (ymin + ymax) / 2.0
        w, h = xmax - xmin + 2 * t, ymax - ymin + 2 * t
        boxes += [(cx, ymin - t / 2, w, t, 0.0), (cx, ymax + t / 2, w, t, 0.0),
                  (xmin - t / 2, cy, t, h, 0.0), (xmax + t / 2, cy, t, h, 0.0)]
        bounds = (xmin - t, ymin - t, xmax + t, ymax + t)
    return OccupancyGrid.from_shapes(bounds, boxes, circles, resolution_m)


class PlanningStage:
    """Localise on the map; lidar hits -> obstacle layer; goal sequence; (re)plan.

    Planning happens in the map frame; the path goes out in the odom frame
    (:meth:`path_in_odom`), so the tracker can follow it on raw odometry between
    localisation updates, exactly as a ROS 2 controller does with a map -> odom TF.
    """

    def __init__(self, scenario: Scenario, node: PlannerNodeConfig, planner: GlobalPlannerConfig,
                 localizer: ScanLocalizerConfig | None = None) -> None:
        self.node = node
        xmin, ymin, xmax, ymax = scenario.bounds
        cells = ((xmax - xmin) / planner.resolution_m + 1) * ((ymax - ymin) / planner.resolution_m + 1)
        if cells > MAX_GRID_CELLS:
            raise ParameterError("global_planner", "resolution_m",
                                 f"{planner.resolution_m:g} m cells over the {xmax - xmin:g} x {ymax - ymin:g} m map "
                                 f"make {cells:,.0f} cells (limit {MAX_GRID_CELLS:,}): choose a coarser resolution")
        grid = planner_grid(scenario, planner.resolution_m)
        self.localizer = ScanLocalizer(grid, localizer) if node.localize else None
        self.planner = GlobalPlanner(planner, grid)
        self.goals = GoalSequencer(scenario.goals, GoalSequencerConfig(goal_tolerance_m=scenario.goal_tolerance_m))
        self.path: np.ndarray | None = None
        self.plans: list[np.ndarray] = []
        self.replans = 0
        self.plan_failures = 0
        self._next_check = 0.0
        self._odom_path_key: tuple | None = None
        self._odom_path: np.ndarray | None = None

    def map_pose(self, odom: Odometry) -> Pose2D:
        """Where the robot believes it is on the map (odometry + scan-match correction)."""
        return self.localizer.map_pose(odom.pose) if self.localizer is not None else odom.pose

    def path_in_odom(self) -> np.ndarray | None:
        """The current path in the odom frame (recomputed only when path or correction change)."""
        if self.path is None or self.localizer is None:
            return self.path
        key = (id(self.path), self.localizer.correction)
        if key != self._odom_path_key:
            self._odom_path_key = key
            self._odom_path = self.localizer.map_to_odom_points(self.path)
        return self._odom_path

    def observe(self, scan: LaserScan, odom: Odometry) -> None:
        """Correct the map -> odom estimate with this scan, then mark its hits on the map.

        A scan that cannot show obstacles (see :meth:`LaserScan.problem`) is skipped: the
        localiser must not match garbage and the map must not learn from it.
        """
        if not odom.is_finite() or scan.problem(SCAN_INVALID_FRACTION) is not None:
            return
        if self.localizer is not None:
            self.localizer.update(scan, odom.pose)
        points = scan_to_world_points(scan, self.map_pose(odom), max_range_m=self.node.observe_range_m)
        if self.localizer is not None and len(points):
            # Hits on mapped shelves and walls are known already; marking them (jittered by
            # noise) would only churn the obstacle layer and its clearance field. Keep what
            # the map lacks.
            distance, _, on_map = self.localizer.query(points)
            points = points[~on_map | (distance > KNOWN_OBSTACLE_M)]
        self.planner.observe(points)

    def update(self, now: float, odom: Odometry) -> bool:
        """Advance goals and replan if due; True when ``path`` changed."""
        if not odom.is_finite():
            return False
        changed = False
        pose = self.map_pose(odom)
        if self.goals.update((pose.x, pose.y)) or self.goals.done:
            changed = self.path is not None
            self.path = None
        if self.goals.done:
            return changed
        if self.path is None or now >= self._next_check:
            blocked = self.path is not None and self.planner.path_blocked(self.path, (pose.x, pose.y))
            if self.path is None or blocked:
                self._replan(pose)
                changed = True
            self._next_check = now + 1.0 / self.node.rate_hz
        return changed

    def _replan(self, pose: Pose2D) -> None:
        goal = self.goals.current()
        try:
            self.path = self.planner.plan(pose, goal)
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
        self.planning = PlanningStage(scenario, config.planner, config.global_planner, config.localizer)
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
        path = self.planning.path_in_odom()
        v, w = (0.0, 0.0) if path is None or not odom.is_finite() else self.tracker.compute(odom.pose, path)
        t = self.timed("control", t)
        result = self.filter.filter(VelocityCommand(now, v, w), scan, now)
        self.timed("safety_filter", t)
        return result
