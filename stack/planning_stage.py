"""The planning stage of one robot: localise on the map, mark what the map lacks, sequence goals, (re)plan.

What the ROS 2 planner node wraps and what :class:`~navkit.stack.navigation_stack.NavigationStack`
calls in-process. The map comes from a map source and the planner from the registry:
nothing here knows whether the robot or its map are simulated.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from navkit.common.errors import PlanningFailed
from navkit.common.geometry import Pose2D
from navkit.common.interfaces import GlobalPlanner
from navkit.common.occupancy_grid import OccupancyGrid
from navkit.common.sensor_data import LaserScan, Odometry
from navkit.perception.scan_localizer import ScanLocalizer, ScanLocalizerConfig
from navkit.perception.scan_obstacles import scan_to_world_points
from navkit.planning.goal_sequencer import GoalSequencer, GoalSequencerConfig
from navkit.stack.config import PlannerNodeConfig

KNOWN_OBSTACLE_M = 0.1
"""Lidar hits closer than this to a mapped obstacle are that obstacle, not a new one."""
SCAN_INVALID_FRACTION = 0.5
"""Planning and localisation use a scan while at most half its rays are invalid readings."""


class PlanningStage:
    """Localise on the map; lidar hits -> obstacle layer; goal sequence; (re)plan.

    Planning happens in the map frame; the path goes out in the odom frame
    (:meth:`path_in_odom`), so the tracker can follow it on raw odometry between
    localisation updates, exactly as a ROS 2 controller does with a map -> odom TF.
    """

    def __init__(self, node: PlannerNodeConfig, grid: OccupancyGrid, planner: GlobalPlanner,
                 localizer: ScanLocalizerConfig | None, goals: Sequence[tuple[float, float]],
                 goal_tolerance_m: float) -> None:
        """``grid`` is the static map the map source gave (the localiser matches against it,
        the planner plans on it); ``planner`` was built on that same grid."""
        self.node = node
        self.grid = grid
        self.goal_tolerance_m = goal_tolerance_m
        self.localizer = ScanLocalizer(grid, localizer) if node.localize else None
        self.planner = planner
        self.goals = GoalSequencer(goals, GoalSequencerConfig(goal_tolerance_m=goal_tolerance_m))
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

    def set_goal(self, goal: tuple[float, float]) -> None:
        """Replace the goal list with one goal (map frame), as a ``goal_pose`` message does."""
        self.goals = GoalSequencer([goal], GoalSequencerConfig(goal_tolerance_m=self.goal_tolerance_m))
        self.path = None

    def _replan(self, pose: Pose2D) -> None:
        goal = self.goals.current()
        try:
            self.path = self.planner.plan(pose, goal)
            self.plans.append(self.path)
            self.replans += 1
        except PlanningFailed:
            # What the lidar marked may have closed every route; forget it once (obstacles
            # move) and try again at the next check rather than driving blind.
            self.planner.forget_observations()
            self.plan_failures += 1
            self.path = None
