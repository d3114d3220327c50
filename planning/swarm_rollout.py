"""Roll a team out to the end of its episode and score it the same way everywhere.

The benchmark, the trainer's evaluation and the tests all score episodes here:
success (every agent at its goal at the same time, before the time limit),
collisions (onsets of overlap, agent-agent and agent-obstacle), minimum separation,
infeasible QPs, time-to-goal and path-length ratio.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np

from navkit.common.swarm_state import SwarmState
from navkit.control.multi_agent_cbf import AgentStatus
from navkit.control.swarm_controller import AlphaSource, SwarmController
from navkit.sim.swarm_env import SwarmEnv
from navkit.sim.swarm_scenario import SwarmScenario


@dataclass(frozen=True)
class EpisodeMetrics:
    scenario: str
    seed: int
    num_agents: int
    success: bool
    collisions: int
    min_separation_m: float
    """Smallest centre-to-centre distance between two agents (collision below 2 radii)."""
    min_obstacle_gap_m: float
    """Smallest agent-surface to obstacle-surface distance (collision below 0)."""
    infeasible: int
    """Agent-steps whose QP was infeasible (braked)."""
    mean_time_to_goal_s: float
    """Mean over agents of the first arrival time (NaN if none arrived)."""
    path_length_ratio: float
    """Mean over arrived agents of travelled / straight-line distance."""
    agents_at_goal: int
    episode_time_s: float

    def as_dict(self) -> dict:
        return asdict(self)


def rollout(scenarios: Sequence[SwarmScenario], controller: SwarmController, alpha_source: AlphaSource,
            on_step: Callable[[SwarmState, object], None] | None = None) -> list[EpisodeMetrics]:
    """Run B scenes together until each succeeds or hits its time limit; one metrics row each."""
    env = SwarmEnv(scenarios)
    b, n = env.num_scenes, env.num_agents
    limit = np.array([sc.time_limit_s for sc in scenarios])
    radius = env.radius
    start = env.positions.copy()
    straight = np.linalg.norm(env.goals - start, axis=-1)
    travelled = np.zeros((b, n))
    first_arrival = np.full((b, n), np.nan)
    colliding = np.zeros((b, n), dtype=bool)
    collisions = np.zeros(b, dtype=int)
    min_sep = np.full(b, np.inf)
    min_gap = np.full(b, np.inf)
    infeasible = np.zeros(b, dtype=int)
    done = np.zeros(b, dtype=bool)
    success = np.zeros(b, dtype=bool)
    end_time = np.zeros(b)
    state = env.state
    while not done.all():
        action = controller.act(state, alpha_source(state))
        u = np.where(done[:, None, None], 0.0, action.u)
        before = env.positions.copy()
        step = env.step(u)
        state = step.state
        live = ~done
        travelled[live] += np.linalg.norm(env.positions - before, axis=-1)[live]
        infeasible[live] += (action.status == AgentStatus.INFEASIBLE_BRAKE)[live].sum(axis=1)
        now_colliding = step.agent_collision | step.obstacle_collision
        collisions[live] += (now_colliding & ~colliding)[live].sum(axis=1)
        colliding = now_colliding
        min_sep[live] = np.minimum(min_sep, step.min_agent_distance)[live]
        if env.num_obstacles:
            gap = (np.linalg.norm(env.positions[:, :, None] - state.obstacle_positions[:, None], axis=-1)
                   - state.obstacle_radii[:, None] - radius[:, None, None])
            min_gap[live] = np.minimum(min_gap, gap.min(axis=(1, 2)))[live]
        arrived_now = step.at_goal & np.isnan(first_arrival) & live[:, None]
        first_arrival[arrived_now] = env.time
        all_home = step.at_goal.all(axis=1)
        finished = live & (all_home | (env.time >= limit - 1e-9))
        success |= live & all_home
        end_time[finished] = env.time
        done |= finished
        if on_step is not None:
            on_step(state, action)
    rows = []
    for i, sc in enumerate(scenarios):
        arrived = ~np.isnan(first_arrival[i])
        ratio = travelled[i][arrived] / np.maximum(straight[i][arrived], 1e-9)
        rows.append(EpisodeMetrics(
            scenario=sc.name, seed=sc.seed, num_agents=n, success=bool(success[i]), collisions=int(collisions[i]),
            min_separation_m=float(min_sep[i]), min_obstacle_gap_m=float(min_gap[i]),
            infeasible=int(infeasible[i]),
            mean_time_to_goal_s=float(np.nanmean(first_arrival[i])) if arrived.any() else float("nan"),
            path_length_ratio=float(ratio.mean()) if arrived.any() else float("nan"),
            agents_at_goal=int(arrived.sum()), episode_time_s=float(end_time[i])))
    return rows
