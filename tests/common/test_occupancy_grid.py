"""OccupancyGrid: rasterisation, bounds, the dynamic layer and the clearance field."""
from __future__ import annotations

import math

import numpy as np
import pytest

from navkit.common.occupancy_grid import OccupancyGrid


def _centres(grid: OccupancyGrid) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = grid.shape
    rr, cc = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    xy = grid.cell_to_world(np.stack([rr, cc], axis=-1))
    return xy[..., 0], xy[..., 1]


def test_axis_aligned_box_occupies_exactly_the_cells_whose_centres_are_inside() -> None:
    grid = OccupancyGrid.from_shapes((0, 0, 10, 10), boxes=[(5.0, 5.0, 2.0, 1.0, 0.0)], resolution=0.1)
    assert grid.shape == (100, 100)
    occ = grid.occupied
    assert occ.sum() == 20 * 10
    assert grid.is_occupied(tuple(grid.world_to_cell((5.9, 5.4))))
    assert not grid.is_occupied(tuple(grid.world_to_cell((6.05, 5.0))))
    assert not grid.is_occupied(tuple(grid.world_to_cell((5.0, 5.55))))
    # Row is y, column is x.
    r, c = grid.world_to_cell((5.0, 5.0))
    assert (r, c) == (50, 50)
    np.testing.assert_allclose(grid.cell_to_world((r, c)), (5.05, 5.05))


def test_rotated_box_matches_exact_geometry() -> None:
    yaw = math.radians(30.0)
    box = (4.0, 3.0, 3.0, 0.6, yaw)
    grid = OccupancyGrid.from_shapes((0, 0, 8, 6), boxes=[box], resolution=0.05)
    x, y = _centres(grid)
    lx = math.cos(yaw) * (x - 4.0) + math.sin(yaw) * (y - 3.0)
    ly = -math.sin(yaw) * (x - 4.0) + math.cos(yaw) * (y - 3.0)
    expected = (np.abs(lx) <= 1.5) & (np.abs(ly) <= 0.3)
    np.testing.assert_array_equal(grid.occupied, expected)
    assert grid.occupied.sum() * 0.05**2 == pytest.approx(3.0 * 0.6, rel=0.05)
    # A point on the long axis is inside; the same distance along unrotated x is not.
    along = (4.0 + 1.2 * math.cos(yaw), 3.0 + 1.2 * math.sin(yaw))
    assert grid.is_occupied(tuple(grid.world_to_cell(along)))
    assert not grid.is_occupied(tuple(grid.world_to_cell((5.2, 3.0))))


def test_circle_area_and_membership() -> None:
    grid = OccupancyGrid.from_shapes((0, 0, 6, 6), circles=[(3.0, 3.0, 1.0)], resolution=0.05)
    assert grid.occupied.sum() * 0.05**2 == pytest.approx(math.pi, rel=0.02)
    assert grid.is_occupied(tuple(grid.world_to_cell((3.0, 3.9))))
    assert not grid.is_occupied(tuple(grid.world_to_cell((3.75, 3.75))))  # 1.06 m from the centre


def test_out_of_bounds_is_occupied() -> None:
    grid = OccupancyGrid.from_shapes((-1, -1, 1, 1), resolution=0.1)
    assert not grid.occupied.any()
    assert grid.in_bounds((0, 0)) and not grid.in_bounds((-1, 0)) and not grid.in_bounds((0, 20))
    assert grid.is_occupied((-1, 5)) and grid.is_occupied((5, 20))
    np.testing.assert_array_equal(grid.in_bounds(np.array([[0, 0], [20, 0], [19, 19]])), [True, False, True])


def test_clearance_near_a_wall() -> None:
    # A wall whose right face is at x = 2.0; the map edges are far enough not to interfere.
    grid = OccupancyGrid.from_shapes((0, 0, 10, 10), boxes=[(1.5, 5.0, 1.0, 10.0, 0.0)], resolution=0.05)
    clearance = grid.clearance_field()
    for d in (0.025, 0.5, 1.0, 2.0):
        r, c = grid.world_to_cell((2.0 + d, 5.0))
        assert clearance[r, c] == pytest.approx(d, abs=0.03)
    assert clearance[grid.world_to_cell((1.5, 5.0))[0], grid.world_to_cell((1.5, 5.0))[1]] == 0.0
    # The map edge counts as a wall too.
    r, c = grid.world_to_cell((9.8, 0.3))
    assert clearance[r, c] == pytest.approx(0.2, abs=0.03)


def test_dynamic_layer_marks_clears_and_invalidates_clearance() -> None:
    grid = OccupancyGrid.from_shapes((0, 0, 4, 4), resolution=0.1)
    before = grid.clearance_field()
    assert before[20, 20] == pytest.approx(1.95, abs=0.01)
    version = grid.version
    assert grid.mark_points(np.array([[2.05, 2.05], [2.05, 2.05], [50.0, 50.0], [np.nan, 1.0]])) == 1
    assert grid.version != version and grid.occupied[20, 20] and not grid.static[20, 20]
    assert grid.clearance_field()[20, 20] == 0.0
    assert grid.clearance_field()[20, 25] == pytest.approx(0.45, abs=0.01)
    version = grid.version
    assert grid.mark_points(np.array([[2.05, 2.05]])) == 0 and grid.version == version  # already known
    grid.clear_dynamic()
    assert not grid.occupied.any()
    assert grid.clearance_field()[20, 20] == pytest.approx(1.95, abs=0.01)


def test_rejects_bad_bounds_and_resolution() -> None:
    with pytest.raises(ValueError, match="bounds"):
        OccupancyGrid.from_shapes((1, 0, 0, 1), resolution=0.1)
    with pytest.raises(ValueError, match="resolution"):
        OccupancyGrid.from_shapes((0, 0, 1, 1), resolution=0.0)
