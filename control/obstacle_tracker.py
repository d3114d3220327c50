"""Obstacle velocities the way a robot gets them: differences of what it sensed, not simulator truth.

A moving obstacle enters each robot's CBF rows with its velocity (so the barrier accounts
for where it is going). A robot does not receive that velocity; it sees the obstacle's
position each control period. :class:`ObstacleVelocityEstimator` differences consecutive
positions of the same obstacle (obstacles keep their index between observations, i.e. data
association is assumed solved, as a tracker would). The first sight gives zero velocity,
and a position jump faster than ``max_speed_m_s`` (a re-identification, a new scene) is
treated as a first sight too.
"""
from __future__ import annotations

import numpy as np


class ObstacleVelocityEstimator:
    """Per-scene finite-difference velocities of (B, M) obstacles; resets itself on a new episode."""

    def __init__(self, max_speed_m_s: float = 5.0) -> None:
        self.max_speed_m_s = max_speed_m_s
        self._positions: np.ndarray | None = None
        self._time = 0.0

    def reset(self) -> None:
        self._positions = None

    def __call__(self, positions: np.ndarray, time: float) -> np.ndarray:
        """(B, M, 2) velocity estimates for obstacle ``positions`` (B, M, 2) observed at ``time``."""
        positions = np.asarray(positions, dtype=float)
        previous = self._positions
        dt = time - self._time
        self._positions, self._time = positions.copy(), time
        if previous is None or previous.shape != positions.shape or not dt > 0.0:
            return np.zeros_like(positions)
        velocity = (positions - previous) / dt
        fast = np.linalg.norm(velocity, axis=-1, keepdims=True) > self.max_speed_m_s
        velocity = np.where(fast | ~np.isfinite(velocity), 0.0, velocity)
        return velocity
