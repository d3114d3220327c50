"""Pure-pursuit path follower: steer along the arc through a point one look-ahead ahead.

Its output is a *nominal* command; the CBF safety filter downstream is what keeps it safe.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from navkit.common.geometry import Pose2D
from navkit.common.observation import ControlTarget, Observation
from navkit.common.params import check_ranges
from navkit.common.sensor_data import VelocityCommand


@dataclass
class PurePursuitConfig:
    """Parameters of :class:`PurePursuit` (ROS 2 parameter prefix ``pure_pursuit``)."""

    lookahead_m: float = field(default=0.6, metadata={"range": (0.0, 10.0)})
    """Distance to the pursued point: longer is smoother but cuts corners more."""
    v_max: float = field(default=0.7, metadata={"range": (0.0, 5.0)})
    """Cruise speed (m/s) far from the goal."""
    omega_max: float = field(default=1.5, metadata={"range": (0.0, 10.0)})
    """|ω| limit (rad/s); when the curvature law exceeds it, v is scaled down to keep the arc."""
    goal_tolerance_m: float = 0.2
    """Within this distance of the last path point the follower outputs zero (arrived)."""
    slow_radius_m: float = 1.0
    """Speed ramps linearly down to zero within this distance of the goal, so it does not overshoot."""
    rotate_in_place_rad: float = 0.9
    """Heading error to the pursued point above which the robot turns in place (v = 0):
    driving a wide arc towards a point behind the robot would sweep through unplanned space."""
    k_heading: float = 2.0
    """Proportional gain on heading error while turning in place."""

    def __post_init__(self) -> None:
        check_ranges(self)
        for name in ("lookahead_m", "v_max", "omega_max", "goal_tolerance_m", "slow_radius_m",
                     "rotate_in_place_rad", "k_heading"):
            value = getattr(self, name)
            if not math.isfinite(float(value)):
                raise ValueError(f"{name}: must be finite, got {value!r}")
        for name in ("lookahead_m", "v_max", "omega_max", "slow_radius_m", "rotate_in_place_rad", "k_heading"):
            if getattr(self, name) <= 0.0:
                raise ValueError(f"{name}: must be > 0, got {getattr(self, name)}")
        if self.goal_tolerance_m < 0.0:
            raise ValueError(f"goal_tolerance_m: must be >= 0, got {self.goal_tolerance_m}")


_SEARCH_WINDOW = 64
"""Path segments searched ahead of the last progress point each tick."""


class PurePursuit:
    """Stateful follower: remembers progress along the current path so it never turns back.

    Plugin ``pure_pursuit`` of the ``local_controller`` slot
    (:class:`~navkit.common.interfaces.LocalController`): tracks ``target.path`` (odom frame)
    from ``observation.odom``. Call :meth:`reset` whenever a new path arrives.
    """

    def __init__(self, config: PurePursuitConfig | None = None) -> None:
        self.config = config if config is not None else PurePursuitConfig()
        self._progress: int | None = None

    def reset(self) -> None:
        """Forget progress: the next call searches the whole path for the closest segment."""
        self._progress = None

    def _lookahead_point(self, xy: np.ndarray, path: np.ndarray) -> np.ndarray:
        """First point at distance ≥ L from the robot, searching forward from the closest one.

        Works on segments, not vertices: the closest point is the robot's projection on the
        path (from the remembered segment on), and the pursued point is where the look-ahead
        circle leaves the path after it. A sparse path (a few corners) is then followed as
        well as a dense one; with vertices only, the 'closest point' of a long segment
        could lie behind the robot.
        """
        L = self.config.lookahead_m
        if len(path) == 1:
            return path[0]
        # After a reset the whole path is searched once; then a bounded window: the robot
        # cannot pass more than a few metres of path per tick, and searching the whole
        # remaining path each tick costs O(N) for nothing.
        start = 0 if self._progress is None else min(self._progress, len(path) - 2)
        end = len(path) if self._progress is None else min(len(path), start + _SEARCH_WINDOW + 1)
        window = path[start:end]
        a = window[:-1]
        seg = window[1:] - a
        len2 = np.einsum("ij,ij->i", seg, seg)
        rel = a - xy  # segment start relative to the robot
        safe_len2 = np.where(len2 > 0.0, len2, 1.0)
        t_proj = np.clip(-np.einsum("ij,ij->i", rel, seg) / safe_len2, 0.0, 1.0)
        proj = a + t_proj[:, None] * seg
        nearest = int(np.argmin(np.einsum("ij,ij->i", proj - xy, proj - xy)))
        self._progress = start + nearest

        qb = 2.0 * np.einsum("ij,ij->i", seg, rel)[nearest:]
        qc = np.einsum("ij,ij->i", rel, rel)[nearest:] - L * L
        qa = safe_len2[nearest:]
        disc = qb * qb - 4.0 * qa * qc
        t_far = (-qb + np.sqrt(np.maximum(disc, 0.0))) / (2.0 * qa)
        t_low = np.zeros_like(t_far)
        t_low[0] = t_proj[nearest]
        valid = (disc >= 0.0) & (len2[nearest:] > 0.0) & (t_far >= t_low) & (t_far <= 1.0)
        hits = np.flatnonzero(valid)
        if hits.size:
            i = nearest + int(hits[0])
            return a[i] + t_far[hits[0]] * seg[i]
        if end == len(path) and float(np.hypot(*(path[-1] - xy))) < L:
            return path[-1]
        return proj[nearest]  # farther than L from the whole path: head back to it

    def compute(self, observation: Observation, target: ControlTarget) -> VelocityCommand:
        """The protocol's entry: zero without odometry or a path (never a guess)."""
        odom = observation.odom
        if odom is None or target.path is None or not odom.is_finite():
            return VelocityCommand(observation.stamp, 0.0, 0.0)
        v, omega = self.track(odom.pose, target.path)
        return VelocityCommand(observation.stamp, v, omega)

    def track(self, pose: Pose2D, path: np.ndarray) -> tuple[float, float]:
        """(v, ω) towards ``path`` (N, 2), given in the same frame as ``pose``.

        Zero for an empty path, a non-finite pose or path, or when within goal tolerance
        of the last point. Raises ValueError if ``path`` is not (N, 2).
        """
        c = self.config
        path = np.asarray(path, dtype=float)
        if path.size == 0:
            return 0.0, 0.0
        if path.ndim != 2 or path.shape[1] != 2:
            raise ValueError(f"path: expected shape (N, 2), got {path.shape}")
        if not pose.is_finite() or not np.isfinite(path).all():
            return 0.0, 0.0
        xy = np.array([pose.x, pose.y])
        goal_dist = float(np.hypot(*(path[-1] - xy)))
        if goal_dist <= c.goal_tolerance_m:
            return 0.0, 0.0
        target = self._lookahead_point(xy, path)
        dx, dy = float(target[0] - xy[0]), float(target[1] - xy[1])
        cos_y, sin_y = math.cos(pose.yaw), math.sin(pose.yaw)
        local_x = cos_y * dx + sin_y * dy
        local_y = -sin_y * dx + cos_y * dy
        heading_error = math.atan2(local_y, local_x)
        if abs(heading_error) > c.rotate_in_place_rad:
            omega = min(max(c.k_heading * heading_error, -c.omega_max), c.omega_max)
            return 0.0, omega
        ld = max(math.hypot(dx, dy), 1e-6)
        v = c.v_max * min(1.0, goal_dist / c.slow_radius_m)
        omega = v * 2.0 * math.sin(heading_error) / ld
        if abs(omega) > c.omega_max:
            # Keep the arc's curvature, slow down instead of under-steering.
            v *= c.omega_max / abs(omega)
            omega = math.copysign(c.omega_max, omega)
        return v, omega
