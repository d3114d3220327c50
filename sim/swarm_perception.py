"""What a robot of a simulated team perceives: the simulator's stand-in for its obstacle detector.

The swarm bridge publishes, for each robot, only the obstacles this function keeps, as a
real robot's perception would report them; kept out of the ROS node so it is tested
without ROS and shared by anything that simulates a team's sensing.
"""
from __future__ import annotations

import numpy as np


def perceived_obstacles(position: np.ndarray, obstacle_positions: np.ndarray, obstacle_radii: np.ndarray,
                        sensing_radius_m: float) -> np.ndarray:
    """Indices of the obstacles whose surface is within ``sensing_radius_m`` of ``position``
    (the multi-agent CBF's sensing rule)."""
    if len(obstacle_radii) == 0:
        return np.zeros(0, dtype=int)
    surface = np.linalg.norm(obstacle_positions - position, axis=-1) - obstacle_radii
    return np.flatnonzero(surface <= sensing_radius_m)
