"""One robot of a team, decentralised: its neighbour table, its goal, its CBF policy and QP.

What the ROS 2 swarm agent node wraps, kept free of ROS so it is tested without it. The
robot knows only what it senses (obstacles within range) or hears from neighbours
(their broadcast states and goals); :class:`SwarmAgent` turns that into a
:class:`~navkit.common.swarm_state.SwarmState` with itself at index 0 and asks the
``cbf_policy`` plugin and the per-agent CBF-QP for its command.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from navkit.common.errors import NavkitError
from navkit.common.interfaces import CbfParameterPolicy
from navkit.common.plugins import PluginRegistry
from navkit.common.sensor_data import is_fresh
from navkit.common.swarm_state import SwarmState
from navkit.control.multi_agent_cbf import MultiAgentCbfConfig
from navkit.control.swarm_controller import SwarmController
from navkit.sim.swarm_scenario import SwarmScenario


@dataclass(frozen=True)
class SwarmAgentConfig:
    """One robot's decentralised controller (node ``swarm_agent`` in ``/robot_i``)."""

    robot_index: int = -1
    """Which robot this node drives (its goal in the scenario, its name ``robot_i``)."""
    scenario: str = ""
    """The swarm scenario file the bridge runs: goal, agent radius, limits, sensing radius."""
    num_agents: int = 0
    """As the bridge's: resize the layout; 0 = the file's count."""
    seed: int = -1
    """As the bridge's: the scenario seed; -1 = the file's."""
    policy: str = ""
    """Online-CBF GNN checkpoint; empty = fixed ``alpha``."""
    alpha: float = 1.0
    """Class-K gain when no policy is used."""
    rate_hz: float = 20.0
    """Control rate (= 1 / control_dt_s); also the stale-odometry check rate."""
    stale_timeout_s: float = 0.5
    """Own odometry, obstacles or a neighbour state older than this is not used."""
    alpha_cap: float = 5.0
    """Largest α this robot's QP uses, whatever the policy says. A CBF is exact in continuous time; over
    ROS 2 a command acts about two control periods (Δ ≈ 0.1 s) after the state it was computed from, and
    the discrete-time condition needs α·Δ well below 1. In-process (no delay) the policy's α up to 20 is
    safe; measured in-process, capping at 5 keeps the swap success at 95 % with 0 collisions."""
    comm_margin_m: float = 0.05
    """Extra safety margin for what a broadcast cannot tell: a neighbour's state is one control period
    (plus DDS latency) old even after constant-velocity prediction. Added to the CBF margin."""

    def __post_init__(self) -> None:
        if self.comm_margin_m < 0:
            raise ValueError("comm_margin_m must be >= 0")
        if self.robot_index < 0:
            raise ValueError("robot_index must be set (>= 0)")
        for name in ("alpha", "rate_hz", "stale_timeout_s", "alpha_cap"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0")


@dataclass(frozen=True)
class NeighbourState:
    """What robot ``j`` last broadcast on /swarm/states (world frame)."""

    position: np.ndarray
    velocity: np.ndarray
    heading: float
    stamp: float


def select_neighbours(own_position: np.ndarray, others: dict[int, NeighbourState], sensing_radius_m: float,
                      now: float, max_age_s: float) -> list[int]:
    """Robots whose last broadcast is fresh, finite and within sensing range (centre distance), sorted."""
    keep = []
    for j, s in sorted(others.items()):
        if not (np.all(np.isfinite(s.position)) and np.all(np.isfinite(s.velocity)) and math.isfinite(s.heading)):
            continue
        if not is_fresh(s.stamp, now, max_age_s):
            continue
        if float(np.linalg.norm(s.position - own_position)) <= sensing_radius_m:
            keep.append(j)
    return keep


def make_cbf_policy(config: SwarmAgentConfig, registry: PluginRegistry, source: str) -> tuple[CbfParameterPolicy, str]:
    """The ``cbf_policy`` plugin this robot uses: fixed ``alpha`` when ``policy`` is empty, else that
    checkpoint (a missing or corrupt file is an error naming it, never a silent fallback)."""
    if not config.policy:
        params: dict[str, object] = {"cbf_policy.plugin": "fixed", "cbf_policy.alpha": config.alpha}
        described = f"fixed alpha {config.alpha}"
    else:
        _single_threaded_torch()
        params, described = {"cbf_policy.plugin": "online_cbf_gnn", "cbf_policy.path": config.policy}, \
            f"policy {config.policy}"
    return registry.build(registry.choose("cbf_policy", params, source)), described


def _single_threaded_torch() -> None:
    """One intra-op (and inter-op) thread for the policy's torch in this process.

    The GNN runs on a graph of a handful of nodes, where threads buy nothing; but a launch runs
    one agent process per robot plus the bridge, and torch's default of one OpenMP thread per core
    in every process oversubscribes the CPU (idle OpenMP workers spin-wait). Measured with 4 robots
    on 2 cores: agents then handled only about half of the control periods, their /swarm/states
    broadcasts reached neighbours 0.1-1 s late (or were dropped as stale), and robots passing each
    other touched (min separation 0.38 m < D = 0.45 m). With one thread every period is handled
    and neighbour states are at most one period old.
    """
    import torch

    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set, or inter-op work has started: intra-op is what matters
        pass


class SwarmAgent:
    """Robot ``config.robot_index`` of ``scenario``: everything it decides, given what it was told."""

    def __init__(self, config: SwarmAgentConfig, scenario: SwarmScenario, policy: CbfParameterPolicy) -> None:
        if config.robot_index >= scenario.num_agents:
            raise NavkitError(f"robot_index: {config.robot_index} but the scenario has {scenario.num_agents} robots")
        self.config = config
        self.scenario = scenario
        self.policy = policy
        self.goal = scenario.goals[config.robot_index].astype(float)
        self.tokens = (np.asarray(scenario.priorities, float) if scenario.priorities is not None
                       else np.zeros(scenario.num_agents))
        """Every robot's tie-break token: part of the mission, as the goals are."""
        self.unicycle = scenario.dynamics == "unicycle"
        base = MultiAgentCbfConfig()
        cbf = replace(base, margin_m=base.margin_m + config.comm_margin_m)
        self.controller = SwarmController.for_scenario(scenario, cbf=cbf)
        self.reached = False
        self.neighbours: dict[int, NeighbourState] = {}
        self.goals: dict[int, np.ndarray] = {}
        self.reached_by: dict[int, bool] = {}
        self.obstacles: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self.obstacles_stamp = -math.inf

    def hear_state(self, j: int, state: NeighbourState) -> None:
        if j != self.config.robot_index:
            self.neighbours[j] = state

    def hear_goal(self, j: int, goal: np.ndarray) -> None:
        if j != self.config.robot_index:
            self.goals[j] = np.asarray(goal, dtype=float)

    def sense_obstacles(self, centres: np.ndarray, radii: np.ndarray, velocities: np.ndarray, stamp: float) -> None:
        self.obstacles = (centres, radii, velocities)
        self.obstacles_stamp = stamp

    def command(self, position: np.ndarray, yaw: float, velocity: np.ndarray, stamp: float) -> tuple[np.ndarray, str]:
        """(command u (2,), "") or (zeros, why it refused): never a command from bad or stale inputs."""
        stop = np.zeros(2)
        if not (np.all(np.isfinite(position)) and math.isfinite(yaw) and np.all(np.isfinite(velocity))):
            return stop, "NaN/Inf odometry"
        if self.obstacles is None or not is_fresh(self.obstacles_stamp, stamp, self.config.stale_timeout_s):
            return stop, "no fresh obstacle perception"
        if not self.unicycle:
            yaw = 0.0
        tol = self.scenario.goal_tolerance_m
        self.reached |= bool(np.linalg.norm(position - self.goal) <= tol)
        chosen = select_neighbours(position, self.neighbours, self.scenario.sensing_radius_m, stamp,
                                   self.config.stale_timeout_s)
        positions, velocities, headings, goals, active = [position], [velocity], [yaw], [self.goal], [not self.reached]
        tokens = self.tokens
        priorities = [tokens[self.config.robot_index]]
        for j in chosen:
            s = self.neighbours[j]
            goal = self.goals.get(j, s.position)
            self.reached_by[j] = self.reached_by.get(j, False) or bool(np.linalg.norm(s.position - goal) <= tol)
            # Constant-velocity prediction to this robot's time: the broadcast is up to a control
            # period old, and at 1 m/s that alone is more than the CBF's margin.
            ahead = float(np.clip(stamp - s.stamp, 0.0, self.config.stale_timeout_s))
            positions.append(s.position + s.velocity * ahead)
            velocities.append(s.velocity)
            headings.append(s.heading if self.unicycle else 0.0)
            goals.append(goal)
            active.append(not self.reached_by[j])
            # Tokens are part of the mission every robot was given, as goals are: robot j's is known.
            priorities.append(tokens[j] if j < len(tokens) else 0.0)
        opos, orad, ovel = self.obstacles
        swarm = SwarmState(positions=np.array(positions)[None], headings=np.array(headings)[None],
                           velocities=np.array(velocities)[None], goals=np.array(goals)[None],
                           active=np.array(active)[None], obstacle_positions=opos[None], obstacle_radii=orad[None],
                           obstacle_velocities=ovel[None], time=stamp, priorities=np.array(priorities)[None],
                           control_dt_s=self.scenario.control_dt_s, dynamics=self.scenario.dynamics)
        alpha = np.minimum(self.policy(swarm), self.config.alpha_cap)
        u = self.controller.act(swarm, alpha).u[0, 0]
        if not np.all(np.isfinite(u)):
            return stop, "controller produced NaN/Inf"
        return u, ""
