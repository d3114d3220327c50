"""Global path planning with clearance: grid A* over an inflated, clearance-weighted map.

The planner turns the occupancy grid's clearance field into two arrays: which cells a
disk robot may centre on (clearance >= radius + inflation) and an extra cost that pulls
paths towards aisle centres. It then smooths the A* cell path (Douglas-Peucker, never
through a non-traversable cell) and resamples it for the tracker. It also answers
"has lidar shown my path to be blocked?", so the caller knows when to replan.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from navkit.common.errors import PlanningFailed
from navkit.common.sensor_data import Pose2D
from navkit.planning.astar import astar
from navkit.common.occupancy_grid import OccupancyGrid

# How far from a non-traversable start the search may look for a free cell: the robot is
# physically there, so a nearby free cell is where it can actually get back onto the plan.
_START_RECOVERY_RADIUS_M = 1.0


@dataclass
class GlobalPlannerConfig:
    """Parameters of :class:`GridAstarPlanner` (ROS 2 parameter names match the fields)."""

    resolution_m: float = 0.05
    """Grid cell size the map is rasterised at; finer is more exact but A* grows with 1/res^2."""

    robot_radius_m: float = 0.3
    """Radius of the robot's disk; cells with clearance < radius + inflation are not traversable."""

    inflation_m: float = 0.05
    """Safety margin on top of the radius; absorbs rasterisation and path-smoothing error (~1 cell)."""

    clearance_m: float = 0.8
    """Clearance beyond which no extra cost applies: far from shelves, the shortest path is fine."""

    clearance_weight: float = 4.0
    """Extra cost per cell is weight * (clearance_m - clearance) / clearance_m, so paths keep to aisle centres."""

    simplify_tolerance_m: float = 0.05
    """Douglas-Peucker tolerance; removes the 8-connected zig-zag without moving the path noticeably."""

    waypoint_spacing_m: float = 0.2
    """The output path is resampled to this spacing so the tracker sees evenly spaced points."""

    blocked_check_distance_m: float = 3.0
    """How far ahead on the path newly seen obstacles trigger a replan; farther ones may still move."""

    obstacle_memory: bool = True
    """Keep lidar-seen obstacles between scans (the lidar cannot see behind them); False keeps only the last scan."""

    def __post_init__(self) -> None:
        positive = ("resolution_m", "robot_radius_m", "clearance_m", "waypoint_spacing_m", "blocked_check_distance_m")
        non_negative = ("inflation_m", "clearance_weight", "simplify_tolerance_m")
        for name in positive + non_negative:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name}: expected a finite number, got {value!r}")
            if name in positive and value <= 0:
                raise ValueError(f"{name}: must be > 0, got {value!r}")
            if name in non_negative and value < 0:
                raise ValueError(f"{name}: must be >= 0, got {value!r}")
        if not 0.01 <= self.resolution_m <= 1.0:
            raise ValueError(f"resolution_m: must be in [0.01, 1] m, got {self.resolution_m!r}")
        if not isinstance(self.obstacle_memory, bool):
            raise ValueError(f"obstacle_memory: expected true/false, got {self.obstacle_memory!r}")


class NoPathFound(PlanningFailed):
    """No collision-free path exists between start and goal on the current map."""

    def __init__(self, start: tuple[float, float], goal: tuple[float, float], reason: str) -> None:
        self.start = start
        self.goal = goal
        self.reason = reason
        super().__init__(
            f"no path from ({start[0]:.2f}, {start[1]:.2f}) to ({goal[0]:.2f}, {goal[1]:.2f}): {reason}"
        )


class GridAstarPlanner:
    """A* with a clearance cost on an :class:`OccupancyGrid` (plugin ``grid_astar`` of the
    ``global_planner`` slot, :class:`~navkit.common.interfaces.GlobalPlanner`); ``observe``
    feeds lidar into the grid's dynamic layer."""

    def __init__(self, config: GlobalPlannerConfig, grid: OccupancyGrid) -> None:
        if abs(grid.resolution - config.resolution_m) > 1e-9:
            raise ValueError(
                f"resolution_m: config says {config.resolution_m} but the grid has {grid.resolution}"
            )
        self.config = config
        self.grid = grid
        self._layers_version = -1
        self._traversable = np.zeros(grid.shape, dtype=bool)
        self._clearance = np.zeros(grid.shape)
        self._cost = np.zeros(grid.shape)

    # ------------------------------------------------------------------ layers
    def _refresh(self) -> None:
        """Recompute traversability and cost only when the grid changed since last time."""
        if self._layers_version == self.grid.version:
            return
        cfg = self.config
        clearance = self.grid.clearance_field()
        self._clearance = clearance
        self._traversable = clearance >= cfg.robot_radius_m + cfg.inflation_m
        shortfall = np.clip((cfg.clearance_m - clearance) / cfg.clearance_m, 0.0, 1.0)
        self._cost = cfg.clearance_weight * shortfall
        self._layers_version = self.grid.version

    @property
    def traversable(self) -> np.ndarray:
        """Cells the robot centre may occupy, given both map layers."""
        self._refresh()
        return self._traversable

    def is_traversable(self, xy: np.ndarray) -> np.ndarray:
        """Traversability of world points (N, 2); off-grid points are not traversable."""
        self._refresh()
        cells = self.grid.world_to_cell(np.asarray(xy, dtype=float).reshape(-1, 2))
        ok = self.grid.in_bounds(cells)
        out = np.zeros(len(cells), dtype=bool)
        out[ok] = self._traversable[cells[ok, 0], cells[ok, 1]]
        return out

    def _clearance_at(self, xy: np.ndarray) -> np.ndarray:
        cells = self.grid.world_to_cell(xy)
        ok = self.grid.in_bounds(cells)
        out = np.zeros(len(cells))
        out[ok] = self._clearance[cells[ok, 0], cells[ok, 1]]
        return out

    # ------------------------------------------------------------------ planning
    def plan(self, start: Pose2D | tuple[float, float], goal: tuple[float, float]) -> np.ndarray:
        """World waypoints (N, 2) from ``start`` to exactly ``goal``, spaced ~waypoint_spacing_m.

        Raises :class:`NoPathFound` when the goal is not traversable, when no free cell lies
        within 1 m of a non-traversable start, or when the two are not connected.
        """
        self._refresh()
        sxy = (float(start.x), float(start.y)) if isinstance(start, Pose2D) else (float(start[0]), float(start[1]))
        gxy = (float(goal[0]), float(goal[1]))
        if not all(math.isfinite(v) for v in sxy + gxy):
            raise NoPathFound(sxy, gxy, "start or goal is not finite")
        goal_cell = tuple(int(v) for v in self.grid.world_to_cell(gxy))
        if not self.grid.in_bounds(goal_cell) or not self._traversable[goal_cell]:
            raise NoPathFound(sxy, gxy, "goal is occupied or too close to an obstacle")
        start_cell = self._start_cell(sxy, gxy)
        cells = astar(self._traversable, self._cost, start_cell, goal_cell)
        if cells is None:
            raise NoPathFound(sxy, gxy, "start and goal are not connected")
        centres = self.grid.cell_to_world(np.asarray(cells))
        # The robot and the goal are where they are, not at cell centres: replace the end
        # cells by the exact points, but keep a recovery cell the robot must first reach.
        robot_cell = tuple(int(v) for v in self.grid.world_to_cell(sxy))
        interior = centres[1:-1] if robot_cell == start_cell else centres[:-1]
        points = np.vstack([np.asarray(sxy)[None, :], interior, np.asarray(gxy)[None, :]])
        return self._resample(self._simplify(points))

    def _start_cell(self, sxy: tuple[float, float], gxy: tuple[float, float]) -> tuple[int, int]:
        """The start cell, or the nearest traversable cell within 1 m when the robot grazed an inflated zone."""
        cell = self.grid.world_to_cell(sxy)
        if self.grid.in_bounds(cell) and self._traversable[cell[0], cell[1]]:
            return int(cell[0]), int(cell[1])
        reach = int(math.ceil(_START_RECOVERY_RADIUS_M / self.grid.resolution))
        rows, cols = self.grid.shape
        r0, r1 = max(0, cell[0] - reach), min(rows, cell[0] + reach + 1)
        c0, c1 = max(0, cell[1] - reach), min(cols, cell[1] + reach + 1)
        if r0 >= r1 or c0 >= c1:
            raise NoPathFound(sxy, gxy, "start is off the map")
        window = self._traversable[r0:r1, c0:c1]
        rr, cc = np.nonzero(window)
        if len(rr) == 0:
            raise NoPathFound(sxy, gxy, "no traversable cell within 1 m of the start")
        rr, cc = rr + r0, cc + c0
        centres = self.grid.cell_to_world(np.stack([rr, cc], axis=1))
        d = np.hypot(centres[:, 0] - sxy[0], centres[:, 1] - sxy[1])
        k = int(np.argmin(d))
        if d[k] > _START_RECOVERY_RADIUS_M:
            raise NoPathFound(sxy, gxy, "no traversable cell within 1 m of the start")
        return int(rr[k]), int(cc[k])

    def _segment_clear(self, a: np.ndarray, b: np.ndarray) -> bool:
        """Whether the straight segment a-b crosses only traversable cells (sampled at res/2)."""
        n = max(2, int(math.ceil(np.hypot(*(b - a)) / (0.5 * self.grid.resolution))) + 1)
        t = np.linspace(0.0, 1.0, n)[:, None]
        return bool(np.all(self.is_traversable(a + t * (b - a))))

    def _simplify(self, pts: np.ndarray) -> np.ndarray:
        """Douglas-Peucker that also splits any shortcut crossing a non-traversable cell.

        Consecutive original points are always kept together, so a start inside an inflated
        zone still yields a path (its first step is the one the robot must take anyway).
        """
        tol = self.config.simplify_tolerance_m
        keep = np.zeros(len(pts), dtype=bool)
        keep[0] = keep[-1] = True
        stack = [(0, len(pts) - 1)]
        while stack:
            a, b = stack.pop()
            if b - a < 2:
                continue
            seg = pts[b] - pts[a]
            rel = pts[a + 1 : b] - pts[a]
            length = float(np.hypot(*seg))
            if length > 0:
                dev = np.abs(seg[0] * rel[:, 1] - seg[1] * rel[:, 0]) / length
            else:
                dev = np.hypot(rel[:, 0], rel[:, 1])
            k = int(np.argmax(dev))
            if dev[k] > tol or not self._segment_clear(pts[a], pts[b]):
                mid = a + 1 + k
                keep[mid] = True
                stack.append((a, mid))
                stack.append((mid, b))
        return pts[keep]

    def _resample(self, pts: np.ndarray) -> np.ndarray:
        """Equal arc-length steps along the polyline, ending exactly at its last point."""
        seg = np.hypot(*np.diff(pts, axis=0).T)
        s = np.concatenate([[0.0], np.cumsum(seg)])
        total = float(s[-1])
        if total <= 0:
            return pts[[0, -1]].copy()
        # Equal steps of at most waypoint_spacing_m: no stub step at the end for the tracker to stutter on.
        n = max(1, int(math.ceil(total / self.config.waypoint_spacing_m - 1e-9)))
        stations = np.linspace(0.0, total, n + 1)
        out = np.stack([np.interp(stations, s, pts[:, 0]), np.interp(stations, s, pts[:, 1])], axis=1)
        out[-1] = pts[-1]
        return out

    # ------------------------------------------------------------------ replanning
    def in_map(self, position: tuple[float, float]) -> bool:
        """True when ``position`` lies inside the grid."""
        return bool(self.grid.in_bounds(self.grid.world_to_cell(np.asarray(position, dtype=float).reshape(1, 2)))[0])

    def forget_observations(self) -> None:
        """Drop every lidar-marked cell (obstacles move); the static map stays."""
        self.grid.clear_dynamic()

    def observe(self, points_world: np.ndarray) -> None:
        """Mark lidar hits (world frame, (N, 2)) as obstacles; forgets older ones if memory is off."""
        if not self.config.obstacle_memory:
            self.grid.clear_dynamic()
        self.grid.mark_points(points_world)

    def path_blocked(self, path: np.ndarray, robot_xy: np.ndarray | tuple[float, float]) -> bool:
        """Whether the next ``blocked_check_distance_m`` of ``path`` crosses a non-traversable cell.

        The check starts at the waypoint closest to the robot and samples the path every
        cell. A leading stretch that is only inside an inflation margin (not in an occupied
        cell) and within one robot radius + inflation of that waypoint is ignored: the
        robot is already there (it grazed a margin), and flagging it would make every
        fresh plan look blocked at once.
        """
        self._refresh()
        path = np.asarray(path, dtype=float).reshape(-1, 2)
        if len(path) == 0:
            return False
        robot = np.asarray(robot_xy, dtype=float).reshape(2)
        k = int(np.argmin(np.hypot(path[:, 0] - robot[0], path[:, 1] - robot[1])))
        ahead = path[k:]
        s = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(ahead, axis=0).T))]) if len(ahead) > 1 else np.zeros(1)
        horizon = min(self.config.blocked_check_distance_m, float(s[-1]))
        stations = np.append(np.arange(0.0, horizon, 0.5 * self.grid.resolution), horizon)
        samples = np.stack([np.interp(stations, s, ahead[:, 0]), np.interp(stations, s, ahead[:, 1])], axis=1)
        free = self.is_traversable(samples)
        if np.all(free):
            return False
        clearance = self._clearance_at(samples)
        grace = self.config.robot_radius_m + self.config.inflation_m
        i = 0
        while i < len(free) and not free[i] and clearance[i] > 0 and stations[i] <= grace:
            i += 1
        return bool(not np.all(free[i:]))
