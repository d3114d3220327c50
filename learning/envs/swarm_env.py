"""Multi-robot online-CBF tuning as RL environments: ``NavkitSwarm-v0`` and a per-agent SB3 ``VecEnv``.

The action is each robot's CBF gain α (the online-CBF paper's choice, Gao, Yang & Prorok
2023): a value in [-1, 1] mapped log-uniformly onto [``alpha_min``, ``alpha_max``]. Each
robot's go-to-goal command then passes through its own CBF-QP
(:class:`~navkit.control.swarm_controller.SwarmController`), and the team moves on the
vectorised kinematic simulator (:class:`~navkit.sim.kinematic_swarm.KinematicSwarm`). Scoring is
:class:`~navkit.learning.swarm_task.EpisodeScorer`, as in every other wiring.

Observation of robot i (:func:`agent_features`), all in i's *goal frame* (x towards its
goal), so a rotated or translated scene gives the same numbers: distance to goal; own
velocity; for the ``k`` nearest sensed neighbours and obstacles, relative position and
velocity, barrier value and a presence flag (zeros when fewer are sensed).

Per-robot reward: metres of progress toward the goal, +1 on arrival, -1 per collision
onset, -0.1 per control period whose QP was infeasible.

* :class:`SwarmAlphaEnv` (``gymnasium.make("navkit.learning.envs:NavkitSwarm-v0")``):
  one scene; observation (N, F), action (N,), team reward = sum over robots.
* :class:`SwarmAgentVecEnv`: B scenes x N robots as B·N SB3 sub-environments sharing one
  policy (parameter sharing), each with observation (F,) and action (1,); a scene that
  ends restarts with a fresh seed (SB3 auto-reset, with ``terminal_observation``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvStepReturn

from navkit.common.swarm_state import SwarmState, SwarmStep
from navkit.control.multi_agent_cbf import AgentStatus
from navkit.control.swarm_controller import SwarmController
from navkit.learning.swarm_task import EpisodeScorer
from navkit.sim.kinematic_swarm import KinematicSwarm
from navkit.sim.swarm_scenario import SwarmScenario, SwarmScenarioSpec, load_swarm_scenario

REPO_ROOT = Path(__file__).resolve().parents[2]
K_NEIGHBOURS = 4
K_OBSTACLES = 4
PER_NEIGHBOUR = 6
"""[rel x, rel y, rel vx, rel vy, barrier value, present]."""
FEATURES = 3 + (K_NEIGHBOURS + K_OBSTACLES) * PER_NEIGHBOUR
ARRIVAL_REWARD = 1.0
COLLISION_REWARD = -1.0
INFEASIBLE_REWARD = -0.1


def _resolve(path: str) -> Path:
    p = Path(path)
    return p if p.is_absolute() or p.exists() else REPO_ROOT / p


def agent_features(state: SwarmState, sensing_radius_m: float, max_speed_m_s: float,
                   agent_radius_m: float) -> np.ndarray:
    """(B, N, FEATURES) per-robot observations in each robot's goal frame (see the module docstring)."""
    b, n = state.positions.shape[:2]
    R, vmax = float(sensing_radius_m), float(max_speed_m_s)
    offset = state.goals - state.positions
    dist = np.linalg.norm(offset, axis=-1)
    ex = np.where(dist[..., None] > 1e-6, offset / np.maximum(dist[..., None], 1e-6), np.array([1.0, 0.0]))
    ey = np.stack([-ex[..., 1], ex[..., 0]], axis=-1)

    def to_frame(vec: np.ndarray) -> np.ndarray:  # vec (B, N, K, 2) -> goal frame of each robot
        return np.stack([np.einsum("bnkd,bnd->bnk", vec, ex), np.einsum("bnkd,bnd->bnk", vec, ey)], axis=-1)

    own_v = to_frame(state.velocities[:, :, None, :])[:, :, 0] / vmax
    parts = [np.minimum(dist / R, 2.0)[..., None], own_v]

    def nearest(rel: np.ndarray, rel_v: np.ndarray, gap: np.ndarray, h_scale: np.ndarray, k: int) -> np.ndarray:
        order = np.argsort(gap, axis=-1)[..., :k]
        take = lambda a: np.take_along_axis(a, order[..., None] if a.ndim == 4 else order, axis=2)
        g = take(gap)
        present = (g <= R).astype(float)
        feats = np.concatenate([to_frame(take(rel)) / R, to_frame(take(rel_v)) / vmax,
                                (take(h_scale) / R**2)[..., None], present[..., None]], axis=-1) * present[..., None]
        if feats.shape[2] < k:
            feats = np.concatenate([feats, np.zeros((b, n, k - feats.shape[2], PER_NEIGHBOUR))], axis=2)
        return feats.reshape(b, n, k * PER_NEIGHBOUR)

    rel = state.positions[:, None, :, :] - state.positions[:, :, None, :]          # [b, i, j] = p_j - p_i
    rel_v = state.velocities[:, None, :, :] - state.velocities[:, :, None, :]
    d = np.linalg.norm(rel, axis=-1)
    d[:, np.arange(n), np.arange(n)] = np.inf
    h = d**2 - (2 * agent_radius_m) ** 2
    parts.append(nearest(rel, rel_v, d, np.where(np.isfinite(h), h, 0.0), K_NEIGHBOURS))
    m = state.obstacle_positions.shape[1]
    if m:
        orel = state.obstacle_positions[:, None, :, :] - state.positions[:, :, None, :]
        orel_v = state.obstacle_velocities[:, None, :, :] - state.velocities[:, :, None, :]
        od = np.linalg.norm(orel, axis=-1)
        ogap = od - state.obstacle_radii[:, None, :]
        oh = od**2 - (agent_radius_m + state.obstacle_radii[:, None, :]) ** 2
        parts.append(nearest(orel, orel_v, ogap, oh, K_OBSTACLES))
    else:
        parts.append(np.zeros((b, n, K_OBSTACLES * PER_NEIGHBOUR)))
    out = np.concatenate(parts, axis=-1).astype(np.float32)
    return np.clip(np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0), -10.0, 10.0)


@dataclass(frozen=True)
class SwarmEnvConfig:
    """Keyword arguments of the swarm envs."""

    scenario: str = "scenarios/multi/circle_swap.yaml"
    """Swarm scenario file; every episode expands it with a fresh seed."""
    num_agents: int = 0
    """Resize the layout to this many robots; 0: the file's count."""
    alpha_min: float = 0.05
    alpha_max: float = 20.0
    episode_time_s: float = 0.0
    """Episode time limit; 0: the scenario's."""

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha_min < self.alpha_max <= 1000.0:
            raise ValueError(f"alpha_min/alpha_max: need 0 < alpha_min < alpha_max <= 1000, got "
                             f"{self.alpha_min}, {self.alpha_max}")
        if not 0 <= self.num_agents <= 1024:
            raise ValueError(f"num_agents: must be in [0, 1024], got {self.num_agents}")


class _Scenes:
    """B scenes of one family stepped together: the vectorised simulator, the CBF-QPs, the scorer."""

    def __init__(self, spec: SwarmScenarioSpec, config: SwarmEnvConfig, num_scenes: int, seed: int) -> None:
        self.spec, self.config = spec, config
        self.rng = np.random.default_rng(seed)
        self.scenes = [self._draw() for _ in range(num_scenes)]
        first = self.scenes[0]
        self.controller = SwarmController.for_scenario(first)
        self.sim = KinematicSwarm(self.scenes)
        self._new_scorer()

    def _draw(self) -> SwarmScenario:
        sc = self.spec.expand(seed=int(self.rng.integers(0, 2**31 - 1)), num_agents=self.config.num_agents or None)
        if self.config.episode_time_s:
            from dataclasses import replace

            sc = replace(sc, time_limit_s=self.config.episode_time_s)
        return sc

    def _new_scorer(self) -> None:
        self.scorer = EpisodeScorer(self.sim.scenarios, self.sim.positions.copy())
        self.arrived = np.zeros(self.sim.positions.shape[:2], dtype=bool)
        self.distance = np.linalg.norm(self.sim.goals - self.sim.positions, axis=-1)

    def alpha(self, action: np.ndarray) -> np.ndarray:
        lo, hi = math.log(self.config.alpha_min), math.log(self.config.alpha_max)
        a = np.clip(np.nan_to_num(np.asarray(action, dtype=float)), -1.0, 1.0)
        return np.exp(lo + (a + 1.0) / 2.0 * (hi - lo))

    def observe(self) -> np.ndarray:
        sc = self.scenes[0]
        return agent_features(self.sim.state, sc.sensing_radius_m, sc.max_speed_m_s, sc.agent_radius_m)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, SwarmStep, np.ndarray]:
        """Per-robot rewards (B, N), the step, and which scenes just ended (B,)."""
        state = self.sim.state
        act = self.controller.act(state, self.alpha(action))
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
        self.scenes = [self._draw() for _ in self.scenes]
        self.sim = KinematicSwarm(self.scenes)
        self._new_scorer()


def _load_spec(config: SwarmEnvConfig) -> SwarmScenarioSpec:
    return load_swarm_scenario(_resolve(config.scenario))


class SwarmAlphaEnv(gym.Env):
    """One robot team; action = every robot's α; see the module docstring."""

    metadata = {"render_modes": []}

    def __init__(self, **kwargs: Any) -> None:
        self.config = SwarmEnvConfig(**kwargs)
        self.spec_file = _load_spec(self.config)
        self.scenes = _Scenes(self.spec_file, self.config, 1, seed=0)
        n = self.scenes.sim.num_agents
        self.observation_space = gym.spaces.Box(-10.0, 10.0, (n, FEATURES), dtype=np.float32)
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


class SwarmAgentVecEnv(VecEnv):
    """B scenes x N robots as B·N parameter-sharing sub-envs for stable-baselines3 (see module docstring)."""

    def __init__(self, num_scenes: int = 8, seed: int = 0, **kwargs: Any) -> None:
        self.config = SwarmEnvConfig(**kwargs)
        self.scenes = _Scenes(_load_spec(self.config), self.config, num_scenes, seed)
        self.num_scenes, self.num_agents = num_scenes, self.scenes.sim.num_agents
        obs = gym.spaces.Box(-10.0, 10.0, (FEATURES,), dtype=np.float32)
        act = gym.spaces.Box(-1.0, 1.0, (1,), dtype=np.float32)
        self.render_mode = None
        super().__init__(num_scenes * self.num_agents, obs, act)
        self._actions = np.zeros((self.num_envs, 1))
        self._returns = np.zeros(self.num_envs)
        self._lengths = np.zeros(self.num_envs, dtype=int)

    def reset(self) -> np.ndarray:
        """Every scene restarts with a fresh seed (SB3 calls this once; then step() restarts batches).

        A scene that ends before the others idles (zero reward, not done) until the whole batch
        is over: scenes share one vectorised simulator clock."""
        self.scenes.restart()
        self._returns[:] = 0.0
        self._lengths[:] = 0
        return self.scenes.observe().reshape(self.num_envs, FEATURES)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions, dtype=float).reshape(self.num_envs, 1)

    def step_wait(self) -> VecEnvStepReturn:
        b, n = self.num_scenes, self.num_agents
        reward, _, ended = self.scenes.step(self._actions.reshape(b, n))
        obs = self.scenes.observe().reshape(self.num_envs, FEATURES)
        rewards = reward.reshape(-1).astype(np.float32)
        self._returns += rewards
        self._lengths += 1
        dones = np.repeat(ended, n)
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        if self.scenes.scorer.done.all():  # every scene over: report, then start a fresh batch
            success = np.repeat(self.scenes.scorer.success, n)
            dones = np.ones(self.num_envs, dtype=bool)
            for i in range(self.num_envs):
                infos[i] = {"terminal_observation": obs[i], "is_success": bool(success[i]),
                            "episode": {"r": float(self._returns[i]), "l": int(self._lengths[i])},
                            "TimeLimit.truncated": not bool(success[i])}
            obs = self.reset()
        else:
            dones = np.zeros(self.num_envs, dtype=bool)  # a finished scene idles until the batch ends
        return obs, rewards, dones, infos

    # -- the rest of SB3's VecEnv interface -------------------------------------------

    def close(self) -> None:
        pass

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        return [getattr(self, attr_name)] * len(self._indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        setattr(self, attr_name, value)

    def env_method(self, method_name: str, *method_args: Any, indices: Any = None, **method_kwargs: Any) -> list[Any]:
        return [getattr(self, method_name)(*method_args, **method_kwargs)] * len(self._indices(indices))

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False] * len(self._indices(indices))

    def seed(self, seed: int | None = None) -> list[int | None]:
        if seed is not None:
            self.scenes.rng = np.random.default_rng(seed)
        return [seed] * self.num_envs

    def _indices(self, indices: Any) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        return [indices] if isinstance(indices, int) else list(indices)
