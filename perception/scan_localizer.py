"""Lidar scan vs static map -> the ``map -> odom`` correction (REP-105).

Wheel odometry drifts (about 1 % of distance, mostly yaw in turns), so over a long run
the odom-frame pose ends up a metre off and goals are missed. This module estimates the
transform that moves odom into the map by matching each scan against the known static
map: a likelihood-field matcher (AMCL's sensor model, Hector-SLAM's scan matcher)
refined by Gauss-Newton over the pose increment (dx, dy, dtheta).

The map is summarised once, at construction, as a signed distance field: metres from
each cell centre to the nearest mapped obstacle edge (positive in free space, negative
inside obstacles, zero on the edge; the same half-cell edge convention as
``OccupancyGrid.clearance_field``). The sign gives a zero crossing exactly on the
obstacle surface, so bilinear interpolation pulls a hit onto the surface rather than
into the centre of the nearest occupied cell, worth half a cell of accuracy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import distance_transform_edt

from navkit.common.geometry import Pose2D, compose, transform_points, wrap_angle
from navkit.common.sensor_data import LaserScan
from navkit.common.occupancy_grid import OccupancyGrid

IDENTITY = Pose2D(0.0, 0.0, 0.0)


def _increment_about(center: np.ndarray, t: np.ndarray, theta: float) -> Pose2D:
    """Rotate by ``theta`` about ``center`` then translate by ``t``, as one transform."""
    c, s = math.cos(theta), math.sin(theta)
    rx = c * center[0] - s * center[1]
    ry = s * center[0] + c * center[1]
    return Pose2D(float(center[0] + t[0] - rx), float(center[1] + t[1] - ry), theta)


_CONVERGED_M = 2e-4
_CONVERGED_RAD = 2e-4
"""Gauss-Newton stops once a step moves the pose less than this (0.2 mm, 0.01°): far
below lidar noise, and it ends most updates after 2-3 iterations instead of all."""


@dataclass
class ScanLocalizerConfig:
    """Parameters of :class:`ScanLocalizer` (ROS 2 parameter names match the fields)."""

    max_point_distance_m: float = 0.3
    """Residual cap: hits farther than this from any mapped obstacle are outliers, so an
    unmapped pallet or a person cannot drag the estimate toward the nearest shelf."""

    iterations: int = 8
    """Gauss-Newton iterations per scan; the match converges in a few, more only costs time."""

    min_inliers: int = 20
    """Fewer inlier hits than this (open floor, sensor blocked) -> keep the previous correction
    rather than trust a match that a handful of points cannot constrain."""

    max_correction_step_m: float = 0.3
    """Reject an update that would move the robot's map position by more than this: drift
    is slow, so a big jump is a wrong match and must not teleport the robot."""

    max_correction_step_rad: float = 0.1
    """Same guard for heading: an update turning the robot by more than this is rejected."""

    smoothing: float = 0.5
    """Fraction of an accepted update applied (1 = take it fully); below 1 averages out scan
    noise at the cost of lagging a fast-growing error."""

    max_range_m: float = 8.0
    """Far returns are dropped: their angular error grows with range and they more often
    hit things the map lacks."""

    point_stride: int = 1
    """Use every n-th ray; cost is linear in the number of points."""

    def __post_init__(self) -> None:
        positive = ("max_point_distance_m", "max_correction_step_m", "max_correction_step_rad", "max_range_m")
        for name in positive:
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name}: must be a positive finite number, got {value!r}")
        for name, high in (("iterations", 100), ("min_inliers", 100_000), ("point_stride", 1000)):
            value = getattr(self, name)
            if not (isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= high):
                raise ValueError(f"{name}: must be an integer in [1, {high:,}], got {value!r}")
        s = self.smoothing
        if not (isinstance(s, (int, float)) and math.isfinite(s) and 0.0 < s <= 1.0):
            raise ValueError(f"smoothing: must be in (0, 1], got {s!r}")


@dataclass(frozen=True)
class LocalizationResult:
    """Outcome of one :meth:`ScanLocalizer.update`."""

    correction: Pose2D
    """The map <- odom transform after this update (unchanged when not accepted)."""
    accepted: bool
    inliers: int
    """Hits within ``max_point_distance_m`` of the map at the final iterate."""
    rms_m: float
    """RMS distance of the inliers to the map at the final iterate (nan if none)."""
    reason: str
    """'ok', or why the update was rejected."""


class ScanLocalizer:
    """Tracks the ``map <- odom`` correction by matching scans to the grid's static layer."""

    _DAMPING = 1e-6
    """Levenberg damping relative to the normal matrix's scale: keeps the solve defined when
    the scene constrains fewer than three directions (a bare corridor)."""

    def __init__(self, grid: OccupancyGrid, config: ScanLocalizerConfig | None = None) -> None:
        self.config = config if config is not None else ScanLocalizerConfig()
        self._res = grid.resolution
        self._origin = grid.origin
        occupied = np.asarray(grid.static, dtype=bool)
        res = grid.resolution
        # Finite stand-in for "far": beyond the cap nothing matters, and it keeps
        # bilinear weights and gradients free of inf - inf.
        far = self.config.max_point_distance_m + 4.0 * res
        outside = distance_transform_edt(~occupied) * res if occupied.any() else np.full(occupied.shape, far)
        inside = distance_transform_edt(occupied) * res if not occupied.all() else np.full(occupied.shape, far)
        sdf = np.where(occupied, -(inside - 0.5 * res), outside - 0.5 * res)
        sdf = np.clip(sdf, -far, far)
        d_dy, d_dx = np.gradient(sdf, res)
        # One (rows, cols, 3) array so a single bilinear gather yields d, dd/dx, dd/dy.
        self._field = np.ascontiguousarray(np.stack([sdf, d_dx, d_dy], axis=-1))
        self._correction = IDENTITY

    # ------------------------------------------------------------------ frames
    @property
    def correction(self) -> Pose2D:
        """The ``map <- odom`` transform; identity until a scan is matched."""
        return self._correction

    def reset(self, correction: Pose2D = IDENTITY) -> None:
        """Set the correction (e.g. from an initial-pose estimate)."""
        if not correction.is_finite():
            raise ValueError(f"correction: must be finite, got {correction!r}")
        self._correction = Pose2D(float(correction.x), float(correction.y), wrap_angle(float(correction.yaw)))

    def map_pose(self, odom_pose: Pose2D) -> Pose2D:
        """The robot's pose in the map frame, given its odometry pose."""
        return compose(self._correction, odom_pose)

    def odom_to_map_points(self, points: np.ndarray) -> np.ndarray:
        """(N, 2) odom-frame points -> map frame."""
        return transform_points(self._correction, np.asarray(points, dtype=float).reshape(-1, 2))

    def map_to_odom_points(self, points: np.ndarray) -> np.ndarray:
        """(N, 2) map-frame points -> odom frame (e.g. a planned path for the controller)."""
        c = self._correction
        p = np.asarray(points, dtype=float).reshape(-1, 2) - np.array([c.x, c.y])
        cs, sn = math.cos(c.yaw), math.sin(c.yaw)
        return np.stack([cs * p[:, 0] + sn * p[:, 1], -sn * p[:, 0] + cs * p[:, 1]], axis=1)

    # ------------------------------------------------------------------ field queries
    def query(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Bilinear signed distance (N,) and gradient (N, 2) at map points, plus a validity mask.

        Points off the grid (no map knowledge there) or non-finite are invalid.
        """
        p = np.asarray(points, dtype=float).reshape(-1, 2)
        rows, cols = self._field.shape[:2]
        u = (p[:, 0] - self._origin[0]) / self._res - 0.5
        v = (p[:, 1] - self._origin[1]) / self._res - 0.5
        valid = np.isfinite(u) & np.isfinite(v) & (u >= 0) & (u <= cols - 1) & (v >= 0) & (v <= rows - 1)
        u = np.where(valid, u, 0.0)
        v = np.where(valid, v, 0.0)
        j0 = np.minimum(np.floor(u).astype(np.intp), max(cols - 2, 0))
        i0 = np.minimum(np.floor(v).astype(np.intp), max(rows - 2, 0))
        j1 = np.minimum(j0 + 1, cols - 1)
        i1 = np.minimum(i0 + 1, rows - 1)
        fu = (u - j0)[:, None]
        fv = (v - i0)[:, None]
        f = self._field
        vals = (f[i0, j0] * (1 - fu) + f[i0, j1] * fu) * (1 - fv) + (f[i1, j0] * (1 - fu) + f[i1, j1] * fu) * fv
        return vals[:, 0], vals[:, 1:], valid

    # ------------------------------------------------------------------ matching
    def _scan_points(self, scan: LaserScan) -> np.ndarray:
        return scan.points_base(max_range_m=self.config.max_range_m, stride=self.config.point_stride)

    def update(self, scan: LaserScan, odom_pose: Pose2D) -> LocalizationResult:
        """Match one scan taken at ``odom_pose`` and, if trustworthy, move the correction."""
        cfg = self.config
        nan = float("nan")

        def reject(reason: str, inliers: int = 0, rms: float = nan) -> LocalizationResult:
            return LocalizationResult(self._correction, False, inliers, rms, reason)

        if not odom_pose.is_finite():
            return reject("non-finite odometry pose")
        base_pts = self._scan_points(scan)
        if len(base_pts) < cfg.min_inliers:
            return reject(f"too few scan points: {len(base_pts)} < min_inliers={cfg.min_inliers}")
        robot = self.map_pose(odom_pose)
        center = np.array([robot.x, robot.y])
        # Map-frame hits under the current correction, relative to the robot: the increment
        # rotates about the robot so its translation is exactly how far the robot moves.
        rel = transform_points(robot, base_pts) - center
        cap = cfg.max_point_distance_m
        t = np.zeros(2)
        theta = 0.0
        inliers = 0
        rms = nan
        for it in range(cfg.iterations + 1):
            c, s = math.cos(theta), math.sin(theta)
            rot = np.stack([c * rel[:, 0] - s * rel[:, 1], s * rel[:, 0] + c * rel[:, 1]], axis=1)
            d, grad, valid = self.query(rot + center + t)
            mask = valid & (np.abs(d) < cap)
            inliers = int(np.count_nonzero(mask))
            rms = float(np.sqrt(np.mean(d[mask] ** 2))) if inliers else nan
            if it == cfg.iterations or inliers < cfg.min_inliers:
                break
            r = d[mask]
            g = grad[mask]
            q = rot[mask]
            # d(T p)/d(dx, dy, dtheta) about the current iterate: grad . [I | perp(p - center)]
            jac = np.column_stack([g[:, 0], g[:, 1], g[:, 1] * q[:, 0] - g[:, 0] * q[:, 1]])
            h = jac.T @ jac
            h += self._DAMPING * (np.trace(h) + 1e-12) * np.eye(3)
            delta = np.linalg.solve(h, -(jac.T @ r))
            if not np.all(np.isfinite(delta)):
                return reject("non-finite Gauss-Newton step", inliers, rms)
            # The increment rotates about the current robot position (center + t), so it
            # composes with the accumulated one by plain addition.
            t = t + delta[:2]
            theta += float(delta[2])
            if np.hypot(delta[0], delta[1]) < _CONVERGED_M and abs(delta[2]) < _CONVERGED_RAD:
                # Converged: evaluate once more at the final iterate for inliers/rms.
                c, s = math.cos(theta), math.sin(theta)
                rot = np.stack([c * rel[:, 0] - s * rel[:, 1], s * rel[:, 0] + c * rel[:, 1]], axis=1)
                d, _, valid = self.query(rot + center + t)
                mask = valid & (np.abs(d) < cap)
                inliers = int(np.count_nonzero(mask))
                rms = float(np.sqrt(np.mean(d[mask] ** 2))) if inliers else nan
                break
        if inliers < cfg.min_inliers:
            return reject(f"too few inliers: {inliers} < min_inliers={cfg.min_inliers}", inliers, rms)
        step = float(np.hypot(t[0], t[1]))
        if not (math.isfinite(step) and math.isfinite(theta)):
            return reject("non-finite match", inliers, rms)
        # A large jump is clamped, not refused: odometry can slip faster than one update
        # may correct (a wheel spinning on a turn), and refusing every later, consistent
        # match would leave the robot lost for good. Clamping still keeps one bad match
        # from teleporting the robot.
        reason = "ok"
        shrink = min(1.0, cfg.max_correction_step_m / step if step > 0 else 1.0,
                     cfg.max_correction_step_rad / abs(theta) if theta != 0 else 1.0)
        if shrink < 1.0:
            reason = f"step {step:.3f} m / {theta:.3f} rad clamped to the per-update limits"
            t = t * shrink
            theta *= shrink
        # Blend: move the robot's map pose the ``smoothing`` fraction of the way.
        a = cfg.smoothing
        increment = _increment_about(center, a * t, a * theta)
        self._correction = compose(increment, self._correction)
        return LocalizationResult(self._correction, True, inliers, rms, reason)
