"""The exact two-variable safety QP, solved for many agents at once.

    for each agent n:  min_u  ½ Σ_i w_i (u_i − u_nom[n, i])²   s.t.  A[n, k]·u ≥ b[n, k]  for mask[n, k].

Same method as :func:`navkit.control.small_qp.solve_qp_2d` (read its module docstring for
why it is exact): in z = sqrt(w)·u the optimum is the projection of z_nom onto a convex
polygon, which is z_nom itself, the foot of z_nom on one line, or a pairwise vertex; the
closest *feasible* candidate is the answer. Here every agent's candidates are built with
the same few (N, K, ·) array operations, so a decentralized multi-agent filter pays one
numpy call sequence per control tick instead of N Python-level solves.

Agents have different numbers of constraints, so rows are padded to a common K and
``mask`` says which exist. An absent row is replaced by the tautology 0·z + 1 ≥ 0, which
every candidate satisfies and which has no foot or vertex of its own (its foot is z_nom,
already a candidate; its intersections are NaN and fail every comparison), so absent rows
need no compaction and never change the answer. Masked-out entries of ``A``/``b`` are
never read, so they may hold anything, NaN included.

Agents whose nominal command is already feasible (most agents, most ticks) leave after
one (N, K) residual check; only the rest go through the candidate search, which KKT
prunes to O(V·K) candidates for V violated rows (see :func:`_project`).

cvxpy is the reference this is tested against (``navkit.control.qp_reference``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

_FEAS_TOL = 1e-9
"""Relative slack for 'satisfies the constraint' (same as the single-agent solver)."""

_SINGULAR_DET = 1e-12
"""|sin(angle)| between unit normals below which two lines count as parallel (no vertex)."""

_ZERO_ROW = 1e-12
"""Row norm (after weighting) below which a row has no direction: 0·u ≥ b decides alone."""


@dataclass(frozen=True)
class BatchedQpSolution:
    """Per-agent results of :func:`solve_qp_2d_batched`.

    ``u[n]`` is agent n's optimum where ``feasible[n]``; elsewhere it is zeros (the brake),
    never a half-solution a caller could mistake for a safe command.
    """

    u: np.ndarray
    """(N, 2) commands."""
    feasible: np.ndarray
    """(N,) bool: False where agent n's constraint polygon is empty."""


def _validate(w: np.ndarray, u_nom: np.ndarray, A: np.ndarray, b: np.ndarray, mask: np.ndarray) -> None:
    if w.shape != (2,):
        raise ValueError(f"w: expected shape (2,), got {w.shape}")
    if not (w[0] > 0.0 and w[1] > 0.0 and math.isfinite(float(w[0] + w[1]))):
        raise ValueError(f"w: weights must be finite and positive, got {w}")
    if u_nom.ndim != 2 or u_nom.shape[1] != 2:
        raise ValueError(f"u_nom: expected shape (N, 2), got {u_nom.shape}")
    n = u_nom.shape[0]
    if A.ndim != 3 or A.shape[0] != n or A.shape[2] != 2:
        raise ValueError(f"A: expected shape ({n}, K, 2), got {A.shape}")
    k = A.shape[1]
    if b.shape != (n, k):
        raise ValueError(f"b: expected shape ({n}, {k}), got {b.shape}")
    if mask.shape != (n, k):
        raise ValueError(f"mask: expected shape ({n}, {k}), got {mask.shape}")
    if not np.isfinite(u_nom).all():
        raise ValueError("u_nom: non-finite entries (NaN or Inf)")


def solve_qp_2d_batched(
    w: np.ndarray, u_nom: np.ndarray, A: np.ndarray, b: np.ndarray, mask: np.ndarray
) -> BatchedQpSolution:
    """Solve N independent 2-variable QPs min ½ Σ w_i (u_i − u_nom_i)² s.t. A u ≥ b (rows in mask).

    Args:
        w: (2,) positive weights shared by all agents (the objective's metric).
        u_nom: (N, 2) nominal commands.
        A: (N, K, 2) constraint rows; only rows with ``mask`` True are read.
        b: (N, K) right-hand sides; only entries with ``mask`` True are read.
        mask: (N, K) bool, True where the row exists.

    Returns:
        :class:`BatchedQpSolution`; infeasible agents get u = 0.

    A present row with zero normal (norm ≤ 1e-12 after weighting) reads 0 ≥ b: a tautology
    (ignored) or a contradiction (agent infeasible), as in the single-agent solver. Raises
    ValueError on malformed shapes, bad weights, non-finite ``u_nom`` or non-finite
    present rows.
    """
    w = np.asarray(w, dtype=float)
    u_nom = np.asarray(u_nom, dtype=float)
    A = np.asarray(A, dtype=float)
    b = np.asarray(b, dtype=float)
    mask = np.asarray(mask, dtype=bool)
    _validate(w, u_nom, A, b, mask)
    n, k = b.shape
    if n == 0:
        return BatchedQpSolution(u=np.zeros((0, 2)), feasible=np.zeros(0, dtype=bool))
    if k == 0 or not mask.any():
        return BatchedQpSolution(u=u_nom.copy(), feasible=np.ones(n, dtype=bool))

    sw = np.sqrt(w)
    z0 = u_nom * sw
    g = np.where(mask[:, :, None], A, 0.0) / sw
    bb = np.where(mask, b, 0.0)
    if not (np.isfinite(g).all() and np.isfinite(bb).all()):
        raise ValueError("A/b: non-finite entries (NaN or Inf) in rows where mask is True")
    norms = np.sqrt(np.einsum("nkc,nkc->nk", g, g))
    present = mask & (norms > _ZERO_ROW)
    zero_row = mask & ~present

    # 0·u ≥ b_k with b_k > 0 (beyond rounding) empties the polygon, whatever u is.
    abs_z0 = np.abs(z0)
    raw_scale = np.maximum(np.maximum(1.0, abs_z0.max(axis=1)), np.abs(bb).max(axis=1))
    contradiction = (zero_row & (bb > _FEAS_TOL * raw_scale[:, None])).any(axis=1)

    # Homogeneous lines (n, −c) with unit normals: L·(z, 1) is the signed distance inside
    # the half-plane. Absent rows become (0, 0, 1): always satisfied, never a vertex.
    safe_norm = np.where(present, norms, 1.0)
    lines = np.empty((n, k, 3))
    lines[:, :, :2] = np.where(present[:, :, None], g / safe_norm[:, :, None], 0.0)
    lines[:, :, 2] = np.where(present, -bb / safe_norm, 1.0)
    offsets = np.where(present, np.abs(lines[:, :, 2]), 0.0)
    scale = np.maximum(np.maximum(1.0, abs_z0.max(axis=1)), offsets.max(axis=1))

    r0 = np.einsum("nkc,nc->nk", lines[:, :, :2], z0) + lines[:, :, 2]
    nominal_ok = (r0.min(axis=1) >= -_FEAS_TOL * (abs_z0.sum(axis=1) + scale)) & ~contradiction

    u = np.zeros((n, 2))
    feasible = nominal_ok.copy()
    u[nominal_ok] = u_nom[nominal_ok]
    todo = np.flatnonzero(~nominal_ok & ~contradiction)
    if todo.size:
        u_sub, ok_sub = _project(lines[todo], z0[todo], r0[todo], scale[todo])
        u[todo] = u_sub / sw
        feasible[todo] = ok_sub
    return BatchedQpSolution(u=u, feasible=feasible)


def _project(
    lines: np.ndarray, z0: np.ndarray, r0: np.ndarray, scale: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Closest feasible candidate for T agents whose nominal is infeasible: (T, 2) z, (T,) ok.

    Only candidates that KKT allows as the optimum are built. With z* = z0 + Σ λ_k n_k over
    the active rows (λ ≥ 0): a foot on line k needs r0_k = −λ_k ≤ 0, i.e. line k violated by
    z0; a vertex of lines i, j has n_i·(z0 − z*) + n_j·(z0 − z*) = −(λ_i + λ_j)(1 + n_i·n_j) < 0,
    so at least one of the two is violated. Hence candidates = the feet on the V violated
    lines and the V·K intersections (violated line, any line), not all K(K−1)/2 pairs:
    with the usual one to three violated rows that is several times fewer candidates to
    check against every row. Rows are padded to the largest V in the batch with other rows
    (their feet/vertices are still points of the polygon's boundary, so they are harmless
    extra candidates). Parallel pairs, self pairs and absent rows give NaN vertices, which
    fail the feasibility test without any masking.
    """
    t, k, _ = lines.shape
    violated = r0 < 0.0
    v = max(int(violated.sum(axis=1).max()), 1)
    vidx = np.argsort(~violated, axis=1, kind="stable")[:, :v]  # violated rows first
    lv = np.take_along_axis(lines, vidx[:, :, None], axis=1)  # (T, V, 3)
    r0v = np.take_along_axis(r0, vidx, axis=1)

    m = 1 + v + v * k
    cand = np.empty((t, 3, m))  # homogeneous columns (x, y, 1)
    cand[:, 2, :] = 1.0
    cand[:, :2, 0] = z0
    cand[:, :2, 1 : 1 + v] = (z0[:, None, :] - lv[:, :, :2] * r0v[:, :, None]).transpose(0, 2, 1)
    a0, a1, a2 = (lv[:, :, i, None] for i in range(3))  # (T, V, 1)
    b0, b1, b2 = (lines[:, None, :, i] for i in range(3))  # (T, 1, K)
    det = a0 * b1 - a1 * b0  # (T, V, K): sin of the angle between unit normals
    det[np.abs(det) <= _SINGULAR_DET] = np.nan  # x / NaN is NaN, no warning
    cand[:, 0, 1 + v :] = ((a1 * b2 - a2 * b1) / det).reshape(t, v * k)
    cand[:, 1, 1 + v :] = ((a2 * b0 - a0 * b2) / det).reshape(t, v * k)

    residual = lines @ cand  # (T, K, M): signed distance of each candidate inside each row
    cx, cy = cand[:, 0, :], cand[:, 1, :]
    tol = -_FEAS_TOL * (np.abs(cx) + np.abs(cy) + scale[:, None])  # (T, M)
    feasible = residual.min(axis=1) >= tol  # NaN candidates compare False
    dx = cx - z0[:, 0:1]
    dy = cy - z0[:, 1:2]
    dist2 = np.where(feasible, dx * dx + dy * dy, np.inf)
    best = np.argmin(dist2, axis=1)
    ok = feasible.any(axis=1)
    rows = np.arange(t)
    z = np.stack([cx[rows, best], cy[rows, best]], axis=1)
    z[~ok] = 0.0
    return z, ok
