"""Visits a fixed sequence of goals in order, one at a time."""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class GoalSequencerConfig:
    """Parameters of :class:`GoalSequencer`."""

    goal_tolerance_m: float = 0.25
    """A goal counts as reached within this distance; below the tracker's accuracy it would never trigger."""

    def __post_init__(self) -> None:
        value = self.goal_tolerance_m
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise ValueError(f"goal_tolerance_m: must be a positive finite number, got {value!r}")


class GoalSequencer:
    """Tracks which goal is current; advances when the robot comes within tolerance of it."""

    def __init__(self, goals: Sequence[tuple[float, float]], config: GoalSequencerConfig | None = None) -> None:
        self.config = config if config is not None else GoalSequencerConfig()
        self.goals: list[tuple[float, float]] = []
        for i, goal in enumerate(goals):
            if len(goal) != 2 or not all(math.isfinite(float(v)) for v in goal):
                raise ValueError(f"goals[{i}]: expected a finite (x, y), got {goal!r}")
            self.goals.append((float(goal[0]), float(goal[1])))
        self.reached: list[int] = []
        self._index = 0

    @property
    def index(self) -> int:
        """Index of the current goal (== len(goals) once done)."""
        return self._index

    @property
    def done(self) -> bool:
        return self._index >= len(self.goals)

    def current(self) -> tuple[float, float] | None:
        """The goal to drive to now, or None when every goal has been reached."""
        return None if self.done else self.goals[self._index]

    def update(self, robot_xy: Sequence[float] | np.ndarray) -> bool:
        """True exactly when this call found the current goal reached (and moved on to the next)."""
        goal = self.current()
        if goal is None:
            return False
        x, y = float(robot_xy[0]), float(robot_xy[1])
        if math.hypot(x - goal[0], y - goal[1]) > self.config.goal_tolerance_m:
            return False
        self.reached.append(self._index)
        self._index += 1
        return True
