"""The motor driver and wheel odometry every simulated diff-drive base shares (MuJoCo, PyBullet).

One implementation, so the simulators differ only in their physics: a command stamped further
than the watchdog timeout from now (old, or from a clock running ahead) stops the wheels
(counted once per stale control period with a non-zero command); both wheel speeds are
saturated by one factor so the path's curvature is kept; and odometry integrates noisy encoder
speeds (multiplicative noise, midpoint rule) as a real base's driver does, so it drifts from
the true pose, as on a robot.
"""
from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from navkit.common.geometry import Pose2D, wrap_angle
from navkit.common.sensor_data import Odometry, VelocityCommand, is_fresh
from navkit.sim.scenario import OdometryConfig, RobotModel


class DiffDriveDriver:
    """Commands in, wheel-speed targets out; encoder speeds in, odometry out."""

    def __init__(self, robot: RobotModel, odometry: OdometryConfig, *, cmd_timeout_s: float,
                 wheel_radius_scale: float = 1.0) -> None:
        """``wheel_radius_scale``: the calibrated effective / nominal wheel radius of this simulator's
        contact model (soft contact compresses a wheel)."""
        self.robot = robot
        self.odometry_config = odometry
        self.cmd_timeout_s = cmd_timeout_s
        self.wheel_radius_scale = wheel_radius_scale
        self.reset(Pose2D(0.0, 0.0, 0.0))

    def reset(self, start: Pose2D) -> None:
        """Odometry at ``start``, no command, counters zeroed."""
        self.pose = [start.x, start.y, start.yaw]
        self.twist = (0.0, 0.0)
        self.cmd = VelocityCommand(stamp=0.0, v=0.0, omega=0.0)
        self.watchdog_trips = 0

    def odometry_periods(self, duration_s: float, physics_dt: float) -> Iterator[int]:
        """Physics steps per odometry period covering ``duration_s``: the wheel targets are set and the
        encoders read once per period, as a motor driver's control loop does."""
        odom_dt = 1.0 / self.odometry_config.rate_hz
        remaining = duration_s
        while remaining > 1e-9:
            nstep = max(1, int(round(min(odom_dt, remaining) / physics_dt)))
            yield nstep
            remaining -= nstep * physics_dt

    def apply_command(self, cmd: VelocityCommand, now: float) -> None:
        """Drive with ``cmd`` until the next one; a non-finite command stops the base."""
        self.cmd = cmd if cmd.is_finite() else VelocityCommand(now, 0.0, 0.0)

    def wheel_targets(self, now: float) -> tuple[float, float]:
        """(left, right) wheel speeds in rad/s for the current command, after the watchdog and saturation."""
        rm, cmd = self.robot, self.cmd
        # |now - stamp|: a command stamped in the future (a clock ahead) must not drive forever either.
        if not is_fresh(cmd.stamp, now, self.cmd_timeout_s):
            if cmd.v != 0.0 or cmd.omega != 0.0:
                self.watchdog_trips += 1
            v, w = 0.0, 0.0
        else:
            v, w = cmd.v, cmd.omega
        half = rm.wheel_separation_m / 2.0
        left = (v - w * half) / rm.wheel_radius_m
        right = (v + w * half) / rm.wheel_radius_m
        # Saturate both wheels by the same factor so the path's curvature is kept.
        peak = max(abs(left), abs(right))
        if peak > rm.max_wheel_speed_rad_s:
            left, right = left * rm.max_wheel_speed_rad_s / peak, right * rm.max_wheel_speed_rad_s / peak
        return left, right

    def integrate(self, left_rad_s: float, right_rad_s: float, dt: float, rng: np.random.Generator) -> None:
        """Advance odometry by ``dt`` from the true wheel speeds, read through noisy encoders."""
        rm = self.robot
        noise = self.odometry_config.wheel_noise_std
        wl = left_rad_s * (1.0 + noise * rng.standard_normal())
        wr = right_rad_s * (1.0 + noise * rng.standard_normal())
        v = self.wheel_radius_scale * rm.wheel_radius_m * (wl + wr) / 2.0
        w = self.wheel_radius_scale * rm.wheel_radius_m * (wr - wl) / rm.wheel_separation_m
        x, y, yaw = self.pose
        mid = yaw + 0.5 * w * dt
        self.pose = [x + v * dt * math.cos(mid), y + v * dt * math.sin(mid), wrap_angle(yaw + w * dt)]
        self.twist = (float(v), float(w))

    def odometry(self, stamp: float) -> Odometry:
        x, y, yaw = self.pose
        v, w = self.twist
        return Odometry(stamp=stamp, pose=Pose2D(x, y, yaw), v=v, omega=w)
