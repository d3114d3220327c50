"""8-connected A* on a boolean grid with a per-cell extra cost.

The search runs on flat indices into a grid padded with one blocked cell on every side,
so the inner loop needs no bounds checks, and on plain Python lists (indexing a list is
several times faster than indexing a numpy array element by element). The octile
heuristic ignores the extra cost, which keeps it admissible: the path is optimal.
"""
from __future__ import annotations

import heapq
import math

import numpy as np

_SQRT2 = math.sqrt(2.0)


def astar(
    traversable: np.ndarray,
    cost: np.ndarray,
    start: tuple[int, int],
    goal: tuple[int, int],
) -> list[tuple[int, int]] | None:
    """Cheapest (row, col) path from ``start`` to ``goal``, both included; None if unreachable.

    Entering a cell costs the step length (1 or sqrt 2 cells) times ``1 + cost[cell]``, so
    the extra cost scales with distance and diagonal moves are not favoured or penalised
    by it. A diagonal step needs both orthogonal neighbours traversable: the robot's
    footprint would otherwise clip the corner between two blocked cells.
    """
    trav = np.asarray(traversable, dtype=bool)
    extra = np.asarray(cost, dtype=float)
    if trav.ndim != 2:
        raise ValueError(f"traversable: expected a 2-D array, got shape {trav.shape}")
    if extra.shape != trav.shape:
        raise ValueError(f"cost: shape {extra.shape} does not match traversable {trav.shape}")
    rows, cols = trav.shape
    for name, cell in (("start", start), ("goal", goal)):
        if not (0 <= cell[0] < rows and 0 <= cell[1] < cols):
            raise ValueError(f"{name}: cell {tuple(cell)} is outside the grid {trav.shape}")
    extra = np.where(trav, extra, 0.0)  # blocked cells' cost is never read; ignore NaNs there
    if not (np.all(np.isfinite(extra)) and np.all(extra >= 0)):
        raise ValueError("cost: must be finite and non-negative on traversable cells")
    sr, sc = int(start[0]), int(start[1])
    gr, gc = int(goal[0]), int(goal[1])
    if not (trav[sr, sc] and trav[gr, gc]):
        return None
    if (sr, sc) == (gr, gc):
        return [(sr, sc)]

    width = cols + 2
    padded = np.zeros((rows + 2, width), dtype=bool)
    padded[1:-1, 1:-1] = trav
    step_factor = np.ones((rows + 2, width))
    step_factor[1:-1, 1:-1] += extra
    # Octile distance to the goal, for every cell at once (cheaper than per push).
    dr = np.abs(np.arange(rows + 2) - (gr + 1))[:, None]
    dc = np.abs(np.arange(width) - (gc + 1))[None, :]
    h_arr = np.maximum(dr, dc) + (_SQRT2 - 1.0) * np.minimum(dr, dc)

    trav_l: list[bool] = padded.ravel().tolist()
    open_l: list[bool] = list(trav_l)  # cleared when a cell is closed
    factor: list[float] = step_factor.ravel().tolist()
    diag_factor: list[float] = (_SQRT2 * step_factor).ravel().tolist()
    h: list[float] = h_arr.ravel().tolist()
    n = len(trav_l)
    g = [math.inf] * n
    parent = [-1] * n
    s = (sr + 1) * width + sc + 1
    t = (gr + 1) * width + gc + 1
    g[s] = 0.0

    W = width
    heappush, heappop = heapq.heappush, heapq.heappop
    heap: list[tuple[float, int]] = [(h[s], s)]
    found = False
    while heap:
        _, i = heappop(heap)
        if not open_l[i]:
            continue
        if i == t:
            found = True
            break
        open_l[i] = False
        gi = g[i]
        up, down = trav_l[i - W], trav_l[i + W]
        left, right = trav_l[i - 1], trav_l[i + 1]
        # Orthogonal neighbours (unrolled: this loop is the whole cost of planning).
        j = i - W
        if up and open_l[j]:
            ng = gi + factor[j]
            if ng < g[j]:
                g[j] = ng
                parent[j] = i
                heappush(heap, (ng + h[j], j))
        j = i + W
        if down and open_l[j]:
            ng = gi + factor[j]
            if ng < g[j]:
                g[j] = ng
                parent[j] = i
                heappush(heap, (ng + h[j], j))
        j = i - 1
        if left and open_l[j]:
            ng = gi + factor[j]
            if ng < g[j]:
                g[j] = ng
                parent[j] = i
                heappush(heap, (ng + h[j], j))
        j = i + 1
        if right and open_l[j]:
            ng = gi + factor[j]
            if ng < g[j]:
                g[j] = ng
                parent[j] = i
                heappush(heap, (ng + h[j], j))
        # Diagonal neighbours, only when both adjoining orthogonal cells are free.
        j = i - W - 1
        if up and left and open_l[j]:
            ng = gi + diag_factor[j]
            if ng < g[j]:
                g[j] = ng
                parent[j] = i
                heappush(heap, (ng + h[j], j))
        j = i - W + 1
        if up and right and open_l[j]:
            ng = gi + diag_factor[j]
            if ng < g[j]:
                g[j] = ng
                parent[j] = i
                heappush(heap, (ng + h[j], j))
        j = i + W - 1
        if down and left and open_l[j]:
            ng = gi + diag_factor[j]
            if ng < g[j]:
                g[j] = ng
                parent[j] = i
                heappush(heap, (ng + h[j], j))
        j = i + W + 1
        if down and right and open_l[j]:
            ng = gi + diag_factor[j]
            if ng < g[j]:
                g[j] = ng
                parent[j] = i
                heappush(heap, (ng + h[j], j))
    if not found:
        return None
    path: list[tuple[int, int]] = []
    i = t
    while i != -1:
        r, c = divmod(i, W)
        path.append((r - 1, c - 1))
        i = parent[i]
    path.reverse()
    return path
