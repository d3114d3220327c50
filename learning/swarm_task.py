"""The multi-robot task: how an episode of a robot team is scored, whoever steps it.

dm_control's Task role for teams: the vectorised trainer and benchmark (via
:func:`~navkit.learning.swarm_rollout.rollout`), the MuJoCo swarm runner, the gymnasium
envs and the ROS 2 swarm bridge all feed :class:`EpisodeScorer`, so success (every agent
at its goal at the same time, before the time limit), collisions (onsets, per kind),
separation, infeasible QPs, time-to-goal and path-length ratio mean the same everywhere.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from collections.abc import Sequence

import numpy as np

from navkit.common.swarm_state import SwarmStep
from navkit.sim.swarm_scenario import SwarmScenario


STOPPED_M_S = 0.05
"""A robot slower than this over a step counts as standing still (for obstacle_into_stopped)."""


@dataclass(frozen=True)
class EpisodeMetrics:
    scenario: str
    seed: int
    num_agents: int
    success: bool
    """Every agent at its goal at the same time, before the time limit, *and* no collision at all."""
    collisions: int
    """Collision onsets of any kind (an agent that starts touching something)."""
    agent_collisions: int
    """Onsets of robot-robot contact."""
    obstacle_collisions: int
    """Onsets of robot-obstacle contact (no robot involved) while the robot moved."""
    obstacle_into_stopped: int
    """Onsets of robot-obstacle contact while the robot stood still: a moving obstacle ran into it."""
    min_separation_m: float
    """Smallest centre-to-centre distance between two agents (collision below 2 radii)."""
    min_obstacle_gap_m: float
    """Smallest agent-surface to obstacle-surface distance (collision below 0)."""
    infeasible: int
    """Agent-steps whose QP was infeasible (the fallback command was used)."""
    mean_time_to_goal_s: float
    """Mean over agents of the first arrival time (NaN if none arrived)."""
    path_length_ratio: float
    """Mean over arrived agents of travelled / straight-line distance."""
    agents_at_goal: int
    episode_time_s: float

    def as_dict(self) -> dict:
        return asdict(self)


class EpisodeScorer:
    """Incremental scoring of B scenes, one control period at a time (what :func:`rollout` uses).

    Anything that steps a team itself (the ROS 2 swarm bridge, a MuJoCo runner) feeds it
    the positions before a step and the :class:`~navkit.common.swarm_state.SwarmStep` after
    it, so every wiring scores with the same definitions. A scene stops being scored
    (``done``) when every agent is at its goal at once or at its time limit; it is a success
    when every agent arrived and nothing ever collided.
    """

    def __init__(self, scenarios: Sequence[SwarmScenario], start_positions: np.ndarray,
                 time_limit_s: float | None = None) -> None:
        """``time_limit_s`` overrides every scenario's own limit (``navkit run --time-limit``)."""
        self.scenarios = list(scenarios)
        b, n = start_positions.shape[:2]
        self.limit = np.array([time_limit_s or sc.time_limit_s for sc in scenarios])
        self.radius = np.array([sc.agent_radius_m for sc in scenarios])
        self.dt = np.array([sc.control_dt_s for sc in scenarios])
        goals = np.stack([sc.goals for sc in scenarios])
        self.straight = np.linalg.norm(goals - start_positions, axis=-1)
        self.travelled = np.zeros((b, n))
        self.first_arrival = np.full((b, n), np.nan)
        self.colliding = np.zeros((b, n), dtype=bool)
        self.collisions = np.zeros(b, dtype=int)
        self.agent_collisions = np.zeros(b, dtype=int)
        self.obstacle_collisions = np.zeros(b, dtype=int)
        self.obstacle_into_stopped = np.zeros(b, dtype=int)
        self.min_sep = np.full(b, np.inf)
        self.min_gap = np.full(b, np.inf)
        self.infeasible = np.zeros(b, dtype=int)
        self.done = np.zeros(b, dtype=bool)
        self.success = np.zeros(b, dtype=bool)
        self.end_time = np.zeros(b)

    def update(self, before: np.ndarray, step: SwarmStep, time: float,
               infeasible: np.ndarray | None = None) -> np.ndarray:
        """Score one step: ``before`` (B, N, 2) positions, ``step`` its result at ``time``;
        ``infeasible`` (B, N) agents whose QP braked this step (``None``: not observed).
        Returns ``done`` (B,)."""
        state = step.state
        positions = state.positions
        live = ~self.done
        self.travelled[live] += np.linalg.norm(positions - before, axis=-1)[live]
        if infeasible is not None:
            self.infeasible[live] += infeasible[live].sum(axis=1)
        now_colliding = step.agent_collision | step.obstacle_collision
        onset = now_colliding & ~self.colliding
        self.collisions[live] += onset[live].sum(axis=1)
        self.agent_collisions[live] += (onset & step.agent_collision)[live].sum(axis=1)
        obstacle_only = onset & step.obstacle_collision & ~step.agent_collision
        # How fast the robot itself moved over the step: a robot that stood still was run into.
        still = np.linalg.norm(positions - before, axis=-1) < STOPPED_M_S * self.dt[:, None]
        self.obstacle_collisions[live] += (obstacle_only & ~still)[live].sum(axis=1)
        self.obstacle_into_stopped[live] += (obstacle_only & still)[live].sum(axis=1)
        self.colliding = now_colliding
        self.min_sep[live] = np.minimum(self.min_sep, step.min_agent_distance)[live]
        if state.obstacle_positions.shape[1]:
            gap = (np.linalg.norm(positions[:, :, None] - state.obstacle_positions[:, None], axis=-1)
                   - state.obstacle_radii[:, None] - self.radius[:, None, None])
            self.min_gap[live] = np.minimum(self.min_gap, gap.min(axis=(1, 2)))[live]
        arrived_now = step.at_goal & np.isnan(self.first_arrival) & live[:, None]
        self.first_arrival[arrived_now] = time
        all_home = step.at_goal.all(axis=1)
        finished = live & (all_home | (time >= self.limit - 1e-9))
        self.success |= live & all_home & (self.collisions == 0)
        self.end_time[finished] = time
        self.done |= finished
        return self.done

    def metrics(self, infeasible_observed: bool = True) -> list[EpisodeMetrics]:
        """One row per scene; ``infeasible`` is -1 where QP outcomes were not observed."""
        rows = []
        n = self.travelled.shape[1]
        for i, sc in enumerate(self.scenarios):
            arrived = ~np.isnan(self.first_arrival[i])
            ratio = self.travelled[i][arrived] / np.maximum(self.straight[i][arrived], 1e-9)
            rows.append(EpisodeMetrics(
                scenario=sc.name, seed=sc.seed, num_agents=n, success=bool(self.success[i]),
                collisions=int(self.collisions[i]), agent_collisions=int(self.agent_collisions[i]),
                obstacle_collisions=int(self.obstacle_collisions[i]),
                obstacle_into_stopped=int(self.obstacle_into_stopped[i]), min_separation_m=float(self.min_sep[i]),
                min_obstacle_gap_m=float(self.min_gap[i]),
                infeasible=int(self.infeasible[i]) if infeasible_observed else -1,
                mean_time_to_goal_s=float(np.nanmean(self.first_arrival[i])) if arrived.any() else float("nan"),
                path_length_ratio=float(ratio.mean()) if arrived.any() else float("nan"),
                agents_at_goal=int(arrived.sum()), episode_time_s=float(self.end_time[i])))
        return rows
