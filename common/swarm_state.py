"""What a multi-robot team looks like at one instant: B scenes x N agents x M obstacles.

One type for the vectorised training environment, the MuJoCo backend and the ROS 2
nodes (B = 1 there), so the online-CBF policy and the multi-agent safety filter read
the same arrays wherever they run. Agents that reached their goal stay in the scene:
they are still obstacles to the others (``active`` says who is still travelling).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


DYNAMICS = ("single_integrator", "unicycle")
"""The robot models a team may have."""


@dataclass(frozen=True)
class SwarmState:
    positions: np.ndarray
    """(B, N, 2) world-frame agent positions (m)."""
    headings: np.ndarray
    """(B, N) yaw (rad); 0 for single-integrator agents."""
    velocities: np.ndarray
    """(B, N, 2) world-frame velocities (m/s)."""
    goals: np.ndarray
    """(B, N, 2) goal positions."""
    active: np.ndarray
    """(B, N) bool: still travelling (not at goal)."""
    obstacle_positions: np.ndarray
    """(B, M, 2) obstacle centres (static and moving)."""
    obstacle_radii: np.ndarray
    """(B, M) obstacle radii (m)."""
    obstacle_velocities: np.ndarray
    """(B, M, 2) obstacle velocities (0 for static ones)."""
    time: float = 0.0
    priorities: np.ndarray | None = None
    """(B, N) per-robot tie-break tokens in [0, 1) shared with neighbours (None: all zero)."""
    control_dt_s: float = 0.05
    """The control period the team runs at (commands are held this long)."""
    dynamics: str = "single_integrator"
    """"single_integrator" or "unicycle" (then ``headings`` matter)."""

    def __post_init__(self) -> None:
        # Both reach the policy as features and the filter as its discrete-time step: a typo or a NaN
        # here would silently become a wrong feature, so it is refused where the state is made.
        if self.dynamics not in DYNAMICS:
            raise ValueError(f"dynamics: expected one of {', '.join(DYNAMICS)}, got {self.dynamics!r}")
        if not (math.isfinite(self.control_dt_s) and self.control_dt_s > 0):
            raise ValueError(f"control_dt_s: must be a finite number > 0, got {self.control_dt_s!r}")

    @property
    def num_scenes(self) -> int:
        return int(self.positions.shape[0])

    @property
    def num_agents(self) -> int:
        return int(self.positions.shape[1])

    def scene(self, b: int) -> SwarmState:
        """Scene ``b`` alone, with B = 1."""
        s = slice(b, b + 1)
        return SwarmState(self.positions[s], self.headings[s], self.velocities[s], self.goals[s], self.active[s],
                          self.obstacle_positions[s], self.obstacle_radii[s], self.obstacle_velocities[s], self.time,
                          None if self.priorities is None else self.priorities[s], self.control_dt_s, self.dynamics)


@dataclass(frozen=True)
class SwarmStep:
    """What one step produced, besides the new state."""

    state: SwarmState
    at_goal: np.ndarray
    """(B, N) within goal tolerance now."""
    agent_collision: np.ndarray
    """(B, N) overlapping another agent now."""
    obstacle_collision: np.ndarray
    """(B, N) overlapping an obstacle now."""
    min_agent_distance: np.ndarray
    """(B,) smallest centre distance between two agents now."""
