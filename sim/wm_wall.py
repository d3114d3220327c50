"""DINO-WM's *Wall* environment, written in numpy: a dot, a wall, a door.

A square arena ([0, 1]²) is split by a vertical wall with one door whose height is drawn per
episode; the dot moves by a bounded 2-D displacement per step and can reach the other half
only through the door. DINO-WM (Zhou et al. 2025, arXiv 2411.04983, Wall: 1,920 random
trajectories of 50 steps) uses it to test whether a world model learns a constraint that is
visible in the image (the door) rather than memorised. Everything is a few float operations
and a cached background, so thousands of steps (with 64 px images) run per second on one CPU.

Geometry is exact: a move is a segment, and the dot stops at the first instant the segment
would enter the wall (dilated by the dot's radius) outside the door band, so no step size,
however large, tunnels through the wall. The door height is part of the state, because a
goal image is only meaningful with the same door.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from navkit.common.errors import ParameterError
from navkit.sim.wm_envs import CorrelatedNoise, WmObservation, as_action, as_state, check_image_size, check_range

_SOURCE = "WallConfig"


@dataclass(frozen=True)
class WallConfig:
    """Arena geometry (units: arena side = 1) and the data-collection policy."""

    wall_x: float = 0.5
    """Centre line of the wall."""
    wall_half_width: float = 0.025
    """Half thickness: 3 px at 64 px, thick enough to survive downsampling."""
    door_half_height: float = 0.1
    """Half the door opening; the dot (radius ``dot_radius``) fits with room to spare."""
    door_low: float = 0.25
    door_high: float = 0.75
    """Range the door's centre height is drawn from per episode."""
    dot_radius: float = 0.03
    max_step: float = 0.05
    """Displacement per unit action (action ∈ [-1, 1]²): 20 steps cross the arena."""
    success_threshold: float = 0.07
    """Goal reached within this distance (4.5 px at 64 px, the dot's diameter plus a bit)."""
    smoothing: float = 0.7
    """Correlation ρ of the random actions (0: white noise)."""
    door_fraction: float = 0.3
    """Share of random trajectories that head for the door and through it: with undirected noise
    almost none cross in 50 steps, and a world model cannot learn a door it never sees used."""

    def __post_init__(self) -> None:
        check_range(_SOURCE, "wall_x", self.wall_x, 0.2, 0.8)
        check_range(_SOURCE, "wall_half_width", self.wall_half_width, 0.0, 0.1)
        check_range(_SOURCE, "dot_radius", self.dot_radius, 0.005, 0.1)
        check_range(_SOURCE, "door_half_height", self.door_half_height, self.dot_radius * 1.5, 0.4)
        check_range(_SOURCE, "door_low", self.door_low, self.door_half_height, 1.0 - self.door_half_height)
        check_range(_SOURCE, "door_high", self.door_high, self.door_low, 1.0 - self.door_half_height)
        check_range(_SOURCE, "max_step", self.max_step, 1e-4, 0.5)
        check_range(_SOURCE, "success_threshold", self.success_threshold, 1e-4, 1.0)
        check_range(_SOURCE, "smoothing", self.smoothing, 0.0, 0.999)
        check_range(_SOURCE, "door_fraction", self.door_fraction, 0.0, 1.0)


_BACKGROUND = np.array([16, 16, 24], dtype=np.float32)
_WALL = np.array([200, 200, 200], dtype=np.float32)
_DOT = np.array([235, 70, 40], dtype=np.float32)


class WallEnv:
    """A :class:`~navkit.sim.wm_envs.WmEnv`: state (x, y, door_y), proprio (x, y), action = displacement."""

    def __init__(self, config: WallConfig | None = None, *, image_size: int = 64) -> None:
        check_image_size(image_size, _SOURCE)
        self.config = config or WallConfig()
        if not isinstance(self.config, WallConfig):
            raise ParameterError(_SOURCE, "config", f"expected a WallConfig, got {type(self.config).__name__}")
        self.name = "wall"
        self.image_size = image_size
        self.action_dim = 2
        self.proprio_dim = 2
        self.state_dim = 3
        self.action_low = -np.ones(2)
        self.action_high = np.ones(2)
        c = self.config
        r = c.dot_radius
        # The wall dilated by the dot's radius: the dot's centre may never be strictly inside it
        # outside the door band.
        self._xl, self._xr = c.wall_x - c.wall_half_width - r, c.wall_x + c.wall_half_width + r
        self._cached_door: float | None = None
        self._background = np.zeros((image_size, image_size, 3), dtype=np.float32)
        centres = (np.arange(image_size) + 0.5) / image_size
        self._px_x = centres  # column j -> x
        self._px_y = 1.0 - centres  # row i -> y (row 0 is the top)
        self._x, self._y, self._door = 0.25, 0.5, 0.5
        self.reset(0)

    # ------------------------------------------------------------------ WmEnv

    def reset(self, seed: int | None = None) -> WmObservation:
        self._rng = np.random.default_rng([0 if seed is None else seed, 0])
        self._policy_rng = np.random.default_rng([0 if seed is None else seed, 1])
        s = self.sample_state(self._rng)
        self._x, self._y, self._door = float(s[0]), float(s[1]), float(s[2])
        c = self.config
        self._noise = CorrelatedNoise(2, c.smoothing, 0.6, self._policy_rng)
        self._targets: list[tuple[float, float]] = []
        if self._policy_rng.random() < c.door_fraction:
            # Through the door: to its mouth on this side, across, then to a point on the far side.
            side = -1.0 if self._x < c.wall_x else 1.0
            mouth = c.wall_half_width + c.dot_radius + 0.02
            far = self.sample_state(self._policy_rng)
            while (far[0] < c.wall_x) == (side < 0):
                far = self.sample_state(self._policy_rng)
            self._targets = [(c.wall_x + side * mouth, self._door), (c.wall_x - side * mouth, self._door),
                             (float(far[0]), float(far[1]))]
        return self._observe()

    def step(self, action: np.ndarray) -> WmObservation:
        a = as_action(action, self)
        self._move(a[0] * self.config.max_step, a[1] * self.config.max_step)
        return self._observe()

    def render(self) -> np.ndarray:
        if self._cached_door != self._door:
            self._draw_background()
        c, n = self.config, self.image_size
        img = self._background.copy()
        # Anti-aliased disc: coverage falls from 1 to 0 across one pixel at the rim.
        r_px = c.dot_radius * n
        cx, cy = self._x * n, (1.0 - self._y) * n
        j0, j1 = max(0, int(cx - r_px - 1)), min(n, int(cx + r_px + 2))
        i0, i1 = max(0, int(cy - r_px - 1)), min(n, int(cy + r_px + 2))
        dj = np.arange(j0, j1) + 0.5 - cx
        di = np.arange(i0, i1) + 0.5 - cy
        dist = np.sqrt(di[:, None] ** 2 + dj[None, :] ** 2)
        cover = np.clip(r_px - dist + 0.5, 0.0, 1.0)[..., None]
        patch = img[i0:i1, j0:j1]
        img[i0:i1, j0:j1] = patch * (1.0 - cover) + _DOT * cover
        return img.astype(np.uint8)

    def proprio(self) -> np.ndarray:
        return np.array([self._x, self._y], dtype=np.float32)

    def state(self) -> np.ndarray:
        return np.array([self._x, self._y, self._door], dtype=np.float64)

    def set_state(self, state: np.ndarray) -> WmObservation:
        s = as_state(state, self)
        c = self.config
        if not c.door_half_height <= s[2] <= 1.0 - c.door_half_height:
            raise ParameterError(self.name, "state[2]", f"door height must be in [{c.door_half_height:g}, "
                                                        f"{1 - c.door_half_height:g}], got {s[2]:g}")
        self._door = float(s[2])
        if self._blocked(float(s[0]), float(s[1])) or not self._inside_arena(float(s[0]), float(s[1])):
            raise ParameterError(self.name, "state", f"position ({s[0]:g}, {s[1]:g}) is inside the wall or "
                                                     "outside the arena")
        self._x, self._y = float(s[0]), float(s[1])
        self._targets = []
        return self._observe()

    def goal_distance(self, goal_state: np.ndarray) -> float:
        g = np.asarray(goal_state, dtype=np.float64).reshape(-1)
        return math.hypot(self._x - float(g[0]), self._y - float(g[1]))

    def success(self, goal_state: np.ndarray) -> bool:
        return self.goal_distance(goal_state) <= self.config.success_threshold

    def sample_state(self, rng: np.random.Generator) -> np.ndarray:
        c = self.config
        door = float(rng.uniform(c.door_low, c.door_high))
        r = c.dot_radius
        while True:
            x, y = (float(v) for v in rng.uniform(r, 1.0 - r, 2))
            if not self._blocked(x, y, door):
                return np.array([x, y, door])

    def random_action(self) -> np.ndarray:
        noise = self._noise()
        c = self.config
        while self._targets:
            tx, ty = self._targets[0]
            dx, dy = tx - self._x, ty - self._y
            if math.hypot(dx, dy) < 0.5 * c.max_step:
                self._targets.pop(0)
                continue
            gain = 1.0 / max(math.hypot(dx, dy), c.max_step)
            return np.clip(np.array([dx, dy]) * gain * 0.9 + 0.25 * noise, -1.0, 1.0)
        return noise

    def failed(self) -> bool:
        return False

    def config_dict(self) -> dict[str, Any]:
        return asdict(self.config)

    def close(self) -> None:
        pass

    # ------------------------------------------------------------------ internals

    def _observe(self) -> WmObservation:
        return WmObservation(self.render(), self.proprio())

    def _inside_arena(self, x: float, y: float) -> bool:
        r = self.config.dot_radius
        return r <= x <= 1.0 - r and r <= y <= 1.0 - r

    def _band(self, door: float) -> tuple[float, float]:
        """Heights the dot's centre may have while inside the wall's slab (the door, less the radius)."""
        c = self.config
        return door - c.door_half_height + c.dot_radius, door + c.door_half_height - c.dot_radius

    def _blocked(self, x: float, y: float, door: float | None = None) -> bool:
        """The dot's centre at (x, y) would overlap the wall (strictly inside the dilated slab, off the door)."""
        b0, b1 = self._band(self._door if door is None else door)
        return self._xl < x < self._xr and not b0 <= y <= b1

    def _move(self, dx: float, dy: float) -> None:
        """Move by (dx, dy), clipped to the arena; stop where the segment first enters the wall."""
        r = self.config.dot_radius
        px, py = self._x, self._y
        tx, ty = min(max(px + dx, r), 1.0 - r), min(max(py + dy, r), 1.0 - r)
        dx, dy = tx - px, ty - py
        # Times (along the segment, in [0, 1]) when the centre is strictly inside the slab: (a, b).
        if dx == 0.0:
            if not self._xl < px < self._xr:
                self._x, self._y = tx, ty
                return
            a, b = 0.0, 1.0
        else:
            t1, t2 = (self._xl - px) / dx, (self._xr - px) / dx
            a, b = max(min(t1, t2), 0.0), min(max(t1, t2), 1.0)
            if a >= b:
                self._x, self._y = tx, ty
                return
        # Times when the centre is within the door band: [c0, c1] (empty: c0 > c1).
        b0, b1 = self._band(self._door)
        if dy == 0.0:
            c0, c1 = (-math.inf, math.inf) if b0 <= py <= b1 else (math.inf, -math.inf)
        else:
            u1, u2 = (b0 - py) / dy, (b1 - py) / dy
            c0, c1 = min(u1, u2), max(u1, u2)
        if c0 > c1 or not c0 <= a <= c1:
            # Enters the slab off the door: stop on the wall's face (snapped, so float error cannot
            # leave the centre a hair inside).
            self._x = self._xl if dx > 0 else self._xr
            self._y = min(max(py + a * dy, r), 1.0 - r)
        elif c1 < b:
            # In the doorway, leaves the band while still inside the slab: stop at the door's edge.
            self._x = px + c1 * dx
            self._y = b1 if dy > 0 else b0
        else:
            self._x, self._y = tx, ty

    def _draw_background(self) -> None:
        """Wall with its door, anti-aliased: each pixel is covered by the exact area fraction of the wall
        rectangles (separable, so two 1-D overlaps), redrawn only when the door moves."""
        c, n = self.config, self.image_size
        edges = np.arange(n + 1) / n

        def overlap(lo: float, hi: float) -> np.ndarray:
            """Fraction of each pixel interval [edges[k], edges[k+1]] inside [lo, hi]."""
            return np.clip(np.minimum(edges[1:], hi) - np.maximum(edges[:-1], lo), 0.0, None) * n

        in_x = overlap(c.wall_x - c.wall_half_width, c.wall_x + c.wall_half_width)
        # Rows run from the top (y = 1) down: row i covers y in [1 - edges[i+1], 1 - edges[i]].
        in_door = overlap(1.0 - (self._door + c.door_half_height), 1.0 - (self._door - c.door_half_height))
        cover = ((1.0 - in_door)[:, None] * in_x[None, :])[..., None]
        self._background = (_BACKGROUND * (1.0 - cover) + _WALL * cover).astype(np.float32)
        self._cached_door = self._door
