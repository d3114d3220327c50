"""``NavkitNavigation-v0``: one AGV in a MuJoCo warehouse as a gymnasium env.

The agent commands (v, ω) in [-1, 1]² (scaled to the safety filter's limits) every
``action_repeat`` control periods; by default the command still passes through the CBF
safety filter, as on the robot, so a policy learns with the filter it will be deployed
behind. The observation is what the robot knows: a lidar downsampled to ``lidar_rays``
rays (range / range_max, "no return" = 1), the current goal in the robot's frame
(distance / 10 m clipped to 1, cos and sin of its bearing) and the odometry twist
(v / v_max, ω / ω_max). Reward and termination come from
:class:`~navkit.learning.navigation_task.NavigationTask` (progress, +1 per goal, -1 per
collision); the episode is :class:`~navkit.learning.navigation_episode.NavigationEpisode`,
the same one ``navkit run`` steps.

    import gymnasium as gym
    env = gym.make("navkit.learning.envs:NavkitNavigation-v0", scenario="scenarios/short_aisle.yaml")
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from navkit.common.sensor_data import VelocityCommand
from navkit.learning.navigation_episode import EpisodeStep, NavigationEpisode
from navkit.sim.scenario import load_scenario
from navkit.stack.config import DEFAULT_PARAMS_FILE, load_stack_config
from navkit.stack.plugin_catalog import default_registry

REPO_ROOT = Path(__file__).resolve().parents[2]


def _resolve(path: str) -> Path:
    p = Path(path)
    return p if p.is_absolute() or p.exists() else REPO_ROOT / p


@dataclass(frozen=True)
class NavigationEnvConfig:
    """Keyword arguments of ``gymnasium.make("navkit.learning.envs:NavkitNavigation-v0", ...)``."""

    scenario: str = "scenarios/short_aisle.yaml"
    """Single-robot scenario file (relative paths: working directory, then the navkit checkout)."""
    params: str = ""
    """Stack parameter file (safety filter, robot limits); empty: the shipped one."""
    lidar_rays: int = 24
    """Rays of the observation's lidar (the scan is min-pooled into this many sectors)."""
    action_repeat: int = 5
    """Control periods per env step: 5 at 50 Hz is a 10 Hz policy."""
    safety_filter: bool = True
    """Commands pass through the CBF safety filter (as on the robot)."""
    terminate_on_collision: bool = True
    """End the episode at the first collision (reward -1)."""
    time_limit_s: float = 0.0
    """Episode time limit; 0: the scenario's."""

    def __post_init__(self) -> None:
        if not 4 <= self.lidar_rays <= 360:
            raise ValueError(f"lidar_rays: must be in [4, 360], got {self.lidar_rays}")
        if not 1 <= self.action_repeat <= 100:
            raise ValueError(f"action_repeat: must be in [1, 100], got {self.action_repeat}")
        if not 0.0 <= self.time_limit_s <= 86400.0:
            raise ValueError(f"time_limit_s: must be in [0, 86400], got {self.time_limit_s}")


class NavigationEnv(gym.Env):
    """See the module docstring; ``render()`` gives the overhead camera."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, render_mode: str | None = None, **kwargs: Any) -> None:
        self.config = NavigationEnvConfig(**kwargs)
        self.render_mode = render_mode
        registry = default_registry()
        self.scenario = load_scenario(_resolve(self.config.scenario))
        params = _resolve(self.config.params) if self.config.params else DEFAULT_PARAMS_FILE
        self.stack_config = load_stack_config(params, registry=registry)
        choice = registry.choose("robot_backend", {"robot_backend.plugin": self.scenario.backend}, self.scenario.source,
                                 prefix="robot_backend")
        self.robot = registry.build(choice, scenario=self.scenario,
                                    cmd_timeout_s=self.stack_config.bridge.cmd_timeout_s)
        self.episode = NavigationEpisode(self.scenario, self.stack_config, self.robot,
                                         time_limit_s=self.config.time_limit_s or None)
        limits = self.episode.stack.filter
        cbf = getattr(limits, "config", None)
        self.v_max = float(getattr(cbf, "v_max", 0.8))
        self.omega_max = float(getattr(cbf, "omega_max", 1.5))
        n = self.config.lidar_rays
        self.observation_space = gym.spaces.Box(
            low=np.concatenate([np.zeros(n), [0.0, -1.0, -1.0, -1.0, -1.0]]).astype(np.float32),
            high=np.ones(n + 5, dtype=np.float32), dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)
        self._last: EpisodeStep | None = None

    # ------------------------------------------------------------------ observation

    def _observe(self, step: EpisodeStep) -> np.ndarray:
        obs = step.observation
        n = self.config.lidar_rays
        lidar = np.ones(n)
        scan = obs.scan
        if scan is not None and scan.problem(0.5) is None:
            r = np.asarray(scan.ranges, dtype=float)
            r = np.where(np.isfinite(r) & (r >= scan.range_min) & (r < scan.range_max), r, scan.range_max)
            r = np.where(np.asarray(scan.ranges) == -np.inf, scan.range_min, r)
            sector = np.arange(len(r)) * n // len(r)  # rays in scan order, n equal sectors
            lidar = np.full(n, scan.range_max)
            np.minimum.at(lidar, sector, r)
            lidar = lidar / scan.range_max
        goal = self.episode.task.goals.current()
        odom = obs.odom
        if goal is None or odom is None:
            goal_feats = [0.0, 1.0, 0.0]
        else:
            dx, dy = goal[0] - odom.pose.x, goal[1] - odom.pose.y
            bearing = math.atan2(dy, dx) - odom.pose.yaw
            goal_feats = [min(math.hypot(dx, dy) / 10.0, 1.0), math.cos(bearing), math.sin(bearing)]
        twist = [0.0, 0.0] if odom is None else [odom.v / self.v_max, odom.omega / self.omega_max]
        out = np.concatenate([lidar, goal_feats, np.clip(twist, -1.0, 1.0)]).astype(np.float32)
        return np.clip(np.nan_to_num(out), self.observation_space.low, self.observation_space.high)

    # ------------------------------------------------------------------ gymnasium API

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        noise_seed = int(self.np_random.integers(0, 2**31 - 1)) if seed is not None else None
        self.episode.reset(noise_seed)
        self._last = self.episode.step(VelocityCommand(0.0, 0.0, 0.0))
        return self._observe(self._last), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        a = np.clip(np.nan_to_num(np.asarray(action, dtype=float).reshape(2)), -1.0, 1.0)
        reward, terminated, truncated = 0.0, False, False
        step = self._last
        for _ in range(self.config.action_repeat):
            now = self.episode.backend.now()
            command = VelocityCommand(now, float(a[0]) * self.v_max, float(a[1]) * self.omega_max)
            step = self.episode.step(command, filtered=self.config.safety_filter)
            reward += step.reward
            collided = self.episode.task.collided_now
            terminated = step.terminated or (collided and self.config.terminate_on_collision)
            truncated = step.truncated
            if terminated or truncated:
                break
        assert step is not None
        self._last = step
        info = {"goals_reached": len(self.episode.task.goals.reached), "collisions": self.episode.task.collisions,
                "filter_status": step.result.status.name, "is_success": bool(self.episode.task.goals.done)}
        return self._observe(step), float(reward), bool(terminated), bool(truncated and not terminated), info

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        return self.robot.render_topdown(320, 240)

    def close(self) -> None:
        self.robot.close()
