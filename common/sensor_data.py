"""Plain sensor-data types: what a robot backend produces and the algorithms consume.

They mirror the ROS 2 messages (nav_msgs/Odometry, sensor_msgs/LaserScan,
sensor_msgs/Image) closely enough that the node adapters convert field by field, but
they carry numpy arrays and float seconds so algorithms never import ROS.
Frames follow REP-105: odometry is ``odom -> base_link``. A scan carries its sensor's mount
(``base_link <- scan frame``, from the robot description or ``/tf_static``) so an offset,
rotated or upside-down lidar puts its points where they really are; a scan without a mount
is taken to sit on the base's vertical axis (scan x/y are base_link x/y).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from navkit.common.geometry import Pose2D, RigidTransform

__all__ = ["CameraImage", "CameraIntrinsics", "LaserScan", "Odometry", "PointCloud", "Pose2D", "VelocityCommand",
           "is_fresh"]


def is_fresh(stamp: float, now: float, timeout_s: float) -> bool:
    """True when ``stamp`` is finite and within ``timeout_s`` of ``now``, in either direction.

    Staleness is ``|now - stamp| > timeout``: a message stamped in the future (a clock
    jump, a driver with the wrong time base) is as untrustworthy as an old one, and one
    stamped +1000 s must not look fresh for the next 1000 s.
    """
    return math.isfinite(stamp) and math.isfinite(now) and abs(now - stamp) <= timeout_s


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
    """A planar scan, read as REP-117 says.

    Per ray: a finite range in ``[range_min, range_max)`` is a hit; ``+inf`` (or exactly
    ``range_max``) is "no return"; ``-inf`` is "too close to measure"; NaN or any other
    finite value is an *invalid* reading, which tells nothing about that direction.
    """

    stamp: float
    angle_min: float
    angle_increment: float
    range_min: float
    range_max: float
    ranges: np.ndarray
    frame_id: str = "base_scan"
    mount: RigidTransform | None = None
    """``base_link <- frame_id``: where the lidar sits on the robot (None: on the base's vertical axis)."""

    @property
    def angles(self) -> np.ndarray:
        return self.angle_min + self.angle_increment * np.arange(len(self.ranges))

    def problem(self, max_invalid_fraction: float = 0.0) -> str | None:
        """Why this scan cannot show where obstacles are, or None when it can.

        A scan that cannot show obstacles is not evidence of free space: no rays, a
        non-finite header, ``range_max <= range_min``, a zero or overlapping angle step,
        any NaN range, or more than ``max_invalid_fraction`` of rays invalid.
        """
        n = len(self.ranges)
        if n == 0:
            return "scan has no rays"
        header = (self.stamp, self.angle_min, self.angle_increment, self.range_min, self.range_max)
        if not all(math.isfinite(x) for x in header):
            return "scan header holds NaN/Inf"
        if self.range_min < 0.0 or self.range_max <= self.range_min:
            return f"scan range limits are invalid (range_min {self.range_min:g}, range_max {self.range_max:g})"
        if self.angle_increment == 0.0 or abs(self.angle_increment) * (n - 1) > 2.0 * math.pi + 1e-6:
            return f"scan angle_increment {self.angle_increment:g} does not span a scan of {n} rays"
        r = np.asarray(self.ranges, dtype=float)
        if np.isnan(r).any():
            return "scan holds NaN ranges"
        invalid = int(n - np.count_nonzero(np.isinf(r) | ((r >= self.range_min) & (r <= self.range_max))))
        if invalid > max_invalid_fraction * n:
            return f"{invalid} of {n} scan rays hold invalid ranges (outside [range_min, range_max], not +-inf)"
        return None

    def points_xy(self, *, too_close_as_hits: bool = False, max_range_m: float = math.inf,
                  stride: int = 1) -> np.ndarray:
        """Hit points (N, 2) in the sensor frame; no-return and invalid rays are dropped.

        ``too_close_as_hits`` keeps ``-inf`` rays as points at ``range_min``: for a safety
        filter an unmeasurably close object is the most important one; a localiser has no
        use for it. ``max_range_m`` drops farther hits; ``stride`` keeps every k-th ray.
        """
        r = np.asarray(self.ranges, dtype=float)[::stride]
        a = self.angles[::stride]
        if too_close_as_hits:
            r = np.where(r == -np.inf, self.range_min, r)
        ok = (r >= self.range_min) & (r < min(self.range_max, max_range_m))
        r, a = r[ok], a[ok]
        return np.stack([r * np.cos(a), r * np.sin(a)], axis=1)

    def points_base(self, *, too_close_as_hits: bool = False, max_range_m: float = math.inf,
                    stride: int = 1) -> np.ndarray:
        """Hit points (N, 2) in base_link: :meth:`points_xy` moved through the sensor's mount.

        The full 3-D mount is applied and the result projected onto the floor plane, so a
        lidar mounted upside down (roll = pi) mirrors its scan as it physically does. The
        range limit still applies to the range measured by the sensor.
        """
        pts = self.points_xy(too_close_as_hits=too_close_as_hits, max_range_m=max_range_m, stride=stride)
        if self.mount is None:
            return pts
        xyz = np.column_stack([pts, np.zeros(len(pts))])
        return self.mount.apply(xyz)[:, :2]


@dataclass(frozen=True)
class CameraIntrinsics:
    """A pinhole camera (sensor_msgs/CameraInfo's K without distortion), in pixels."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    @classmethod
    def from_fov(cls, width: int, height: int, vertical_fov_deg: float) -> CameraIntrinsics:
        """Square pixels, principal point at the centre (what a simulated camera has)."""
        f = 0.5 * height / math.tan(math.radians(vertical_fov_deg) / 2.0)
        return cls(width, height, f, f, (width - 1) / 2.0, (height - 1) / 2.0)

    def project(self, points: np.ndarray) -> np.ndarray:
        """Points (N, 3) in the optical frame (z forward, x right, y down) -> pixels (N, 2)."""
        p = np.asarray(points, dtype=float).reshape(-1, 3)
        return np.stack([self.fx * p[:, 0] / p[:, 2] + self.cx, self.fy * p[:, 1] / p[:, 2] + self.cy], axis=1)


@dataclass(frozen=True)
class CameraImage:
    """RGB (H, W, 3) uint8 and optional depth (H, W) float32 metres, with the camera's model.

    ``extrinsics`` places the optical frame (REP-103 optical: z forward, x right, y down)
    on the robot (``base_link <- camera_optical_frame``), so depth pixels can become points
    in base_link; either may be None when unknown.
    """

    stamp: float
    rgb: np.ndarray
    depth: np.ndarray | None = None
    frame_id: str = "camera_optical_frame"
    intrinsics: CameraIntrinsics | None = None
    extrinsics: RigidTransform | None = None


@dataclass(frozen=True)
class PointCloud:
    """Points (N, 3) float32 in ``frame_id`` (metres), optionally coloured (N, 3) uint8."""

    stamp: float
    points: np.ndarray
    frame_id: str = "base_link"
    colors: np.ndarray | None = None

    def __post_init__(self) -> None:
        if np.asarray(self.points).ndim != 2 or np.asarray(self.points).shape[1] != 3:
            raise ValueError(f"points: expected shape (N, 3), got {np.asarray(self.points).shape}")


@dataclass(frozen=True)
class VelocityCommand:
    """A unicycle command (m/s, rad/s) stamped in seconds: what cmd_vel carries."""

    stamp: float
    v: float
    omega: float

    def is_finite(self) -> bool:
        return math.isfinite(self.stamp) and math.isfinite(self.v) and math.isfinite(self.omega)
