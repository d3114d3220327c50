"""MuJoCo backend of the robot interface: a diff-drive AGV in a generated warehouse.

Sensors are produced the way real ones are: the lidar is a fan of ray casts from the
lidar site (``mj_multiRay``, obstacle geoms only), odometry integrates noisy wheel
encoder speeds (so it drifts from the true pose, as on a robot), and the camera is an
offscreen render. Commands go through the same watchdog a motor driver has: a command
older than ``cmd_timeout_s`` stops the wheels.
"""
from __future__ import annotations

import math
import os

# Headless CPU rendering; must be chosen before MuJoCo creates a GL context.
os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco
import numpy as np

from navkit.common.geometry import Pose2D, RigidTransform, quaternion_to_yaw
from navkit.common.sensor_data import CameraImage, CameraIntrinsics, LaserScan, Odometry, VelocityCommand
from navkit.sim.mjcf_builder import OBSTACLE_GROUP, PHYSICS_TIMESTEP_S, build_mjcf, camera_mount
from navkit.sim.diff_drive import DiffDriveDriver
from navkit.sim.mujoco_divergence import check_mujoco_divergence
from navkit.sim.scenario import Scenario


ODOM_WHEEL_RADIUS_SCALE = 0.996
"""Calibrated effective wheel radius / nominal radius (soft contact compresses the wheel).

Measured like a UMBmark calibration on a real base: 15 m straight at 0.7 m/s read
0.4 % long with the nominal radius. Turning slip (~0.3 % in place, ~1 % on arcs) is
left uncorrected, as on a real robot.
"""


class MujocoRobot:
    """A simulated AGV: a :class:`~navkit.common.interfaces.RobotBackend` with :class:`SimulationTruth`."""

    def __init__(self, scenario: Scenario, *, cmd_timeout_s: float = 0.5) -> None:
        self.scenario = scenario
        self.driver = DiffDriveDriver(scenario.robot, scenario.sensors.odometry, cmd_timeout_s=cmd_timeout_s,
                                      wheel_radius_scale=ODOM_WHEEL_RADIUS_SCALE)
        self.model = mujoco.MjModel.from_xml_string(build_mjcf(scenario))
        self.data = mujoco.MjData(self.model)
        m = self.model
        self._base_body = m.body("base_link").id
        self._qpos_adr = m.joint("base").qposadr[0]
        self._wheel_dof = (m.joint("wheel_left").dofadr[0], m.joint("wheel_right").dofadr[0])
        self._lidar_site = m.site("lidar").id
        robot_bodies = {self._base_body, m.body("wheel_left").id, m.body("wheel_right").id}
        self._is_robot_geom = np.isin(m.geom_bodyid, list(robot_bodies))
        self._is_obstacle_geom = m.geom_group == OBSTACLE_GROUP
        lidar = scenario.sensors.lidar
        fov = math.radians(lidar.fov_deg)
        full_circle = abs(fov - 2.0 * math.pi) < 1e-9
        self._angle_inc = fov / lidar.num_rays if full_circle else fov / max(lidar.num_rays - 1, 1)
        self._angle_min = -fov / 2.0 if not full_circle else -math.pi
        self._ray_angles = self._angle_min + self._angle_inc * np.arange(lidar.num_rays)
        # Each ray's direction on base_link, through the lidar's mount (offset, turned or upside down).
        self._scan_mount = lidar.mount(base_height_m=scenario.robot.wheel_radius_m)
        sensor_dirs = np.stack([np.cos(self._ray_angles), np.sin(self._ray_angles), np.zeros(lidar.num_rays)], axis=1)
        base_dirs = sensor_dirs @ self._scan_mount.matrix.T
        self._ray_base_angles = np.arctan2(base_dirs[:, 1], base_dirs[:, 0])
        self._geomgroup = np.zeros(6, dtype=np.uint8)
        self._geomgroup[OBSTACLE_GROUP] = 1
        self._ray_geomid = np.zeros(lidar.num_rays, dtype=np.int32)
        self._ray_dist = np.zeros(lidar.num_rays, dtype=np.float64)
        self._renderers: dict[tuple[int, int], mujoco.Renderer] = {}
        cam = scenario.sensors.camera
        self.camera_intrinsics = CameraIntrinsics.from_fov(cam.width, cam.height, cam.fov_deg)
        # REP-103 optical frame (z forward, x right, y down) of the front camera, on base_link: the
        # MJCF camera sits at CAMERA_MOUNT looking along the base's x axis.
        self.camera_extrinsics = RigidTransform(camera_mount(scenario), (-0.5, 0.5, -0.5, 0.5), "base_link",
                                                "camera_optical_frame")
        self.reset(scenario.seed)

    # ------------------------------------------------------------------ interface

    def reset(self, seed: int | None = None) -> None:
        mujoco.mj_resetData(self.model, self.data)
        mujoco.mj_forward(self.model, self.data)
        self._rng = np.random.default_rng(self.scenario.seed if seed is None else seed)
        self.driver.reset(Pose2D(*self.scenario.start))

    def now(self) -> float:
        return float(self.data.time)

    @property
    def cmd_timeout_s(self) -> float:
        """The driver watchdog's timeout (held by the shared driver: one copy)."""
        return self.driver.cmd_timeout_s

    def apply_command(self, cmd: VelocityCommand) -> None:
        self.driver.apply_command(cmd, self.now())

    @property
    def watchdog_trips(self) -> int:
        """How many control periods the driver watchdog stopped the base (stale command)."""
        return self.driver.watchdog_trips

    def advance(self, duration_s: float) -> None:
        """Step physics for ``duration_s``, integrating odometry once per odometry period."""
        for nstep in self.driver.odometry_periods(duration_s, PHYSICS_TIMESTEP_S):
            self._set_wheel_targets()
            mujoco.mj_step(self.model, self.data, nstep=nstep)
            self._check_divergence()
            self._integrate_odometry(nstep * PHYSICS_TIMESTEP_S)

    def read_odometry(self) -> Odometry:
        return self.driver.odometry(self.now())

    def read_scan(self) -> LaserScan:
        lidar = self.scenario.sensors.lidar
        pnt = self.data.site_xpos[self._lidar_site].copy()
        yaw = self.true_pose().yaw
        world = self._ray_base_angles + yaw
        vec = np.stack([np.cos(world), np.sin(world), np.zeros_like(world)], axis=1).ravel()
        mujoco.mj_multiRay(self.model, self.data, pnt, vec, self._geomgroup, 1, self._base_body,
                           self._ray_geomid, self._ray_dist, None, lidar.num_rays, lidar.range_max_m)
        ranges = self._ray_dist.copy()
        hit = ranges >= 0.0
        ranges[hit] += self._rng.normal(0.0, lidar.noise_std_m, int(hit.sum()))
        ranges[~hit | (ranges >= lidar.range_max_m)] = np.inf
        return LaserScan(stamp=self.now(), angle_min=self._angle_min, angle_increment=self._angle_inc,
                         range_min=lidar.range_min_m, range_max=lidar.range_max_m,
                         ranges=ranges.astype(np.float32), mount=self._scan_mount)

    def read_camera(self) -> CameraImage | None:
        cam = self.scenario.sensors.camera
        if not cam.enabled:
            return None
        renderer = self._renderer(cam.width, cam.height)
        renderer.update_scene(self.data, camera="front_camera")
        rgb = renderer.render().copy()
        depth = None
        if cam.depth:
            renderer.enable_depth_rendering()
            renderer.update_scene(self.data, camera="front_camera")
            depth = renderer.render().astype(np.float32)
            renderer.disable_depth_rendering()
        return CameraImage(stamp=self.now(), rgb=rgb, depth=depth, intrinsics=self.camera_intrinsics,
                           extrinsics=self.camera_extrinsics)

    # ------------------------------------------------------------- simulation truth

    def true_pose(self) -> Pose2D:
        q = self.data.qpos[self._qpos_adr:self._qpos_adr + 7]
        w, x, y, z = q[3:7]
        yaw = quaternion_to_yaw(x, y, z, w)
        return Pose2D(float(q[0]), float(q[1]), yaw)

    def in_collision(self) -> bool:
        d = self.data
        if d.ncon == 0:
            return False
        g1 = d.contact.geom1[: d.ncon]
        g2 = d.contact.geom2[: d.ncon]
        r, o = self._is_robot_geom, self._is_obstacle_geom
        return bool(np.any((r[g1] & o[g2]) | (r[g2] & o[g1])))

    def render_topdown(self, width: int, height: int) -> np.ndarray:
        """An RGB frame from the fixed overhead camera (for videos, not for the robot)."""
        renderer = self._renderer(width, height)
        renderer.update_scene(self.data, camera="topdown")
        return renderer.render().copy()

    def close(self) -> None:
        for r in self._renderers.values():
            r.close()
        self._renderers.clear()

    # ------------------------------------------------------------------ internals

    def _renderer(self, width: int, height: int) -> mujoco.Renderer:
        key = (width, height)
        if key not in self._renderers:
            self._renderers[key] = mujoco.Renderer(self.model, height=height, width=width)
        return self._renderers[key]

    def _set_wheel_targets(self) -> None:
        self.data.ctrl[0], self.data.ctrl[1] = self.driver.wheel_targets(self.now())

    def _integrate_odometry(self, dt: float) -> None:
        self.driver.integrate(float(self.data.qvel[self._wheel_dof[0]]), float(self.data.qvel[self._wheel_dof[1]]),
                              dt, self._rng)

    def _check_divergence(self) -> None:
        check_mujoco_divergence(self.data, self.scenario.source)
