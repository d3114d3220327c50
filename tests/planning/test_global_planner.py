"""GridAstarPlanner on a small warehouse: clearance, aisle centring, failures and replanning."""
from __future__ import annotations

import math

import numpy as np
import pytest

from navkit.common.errors import NavkitError
from navkit.common.sensor_data import Pose2D
from navkit.common.occupancy_grid import OccupancyGrid
from navkit.planning import GlobalPlannerConfig, GridAstarPlanner, NoPathFound

BOUNDS = (0.0, 0.0, 12.0, 8.0)
# Three shelves 1 m deep, 5 m long; 2 m aisles between them, cross-aisles below and above.
SHELVES = [(3.0, 4.5, 1.0, 5.0, 0.0), (6.0, 4.5, 1.0, 5.0, 0.0), (9.0, 4.5, 1.0, 5.0, 0.0)]


def _box_distance(xy: np.ndarray, box: tuple[float, float, float, float, float]) -> np.ndarray:
    cx, cy, sx, sy, yaw = box
    dx, dy = xy[:, 0] - cx, xy[:, 1] - cy
    lx = math.cos(yaw) * dx + math.sin(yaw) * dy
    ly = -math.sin(yaw) * dx + math.cos(yaw) * dy
    return np.hypot(np.maximum(np.abs(lx) - sx / 2, 0.0), np.maximum(np.abs(ly) - sy / 2, 0.0))


def _exact_clearance(xy: np.ndarray, boxes: list) -> np.ndarray:
    walls = np.minimum.reduce([xy[:, 0] - BOUNDS[0], BOUNDS[2] - xy[:, 0], xy[:, 1] - BOUNDS[1], BOUNDS[3] - xy[:, 1]])
    return np.minimum.reduce([walls] + [_box_distance(xy, b) for b in boxes])


def _densify(path: np.ndarray, step: float = 0.01) -> np.ndarray:
    out = [path[0]]
    for a, b in zip(path[:-1], path[1:]):
        n = max(1, int(math.ceil(np.hypot(*(b - a)) / step)))
        out.extend(a + (b - a) * t for t in np.linspace(0, 1, n + 1)[1:])
    return np.array(out)


def _planner(**overrides: object) -> GridAstarPlanner:
    config = GlobalPlannerConfig(**overrides)  # type: ignore[arg-type]
    grid = OccupancyGrid.from_shapes(BOUNDS, boxes=SHELVES, resolution=config.resolution_m)
    return GridAstarPlanner(config, grid)


def _pallet_points(cx: float, cy: float, sx: float, sy: float, spacing: float = 0.03) -> np.ndarray:
    """Lidar-like hits on the outline of an axis-aligned pallet."""
    xs = np.arange(cx - sx / 2, cx + sx / 2 + 1e-9, spacing)
    ys = np.arange(cy - sy / 2, cy + sy / 2 + 1e-9, spacing)
    return np.vstack([
        np.stack([xs, np.full_like(xs, cy - sy / 2)], 1),
        np.stack([xs, np.full_like(xs, cy + sy / 2)], 1),
        np.stack([np.full_like(ys, cx - sx / 2), ys], 1),
        np.stack([np.full_like(ys, cx + sx / 2), ys], 1),
    ])


@pytest.mark.parametrize(
    "start, goal",
    [((1.2, 6.0), (10.8, 3.0)), ((4.5, 0.8), (7.5, 7.4)), ((1.0, 1.0), (11.0, 7.2)), ((10.5, 6.5), (1.5, 2.0))],
)
@pytest.mark.parametrize("weight", [4.0, 0.0])  # weight 0 hugs corners: the hard case
def test_path_keeps_robot_radius_from_every_shelf(start: tuple, goal: tuple, weight: float) -> None:
    planner = _planner(clearance_weight=weight)
    path = planner.plan(start, goal)
    np.testing.assert_allclose(path[0], start)
    np.testing.assert_allclose(path[-1], goal)
    steps = np.hypot(*np.diff(path, axis=0).T)
    assert np.all(steps <= planner.config.waypoint_spacing_m + 1e-9)
    # Spacing is along the arc, so a chord across a corner may be a little shorter.
    assert np.all(steps >= 0.75 * planner.config.waypoint_spacing_m)
    clearance = _exact_clearance(_densify(path), SHELVES)
    assert clearance.min() >= planner.config.robot_radius_m


def test_clearance_weight_keeps_path_nearer_aisle_centres() -> None:
    start, goal = (1.2, 6.5), (10.8, 6.5)  # must go round the shelves' bottom ends
    weighted = _exact_clearance(_densify(_planner().plan(start, goal)), SHELVES)
    shortest = _exact_clearance(_densify(_planner(clearance_weight=0.0).plan(start, goal)), SHELVES)
    assert np.mean(weighted) > np.mean(shortest) + 0.1
    assert np.percentile(weighted, 10) > np.percentile(shortest, 10)


def test_goal_inside_a_shelf_raises_no_path_found() -> None:
    planner = _planner()
    with pytest.raises(NoPathFound, match=r"\(6\.00, 4\.00\)") as info:
        planner.plan((1.0, 1.0), (6.0, 4.0))
    assert isinstance(info.value, NavkitError)
    with pytest.raises(NoPathFound):
        planner.plan((1.0, 1.0), (6.6, 4.0))  # free, but within the robot radius of the shelf


def test_start_inside_inflation_recovers_from_nearest_free_cell() -> None:
    planner = _planner()
    start = Pose2D(3.5 + 0.32, 4.5, 0.0)  # 0.32 m from shelf 1: inside radius + inflation
    assert not planner.is_traversable(np.array([[start.x, start.y]]))[0]
    path = planner.plan(start, (4.5, 0.8))
    np.testing.assert_allclose(path[0], (start.x, start.y))
    assert np.all(planner.is_traversable(path[3:]))
    assert not planner.path_blocked(path, (start.x, start.y))


def test_pallet_in_aisle_blocks_path_and_replan_avoids_it() -> None:
    planner = _planner()
    start, goal = (4.5, 0.8), (4.5, 7.4)
    path = planner.plan(start, goal)
    assert np.all(np.abs(path[:, 0] - 4.5) < 0.3)  # straight up the aisle between shelves 1 and 2
    assert not planner.path_blocked(path, start)

    pallet = (4.5, 3.0, 2.0, 0.8, 0.0)  # spans the aisle from shelf to shelf
    planner.observe(_pallet_points(*pallet[:4]))
    assert planner.path_blocked(path, start)
    # Beyond the check distance the pallet does not count yet.
    far = GridAstarPlanner(GlobalPlannerConfig(blocked_check_distance_m=1.0), planner.grid)
    assert not far.path_blocked(path, start)

    replanned = planner.plan(start, goal)
    assert not planner.path_blocked(replanned, start)
    clearance = _exact_clearance(_densify(replanned), SHELVES + [pallet])
    assert clearance.min() >= planner.config.robot_radius_m
    assert np.any(np.abs(replanned[:, 0] - 4.5) > 1.5)  # it took another aisle


def test_obstacle_memory_off_keeps_only_last_scan() -> None:
    planner = _planner(obstacle_memory=False)
    planner.observe(np.array([[4.5, 3.0]]))
    planner.observe(np.array([[7.5, 3.0]]))
    occ = planner.grid.occupied
    assert not occ[tuple(planner.grid.world_to_cell((4.5, 3.0)))]
    assert occ[tuple(planner.grid.world_to_cell((7.5, 3.0)))]
    remembering = _planner()
    remembering.observe(np.array([[4.5, 3.0]]))
    remembering.observe(np.array([[7.5, 3.0]]))
    assert remembering.grid.occupied[tuple(remembering.grid.world_to_cell((4.5, 3.0)))]


@pytest.mark.parametrize(
    "field, value",
    [("resolution_m", 0.0), ("robot_radius_m", -0.1), ("inflation_m", -0.01), ("clearance_m", float("nan")),
     ("clearance_weight", -1.0), ("waypoint_spacing_m", 0.0), ("blocked_check_distance_m", -2.0)],
)
def test_config_validation_names_the_field(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        GlobalPlannerConfig(**{field: value})


def test_grid_resolution_must_match_config() -> None:
    grid = OccupancyGrid.from_shapes(BOUNDS, boxes=SHELVES, resolution=0.1)
    with pytest.raises(ValueError, match="resolution_m"):
        GridAstarPlanner(GlobalPlannerConfig(), grid)
