"""A hand-written right-of-way rule for the CBF gain: the baseline a learned policy must beat.

Every robot carries a random priority token it shares with the robots around it
(:attr:`~navkit.common.swarm_state.SwarmState.priorities`). A robot that outranks every
still-travelling robot within ``conflict_radius_m`` *goes* (assertive gain ``alpha_go``); one
that is outranked *yields* (timid gain ``alpha_yield``), so that in a symmetric standoff one
side backs off and the other passes. It uses only relative, sensed information and the
tokens, so it is decentralised and rotation invariant, like the learned policy. Plugin
``priority_rule`` of the ``cbf_policy`` slot.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from navkit.common.swarm_state import SwarmState


@dataclass(frozen=True)
class PriorityRule:
    """``rule(state) -> (B, N)`` α: ``alpha_go`` for the highest token nearby, ``alpha_yield`` for the rest."""

    alpha_go: float = 3.0
    """Gain of a robot with right of way: approaches others quickly."""
    alpha_yield: float = 0.3
    """Gain of an outranked robot: keeps well clear, letting the other pass."""
    conflict_radius_m: float = 1.5
    """Travelling robots closer than this (centre distance) compete for right of way."""

    def __post_init__(self) -> None:
        for name in ("alpha_go", "alpha_yield", "conflict_radius_m"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name}: must be a finite number > 0, got {value!r}")

    def __call__(self, state: SwarmState) -> np.ndarray:
        pos = np.asarray(state.positions, dtype=float)
        b, n = pos.shape[:2]
        tokens = np.zeros((b, n)) if state.priorities is None else np.asarray(state.priorities, dtype=float)
        d = np.linalg.norm(pos[:, None, :, :] - pos[:, :, None, :], axis=-1)  # [b, i, j]
        rival = (d < self.conflict_radius_m) & np.asarray(state.active, bool)[:, None, :]
        rival[:, np.arange(n), np.arange(n)] = False
        outranked = (rival & (tokens[:, None, :] > tokens[:, :, None])).any(axis=2)
        return np.where(outranked, self.alpha_yield, self.alpha_go)
