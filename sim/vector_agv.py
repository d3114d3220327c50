"""Many AGVs in many warehouses at once: unicycle kinematics and lidar ray casting as numpy arrays.

What reinforcement learning needs from a simulator is throughput; MuJoCo steps one
warehouse at a time (~3 k control periods/s here). This steps E warehouses together: each
robot is a disc (the AGV's radius) on two wheels whose rim speeds follow the command with the
MuJoCo motors' acceleration and speed limits (after 3 s of random commands the two simulators'
poses differ by ~5 cm), and its lidar is an
analytic ray cast against the same geometry the MuJoCo backend builds from the same
:class:`~navkit.sim.scenario.Scenario` — boxes (shelves, pallets; any yaw), cylinders and
the four walls. A test checks both simulators return the same ranges for the same pose.

Ray casting is vectorised over (env, ray, shape): slab intersection for boxes in each box's
frame, the quadratic for circles, and the exit distance of the wall rectangle. The lidar
has ``num_rays`` rays over 360° starting at -π, as the MuJoCo lidar; no return reads
``range_max``.
"""
from __future__ import annotations


import numpy as np

from navkit.common.geometry import wrap_angle
from navkit.sim.scenario import Scenario

FAR = 1.0e6


class VectorAgv:
    """E robots, one per scenario; :meth:`load` swaps an env's warehouse without touching the others."""

    def __init__(self, num_envs: int, num_rays: int, range_max_m: float, dt: float, substeps: int = 5,
                 max_boxes: int = 32, max_cylinders: int = 8, wheel_accel_m_s2: float = 2.6) -> None:
        """``wheel_accel_m_s2``: how fast each wheel's rim speed can change (the MuJoCo AGV's torque-limited
        motors: measured ~2.6 m/s², i.e. 2.6 m/s² forward and ~10 rad/s² turning); 0 = instant."""
        self.num_envs, self.num_rays, self.range_max, self.dt = num_envs, num_rays, float(range_max_m), dt
        self.substeps = substeps
        e = num_envs
        self.angles = -np.pi + 2.0 * np.pi / num_rays * np.arange(num_rays)
        self.box_c = np.full((e, max_boxes, 2), FAR)
        self.box_half = np.zeros((e, max_boxes, 2))
        self.box_cos = np.ones((e, max_boxes))
        self.box_sin = np.zeros((e, max_boxes))
        self.cyl_c = np.full((e, max_cylinders, 2), FAR)
        self.cyl_r = np.zeros((e, max_cylinders))
        self.bounds = np.tile([-FAR, -FAR, FAR, FAR], (e, 1)).astype(float)
        self.radius = np.full(e, 0.3)
        self.pose = np.zeros((e, 3))
        self.twist = np.zeros((e, 2))
        self.wheel_accel = wheel_accel_m_s2
        self.box_count = np.zeros(e, dtype=int)
        self.cyl_count = np.zeros(e, dtype=int)
        self.half_track = np.full(e, 0.25)
        self.wheel_speed_max = np.full(e, 1.2)

    def load(self, index: int, scenario: Scenario) -> None:
        """Put ``scenario``'s geometry and start pose into env ``index``."""
        boxes, cyls = scenario.boxes, scenario.cylinders
        if len(boxes) > self.box_c.shape[1] or len(cyls) > self.cyl_c.shape[1]:
            raise ValueError(f"{scenario.name}: {len(boxes)} boxes / {len(cyls)} cylinders exceed this simulator's "
                             f"{self.box_c.shape[1]} / {self.cyl_c.shape[1]}")
        i = index
        self.box_c[i], self.box_half[i], self.box_cos[i], self.box_sin[i] = FAR, 0.0, 1.0, 0.0
        for k, b in enumerate(boxes):
            self.box_c[i, k] = b.center
            self.box_half[i, k] = np.asarray(b.size) / 2.0
            self.box_cos[i, k], self.box_sin[i, k] = np.cos(b.yaw), np.sin(b.yaw)
        self.cyl_c[i], self.cyl_r[i] = FAR, 0.0
        for k, c in enumerate(cyls):
            self.cyl_c[i, k], self.cyl_r[i, k] = c.center, c.radius
        self.box_count[i], self.cyl_count[i] = len(boxes), len(cyls)
        self.bounds[i] = scenario.bounds if scenario.walls else (-FAR, -FAR, FAR, FAR)
        self.radius[i] = scenario.robot.radius_m
        self.half_track[i] = scenario.robot.wheel_separation_m / 2.0
        self.wheel_speed_max[i] = scenario.robot.max_wheel_speed_rad_s * scenario.robot.wheel_radius_m
        self.pose[i] = scenario.start
        self.twist[i] = 0.0

    # ------------------------------------------------------------------ geometry

    def clearance(self, xy: np.ndarray) -> np.ndarray:
        """(E,) distance from each env's point ``xy`` (E, 2) to its nearest shape or wall (0 inside)."""
        d = xy[:, None, :] - self.box_c                                   # (E, B, 2)
        lx = self.box_cos * d[..., 0] + self.box_sin * d[..., 1]
        ly = -self.box_sin * d[..., 0] + self.box_cos * d[..., 1]
        q = np.maximum(np.stack([np.abs(lx), np.abs(ly)], axis=-1) - self.box_half, 0.0)
        best = np.linalg.norm(q, axis=-1).min(axis=1)
        circ = np.maximum(np.linalg.norm(xy[:, None, :] - self.cyl_c, axis=-1) - self.cyl_r, 0.0).min(axis=1)
        best = np.minimum(best, circ)
        x0, y0, x1, y1 = self.bounds.T
        wall = np.minimum(np.minimum(xy[:, 0] - x0, x1 - xy[:, 0]), np.minimum(xy[:, 1] - y0, y1 - xy[:, 1]))
        return np.minimum(best, np.maximum(wall, 0.0))

    def colliding(self) -> np.ndarray:
        """(E,) the robot's disc overlaps a shape or wall."""
        return self.clearance(self.pose[:, :2]) < self.radius

    def scan(self) -> np.ndarray:
        """(E, R) lidar ranges from each robot's centre; ``range_max`` where nothing is hit."""
        theta = self.pose[:, 2:3] + self.angles                           # (E, R)
        dx, dy = np.cos(theta), np.sin(theta)
        ox, oy = self.pose[:, 0:1], self.pose[:, 1:2]                     # (E, 1)
        best = np.full(theta.shape, self.range_max)
        nb, nc = max(int(self.box_count.max()), 1), max(int(self.cyl_count.max()), 1)  # skip unused padding
        box_c, box_half = self.box_c[:, :nb], self.box_half[:, :nb]
        # Boxes: the ray in each box's frame, slab method.
        c, s = self.box_cos[:, None, :nb], self.box_sin[:, None, :nb]     # (E, 1, B)
        px = ox[..., None] - box_c[:, None, :, 0]
        py = oy[..., None] - box_c[:, None, :, 1]
        lx, ly = c * px + s * py, -s * px + c * py                        # (E, 1, B)
        ux = c * dx[..., None] + s * dy[..., None]                        # (E, R, B)
        uy = -s * dx[..., None] + c * dy[..., None]
        hx, hy = box_half[:, None, :, 0], box_half[:, None, :, 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            inv_x, inv_y = 1.0 / ux, 1.0 / uy
            t1, t2 = (-hx - lx) * inv_x, (hx - lx) * inv_x
            t3, t4 = (-hy - ly) * inv_y, (hy - ly) * inv_y
        tmin = np.maximum(np.minimum(t1, t2), np.minimum(t3, t4))
        tmax = np.minimum(np.maximum(t1, t2), np.maximum(t3, t4))
        hit = (tmax >= np.maximum(tmin, 0.0)) & np.isfinite(tmin)
        t = np.where(hit, np.where(tmin >= 0.0, tmin, 0.0), np.inf)
        best = np.minimum(best, t.min(axis=2))
        # Cylinders: |o + t u - c|² = r².
        fx = ox[..., None] - self.cyl_c[:, None, :nc, 0]                  # (E, 1, C)
        fy = oy[..., None] - self.cyl_c[:, None, :nc, 1]
        b = fx * dx[..., None] + fy * dy[..., None]                       # (E, R, C)
        cc = fx**2 + fy**2 - self.cyl_r[:, None, :nc] ** 2
        disc = b**2 - cc
        root = np.sqrt(np.maximum(disc, 0.0))
        tc = np.where(cc <= 0.0, 0.0, -b - root)
        tc = np.where((disc >= 0.0) & (tc >= 0.0), tc, np.inf)
        best = np.minimum(best, tc.min(axis=2))
        # Walls: where the ray leaves the rectangle.
        x0, y0, x1, y1 = (self.bounds[:, k:k + 1] for k in range(4))
        with np.errstate(divide="ignore", invalid="ignore"):
            tx = np.where(dx > 0, (x1 - ox) / dx, np.where(dx < 0, (x0 - ox) / dx, np.inf))
            ty = np.where(dy > 0, (y1 - oy) / dy, np.where(dy < 0, (y0 - oy) / dy, np.inf))
        best = np.minimum(best, np.maximum(np.minimum(tx, ty), 0.0))
        return np.minimum(best, self.range_max)

    # ------------------------------------------------------------------ motion

    def step(self, v: np.ndarray, omega: np.ndarray) -> None:
        """Command (v, ω) for ``dt``: each wheel's rim speed moves toward its command at most
        ``wheel_accel_m_s2`` and saturates at the motor limit (a differential drive, as in MuJoCo), and the
        pose follows exact unicycle arcs over ``substeps``."""
        h = self.dt / self.substeps
        b = self.half_track
        cap = self.wheel_speed_max
        want_l = np.clip(v - omega * b, -cap, cap)
        want_r = np.clip(v + omega * b, -cap, cap)
        left = self.twist[:, 0] - self.twist[:, 1] * b
        right = self.twist[:, 0] + self.twist[:, 1] * b
        for _ in range(self.substeps):
            if self.wheel_accel > 0:
                step = self.wheel_accel * h
                left = left + np.clip(want_l - left, -step, step)
                right = right + np.clip(want_r - right, -step, step)
            else:
                left, right = want_l, want_r
            lin, ang = (left + right) / 2.0, (right - left) / (2.0 * b)
            th = self.pose[:, 2]
            turn = ang * h
            small = np.abs(turn) < 1e-9
            safe = np.where(small, 1.0, ang)
            dx = np.where(small, lin * h * np.cos(th), lin / safe * (np.sin(th + turn) - np.sin(th)))
            dy = np.where(small, lin * h * np.sin(th), -lin / safe * (np.cos(th + turn) - np.cos(th)))
            self.pose[:, 0] += dx
            self.pose[:, 1] += dy
            self.pose[:, 2] = wrap_angle(th + turn)
        self.twist = np.stack([(left + right) / 2.0, (right - left) / (2.0 * b)], axis=1)

