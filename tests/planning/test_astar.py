"""Grid A*: optimality, obstacles, unreachable goals, and no corner cutting."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import dijkstra

from navkit.planning import astar

SQRT2 = math.sqrt(2.0)


def _octile(a: tuple[int, int], b: tuple[int, int]) -> float:
    dr, dc = abs(a[0] - b[0]), abs(a[1] - b[1])
    return max(dr, dc) + (SQRT2 - 1.0) * min(dr, dc)


def _path_cost(path: list[tuple[int, int]], cost: np.ndarray) -> float:
    total = 0.0
    for (r0, c0), (r1, c1) in zip(path, path[1:]):
        step = math.hypot(r1 - r0, c1 - c0)
        total += step * (1.0 + cost[r1, c1])
    return total


def _assert_valid(path: list[tuple[int, int]], trav: np.ndarray) -> None:
    for r, c in path:
        assert trav[r, c], f"path steps onto blocked cell {(r, c)}"
    for (r0, c0), (r1, c1) in zip(path, path[1:]):
        dr, dc = r1 - r0, c1 - c0
        assert max(abs(dr), abs(dc)) == 1, "steps must be 8-connected"
        if dr and dc:
            assert trav[r0 + dr, c0] and trav[r0, c0 + dc], f"corner cut at {(r0, c0)}->{(r1, c1)}"


def _reference_cost(trav: np.ndarray, cost: np.ndarray, start: tuple[int, int], goal: tuple[int, int]) -> float:
    """Dijkstra (scipy) on the same move model, to check A*'s optimality."""
    rows, cols = trav.shape
    src, dst, w = [], [], []
    for r in range(rows):
        for c in range(cols):
            if not trav[r, c]:
                continue
            for dr in (-1, 0, 1):
                for dc in (-1, 0, 1):
                    rr, cc = r + dr, c + dc
                    if (dr or dc) and 0 <= rr < rows and 0 <= cc < cols and trav[rr, cc]:
                        if dr and dc and not (trav[r + dr, c] and trav[r, c + dc]):
                            continue
                        src.append(r * cols + c)
                        dst.append(rr * cols + cc)
                        w.append(math.hypot(dr, dc) * (1.0 + cost[rr, cc]))
    graph = coo_matrix((w, (src, dst)), shape=(rows * cols, rows * cols)).tocsr()
    dist = dijkstra(graph, indices=start[0] * cols + start[1])
    return float(dist[goal[0] * cols + goal[1]])


def test_open_grid_path_has_octile_length() -> None:
    rng = np.random.default_rng(0)
    trav = np.ones((40, 60), dtype=bool)
    cost = np.zeros(trav.shape)
    for _ in range(20):
        start = (int(rng.integers(40)), int(rng.integers(60)))
        goal = (int(rng.integers(40)), int(rng.integers(60)))
        path = astar(trav, cost, start, goal)
        assert path is not None and path[0] == start and path[-1] == goal
        assert _path_cost(path, cost) == pytest.approx(_octile(start, goal), abs=1e-9)


def test_goes_around_a_wall_through_its_gap() -> None:
    trav = np.ones((30, 30), dtype=bool)
    trav[:, 15] = False
    trav[25, 15] = True  # the only gap
    path = astar(trav, np.zeros(trav.shape), (5, 2), (5, 28))
    assert path is not None
    _assert_valid(path, trav)
    assert (25, 15) in path
    # The gap is one cell wide, so it is crossed orthogonally: (25,14) -> (25,15) -> (25,16).
    expected = _octile((5, 2), (25, 14)) + 2.0 + _octile((25, 16), (5, 28))
    assert _path_cost(path, np.zeros(trav.shape)) == pytest.approx(expected, abs=1e-9)


def test_returns_none_when_goal_enclosed_or_blocked() -> None:
    trav = np.ones((20, 20), dtype=bool)
    trav[8:13, 8] = trav[8:13, 12] = trav[8, 8:13] = trav[12, 8:13] = False
    assert astar(trav, np.zeros(trav.shape), (0, 0), (10, 10)) is None
    assert astar(trav, np.zeros(trav.shape), (0, 0), (8, 8)) is None  # goal itself blocked


def test_does_not_squeeze_diagonally_between_blocked_corners() -> None:
    trav = np.ones((10, 10), dtype=bool)
    trav[:, 5] = False
    trav[:5, 4] = False
    trav[5:, 6] = False
    trav[4, 5] = True  # reachable only diagonally from (5, 4)... which needs a cut corner
    trav[5, 4] = True
    trav[4, 6] = True
    # Left region -> right region only via (5,4)->(4,5)->(4,6)? (5,4)->(4,5) would cut (4,4)/(5,5).
    assert astar(trav, np.zeros(trav.shape), (9, 0), (0, 9)) is None
    trav[5, 5] = True  # now an orthogonal route exists
    path = astar(trav, np.zeros(trav.shape), (9, 0), (0, 9))
    assert path is not None
    _assert_valid(path, trav)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_maps_optimal_and_valid(seed: int) -> None:
    rng = np.random.default_rng(seed)
    trav = rng.random((25, 25)) > 0.3
    cost = rng.random(trav.shape) * 3.0
    trav[0, 0] = trav[24, 24] = True
    path = astar(trav, cost, (0, 0), (24, 24))
    reference = _reference_cost(trav, cost, (0, 0), (24, 24))
    if math.isinf(reference):
        assert path is None
    else:
        assert path is not None
        _assert_valid(path, trav)
        assert _path_cost(path, cost) == pytest.approx(reference, rel=1e-9)


def test_rejects_mismatched_shapes_and_off_grid_cells() -> None:
    trav = np.ones((5, 5), dtype=bool)
    with pytest.raises(ValueError, match="cost"):
        astar(trav, np.zeros((4, 5)), (0, 0), (1, 1))
    with pytest.raises(ValueError, match="goal"):
        astar(trav, np.zeros((5, 5)), (0, 0), (5, 1))
