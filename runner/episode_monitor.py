"""Episode metrics, computed the same way in both wirings.

The in-process runner and the ROS 2 robot bridge both feed this monitor, so "goals
reached" means the same thing everywhere: a goal counts when the robot's *odometry*
(what the robot itself believes) comes within tolerance, in order, exactly as the
planner decides it. Because odometry drifts, the monitor also records the *true*
distance to each goal at that moment, plus truth-only safety numbers (contacts,
clearance to the real geometry) that no algorithm ever sees.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from navkit.common.sensor_data import Odometry, Pose2D
from navkit.planning.goal_sequencer import GoalSequencer, GoalSequencerConfig
from navkit.sim.scenario import Scenario


@dataclass
class EpisodeMonitor:
    """Feed it once per control period; ask it for a metrics dict at the end."""

    scenario: Scenario
    dt: float
    times: list[float] = field(default_factory=list)
    true_xy: list[tuple[float, float]] = field(default_factory=list)
    odom_xy: list[tuple[float, float]] = field(default_factory=list)
    goal_times: list[float] = field(default_factory=list)
    goal_true_error: list[float] = field(default_factory=list)
    min_clearance: float = math.inf
    collisions: int = 0
    collision_ticks: int = 0
    path_length: float = 0.0
    _colliding: bool = False

    def __post_init__(self) -> None:
        self.goals = GoalSequencer(self.scenario.goals, GoalSequencerConfig(goal_tolerance_m=self.scenario.goal_tolerance_m))

    @property
    def done(self) -> bool:
        return self.goals.done

    def update(self, now: float, odom: Odometry, true_pose: Pose2D, colliding: bool) -> None:
        if self.true_xy:
            px, py = self.true_xy[-1]
            self.path_length += math.hypot(true_pose.x - px, true_pose.y - py)
        self.times.append(now)
        self.true_xy.append((true_pose.x, true_pose.y))
        self.odom_xy.append((odom.pose.x, odom.pose.y))
        goal = self.goals.current()
        if goal is not None and self.goals.update((odom.pose.x, odom.pose.y)):
            self.goal_times.append(now)
            self.goal_true_error.append(math.hypot(true_pose.x - goal[0], true_pose.y - goal[1]))
        clearance = float(self.scenario.obstacle_distance(np.array([[true_pose.x, true_pose.y]]))[0])
        self.min_clearance = min(self.min_clearance, clearance - self.scenario.robot.radius_m)
        self.collision_ticks += colliding
        self.collisions += colliding and not self._colliding
        self._colliding = colliding

    def summary(self) -> dict[str, Any]:
        sc = self.scenario
        return {
            "scenario": sc.name,
            "seed": sc.seed,
            "goals_total": len(sc.goals),
            "goals_reached": len(self.goals.reached),
            "success": bool(self.goals.done),
            "goal_times_s": [round(t, 3) for t in self.goal_times],
            "goal_true_error_m": [round(e, 3) for e in self.goal_true_error],
            "collisions": int(self.collisions),
            "collision_time_s": round(self.collision_ticks * self.dt, 3),
            "min_clearance_m": round(self.min_clearance, 4),
            "path_length_m": round(self.path_length, 3),
            "sim_time_s": round(self.times[-1], 3) if self.times else 0.0,
        }
