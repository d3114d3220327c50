"""Decentralised control for a robot team: go-to-goal nominal commands through per-agent CBF-QPs.

Each agent's class-K gain α comes from a :class:`~navkit.common.interfaces.CbfParameterPolicy`:
a fixed value (the baselines) or
the online GNN policy (:mod:`navkit.control.online_cbf_policy`). Everything runs batched:
B scenes are laid side by side far apart (the filter is translation invariant and only
looks within the sensing radius, so scenes never see each other) and filtered in one
call. This is the piece the vectorised trainer, the MuJoCo runner and the per-robot
ROS 2 node all call.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from navkit.common.geometry import wrap_angle
from navkit.common.swarm_state import SwarmState
from navkit.control.multi_agent_cbf import MultiAgentCbfConfig, MultiAgentCbfFilter
from navkit.control.obstacle_tracker import ObstacleVelocityEstimator

SCENE_SPACING_M = 1.0e4
"""Distance between batched scenes: far beyond any sensing radius."""


@dataclass(frozen=True)
class NominalConfig:
    """The go-to-goal command each agent would send without the safety filter."""

    gain: float = 1.5
    """Proportional gain (1/s) on the goal offset; saturated at the scenario's max speed."""
    heading_gain: float = 3.0
    """Unicycles: turn rate per radian of heading error."""

    def __post_init__(self) -> None:
        if self.gain <= 0:
            raise ValueError("gain must be > 0")
        if self.heading_gain <= 0:
            raise ValueError("heading_gain must be > 0")


def nominal_commands(state: SwarmState, dynamics: str, max_speed: float, config: NominalConfig) -> np.ndarray:
    """(B, N, 2) nominal commands: world velocity, or (v, ω) for unicycles."""
    offset = state.goals - state.positions
    dist = np.linalg.norm(offset, axis=-1, keepdims=True)
    if dynamics == "unicycle":
        bearing = np.arctan2(offset[..., 1], offset[..., 0])
        err = wrap_angle(bearing - state.headings)
        v = np.minimum(config.gain * dist[..., 0], max_speed) * np.maximum(np.cos(err), 0.0)
        return np.stack([v, config.heading_gain * err], axis=-1)
    u = config.gain * offset
    speed = np.maximum(np.linalg.norm(u, axis=-1, keepdims=True), 1e-12)
    return np.where(speed > max_speed, u * (max_speed / speed), u)


@dataclass(frozen=True)
class FixedAlpha:
    """The baseline (plugin ``fixed`` of the ``cbf_policy`` slot): every agent uses the same hand-tuned α."""

    alpha: float

    def __call__(self, state: SwarmState) -> np.ndarray:
        return np.full(state.positions.shape[:2], self.alpha)


@dataclass(frozen=True)
class SwarmAction:
    u: np.ndarray
    """(B, N, 2) safe commands to send."""
    u_nom: np.ndarray
    """(B, N, 2) what go-to-goal wanted."""
    alpha: np.ndarray
    """(B, N) the gains used."""
    status: np.ndarray
    """(B, N) :class:`AgentStatus` values."""
    min_h: np.ndarray
    """(B, N) smallest barrier value each agent saw."""


class SwarmController:
    """Nominal go-to-goal + per-agent CBF-QP, for a scenario family's geometry and limits."""

    def __init__(self, dynamics: str, agent_radius_m: float, max_speed_m_s: float, sensing_radius_m: float,
                 cbf: MultiAgentCbfConfig | None = None, nominal: NominalConfig | None = None,
                 control_dt_s: float | None = None, sensed_obstacle_velocity: bool = True) -> None:
        """``control_dt_s``: the period commands are held (caps α at γ_max/Δt; default: the CBF config's).
        ``sensed_obstacle_velocity``: obstacle velocities from differences of sensed positions (what a robot
        has) instead of the velocities the state carries (simulator truth)."""
        base = cbf or MultiAgentCbfConfig()
        limits = {"v_max": max_speed_m_s} if dynamics == "unicycle" else {"u_max": max_speed_m_s}
        timing = {"control_dt_s": control_dt_s} if control_dt_s is not None else {}
        self.cbf_config = replace(base, dynamics=dynamics, agent_radius_m=agent_radius_m,
                                  sensing_radius_m=sensing_radius_m, **limits, **timing)
        self.obstacle_velocity = ObstacleVelocityEstimator() if sensed_obstacle_velocity else None
        self.filter = MultiAgentCbfFilter(self.cbf_config)
        self.nominal = nominal or NominalConfig()
        self.dynamics = dynamics
        self.max_speed = max_speed_m_s

    @classmethod
    def for_scenario(cls, scenario: object, cbf: MultiAgentCbfConfig | None = None,
                     nominal: NominalConfig | None = None) -> SwarmController:
        return cls(scenario.dynamics, scenario.agent_radius_m, scenario.max_speed_m_s,  # type: ignore[attr-defined]
                   scenario.sensing_radius_m, cbf, nominal,  # type: ignore[attr-defined]
                   control_dt_s=scenario.control_dt_s)  # type: ignore[attr-defined]

    def act(self, state: SwarmState, alpha: np.ndarray | float) -> SwarmAction:
        b, n = state.positions.shape[:2]
        alpha = np.broadcast_to(np.asarray(alpha, dtype=float), (b, n))
        u_nom = nominal_commands(state, self.dynamics, self.max_speed, self.nominal)
        shift = np.zeros((b, 1, 2))
        shift[:, 0, 0] = SCENE_SPACING_M * np.arange(b)
        m = state.obstacle_positions.shape[1]
        obstacle_velocities = (state.obstacle_velocities if self.obstacle_velocity is None
                               else self.obstacle_velocity(state.obstacle_positions, state.time))
        result = self.filter.filter(
            positions=(state.positions + shift).reshape(b * n, 2),
            headings=state.headings.reshape(b * n),
            u_nom=u_nom.reshape(b * n, 2),
            alpha=alpha.reshape(b * n),
            obstacle_positions=(state.obstacle_positions + shift).reshape(b * m, 2) if m else None,
            obstacle_radii=state.obstacle_radii.reshape(b * m) if m else None,
            obstacle_velocities=obstacle_velocities.reshape(b * m, 2) if m else None,
        )
        return SwarmAction(u=result.u.reshape(b, n, 2), u_nom=u_nom, alpha=np.array(alpha),
                           status=result.status.reshape(b, n), min_h=result.min_h.reshape(b, n))

