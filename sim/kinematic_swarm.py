"""Vectorised multi-robot dynamics for training and fast evaluation: B scenes x N agents.

Kinematics only — single integrators (u = world velocity) or unicycles (u = (v, ω)) —
stepped as arrays, so hundreds of agent-steps cost one numpy call. It knows nothing of
controllers or policies (the sim room never imports them): a controller turns a
:class:`~navkit.common.swarm_state.SwarmState` into commands, this steps them. The
MuJoCo swarm backend steps the same commands through physics; a test checks the two
agree. Agents that reached their goal keep being simulated (they can be nudged aside),
because to the others they are still obstacles.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from navkit.common.geometry import wrap_angle
from navkit.common.swarm_state import SwarmState, SwarmStep
from navkit.sim.swarm_scenario import SwarmScenario

FAR_AWAY_M = 1.0e6
"""Where padding obstacles live (scenes with fewer obstacles than the batch maximum)."""


class KinematicSwarm:
    """B scenes of one scenario family (same agent count and dynamics), stepped together."""

    def __init__(self, scenarios: Sequence[SwarmScenario]) -> None:
        if not scenarios:
            raise ValueError("scenarios: at least one scene is required")
        first = scenarios[0]
        for sc in scenarios:
            if sc.num_agents != first.num_agents or sc.dynamics != first.dynamics:
                raise ValueError("scenarios: every scene of a batch needs the same agent count and dynamics")
        self.scenarios = list(scenarios)
        self.dynamics = first.dynamics
        self.dt = first.control_dt_s
        self.radius = np.array([sc.agent_radius_m for sc in scenarios])
        self.max_speed = np.array([sc.max_speed_m_s for sc in scenarios])
        self.tolerance = np.array([sc.goal_tolerance_m for sc in scenarios])
        self.goals = np.stack([sc.goals for sc in scenarios])
        self.priorities = np.stack([sc.priorities if sc.priorities is not None else np.zeros(sc.num_agents)
                                    for sc in scenarios])
        self.num_obstacles = max(sc.num_obstacles for sc in scenarios)
        self.reset()

    @property
    def num_scenes(self) -> int:
        return len(self.scenarios)

    @property
    def num_agents(self) -> int:
        return int(self.goals.shape[1])

    def reset(self) -> SwarmState:
        starts = np.stack([sc.starts for sc in self.scenarios])
        self.positions = starts[..., :2].copy()
        self.headings = starts[..., 2].copy() if self.dynamics == "unicycle" else np.zeros(starts.shape[:2])
        self.velocities = np.zeros_like(self.positions)
        self.time = 0.0
        self.reached = np.zeros(self.positions.shape[:2], dtype=bool)
        return self.state

    def _obstacles(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        b, m = self.num_scenes, self.num_obstacles
        pos = np.full((b, m, 2), FAR_AWAY_M)
        rad = np.zeros((b, m))
        vel = np.zeros((b, m, 2))
        for i, sc in enumerate(self.scenarios):
            p, r, v = sc.obstacles_at(self.time)
            k = len(r)
            pos[i, :k], rad[i, :k], vel[i, :k] = p, r, v
        return pos, rad, vel

    @property
    def state(self) -> SwarmState:
        pos, rad, vel = self._obstacles()
        return SwarmState(positions=self.positions.copy(), headings=self.headings.copy(),
                          velocities=self.velocities.copy(), goals=self.goals, active=~self.reached,
                          obstacle_positions=pos, obstacle_radii=rad, obstacle_velocities=vel, time=self.time,
                          priorities=self.priorities, control_dt_s=self.dt, dynamics=self.dynamics)

    def step(self, u: np.ndarray) -> SwarmStep:
        """Apply commands (B, N, 2) for one control period; non-finite commands mean 'stop'."""
        u = np.where(np.isfinite(u), np.asarray(u, dtype=float), 0.0)
        dt = self.dt
        if self.dynamics == "unicycle":
            v = np.clip(u[..., 0], -self.max_speed[:, None], self.max_speed[:, None])
            w = u[..., 1]
            mid = self.headings + 0.5 * w * dt
            self.velocities = np.stack([v * np.cos(mid), v * np.sin(mid)], axis=-1)
            self.headings = wrap_angle(self.headings + w * dt)
        else:
            speed = np.linalg.norm(u, axis=-1, keepdims=True)
            cap = self.max_speed[:, None, None]
            self.velocities = np.where(speed > cap, u * cap / np.maximum(speed, 1e-12), u)
        self.positions = self.positions + self.velocities * dt
        self.time += dt
        return self._measure()

    def _measure(self) -> SwarmStep:
        d_goal = np.linalg.norm(self.positions - self.goals, axis=-1)
        at_goal = d_goal <= self.tolerance[:, None]
        self.reached |= at_goal
        state = self.state
        diff = self.positions[:, :, None, :] - self.positions[:, None, :, :]
        dist = np.linalg.norm(diff, axis=-1)
        n = self.num_agents
        dist[:, np.arange(n), np.arange(n)] = np.inf
        agent_collision = (dist < 2 * self.radius[:, None, None]).any(axis=2)
        gap = (np.linalg.norm(self.positions[:, :, None, :] - state.obstacle_positions[:, None, :, :], axis=-1)
               - state.obstacle_radii[:, None, :])
        obstacle_collision = ((gap < self.radius[:, None, None]).any(axis=2) if self.num_obstacles
                              else np.zeros_like(at_goal))
        return SwarmStep(state=state, at_goal=at_goal, agent_collision=agent_collision,
                         obstacle_collision=obstacle_collision, min_agent_distance=dist.min(axis=(1, 2)))
