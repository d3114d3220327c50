"""Exact solver for the two-variable QP the safety filter solves every control tick.

    min_u  ½ Σ_i w_i (u_i − u_nom_i)²   s.t.   A u ≥ b,    u ∈ R², w > 0.

A general QP solver spends most of its time on setup and iterations that a 2-D problem
does not need. In the isotropic coordinates z = sqrt(w)·u the objective is ½‖z − z_nom‖²,
so the optimum is the Euclidean projection of z_nom onto the convex polygon
{z : G z ≥ b} with G = A / sqrt(w). That projection is z_nom itself (if feasible), the
foot of z_nom on one constraint line (an edge), or a polygon vertex (a pairwise line
intersection). Every such candidate that is feasible lies in the polygon, so the closest
feasible candidate *is* the projection: exact, with no iterations and no tolerances to tune
beyond floating-point slack. Only lines violated at z_nom can carry the optimum, which
prunes the candidates from K + K² to V + V·K (V violated lines), tried feet first.

cvxpy is the reference this is tested against (``navkit.control.qp_reference``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

_FEAS_TOL = 1e-9
"""Relative slack for 'satisfies the constraint': rounding in an intersection is ~1e-15."""

_ACTIVE_TOL = 1e-7
"""Relative slack for reporting a row as active (binding) at the solution."""

_SINGULAR_DET = 1e-12
"""|sin(angle)| between unit normals below which two lines count as parallel."""

_ZERO_ROW = 1e-12
"""Row norm (after weighting) below which a row has no direction: 0·u >= b."""


@dataclass(frozen=True)
class QpSolution:
    """Result of a 2-variable QP.

    ``u`` is the optimum when ``feasible``; when not, it is zeros (the brake), never a
    half-solution the caller could mistake for a safe command. ``active[k]`` tells whether
    row k binds at ``u`` (all False when infeasible).
    """

    u: np.ndarray
    feasible: bool
    active: np.ndarray


def _levi_civita_rows() -> np.ndarray:
    """(3, 9) matrix E with (L @ E).reshape(K, 3, 3) @ Lᵀ = pairwise cross products of rows of L."""
    eps = np.zeros((3, 3, 3))  # eps[k, a, b]
    for k, a, b in ((0, 1, 2), (1, 2, 0), (2, 0, 1)):
        eps[k, a, b] = 1.0
        eps[k, b, a] = -1.0
    rows = eps.transpose(1, 0, 2).reshape(3, 9)  # rows[a, k*3 + b] = eps[k, a, b]
    rows.setflags(write=False)
    return rows


_CROSS = _levi_civita_rows()
"""Constant (read-only): turns all K² line intersections into two small matmuls."""


def _validate(w: np.ndarray, u_nom: np.ndarray, A: np.ndarray, b: np.ndarray) -> None:
    if w.shape != (2,):
        raise ValueError(f"w: expected shape (2,), got {w.shape}")
    if u_nom.shape != (2,):
        raise ValueError(f"u_nom: expected shape (2,), got {u_nom.shape}")
    if A.ndim != 2 or A.shape[1] != 2:
        raise ValueError(f"A: expected shape (K, 2), got {A.shape}")
    if b.shape != (A.shape[0],):
        raise ValueError(f"b: expected shape ({A.shape[0]},), got {b.shape}")
    if not (w[0] > 0.0 and w[1] > 0.0 and math.isfinite(w[0] + w[1])):
        raise ValueError(f"w: weights must be finite and positive, got {w}")
    # One reduction per array instead of isfinite passes: NaN/Inf anywhere poisons the sum.
    if not math.isfinite(float(u_nom[0] + u_nom[1] + A.sum() + b.sum())):
        raise ValueError("u_nom/A/b: non-finite entries (NaN or Inf) in the QP data")


def solve_qp_2d(w: np.ndarray, u_nom: np.ndarray, A: np.ndarray, b: np.ndarray) -> QpSolution:
    """Solve min ½ Σ w_i (u_i − u_nom_i)² s.t. A u ≥ b exactly (see module docstring).

    Zero rows of ``A`` (norm ≤ 1e-12 after weighting) are allowed: ``0 ≥ b_k`` is either
    always true (dropped) or makes the problem infeasible. Parallel constraint pairs have
    no vertex and are skipped. Raises ValueError on malformed shapes, non-positive weights
    or non-finite data.
    """
    w = np.asarray(w, dtype=float)
    u_nom = np.asarray(u_nom, dtype=float)
    A = np.asarray(A, dtype=float)
    b = np.asarray(b, dtype=float)
    _validate(w, u_nom, A, b)
    k_all = A.shape[0]
    if k_all == 0:
        return QpSolution(u=u_nom.copy(), feasible=True, active=np.zeros(0, dtype=bool))

    sw = np.sqrt(w)
    z0x = float(sw[0] * u_nom[0])
    z0y = float(sw[1] * u_nom[1])
    g = A / sw  # rows in z coordinates
    norms = np.sqrt(np.einsum("ij,ij->i", g, g))
    kept: np.ndarray | None = None
    if norms.min() <= _ZERO_ROW:
        zero_row = norms <= _ZERO_ROW
        # 0 >= b_k is a tautology or a contradiction, whatever u is.
        if np.any(b[zero_row] > _FEAS_TOL * max(1.0, abs(z0x), abs(z0y), float(np.abs(b).max()))):
            return QpSolution(u=np.zeros(2), feasible=False, active=np.zeros(k_all, dtype=bool))
        kept = np.flatnonzero(~zero_row)
        if kept.size == 0:
            return QpSolution(u=u_nom.copy(), feasible=True, active=np.zeros(k_all, dtype=bool))
        g, b, norms = g[kept], b[kept], norms[kept]
    k = g.shape[0]

    # Homogeneous lines L_k = (n_k, -c_k) with unit normals: L_k · (z, 1) >= 0 is row k,
    # and equals the signed distance of z inside the half-plane.
    lines = np.empty((k, 3))
    np.divide(g, norms[:, None], out=lines[:, :2])
    np.divide(b, -norms, out=lines[:, 2])
    scale = max(1.0, abs(z0x), abs(z0y), float(np.abs(lines[:, 2]).max()))

    r0 = lines[:, :2] @ np.array([z0x, z0y]) + lines[:, 2]
    tol0 = _FEAS_TOL * (abs(z0x) + abs(z0y) + scale)
    if r0.min() >= -tol0:
        # The nominal command is already safe (most control ticks): it is the optimum.
        return _solution(u_nom.copy(), r0 <= _ACTIVE_TOL * scale, kept, k_all)

    # Some constraint active at the optimum must be violated at z0 (else z0 would be
    # feasible for the active set alone and be its own projection). Two consequences:
    # (1) if the foot of z0 on a violated line is feasible, it is the optimum: it is the
    #     projection onto a half-plane containing the polygon, and it lies in the polygon;
    # (2) otherwise the optimum is a vertex on a violated line: one of the V*K
    #     intersections of a violated line with any line (not all K*K pairs).
    viol = np.flatnonzero(r0 < -tol0)
    lv = lines[viol]
    feet = np.empty((3, viol.size))
    feet[2] = 1.0
    np.multiply(lv[:, :2].T, -r0[viol], out=feet[:2])
    feet[0] += z0x
    feet[1] += z0y
    best = _closest_feasible(lines, feet, z0x, z0y, scale)
    if best is None:
        m = viol.size
        cross = ((lv @ _CROSS).reshape(3 * m, 3) @ lines.T).reshape(m, 3, k)
        det = cross[:, 2, :].copy()
        det[np.abs(det) <= _SINGULAR_DET] = np.nan  # x / NaN is NaN and raises no warning
        verts = np.empty((3, m * k))
        verts[2] = 1.0
        np.divide(cross[:, :2, :], det[:, None, :], out=verts[:2].reshape(2, m, k).transpose(1, 0, 2))
        best = _closest_feasible(lines, verts, z0x, z0y, scale)
    if best is None:
        return QpSolution(u=np.zeros(2), feasible=False, active=np.zeros(k_all, dtype=bool))
    z, residual = best
    return _solution(z / sw, residual <= _ACTIVE_TOL * scale, kept, k_all)


def _closest_feasible(lines: np.ndarray, cand: np.ndarray, z0x: float, z0y: float,
                      scale: float) -> tuple[np.ndarray, np.ndarray] | None:
    """The feasible candidate column closest to z0 and its residuals, or None.

    NaN columns (parallel pairs, no vertex) compare False and are never feasible.
    """
    if cand.shape[1] == 0:
        return None
    residual = lines @ cand  # (K, M)
    tol = np.abs(cand[0]) + np.abs(cand[1])
    tol += scale
    tol *= -_FEAS_TOL
    feasible = residual.min(axis=0) >= tol
    if not feasible.any():
        return None
    dx = cand[0] - z0x
    dy = cand[1] - z0y
    best = int(np.argmin(np.where(feasible, dx * dx + dy * dy, np.inf)))
    return cand[:2, best].copy(), residual[:, best]


def _solution(u: np.ndarray, active_kept: np.ndarray, kept: np.ndarray | None, k_all: int) -> QpSolution:
    """A feasible solution, with the active flags mapped back over dropped zero rows."""
    if kept is None:
        return QpSolution(u=u, feasible=True, active=active_kept)
    active = np.zeros(k_all, dtype=bool)
    active[kept] = active_kept
    return QpSolution(u=u, feasible=True, active=active)
