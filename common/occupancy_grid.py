"""A two-layer boolean occupancy grid: the static map plus obstacles seen by lidar.

The layers are kept apart so lidar hits can be forgotten (``clear_dynamic``) without
re-rasterising the map, and so a planner can tell "the map says so" from "the robot saw it".
Rows index y and columns index x, so ``grid[row, col]`` matches image conventions and
``scipy.ndimage`` works on it directly.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.ndimage import distance_transform_edt

Box = tuple[float, float, float, float, float]
Circle = tuple[float, float, float]


class OccupancyGrid:
    """Static and dynamic occupancy layers over a rectangular world region.

    ``origin`` is the world (x, y) of the outer corner of cell (0, 0); cell (r, c) spans
    ``[x0 + c*res, x0 + (c+1)*res) x [y0 + r*res, y0 + (r+1)*res)``. Everything outside
    the grid counts as occupied: the robot must never plan off the map.
    """

    def __init__(self, static: np.ndarray, resolution: float, origin: tuple[float, float]) -> None:
        static = np.asarray(static, dtype=bool)
        if static.ndim != 2 or static.size == 0:
            raise ValueError(f"static: expected a non-empty 2-D array, got shape {static.shape}")
        if not (math.isfinite(resolution) and resolution > 0):
            raise ValueError(f"resolution: must be a positive finite number, got {resolution!r}")
        self.resolution = float(resolution)
        self.origin = (float(origin[0]), float(origin[1]))
        self._static = static.copy()
        self._dynamic = np.zeros_like(self._static)
        # Bumped whenever a layer changes; caches (here and in planners) key on it.
        self._version = 0
        self._clearance: np.ndarray | None = None
        self._clearance_version = -1

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_shapes(
        cls,
        bounds: tuple[float, float, float, float],
        boxes: Sequence[Box] = (),
        circles: Sequence[Circle] = (),
        resolution: float = 0.05,
    ) -> OccupancyGrid:
        """Rasterise boxes ``(cx, cy, sx, sy, yaw)`` (full sizes) and circles ``(cx, cy, r)``.

        A cell is occupied when its centre lies inside a shape. Each shape is tested only
        inside its bounding window so a big map with many shelves stays fast.
        """
        xmin, ymin, xmax, ymax = (float(v) for v in bounds)
        if not (xmax > xmin and ymax > ymin):
            raise ValueError(f"bounds: expected xmin < xmax and ymin < ymax, got {bounds!r}")
        if not (math.isfinite(resolution) and resolution > 0):
            raise ValueError(f"resolution: must be a positive finite number, got {resolution!r}")
        cols = max(1, int(math.ceil((xmax - xmin) / resolution - 1e-9)))
        rows = max(1, int(math.ceil((ymax - ymin) / resolution - 1e-9)))
        grid = np.zeros((rows, cols), dtype=bool)
        xs = xmin + (np.arange(cols) + 0.5) * resolution
        ys = ymin + (np.arange(rows) + 0.5) * resolution

        def window(cx: float, cy: float, half: float) -> tuple[slice, slice]:
            c0 = int(np.searchsorted(xs, cx - half, side="left"))
            c1 = int(np.searchsorted(xs, cx + half, side="right"))
            r0 = int(np.searchsorted(ys, cy - half, side="left"))
            r1 = int(np.searchsorted(ys, cy + half, side="right"))
            return slice(r0, r1), slice(c0, c1)

        for i, box in enumerate(boxes):
            cx, cy, sx, sy, yaw = (float(v) for v in box)
            if not (sx >= 0 and sy >= 0):
                raise ValueError(f"boxes[{i}]: sizes must be non-negative, got {box!r}")
            rs, cs = window(cx, cy, 0.5 * math.hypot(sx, sy))
            dx = xs[cs][None, :] - cx
            dy = ys[rs][:, None] - cy
            c, s = math.cos(yaw), math.sin(yaw)
            lx = c * dx + s * dy
            ly = -s * dx + c * dy
            grid[rs, cs] |= (np.abs(lx) <= 0.5 * sx) & (np.abs(ly) <= 0.5 * sy)
        for i, circle in enumerate(circles):
            cx, cy, r = (float(v) for v in circle)
            if not r >= 0:
                raise ValueError(f"circles[{i}]: radius must be non-negative, got {circle!r}")
            rs, cs = window(cx, cy, r)
            dx = xs[cs][None, :] - cx
            dy = ys[rs][:, None] - cy
            grid[rs, cs] |= dx * dx + dy * dy <= r * r
        return cls(grid, resolution, (xmin, ymin))

    # ------------------------------------------------------------------ layers
    @property
    def shape(self) -> tuple[int, int]:
        return (int(self._static.shape[0]), int(self._static.shape[1]))

    @property
    def version(self) -> int:
        """Changes whenever either layer changes; lets callers cache derived arrays."""
        return self._version

    @property
    def static(self) -> np.ndarray:
        """The map layer (read-only view)."""
        view = self._static.view()
        view.flags.writeable = False
        return view

    @property
    def dynamic(self) -> np.ndarray:
        """Obstacles marked from lidar (read-only view)."""
        view = self._dynamic.view()
        view.flags.writeable = False
        return view

    @property
    def occupied(self) -> np.ndarray:
        """Union of both layers: what the robot must treat as solid."""
        return self._static | self._dynamic

    def mark_points(self, points_world: np.ndarray) -> int:
        """Mark world points into the dynamic layer; returns how many cells became newly occupied.

        Points off the grid or non-finite are dropped (off-grid is occupied anyway). The
        version only changes when a new cell is marked, so re-seeing known shelves every
        scan does not force a clearance recomputation.
        """
        pts = np.asarray(points_world, dtype=float).reshape(-1, 2)
        pts = pts[np.all(np.isfinite(pts), axis=1)]
        if len(pts) == 0:
            return 0
        cells = self.world_to_cell(pts)
        cells = cells[self.in_bounds(cells)]
        r, c = cells[:, 0], cells[:, 1]
        new = ~(self._static[r, c] | self._dynamic[r, c])
        if not np.any(new):
            return 0
        self._dynamic[r[new], c[new]] = True
        self._version += 1
        return int(len(np.unique(r[new] * self.shape[1] + c[new])))

    def clear_dynamic(self) -> None:
        """Forget every lidar-marked obstacle."""
        if np.any(self._dynamic):
            self._dynamic[:] = False
            self._version += 1

    # ------------------------------------------------------------------ coordinates
    def world_to_cell(self, xy: np.ndarray | Sequence[float]) -> np.ndarray:
        """World (x, y) -> integer (row, col); accepts shape (2,) or (N, 2). May be off-grid."""
        p = np.asarray(xy, dtype=float)
        col = np.floor((p[..., 0] - self.origin[0]) / self.resolution).astype(np.int64)
        row = np.floor((p[..., 1] - self.origin[1]) / self.resolution).astype(np.int64)
        return np.stack([row, col], axis=-1)

    def cell_to_world(self, cells: np.ndarray | Sequence[int]) -> np.ndarray:
        """Integer (row, col) -> world (x, y) of the cell centre; shape (2,) or (N, 2)."""
        rc = np.asarray(cells, dtype=float)
        x = self.origin[0] + (rc[..., 1] + 0.5) * self.resolution
        y = self.origin[1] + (rc[..., 0] + 0.5) * self.resolution
        return np.stack([x, y], axis=-1)

    def in_bounds(self, cells: np.ndarray | Sequence[int]) -> np.ndarray | bool:
        """Whether (row, col) lies on the grid; a bool for one cell, a bool array for (N, 2)."""
        rc = np.asarray(cells)
        rows, cols = self.shape
        ok = (rc[..., 0] >= 0) & (rc[..., 0] < rows) & (rc[..., 1] >= 0) & (rc[..., 1] < cols)
        return bool(ok) if np.ndim(ok) == 0 else ok

    def is_occupied(self, cell: Sequence[int]) -> bool:
        """Occupancy of one (row, col); off-grid is occupied."""
        if not self.in_bounds(cell):
            return True
        r, c = int(cell[0]), int(cell[1])
        return bool(self._static[r, c] or self._dynamic[r, c])

    # ------------------------------------------------------------------ clearance
    def clearance_field(self) -> np.ndarray:
        """Metres from each cell centre to the edge of the nearest occupied cell (0 if occupied).

        The grid is padded with an occupied border so the map edge counts as a wall.
        Half a cell is subtracted from the centre-to-centre distance so a free cell next
        to an obstacle reads res/2, the true distance to the obstacle's edge, rather than
        a full cell that would overstate the clearance. Cached until a layer changes;
        treat the returned array as read-only.
        """
        if self._clearance is None or self._clearance_version != self._version:
            free = np.pad(~self.occupied, 1, constant_values=False)
            dist = distance_transform_edt(free)[1:-1, 1:-1] * self.resolution
            clearance = np.where(dist > 0, dist - 0.5 * self.resolution, 0.0)
            clearance.flags.writeable = False
            self._clearance = clearance
            self._clearance_version = self._version
        return self._clearance
