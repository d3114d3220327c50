"""Sparse-reward warehouse navigation for an AGV (Yin et al., RND for AGV path planning): fast and MuJoCo versions.

The task: reach one goal in a generated warehouse (:mod:`navkit.sim.warehouse_layouts`:
shelves, aisles, unmapped clutter; a fresh layout every episode, held-out layout seeds for
evaluation) with continuous (v, ω). Reward is sparse: +1 on reaching the goal, -1 on a
collision (both end the episode), optionally ``-time_penalty`` per step (0 by default: the
paper's setting, where only exploration finds the goal). Episodes are truncated at the
layout's time limit.

Observation (29 numbers in [-1, 1], the layout of ``NavkitNavigation-v0``): ``num_rays``
lidar sectors (the nearest of ``lidar_rays`` / ``num_rays`` rays each) / range_max (no return
= 1), the goal in the robot's frame (distance / 10 m
clipped to 1, cos and sin of its bearing) and the twist (v / v_max, ω / ω_max). A policy
step holds its command for ``dt`` = 0.1 s.

* :class:`WarehouseExploreVecEnv`: E warehouses stepped as arrays (:class:`~navkit.sim.vector_agv.VectorAgv`)
  behind SB3's ``VecEnv`` interface, with auto-reset: what training uses.
* ``NavkitWarehouseExplore-v0`` (:class:`WarehouseExploreEnv`): the same, one warehouse, as a gymnasium env.
* ``NavkitWarehouseExploreMujoco-v0`` (:class:`WarehouseExploreMujocoEnv`): the same task on navkit's MuJoCo
  backend and stack episode (odometry pose, real lidar, optionally through the CBF safety filter), for
  evaluation. A test checks the two agree on lidar, observation and reward for the same state.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import VecEnvStepReturn

from navkit.learning.envs.array_vec_env import ArrayVecEnv
from navkit.control.learned_controller import ObservationSpec, encode_observation, sector_ranges
from navkit.learning.navigation_task import JUDGE_SLACK_M
from navkit.sim.scenario import Scenario
from navkit.sim.vector_agv import VectorAgv
from navkit.sim.warehouse_layouts import FAMILIES, HELD_OUT_SEED_BASE, LayoutConfig, generate

GOAL_REWARD = 1.0
COLLISION_REWARD = -1.0


@dataclass(frozen=True)
class ExploreConfig:
    """Keyword arguments of the warehouse-exploration envs."""

    family: str = "mixed"
    """Layout family: open, behind_shelves (goal hidden by a shelf) or mixed."""
    num_rays: int = 24
    """Lidar sectors in the observation (each the minimum of its rays)."""
    lidar_rays: int = 72
    """Rays the lidar casts (a multiple of ``num_rays``): the generated warehouses give the MuJoCo AGV this
    lidar, so the deployed controller pools exactly what training pooled. More rays also keep the stack's
    scan-matching localiser accurate (with 24 rays it drifted ~0.4 m in a 20 m tour)."""
    range_max_m: float = 6.0
    dt: float = 0.1
    """Seconds each action is held (5 control periods of the stack at 50 Hz)."""
    v_max: float = 0.8
    """Speed at action 1 (the safety filter's limit)."""
    omega_max: float = 1.5
    time_penalty: float = 0.0
    """Subtracted every step (0: purely sparse, as in the paper)."""
    layout_pool: int = 5000
    """Training layouts are seeds [0, layout_pool) (cached once generated); evaluation uses held-out seeds."""
    safety_filter: bool = True
    """Pass every action through the robot's CBF safety filter (``cbf_lidar`` with the default parameter
    file's settings) before it moves the robot, as on the robot. A policy trained without it learns to
    brush past shelf corners; deployed behind the filter, that policy is held back at every corner and,
    deterministic, pushes into the same corner until the episode times out (measured: 0.9 success
    unfiltered, 0.2 filtered in MuJoCo). Trained behind it, the policy learns what the filter lets through."""

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"family: expected one of {', '.join(FAMILIES)}, got {self.family!r}")
        if not 8 <= self.num_rays <= 360:
            raise ValueError(f"num_rays: must be in [8, 360], got {self.num_rays}")
        if not self.num_rays <= self.lidar_rays <= 1440 or self.lidar_rays % self.num_rays:
            raise ValueError(f"lidar_rays: must be a multiple of num_rays ({self.num_rays}) up to 1440, "
                             f"got {self.lidar_rays}")
        for name in ("range_max_m", "dt", "v_max", "omega_max"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: must be > 0, got {getattr(self, name)}")
        if not 0.0 <= self.time_penalty <= 1.0:
            raise ValueError(f"time_penalty: must be in [0, 1], got {self.time_penalty}")
        if not 1 <= self.layout_pool <= HELD_OUT_SEED_BASE:
            raise ValueError(f"layout_pool: must be in [1, {HELD_OUT_SEED_BASE}], got {self.layout_pool}")

    @property
    def layout(self) -> LayoutConfig:
        return LayoutConfig(lidar_rays=self.lidar_rays, lidar_range_m=self.range_max_m)

    @property
    def spec(self) -> ObservationSpec:
        """What a policy trained here reads (saved with it, checked by the deployed controller)."""
        return ObservationSpec(self.num_rays, self.range_max_m, self.v_max, self.omega_max, self.dt)


class _VectorFilter:
    """The robot's ``cbf_lidar`` filter for E simulated robots at once
    (:meth:`~navkit.control.cbf_filter.CbfSafetyFilter.filter_batch` on the rays' hit points)."""

    def __init__(self, config: Any) -> None:
        from navkit.control.cbf_filter import CbfSafetyFilter

        self.filter = CbfSafetyFilter(config)
        self.config = config

    def __call__(self, u_nom: np.ndarray, rays: np.ndarray, angles: np.ndarray, range_max: float) -> np.ndarray:
        """(E, 2) filtered commands for nominal ``u_nom`` (E, 2) and scans ``rays`` (E, R) at ``angles`` (R,)."""
        points = np.stack([rays * np.cos(angles), rays * np.sin(angles)], axis=-1)
        return self.filter.filter_batch(u_nom, points, rays < range_max)


def _vector_filter() -> _VectorFilter:
    """The filter the robot runs behind: the default parameter file's ``safety_filter`` settings."""
    from navkit.stack.config import DEFAULT_PARAMS_FILE, load_stack_config

    return _VectorFilter(load_stack_config(DEFAULT_PARAMS_FILE).safety_filter.config)


def arrived(pose: np.ndarray, goal: np.ndarray, tolerance: np.ndarray) -> np.ndarray:
    """(E,) within the goal tolerance plus the judge's slack (the rule of every navkit task)."""
    return np.hypot(goal[:, 0] - pose[:, 0], goal[:, 1] - pose[:, 1]) <= tolerance + JUDGE_SLACK_M


class LayoutCache:
    """Generated layouts by seed (generation takes ~20 ms; training revisits a pool of seeds)."""

    def __init__(self, family: str, config: LayoutConfig, capacity: int = 8192) -> None:
        self.family, self.config, self.capacity = family, config, capacity
        self._cache: OrderedDict[int, Scenario] = OrderedDict()

    def __call__(self, seed: int) -> Scenario:
        sc = self._cache.get(seed)
        if sc is None:
            sc = generate(seed, self.family, self.config)
            self._cache[seed] = sc
            if len(self._cache) > self.capacity:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(seed)
        return sc


class WarehouseExploreVecEnv(ArrayVecEnv):
    """E warehouses as SB3 sub-envs; each episode a new training layout; see the module docstring.

    ``layout_seeds``: a fixed list of layouts to cycle through instead (evaluation on held-out seeds).
    ``state()``/``set_state()`` capture everything (poses, layouts, RNG) for exact resume.
    """

    def __init__(self, num_envs: int = 32, seed: int = 0, config: ExploreConfig | None = None,
                 layout_seeds: list[int] | None = None) -> None:
        self.config = config or ExploreConfig()
        c = self.config
        self.layouts = LayoutCache(c.family, c.layout)
        self.sim = VectorAgv(num_envs, c.lidar_rays, c.range_max_m, c.dt)
        self.rng = np.random.default_rng(seed)
        self.layout_seeds = list(layout_seeds) if layout_seeds is not None else None
        self._next_layout = 0
        self.seeds = np.zeros(num_envs, dtype=np.int64)
        self.goal = np.zeros((num_envs, 2))
        self.tolerance = np.zeros(num_envs)
        self.steps = np.zeros(num_envs, dtype=int)
        self.limit = np.zeros(num_envs, dtype=int)
        self.returns = np.zeros(num_envs)
        obs_space = gym.spaces.Box(-1.0, 1.0, (c.spec.size,), dtype=np.float32)
        self.render_mode = None
        super().__init__(num_envs, obs_space, gym.spaces.Box(-1.0, 1.0, (2,), dtype=np.float32))
        self._actions = np.zeros((num_envs, 2))
        self.filter = _vector_filter() if c.safety_filter else None
        self._rays: np.ndarray | None = None
        for i in range(num_envs):
            self._new_episode(i)

    def _draw_seed(self) -> int:
        if self.layout_seeds is not None:
            seed = self.layout_seeds[self._next_layout % len(self.layout_seeds)]
            self._next_layout += 1
            return int(seed)
        return int(self.rng.integers(0, self.config.layout_pool))

    def _new_episode(self, i: int) -> None:
        sc = self.layouts(self._draw_seed())
        self.sim.load(i, sc)
        self.seeds[i] = sc.seed
        self.goal[i] = sc.goals[0]
        self.tolerance[i] = sc.goal_tolerance_m
        self.limit[i] = int(round(sc.time_limit_s / self.config.dt))
        self.steps[i] = 0
        self.returns[i] = 0.0

    def observe(self) -> np.ndarray:
        c = self.config
        rays = self._rays = self.sim.scan()
        sectors = rays.reshape(self.num_envs, c.num_rays, c.lidar_rays // c.num_rays).min(axis=2)
        return encode_observation(sectors, c.range_max_m, self.sim.pose, self.goal, self.sim.twist, c.v_max,
                                  c.omega_max)

    def reset(self) -> np.ndarray:
        for i in range(self.num_envs):
            self._new_episode(i)
        return self.observe()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.clip(np.nan_to_num(np.asarray(actions, dtype=float).reshape(self.num_envs, 2)), -1, 1)

    def filtered_command(self) -> np.ndarray:
        """(E, 2) (v, ω) the robots execute: the actions, scaled, through the safety filter when configured."""
        c = self.config
        u = self._actions * np.array([c.v_max, c.omega_max])
        if self.filter is None:
            return u
        if self._rays is None:
            self._rays = self.sim.scan()
        return self.filter(u, self._rays, self.sim.angles, c.range_max_m)

    def step_wait(self) -> VecEnvStepReturn:
        c = self.config
        u = self.filtered_command()
        self.sim.step(u[:, 0], u[:, 1])
        self.steps += 1
        hit = self.sim.colliding()
        home = arrived(self.sim.pose, self.goal, self.tolerance) & ~hit
        reward = GOAL_REWARD * home + COLLISION_REWARD * hit - c.time_penalty
        self.returns += reward
        timeout = self.steps >= self.limit
        done = home | hit | timeout
        obs = self.observe()
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        for i in np.flatnonzero(done):
            infos[i] = {"terminal_observation": obs[i].copy(), "is_success": bool(home[i]),
                        "is_collision": bool(hit[i]), "time_to_goal_s": float(self.steps[i] * c.dt) if home[i] else
                        None, "layout_seed": int(self.seeds[i]),
                        "episode": {"r": float(self.returns[i]), "l": int(self.steps[i])},
                        "TimeLimit.truncated": bool(timeout[i] and not (home[i] or hit[i]))}
            self._new_episode(i)
        if done.any():
            obs[done] = self.observe()[done]
        return obs, reward.astype(np.float32), done, infos

    # -- exact resume --------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state, "pose": self.sim.pose.copy(), "twist": self.sim.twist.copy(),
                "seeds": self.seeds.copy(), "steps": self.steps.copy(), "returns": self.returns.copy(),
                "next_layout": self._next_layout}

    def set_state(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        for i, seed in enumerate(state["seeds"]):
            sc = self.layouts(int(seed))
            self.sim.load(i, sc)
            self.seeds[i], self.goal[i], self.tolerance[i] = sc.seed, sc.goals[0], sc.goal_tolerance_m
            self.limit[i] = int(round(sc.time_limit_s / self.config.dt))
        self.sim.pose[:] = state["pose"]
        self.sim.twist[:] = state["twist"]
        self._rays = None
        self.steps[:] = state["steps"]
        self.returns[:] = state["returns"]
        self._next_layout = int(state["next_layout"])

    # -- seeding (the rest of the VecEnv plumbing is ArrayVecEnv's) --------------------------

    def seed(self, seed: int | None = None) -> list[int | None]:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        return [seed] * self.num_envs


FINAL_SEED_OFFSET = 500_000
"""Test layouts start this far above the validation layouts, so the two sets never overlap."""


def held_out_seeds(count: int) -> list[int]:
    """The validation layouts: never drawn in training; the training curve and the best checkpoint use them."""
    if not 0 <= count <= FINAL_SEED_OFFSET:
        raise ValueError(f"held-out layouts: must be in [0, {FINAL_SEED_OFFSET}], got {count}")
    return [HELD_OUT_SEED_BASE + i for i in range(count)]


def final_layout_seeds(count: int) -> list[int]:
    """The test layouts: neither trained on nor used to pick a checkpoint (final numbers are reported on them)."""
    return [HELD_OUT_SEED_BASE + FINAL_SEED_OFFSET + i for i in range(count)]


class WarehouseExploreEnv(gym.Env):
    """``NavkitWarehouseExplore-v0``: one warehouse of the fast simulator as a gymnasium env."""

    metadata = {"render_modes": []}

    def __init__(self, **kwargs: Any) -> None:
        self.config = ExploreConfig(**kwargs)
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (self.config.spec.size,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)
        self.venv = WarehouseExploreVecEnv(1, 0, self.config)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.venv.rng = np.random.default_rng(int(self.np_random.integers(0, 2**31 - 1)))
        obs = self.venv.reset()[0]
        return obs, {"layout_seed": int(self.venv.seeds[0])}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self.venv.step_async(np.asarray(action).reshape(1, 2))
        obs, reward, done, infos = self.venv.step_wait()
        info = infos[0]
        if done[0]:
            truncated = bool(info["TimeLimit.truncated"])
            return info["terminal_observation"], float(reward[0]), not truncated, truncated, info
        return obs[0], float(reward[0]), False, False, info


class WarehouseExploreMujocoEnv(gym.Env):
    """``NavkitWarehouseExploreMujoco-v0``: the same task on the MuJoCo backend and navkit's episode.

    Each reset builds a new MuJoCo warehouse from a layout seed (``options={"layout_seed": s}``, else the
    next of ``layout_seeds``, else a training seed drawn from the env's RNG). The policy's (v, ω) is held
    for ``dt`` (control periods of the stack) and passes through the CBF safety filter unless
    ``safety_filter=False``; the goal and pose come from wheel odometry, as on a robot; arrival and
    collisions are judged on simulation truth by :class:`~navkit.learning.navigation_task.NavigationTask`.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, render_mode: str | None = None, safety_filter: bool = True, params: str = "",
                 layout_seeds: list[int] | None = None, **kwargs: Any) -> None:
        from navkit.stack.config import DEFAULT_PARAMS_FILE, load_stack_config
        from navkit.stack.plugin_catalog import default_registry

        self.config = ExploreConfig(**kwargs)
        self.render_mode = render_mode
        self.safety_filter = safety_filter
        self.registry = default_registry()
        self.stack_config = load_stack_config(params or DEFAULT_PARAMS_FILE, registry=self.registry)
        self.layouts = LayoutCache(self.config.family, self.config.layout, capacity=64)
        self.layout_seeds = list(layout_seeds or [])
        self._next = 0
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (self.config.spec.size,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)
        self.robot: Any = None
        self.episode: Any = None
        self.scenario: Scenario | None = None

    def _build(self, scenario: Scenario) -> None:
        from navkit.learning.navigation_episode import NavigationEpisode

        if self.robot is not None:
            self.robot.close()
        choice = self.registry.choose("robot_backend", {"robot_backend.plugin": scenario.backend}, scenario.source,
                                      prefix="robot_backend")
        self.robot = self.registry.build(choice, scenario=scenario,
                                         cmd_timeout_s=self.stack_config.bridge.cmd_timeout_s)
        self.episode = NavigationEpisode(scenario, self.stack_config, self.robot)
        self.scenario = scenario

    def observe(self) -> np.ndarray:
        c = self.config
        scan, odom = self._step.observation.scan, self._step.observation.odom
        pooled = sector_ranges(scan, c.num_rays, c.range_max_m) if scan is not None else None
        ranges = np.full(c.num_rays, c.range_max_m) if pooled is None else pooled
        pose = np.array([[odom.pose.x, odom.pose.y, odom.pose.yaw]])
        assert self.scenario is not None
        return encode_observation(ranges[None], c.range_max_m, pose, np.asarray(self.scenario.goals[:1], float),
                           np.array([[odom.v, odom.omega]]), c.v_max, c.omega_max)[0]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        from navkit.common.sensor_data import VelocityCommand

        super().reset(seed=seed)
        if options and "layout_seed" in options:
            layout = int(options["layout_seed"])
        elif self.layout_seeds:
            layout = self.layout_seeds[self._next % len(self.layout_seeds)]
            self._next += 1
        else:
            layout = int(self.np_random.integers(0, self.config.layout_pool))
        self._build(self.layouts(layout))
        self.episode.reset()
        self._step = self.episode.step(VelocityCommand(0.0, 0.0, 0.0), filtered=self.safety_filter)
        self._steps = 0
        return self.observe(), {"layout_seed": layout}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        from navkit.common.sensor_data import VelocityCommand

        c = self.config
        a = np.clip(np.nan_to_num(np.asarray(action, dtype=float).reshape(2)), -1.0, 1.0)
        repeat = max(1, int(round(c.dt / self.episode.dt)))
        task = self.episode.task
        home = hit = False
        for _ in range(repeat):
            cmd = VelocityCommand(self.episode.backend.now(), float(a[0]) * c.v_max, float(a[1]) * c.omega_max)
            self._step = self.episode.step(cmd, filtered=self.safety_filter)
            home, hit = bool(task.goals.done), bool(task.collided_now)
            if home or hit:
                break
        self._steps += 1
        reward = GOAL_REWARD * (home and not hit) + COLLISION_REWARD * hit - c.time_penalty
        assert self.scenario is not None
        truncated = not (home or hit) and self._steps >= int(round(self.scenario.time_limit_s / c.dt))
        info = {"is_success": home and not hit, "is_collision": hit, "time_to_goal_s": self._steps * c.dt if home
                else None, "filter_status": self._step.result.status.name,
                "layout_seed": int(self.scenario.seed)}
        return self.observe(), float(reward), home or hit, truncated, info

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array" or self.robot is None:
            return None
        return self.robot.render_topdown(320, 240)

    def close(self) -> None:
        if self.robot is not None:
            self.robot.close()
            self.robot = None
