"""The single-robot navigation task: reward, termination and metrics, apart from any backend.

dm_control's Task/Physics split: the backend steps the world, this judges it. The
in-process episode, the gymnasium env and the ROS 2 robot bridge all feed this task,
so "goals reached" and the reward mean the same thing everywhere: a goal counts when the robot's *true*
position comes within the goal tolerance plus ``JUDGE_SLACK_M``, in order. The slack
exists because the planner decides arrival on its own (localised) estimate at the
exact tolerance; a few centimetres of localisation error must not turn an arrival
into a failure. The monitor also records truth-only safety numbers (contacts,
clearance to the real geometry) that no algorithm ever sees, and how far odometry
alone has drifted.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from navkit.common.sensor_data import Odometry, Pose2D
from navkit.planning.goal_sequencer import GoalSequencer, GoalSequencerConfig
from navkit.sim.scenario import Scenario


JUDGE_SLACK_M = 0.1
"""Extra tolerance when judging arrival from the true pose (see module docstring)."""
SETTLED_SPEED_M_S = 0.02
SETTLE_TIMEOUT_S = 2.0


GOAL_REWARD = 1.0
"""Reward for reaching a goal (sparse part)."""
COLLISION_REWARD = -1.0
"""Reward at the onset of a collision."""
PROGRESS_REWARD_PER_M = 0.1
"""Dense shaping: reward per metre of true progress toward the current goal."""


@dataclass
class NavigationTask:
    """Feed it once per control period; it scores that step (``last_reward``) and the episode (``summary``)."""

    scenario: Scenario
    dt: float
    times: list[float] = field(default_factory=list)
    true_xy: list[tuple[float, float]] = field(default_factory=list)
    odom_xy: list[tuple[float, float]] = field(default_factory=list)
    goal_times: list[float] = field(default_factory=list)
    min_clearance: float = math.inf
    collisions: int = 0
    collision_ticks: int = 0
    path_length: float = 0.0
    odom_drift: float = 0.0
    last_reward: float = 0.0
    """Reward of the latest :meth:`update`: progress x 0.1/m, +1 per goal reached, -1 per collision onset."""
    collided_now: bool = False
    """A collision began at the latest update."""
    _speed: float = 0.0
    _colliding: bool = False
    _goal_distance: float | None = None

    def __post_init__(self) -> None:
        tolerance = self.scenario.goal_tolerance_m + JUDGE_SLACK_M
        self.goals = GoalSequencer(self.scenario.goals, GoalSequencerConfig(goal_tolerance_m=tolerance))

    @property
    def done(self) -> bool:
        """Every goal reached and the robot settled (stopped, or 2 s after the last goal),
        so the final approach is part of the episode rather than cut at the judge's ring."""
        if not self.goals.done:
            return False
        return self._speed < SETTLED_SPEED_M_S or self.times[-1] - self.goal_times[-1] >= SETTLE_TIMEOUT_S

    def update(self, now: float, odom: Odometry, true_pose: Pose2D, colliding: bool) -> None:
        if self.true_xy:
            px, py = self.true_xy[-1]
            self.path_length += math.hypot(true_pose.x - px, true_pose.y - py)
        self.times.append(now)
        self.true_xy.append((true_pose.x, true_pose.y))
        self.odom_xy.append((odom.pose.x, odom.pose.y))
        goal = self.goals.current()
        reward = 0.0
        if goal is not None:
            distance = math.hypot(true_pose.x - goal[0], true_pose.y - goal[1])
            if self._goal_distance is not None:
                reward += PROGRESS_REWARD_PER_M * (self._goal_distance - distance)
            self._goal_distance = distance
        if goal is not None and self.goals.update((true_pose.x, true_pose.y)):
            self.goal_times.append(now)
            reward += GOAL_REWARD
            self._goal_distance = None
        self._speed = abs(odom.v)
        self.odom_drift = math.hypot(true_pose.x - odom.pose.x, true_pose.y - odom.pose.y)
        clearance = float(self.scenario.obstacle_distance(np.array([[true_pose.x, true_pose.y]]))[0])
        self.min_clearance = min(self.min_clearance, clearance - self.scenario.robot.radius_m)
        self.collision_ticks += colliding
        self.collided_now = colliding and not self._colliding
        self.collisions += self.collided_now
        self._colliding = colliding
        self.last_reward = reward + (COLLISION_REWARD if self.collided_now else 0.0)

    def closest_approach(self) -> list[float]:
        """Closest the robot truly came to each goal (what 'arrived' meant physically)."""
        if not self.true_xy:
            return [math.inf] * len(self.scenario.goals)
        xy = np.asarray(self.true_xy)
        return [float(np.min(np.hypot(xy[:, 0] - gx, xy[:, 1] - gy))) for gx, gy in self.scenario.goals]

    def summary(self) -> dict[str, Any]:
        sc = self.scenario
        return {
            "scenario": sc.name,
            "seed": sc.seed,
            "goals_total": len(sc.goals),
            "goals_reached": len(self.goals.reached),
            "success": bool(self.goals.done),
            "goal_times_s": [round(t, 3) for t in self.goal_times],
            "goal_true_error_m": [round(e, 3) for e in self.closest_approach()[: len(self.goals.reached)]],
            "final_odometry_drift_m": round(self.odom_drift, 3),
            "collisions": int(self.collisions),
            "collision_time_s": round(self.collision_ticks * self.dt, 3),
            "min_clearance_m": round(self.min_clearance, 4),
            "path_length_m": round(self.path_length, 3),
            "sim_time_s": round(self.times[-1], 3) if self.times else 0.0,
        }
