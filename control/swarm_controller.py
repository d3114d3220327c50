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

SCENE_SPACING_M = 1.0e4
"""Distance between batched scenes: far beyond any sensing radius."""


@dataclass(frozen=True)
class NominalConfig:
    """The go-to-goal command each agent would send without the safety filter."""

    gain: float = 1.5
    """Proportional gain (1/s) on the goal offset; saturated at the scenario's max speed."""
    heading_gain: float = 3.0
    """Unicycles: turn rate per radian of heading error."""
    keep_right: float = 1.5
    """Traffic rule: with another robot ahead (within ``keep_right_range_m``, within 60° of the goal
    direction), veer right by up to this many times the max speed, more the closer it is. It breaks
    the symmetric deadlocks a pure go-to-goal command meets (two robots head-on, a circle swap):
    every robot of a decentralised team keeps right, as in road traffic. 0 switches it off."""
    keep_right_range_m: float = 1.5
    """How far ahead another robot makes a robot keep right."""

    def __post_init__(self) -> None:
        if self.gain <= 0:
            raise ValueError("gain must be > 0")
        if self.heading_gain <= 0:
            raise ValueError("heading_gain must be > 0")
        if not 0.0 <= self.keep_right <= 10.0:
            raise ValueError(f"keep_right must be in [0, 10], got {self.keep_right}")
        if self.keep_right_range_m <= 0:
            raise ValueError("keep_right_range_m must be > 0")


def keep_right_weight(state: SwarmState, range_m: float) -> np.ndarray:
    """(B, N) in [0, 1]: how close the nearest *robot* ahead is (1 = touching, 0 = none within
    ``range_m`` or more than 60° off the goal direction). Uses only what each robot senses.

    Only robots count: they run the same rule, so both sides of a head-on pair veer to their
    own right and pass. Obstacles do not: the CBF-QP already slides a robot along them towards
    its goal, and a fixed "right" around a wall sends half the robots away from the door (measured:
    random rooms 0.1 → 0.8-0.9 success and the narrow passage 0 → 1.0 with fixed α once obstacles
    stopped counting; the crossing and the swaps were unchanged).
    """
    offset = state.goals - state.positions
    dist_goal = np.linalg.norm(offset, axis=-1)
    ex = offset / np.maximum(dist_goal, 1e-9)[..., None]
    n = state.positions.shape[1]
    rel = state.positions[:, None, :, :] - state.positions[:, :, None, :]     # [b, i, j] = p_j - p_i
    d = np.linalg.norm(rel, axis=-1)
    d[:, np.arange(n), np.arange(n)] = np.inf
    ahead = np.einsum("bijd,bid->bij", rel, ex) > 0.5 * d
    weight = np.where(ahead & (d < range_m), 1.0 - d / range_m, 0.0).max(axis=2, initial=0.0)
    return weight * np.minimum(dist_goal, 1.0)  # fades out on arrival: no circling around one's goal


def nominal_commands(state: SwarmState, dynamics: str, max_speed: float, config: NominalConfig) -> np.ndarray:
    """(B, N, 2) nominal commands: world velocity, or (v, ω) for unicycles."""
    offset = state.goals - state.positions
    dist = np.linalg.norm(offset, axis=-1, keepdims=True)
    right = (config.keep_right * keep_right_weight(state, config.keep_right_range_m) if config.keep_right > 0
             else np.zeros(dist.shape[:-1]))
    if dynamics == "unicycle":
        # Keep right by aiming right of the goal: the same rule as a rotation of the desired heading.
        bearing = np.arctan2(offset[..., 1], offset[..., 0]) - np.arctan(right)
        err = wrap_angle(bearing - state.headings)
        v = np.minimum(config.gain * dist[..., 0], max_speed) * np.maximum(np.cos(err), 0.0)
        return np.stack([v, config.heading_gain * err], axis=-1)
    u = config.gain * offset
    speed = np.maximum(np.linalg.norm(u, axis=-1, keepdims=True), 1e-12)
    u = np.where(speed > max_speed, u * (max_speed / speed), u)
    to_right = np.stack([offset[..., 1], -offset[..., 0]], axis=-1) / np.maximum(dist, 1e-9)
    u = u + max_speed * right[..., None] * to_right
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
                 control_dt_s: float | None = None) -> None:
        """``control_dt_s``: the period commands are held (caps α at γ_max/Δt; default: the CBF config's).
        Obstacle velocities are the state's: the simulators give what a robot senses (differences of
        positions one period apart, :meth:`~navkit.sim.swarm_scenario.SwarmScenario.obstacles_at`)."""
        base = cbf or MultiAgentCbfConfig()
        limits = {"v_max": max_speed_m_s} if dynamics == "unicycle" else {"u_max": max_speed_m_s}
        timing = {"control_dt_s": control_dt_s} if control_dt_s is not None else {}
        self.cbf_config = replace(base, dynamics=dynamics, agent_radius_m=agent_radius_m,
                                  sensing_radius_m=sensing_radius_m, **limits, **timing)

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
        result = self.filter.filter(
            positions=(state.positions + shift).reshape(b * n, 2),
            headings=state.headings.reshape(b * n),
            u_nom=u_nom.reshape(b * n, 2),
            alpha=alpha.reshape(b * n),
            obstacle_positions=(state.obstacle_positions + shift).reshape(b * m, 2) if m else None,
            obstacle_radii=state.obstacle_radii.reshape(b * m) if m else None,
            obstacle_velocities=state.obstacle_velocities.reshape(b * m, 2) if m else None,
        )
        return SwarmAction(u=result.u.reshape(b, n, 2), u_nom=u_nom, alpha=np.array(alpha),
                           status=result.status.reshape(b, n), min_h=result.min_h.reshape(b, n))

