"""Multi-robot online-CBF tuning as RL environments: ``NavkitSwarm-v0`` and a per-agent SB3 ``VecEnv``.

The action is each robot's CBF gain α (the online-CBF paper's choice, Gao, Yang & Prorok
2023): a value in [-1, 1] mapped log-uniformly onto [``alpha_min``, ``alpha_max``] by
:func:`~navkit.control.online_cbf_policy.alpha_from_action`, the map the deployed policy
uses. Each robot's go-to-goal command then passes through its own CBF-QP
(:class:`~navkit.control.swarm_controller.SwarmController`), and the team moves on the
vectorised kinematic simulator (:class:`~navkit.sim.kinematic_swarm.KinematicSwarm`).
Scoring is :class:`~navkit.learning.swarm_task.EpisodeScorer`, as in every other wiring.

Observation of robot i: :func:`~navkit.control.online_cbf_policy.local_features` flattened,
exactly what the deployed policy reads, all in i's goal frame (a rotated or translated
scene gives the same numbers).

Per-robot reward: metres of progress toward the goal, +1 on arrival, -1 per collision
onset, -0.1 per control period whose QP was infeasible.

* :class:`SwarmAlphaEnv` (``gymnasium.make("navkit.learning.envs:NavkitSwarm-v0")``):
  one scene; observation (N, F), action (N,), team reward = sum over robots.
* :class:`SwarmAgentVecEnv`: groups of B scenes x N robots (one group per family entry) as
  Σ B·N SB3 sub-environments sharing one policy (parameter sharing), each with observation
  (F,) and action (1,); a group whose scenes are all over restarts with fresh seeds, sizes
  fixed per group, control rates drawn again (SB3 auto-reset, with ``terminal_observation``).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import VecEnvStepReturn

from navkit.learning.envs.array_vec_env import ArrayVecEnv
from navkit.common.swarm_state import SwarmStep
from navkit.control.multi_agent_cbf import AgentStatus
from navkit.control.online_cbf_policy import (OnlineCbfPolicyConfig, alpha_from_action, flat_size,
                                              local_features)
from navkit.control.swarm_controller import SwarmController
from navkit.learning.swarm_families import Family, parse_family
from navkit.learning.swarm_task import EpisodeScorer
from navkit.sim.kinematic_swarm import KinematicSwarm
from navkit.sim.swarm_scenario import SwarmScenario

ARRIVAL_REWARD = 1.0
COLLISION_REWARD = -1.0
INFEASIBLE_REWARD = -0.1


@dataclass(frozen=True)
class SwarmEnvConfig:
    """Keyword arguments of the swarm envs."""

    scenario: str = "scenarios/multi/circle_swap.yaml"
    """Swarm scenario file (or a family ``"FILE MIN-MAX"``); every episode expands it with a fresh seed."""
    num_agents: int = 0
    """Team size; 0: drawn from the family's range once per env (or the file's count)."""
    rates_hz: tuple[float, ...] = ()
    """Control rates drawn per episode; empty: the file's."""
    episode_time_s: float = 0.0
    """Cap on each episode's time limit (s); 0: the scenario's limit."""
    policy: OnlineCbfPolicyConfig = field(default_factory=OnlineCbfPolicyConfig)
    """Observation layout (k nearest robots/obstacles, scales) and the action -> α map."""

    def __post_init__(self) -> None:
        if not 0 <= self.num_agents <= 1024:
            raise ValueError(f"num_agents: must be in [0, 1024], got {self.num_agents}")
        if self.episode_time_s < 0:
            raise ValueError(f"episode_time_s: must be >= 0, got {self.episode_time_s}")
        for rate in self.rates_hz:
            if not 2.0 <= rate <= 1000.0:
                raise ValueError(f"rates_hz: every rate must be in [2, 1000] Hz, got {rate}")


class _Scenes:
    """B scenes of one family and team size stepped together: the simulator, the CBF-QPs, the scorer."""

    def __init__(self, family: Family, config: SwarmEnvConfig, num_scenes: int, seed: int) -> None:
        self.family, self.config = family, config
        self.rng = np.random.default_rng(seed)
        self.num_agents: int | None = config.num_agents or family.draw_size(self.rng)
        self.scenes = self._draw(num_scenes)
        self._start()

    def _draw(self, count: int) -> list[SwarmScenario]:
        rate = float(self.rng.choice(self.config.rates_hz)) if self.config.rates_hz else None
        scenes = []
        for _ in range(count):
            sc = self.family.scene(int(self.rng.integers(0, 2**31 - 1)), self.num_agents, rate)
            self.num_agents = sc.num_agents  # scenes stepped together share one team size
            # Capped, as the ES trainer's episodes are (swarm_families.draw_groups): the same config, the same episodes.
            cap = self.config.episode_time_s
            scenes.append(replace(sc, time_limit_s=min(sc.time_limit_s, cap)) if cap else sc)
        return scenes

    def _start(self) -> None:
        first = self.scenes[0]
        self.controller = SwarmController.for_scenario(first)
        self.sim = KinematicSwarm(self.scenes)
        self.scorer = EpisodeScorer(self.sim.scenarios, self.sim.positions.copy())
        self.arrived = np.zeros(self.sim.positions.shape[:2], dtype=bool)
        self.distance = np.linalg.norm(self.sim.goals - self.sim.positions, axis=-1)

    def observe(self) -> np.ndarray:
        """(B, N, F) what every robot's policy reads."""
        return local_features(self.sim.state, self.config.policy).flat()

    def step(self, action: np.ndarray) -> tuple[np.ndarray, SwarmStep, np.ndarray]:
        """Per-robot rewards (B, N), the step, and which scenes just ended (B,)."""
        state = self.sim.state
        p = self.config.policy
        act = self.controller.act(state, alpha_from_action(np.nan_to_num(action), p.alpha_min, p.alpha_max))
        infeasible = act.status == AgentStatus.INFEASIBLE_FALLBACK
        before = self.sim.positions.copy()
        done_before = self.scorer.done.copy()
        step = self.sim.step(np.where(done_before[:, None, None], 0.0, act.u))
        colliding_before = self.scorer.colliding.copy()
        self.scorer.update(before, step, self.sim.time, infeasible)
        distance = np.linalg.norm(self.sim.goals - self.sim.positions, axis=-1)
        onset = (step.agent_collision | step.obstacle_collision) & ~colliding_before
        arrived_now = step.at_goal & ~self.arrived
        self.arrived |= step.at_goal
        reward = (self.distance - distance + ARRIVAL_REWARD * arrived_now + COLLISION_REWARD * onset
                  + INFEASIBLE_REWARD * infeasible)
        self.distance = distance
        reward[done_before] = 0.0
        return reward, step, self.scorer.done & ~done_before

    def restart(self) -> None:
        self.scenes = self._draw(len(self.scenes))
        self._start()


class SwarmAlphaEnv(gym.Env):
    """One robot team; action = every robot's α; see the module docstring."""

    metadata = {"render_modes": []}

    def __init__(self, **kwargs: Any) -> None:
        self.config = SwarmEnvConfig(**kwargs)
        self.scenes = _Scenes(parse_family(self.config.scenario), self.config, 1, seed=0)
        n = self.scenes.num_agents
        f = flat_size(self.config.policy)
        self.observation_space = gym.spaces.Box(-10.0, 10.0, (n, f), dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (n,), dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.scenes.rng = np.random.default_rng(int(self.np_random.integers(0, 2**31 - 1)))
        self.scenes.restart()
        return self.scenes.observe()[0], {"seed": self.scenes.scenes[0].seed}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        reward, _, ended = self.scenes.step(np.asarray(action, dtype=float).reshape(1, -1))
        scorer = self.scenes.scorer
        success = bool(scorer.success[0])
        terminated = bool(ended[0]) and success
        truncated = bool(ended[0]) and not success
        info = {"is_success": success, "collisions": int(scorer.collisions[0]),
                "agents_at_goal": int(self.scenes.arrived[0].sum())}
        return self.scenes.observe()[0], float(reward[0].sum()), terminated, truncated, info


class SwarmAgentVecEnv(ArrayVecEnv):
    """Groups of B scenes x N robots as Σ B·N parameter-sharing sub-envs for stable-baselines3.

    ``groups``: one :class:`SwarmEnvConfig` per group (e.g. one per training family); without
    it, one group from ``kwargs``. Sub-env order: group by group, scene by scene, robot by robot.
    """

    def __init__(self, num_scenes: int = 8, seed: int = 0, groups: list[SwarmEnvConfig] | None = None,
                 **kwargs: Any) -> None:
        configs = groups if groups is not None else [SwarmEnvConfig(**kwargs)]
        if not configs:
            raise ValueError("groups: at least one group is required")
        self.groups = [_Scenes(parse_family(c.scenario), c, num_scenes, seed + 7919 * k)
                       for k, c in enumerate(configs)]
        self.features = flat_size(configs[0].policy)
        if any(flat_size(c.policy) != self.features for c in configs):
            raise ValueError("groups: every group needs the same observation layout")
        self.num_scenes = num_scenes
        self.sizes = [g.num_agents * num_scenes for g in self.groups]
        obs = gym.spaces.Box(-10.0, 10.0, (self.features,), dtype=np.float32)
        act = gym.spaces.Box(-1.0, 1.0, (1,), dtype=np.float32)
        self.render_mode = None
        super().__init__(sum(self.sizes), obs, act)
        self._actions = np.zeros((self.num_envs, 1))
        self._returns = np.zeros(self.num_envs)
        self._lengths = np.zeros(self.num_envs, dtype=int)

    @property
    def scenes(self) -> _Scenes:
        """The first group (the only one when built from keyword arguments)."""
        return self.groups[0]

    @property
    def num_agents(self) -> int:
        return self.groups[0].num_agents

    def _slices(self) -> list[slice]:
        edges = np.concatenate([[0], np.cumsum(self.sizes)])
        return [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]

    def _observe(self) -> np.ndarray:
        return np.concatenate([g.observe().reshape(-1, self.features) for g in self.groups])

    def reset(self) -> np.ndarray:
        """Every group restarts with fresh seeds (SB3 calls this once; then step() restarts groups).

        A scene that ends before the others of its group idles (zero reward, not done) until the
        group is over: a group shares one vectorised simulator clock."""
        for g in self.groups:
            g.restart()
        self._returns[:] = 0.0
        self._lengths[:] = 0
        return self._observe()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions, dtype=float).reshape(self.num_envs, 1)

    def step_wait(self) -> VecEnvStepReturn:
        rewards = np.zeros(self.num_envs, dtype=np.float32)
        dones = np.zeros(self.num_envs, dtype=bool)
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        slices = self._slices()
        for g, sl in zip(self.groups, slices):
            reward, _, _ = g.step(self._actions[sl].reshape(self.num_scenes, g.num_agents))
            rewards[sl] = reward.reshape(-1)
        self._returns += rewards
        self._lengths += 1
        obs = self._observe()
        for g, sl in zip(self.groups, slices):
            if not g.scorer.done.all():
                continue  # a finished scene idles until its group is over
            success = np.repeat(g.scorer.success, g.num_agents)
            for k, i in enumerate(range(sl.start, sl.stop)):
                infos[i] = {"terminal_observation": obs[i], "is_success": bool(success[k]),
                            "episode": {"r": float(self._returns[i]), "l": int(self._lengths[i])},
                            "TimeLimit.truncated": not bool(success[k])}
            dones[sl] = True
            self._returns[sl] = 0.0
            self._lengths[sl] = 0
            g.restart()
            obs[sl] = g.observe().reshape(-1, self.features)
        return obs, rewards, dones, infos

    # -- seeding (the rest of the VecEnv plumbing is ArrayVecEnv's) --------------------------

    def seed(self, seed: int | None = None) -> list[int | None]:
        if seed is not None:
            for k, g in enumerate(self.groups):
                g.rng = np.random.default_rng([seed, k])
        return [seed] * self.num_envs
