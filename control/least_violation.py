"""The fallback when a CBF-QP is infeasible: the command that violates the barrier rows least.

Braking to zero is not safe when something keeps moving (a non-reacting obstacle drives
into a robot that stopped). When no command satisfies every barrier row, each such
agent instead takes

    u* = argmin_u  sum_k w_k s_k^2 + eps ||u||^2
         subject to  a_k.u + s_k >= b_k,  s_k >= 0   (the barrier rows, relaxed by slacks)
                     the input limits                 (hard: the motors cannot do more)

the weighted least-squares violation of its rows. Weights set priorities: obstacle rows
(things that will not get out of the way) weigh more than rows for other robots (who run
the same filter and yield too). ``eps`` breaks ties towards slow commands.

It is a convex, piecewise-quadratic problem in two variables. All such agents are solved
at once by Newton's method with backtracking on the smooth penalised objective (the
limits enter as rows with weight ``LIMIT_WEIGHT``), then moved strictly inside the limit
polygon; the tests check the result against cvxpy, and :func:`least_violation_2d` keeps
an OSQP path for one agent as a second reference.
"""
from __future__ import annotations

import numpy as np
import osqp
from scipy import sparse

EPS = 1e-3
OBSTACLE_WEIGHT = 10.0
"""Priority of an obstacle row over a robot row in the fallback."""
LIMIT_WEIGHT = 1e6
"""Penalty weight of the input-limit rows in the batched solver (then projected exactly)."""
NEWTON_ITERATIONS = 40


def least_violation_2d(A: np.ndarray, b: np.ndarray, weights: np.ndarray, limit_A: np.ndarray,
                       limit_b: np.ndarray, eps: float = EPS) -> np.ndarray:
    """The fallback command (2,) for one agent with barrier rows ``A u >= b`` (K, 2), (K,)."""
    k = A.shape[0]
    nl = limit_A.shape[0]
    # x = [u (2), s (K)]
    P = sparse.diags(np.concatenate([np.full(2, 2.0 * eps), 2.0 * np.asarray(weights, dtype=float)]), format="csc")
    q = np.zeros(2 + k)
    rows = sparse.vstack([
        sparse.hstack([sparse.csc_matrix(A), sparse.identity(k)]),         # a.u + s >= b
        sparse.hstack([sparse.csc_matrix((k, 2)), sparse.identity(k)]),    # s >= 0
        sparse.hstack([sparse.csc_matrix(limit_A), sparse.csc_matrix((nl, k))]),  # limits
    ], format="csc")
    lower = np.concatenate([b, np.zeros(k), limit_b])
    upper = np.full(2 * k + nl, np.inf)
    solver = osqp.OSQP()
    solver.setup(P=P, q=q, A=rows, l=lower, u=upper, verbose=False, polishing=False, eps_abs=1e-7, eps_rel=1e-7,
                 max_iter=20000)
    result = solver.solve()
    u = np.asarray(result.x[:2], dtype=float)
    if not np.all(np.isfinite(u)):
        return np.zeros(2)
    # OSQP meets constraints to its tolerance; pull the command strictly inside the limits.
    slack = limit_A @ u - limit_b
    if np.any(slack < 0.0):
        scale = min(1.0, *(lb / au for au, lb in zip(limit_A @ u, limit_b) if au < lb and au < 0.0))
        u = u * max(scale, 0.0)
    return u


def _objective(A: np.ndarray, b: np.ndarray, w: np.ndarray, u: np.ndarray, eps: float) -> np.ndarray:
    viol = np.maximum(b - np.einsum("nkd,nd->nk", A, u), 0.0)
    return np.sum(w * viol**2, axis=1) + eps * np.sum(u * u, axis=1)


def _into_polygon(u: np.ndarray, limit_A: np.ndarray, limit_b: np.ndarray) -> np.ndarray:
    """Scale each row of ``u`` towards the origin until it satisfies ``limit_A u >= limit_b``
    (the limit polygons contain the origin: limit_b <= 0)."""
    au = u @ limit_A.T  # (N, L)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where((au < limit_b) & (au < 0.0), limit_b / au, 1.0)
    return u * np.clip(ratio.min(axis=1), 0.0, 1.0)[:, None]


def least_violation_2d_batched(A: np.ndarray, b: np.ndarray, mask: np.ndarray, row_weights: np.ndarray,
                               limit_A: np.ndarray, limit_b: np.ndarray, eps: float = EPS) -> np.ndarray:
    """The fallback command (N, 2) of each of N agents (rows ``A[n] u >= b[n]`` where ``mask[n]``).

    Newton's method on f(u) = sum w max(0, b - A u)^2 + eps |u|^2 (+ the limits as heavy rows):
    f is convex and piecewise quadratic, so each Newton step minimises the quadratic of the
    current active set exactly and a backtracking line search keeps f decreasing.
    """
    n = A.shape[0]
    nl = limit_A.shape[0]
    A_all = np.concatenate([A, np.broadcast_to(limit_A, (n, nl, 2))], axis=1)
    b_all = np.concatenate([np.where(mask, b, -np.inf), np.broadcast_to(limit_b, (n, nl))], axis=1)
    w_all = np.concatenate([np.where(mask, row_weights, 0.0), np.full((n, nl), LIMIT_WEIGHT)], axis=1)
    b_all = np.where(np.isfinite(b_all), b_all, 0.0)
    u = np.zeros((n, 2))
    f = _objective(A_all, b_all, w_all, u, eps)
    for _ in range(NEWTON_ITERATIONS):
        viol = b_all - np.einsum("nkd,nd->nk", A_all, u)
        active = np.where(viol > 0.0, w_all, 0.0)
        H = np.einsum("nk,nkd,nke->nde", active, A_all, A_all) + eps * np.eye(2)
        g = np.einsum("nk,nkd,nk->nd", active, A_all, b_all)
        step = np.linalg.solve(H, g[..., None])[..., 0] - u  # to the active set's exact minimiser
        t = np.ones(n)
        candidate = u + step
        f_new = _objective(A_all, b_all, w_all, candidate, eps)
        for _ in range(30):  # backtrack where the active set changed for the worse
            worse = f_new > f + 1e-12
            if not worse.any():
                break
            t = np.where(worse, 0.5 * t, t)
            candidate = u + t[:, None] * step
            f_new = np.where(worse, _objective(A_all, b_all, w_all, candidate, eps), f_new)
        done = np.all(np.abs(candidate - u) <= 1e-10, axis=1)
        u, f = candidate, np.minimum(f, f_new)
        if done.all():
            break
    return _into_polygon(u, limit_A, limit_b)


def violation(A: np.ndarray, b: np.ndarray, mask: np.ndarray, row_weights: np.ndarray, u: np.ndarray) -> np.ndarray:
    """(N,) weighted squared violation of each agent's rows at ``u`` (what the fallback minimises)."""
    viol = np.maximum(b - np.einsum("nkd,nd->nk", A, u), 0.0)
    return np.sum(np.where(mask, row_weights, 0.0) * viol**2, axis=1)
