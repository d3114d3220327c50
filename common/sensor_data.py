"""Plain sensor-data types: what a robot backend produces and the algorithms consume.

They mirror the ROS 2 messages (nav_msgs/Odometry, sensor_msgs/LaserScan,
sensor_msgs/Image) closely enough that the node adapters convert field by field, but
they carry numpy arrays and float seconds so algorithms never import ROS.
Frames follow REP-105: odometry is ``odom -> base_link``; the lidar sits on the
base's vertical axis, so scan points in the sensor frame are base_link x/y.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Pose2D:
    """Planar pose (metres, radians) in whatever frame the owner names."""

    x: float
    y: float
    yaw: float

    def as_array(self) -> np.ndarray:
        return np.array([self.x, self.y, self.yaw], dtype=float)

    def is_finite(self) -> bool:
        return math.isfinite(self.x) and math.isfinite(self.y) and math.isfinite(self.yaw)


@dataclass(frozen=True)
class Odometry:
    """Pose of base_link in odom plus body-frame velocities, stamped in seconds."""

    stamp: float
    pose: Pose2D
    v: float
    omega: float
    frame_id: str = "odom"
    child_frame_id: str = "base_link"

    def is_finite(self) -> bool:
        return self.pose.is_finite() and math.isfinite(self.v) and math.isfinite(self.omega)


@dataclass(frozen=True)
class LaserScan:
    """A planar scan; ``ranges`` beyond ``range_max`` (or inf) mean 'no return'."""

    stamp: float
    angle_min: float
    angle_increment: float
    range_min: float
    range_max: float
    ranges: np.ndarray
    frame_id: str = "base_scan"

    @property
    def angles(self) -> np.ndarray:
        return self.angle_min + self.angle_increment * np.arange(len(self.ranges))

    def points_xy(self) -> np.ndarray:
        """Hit points (N, 2) in the sensor frame; 'no return' rays and NaNs are dropped."""
        r = np.asarray(self.ranges, dtype=float)
        ok = np.isfinite(r) & (r >= self.range_min) & (r < self.range_max)
        a = self.angles[ok]
        return np.stack([r[ok] * np.cos(a), r[ok] * np.sin(a)], axis=1)


@dataclass(frozen=True)
class CameraImage:
    """RGB (H, W, 3) uint8 and optional depth (H, W) float32 metres."""

    stamp: float
    rgb: np.ndarray
    depth: np.ndarray | None = None
    frame_id: str = "camera_optical_frame"


@dataclass(frozen=True)
class VelocityCommand:
    """A unicycle command (m/s, rad/s) stamped in seconds: what cmd_vel carries."""

    stamp: float
    v: float
    omega: float

    def is_finite(self) -> bool:
        return math.isfinite(self.stamp) and math.isfinite(self.v) and math.isfinite(self.omega)
