"""navkit's AGV in a warehouse as a world-model environment: front camera in, (v, ω) out.

The point of a world model for navkit is to predict what the robot's *own* camera will see
after a command, so the observation is the onboard front camera (``MujocoRobot.read_camera``,
rendered at the configured size through the scenario's camera config, depth off), proprio is
what the robot measures of itself (wheel odometry: x, y, cos yaw, sin yaw, v, ω) and the
action is the velocity command (v, ω) scaled to [-1, 1]², held for one control period. The
simulator is the same :class:`~navkit.sim.mujoco_backend.MujocoRobot` that ``navkit run``
drives (same MJCF, motor limits, odometry noise, watchdog), so the data has the dynamics the
stack will plan against. DINO-WM (Zhou et al. 2025, arXiv 2411.04983) trains on random
trajectories; here random means smooth random commands with a forward bias (so the camera
sees the warehouse go by) passed through a short-horizon collision shield (a privileged one:
it uses the true pose and the scenario geometry, which only the data collector has). The
shield keeps the robot off shelves, and a trajectory that still collides is reported by
:meth:`WarehouseWmEnv.failed` so the collector redraws it rather than teaching a world model
to drive through racks.

Odometry starts at the true pose at every ``reset``/``set_state`` (as a localiser's initial
pose would set it) and then drifts as the wheel encoders do.
"""
from __future__ import annotations

import math
import os

# Headless CPU rendering; must be chosen before MuJoCo creates a GL context.
os.environ.setdefault("MUJOCO_GL", "egl")

from dataclasses import asdict, dataclass, replace
from typing import Any

import mujoco
import numpy as np

from navkit.common.errors import ParameterError
from navkit.common.geometry import Pose2D, compose, inverse
from navkit.common.sensor_data import VelocityCommand
from navkit.sim.mujoco_backend import MujocoRobot
from navkit.sim.scenario import Scenario, load_scenario
from navkit.sim.warehouse_layouts import FAMILIES, generate
from navkit.sim.wm_envs import CorrelatedNoise, WmObservation, as_action, as_state, check_image_size, check_range

_SOURCE = "WarehouseWmConfig"
MAX_SAMPLE_TRIES = 10_000


@dataclass(frozen=True)
class WarehouseWmConfig:
    """Which warehouse, the command scaling and control period, and the data-collection policy."""

    scenario: str = ""
    """Single-robot scenario YAML (e.g. scenarios/warehouse_demo.yaml); empty: a generated layout."""
    layout_seed: int = 0
    """Seed of the generated layout (:func:`navkit.sim.warehouse_layouts.generate`) when ``scenario`` is empty.
    One fixed warehouse for the whole dataset, as DINO-WM uses one maze: the model learns that world."""
    layout_family: str = "mixed"
    control_period_s: float = 0.1
    """Each command is applied for this long (one 10 Hz control period) per step."""
    v_max: float = 0.8
    """Speed (m/s) of action[0] = 1 (the base reaches 1.2 m/s; the stack's pure pursuit drives at 0.7)."""
    omega_max: float = 1.5
    """Turn rate (rad/s) of action[1] = 1."""
    success_threshold_m: float = 0.3
    smoothing: float = 0.9
    """Correlation ρ of the random commands per step (10 Hz: about a second of memory)."""
    noise_scale: float = 0.6
    forward_bias: float = 0.35
    """Added to the random action[0]: a robot that mostly drives forward sees more of the warehouse."""
    shield_horizon_s: float = 0.6
    """How far ahead (at the commanded v, ω) the collision shield looks."""
    clearance_m: float = 0.12
    """Gap beyond the robot's radius that the shield keeps to obstacles and walls."""
    start_clearance_m: float = 0.3
    """Gap beyond the robot's radius around random starts and goals."""

    def __post_init__(self) -> None:
        if not isinstance(self.scenario, str):
            raise ParameterError(_SOURCE, "scenario", f"expected a file path, got {self.scenario!r}")
        if self.layout_family not in FAMILIES:
            raise ParameterError(_SOURCE, "layout_family", f"expected one of {', '.join(FAMILIES)}, "
                                                           f"got {self.layout_family!r}")
        if isinstance(self.layout_seed, bool) or not isinstance(self.layout_seed, int) or self.layout_seed < 0:
            raise ParameterError(_SOURCE, "layout_seed", f"must be an integer >= 0, got {self.layout_seed!r}")
        check_range(_SOURCE, "control_period_s", self.control_period_s, 0.01, 2.0)
        check_range(_SOURCE, "v_max", self.v_max, 0.01, 1.2)
        check_range(_SOURCE, "omega_max", self.omega_max, 0.01, 5.0)
        check_range(_SOURCE, "success_threshold_m", self.success_threshold_m, 1e-3, 10.0)
        check_range(_SOURCE, "smoothing", self.smoothing, 0.0, 0.999)
        check_range(_SOURCE, "noise_scale", self.noise_scale, 0.0, 5.0)
        check_range(_SOURCE, "forward_bias", self.forward_bias, -1.0, 1.0)
        check_range(_SOURCE, "shield_horizon_s", self.shield_horizon_s, 0.0, 5.0)
        check_range(_SOURCE, "clearance_m", self.clearance_m, 0.0, 2.0)
        check_range(_SOURCE, "start_clearance_m", self.start_clearance_m, 0.0, 2.0)


def wm_scenario(config: WarehouseWmConfig, image_size: int) -> Scenario:
    """The configured warehouse with its front camera at ``image_size``² RGB (no depth: not observed)."""
    sc = load_scenario(config.scenario) if config.scenario else generate(config.layout_seed, config.layout_family)
    camera = replace(sc.sensors.camera, enabled=True, width=image_size, height=image_size, depth=False)
    return sc.with_overrides(sensors=replace(sc.sensors, camera=camera))


class WarehouseWmEnv:
    """A :class:`~navkit.sim.wm_envs.WmEnv` around :class:`MujocoRobot`.

    state (22,) = MuJoCo qpos (9: base x y z, quaternion w x y z, two wheel angles), qvel (8) and
    the odometry estimate (x, y, yaw, v, ω), so that ``set_state(state())`` also restores
    ``proprio()``; the odometry's encoder noise is re-drawn after it.
    """

    def __init__(self, config: WarehouseWmConfig | None = None, *, image_size: int = 64) -> None:
        check_image_size(image_size, _SOURCE)
        self.config = config or WarehouseWmConfig()
        if not isinstance(self.config, WarehouseWmConfig):
            raise ParameterError(_SOURCE, "config", f"expected a WarehouseWmConfig, got {type(self.config).__name__}")
        self.name = "warehouse"
        self.image_size = image_size
        self.scenario = wm_scenario(self.config, image_size)
        self.robot = MujocoRobot(self.scenario)
        m = self.robot.model
        # The scenario's goal markers are for navkit run's videos; in a world model's images they would be
        # a landmark that the planner's goals have nothing to do with.
        for i in range(m.nsite):
            if m.site(i).name.startswith("goal_"):
                m.site_rgba[i, 3] = 0.0
        self._nq, self._nv = m.nq, m.nv
        self._base_q = int(m.joint("base").qposadr[0])
        self.action_dim = 2
        self.proprio_dim = 6
        self.state_dim = self._nq + self._nv + 5
        self.action_low = -np.ones(2)
        self.action_high = np.ones(2)
        self._anchor = Pose2D(0.0, 0.0, 0.0)
        self._twist_override: tuple[float, float] | None = None
        self._collided = False
        self.reset(0)

    # ------------------------------------------------------------------ WmEnv

    def reset(self, seed: int | None = None) -> WmObservation:
        base = 0 if seed is None else seed
        c = self.config
        self._seed = base
        self._noise = CorrelatedNoise(2, c.smoothing, c.noise_scale, np.random.default_rng([base, 1]))
        return self.set_state(self.sample_state(np.random.default_rng([base, 0])))

    def step(self, action: np.ndarray) -> WmObservation:
        a = as_action(action, self)
        c = self.config
        self.robot.apply_command(VelocityCommand(self.robot.now(), float(a[0]) * c.v_max, float(a[1]) * c.omega_max))
        self.robot.advance(c.control_period_s)
        self._twist_override = None
        self._collided = self._collided or self.robot.in_collision()
        return self._observe()

    def render(self) -> np.ndarray:
        image = self.robot.read_camera()
        assert image is not None  # the camera is enabled by wm_scenario
        return image.rgb

    def proprio(self) -> np.ndarray:
        pose, v, w = self._odometry()
        return np.array([pose.x, pose.y, math.cos(pose.yaw), math.sin(pose.yaw), v, w], dtype=np.float32)

    def state(self) -> np.ndarray:
        d = self.robot.data
        pose, v, w = self._odometry()
        return np.concatenate([d.qpos, d.qvel, [pose.x, pose.y, pose.yaw, v, w]]).astype(np.float64)

    def set_state(self, state: np.ndarray) -> WmObservation:
        s = as_state(state, self)
        nq, nv = self._nq, self._nv
        quat = s[self._base_q + 3:self._base_q + 7]
        if not 0.5 < float(np.linalg.norm(quat)) < 1.5:
            raise ParameterError(self.name, "state", f"base quaternion {quat.tolist()} is not a rotation")
        # The odometry noise of this episode: redrawn from the reset seed, not from the scenario's.
        self.robot.reset(self._seed)
        d = self.robot.data
        d.qpos[:] = s[:nq]
        d.qpos[self._base_q + 3:self._base_q + 7] = quat / np.linalg.norm(quat)
        d.qvel[:] = s[nq:nq + nv]
        mujoco.mj_forward(self.robot.model, d)
        # Odometry reads the robot's own frame (it starts at the scenario's start pose at reset):
        # anchor it so it reads the requested estimate from now on.
        x, y, yaw = s[nq + nv:nq + nv + 3]
        self._anchor = compose(Pose2D(float(x), float(y), float(yaw)), inverse(self.robot.read_odometry().pose))
        self._twist_override = (float(s[nq + nv + 3]), float(s[nq + nv + 4]))
        self._collided = self.robot.in_collision()
        return self._observe()

    def goal_distance(self, goal_state: np.ndarray) -> float:
        g = np.asarray(goal_state, dtype=np.float64).reshape(-1)
        pose = self.robot.true_pose()
        return math.hypot(pose.x - float(g[self._base_q]), pose.y - float(g[self._base_q + 1]))

    def success(self, goal_state: np.ndarray) -> bool:
        return self.goal_distance(goal_state) <= self.config.success_threshold_m

    def sample_state(self, rng: np.random.Generator) -> np.ndarray:
        """A random pose at rest, ``start_clearance_m`` clear of everything; odometry reads it exactly."""
        sc, c = self.scenario, self.config
        xmin, ymin, xmax, ymax = sc.bounds
        need = sc.robot.radius_m + c.start_clearance_m
        for _ in range(MAX_SAMPLE_TRIES):
            xy = rng.uniform([xmin, ymin], [xmax, ymax])
            if sc.obstacle_distance(xy[None])[0] >= need:
                break
        else:
            raise ParameterError(sc.source, "map", f"no free pose with {need:g} m clearance found in "
                                                   f"{MAX_SAMPLE_TRIES} tries")
        yaw = float(rng.uniform(-math.pi, math.pi))
        qpos = np.array(self.robot.model.qpos0, dtype=np.float64)
        qpos[self._base_q:self._base_q + 2] = xy
        qpos[self._base_q + 3:self._base_q + 7] = (math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2))
        return np.concatenate([qpos, np.zeros(self._nv), [xy[0], xy[1], yaw, 0.0, 0.0]])

    def random_action(self) -> np.ndarray:
        c = self.config
        bias = np.array([c.forward_bias, 0.0])
        proposed = np.clip(self._noise() + bias, -1.0, 1.0)
        safe = self._shield(proposed)
        if safe is not proposed:
            self._noise.value = safe - bias  # continue smoothly from what was done
        return safe

    def failed(self) -> bool:
        """The robot touched an obstacle or wall since the last reset/set_state."""
        return self._collided

    def config_dict(self) -> dict[str, Any]:
        d = asdict(self.config)
        d["scenario_name"] = self.scenario.name
        d["bounds"] = list(self.scenario.bounds)
        d["camera_fov_deg"] = self.scenario.sensors.camera.fov_deg
        return d

    def close(self) -> None:
        self.robot.close()

    # ------------------------------------------------------------------ internals

    def _observe(self) -> WmObservation:
        return WmObservation(self.render(), self.proprio())

    def _odometry(self) -> tuple[Pose2D, float, float]:
        odom = self.robot.read_odometry()
        pose = compose(self._anchor, odom.pose)
        v, w = self._twist_override if self._twist_override is not None else (odom.v, odom.omega)
        return pose, float(v), float(w)

    def _min_clearance(self, v: float, w: float) -> float:
        """Smallest distance from the robot's centre to obstacles along the unicycle arc of (v, ω)."""
        c = self.config
        pose = self.robot.true_pose()
        t = np.linspace(0.0, c.shield_horizon_s, 7)[1:]
        if abs(w) < 1e-6:
            xs, ys = pose.x + v * t * math.cos(pose.yaw), pose.y + v * t * math.sin(pose.yaw)
        else:
            yaw = pose.yaw + w * t
            xs = pose.x + v / w * (np.sin(yaw) - math.sin(pose.yaw))
            ys = pose.y - v / w * (np.cos(yaw) - math.cos(pose.yaw))
        return float(self.scenario.obstacle_distance(np.stack([xs, ys], axis=1)).min())

    def _shield(self, action: np.ndarray) -> np.ndarray:
        """``action`` if its arc keeps the clearance (or does not lose any when already closer), else the first
        safe of: turn in place, back up while turning, stop."""
        c = self.config
        pose = self.robot.true_pose()
        now = float(self.scenario.obstacle_distance(np.array([[pose.x, pose.y]]))[0])
        need = min(self.scenario.robot.radius_m + c.clearance_m, now)
        turn = float(action[1]) if abs(action[1]) > 0.5 else (1.0 if action[1] >= 0 else -1.0)
        for candidate in (action, np.array([0.0, turn]), np.array([-0.5, turn])):
            if self._min_clearance(float(candidate[0]) * c.v_max, float(candidate[1]) * c.omega_max) >= need - 1e-9:
                return candidate
        return np.zeros(2)
