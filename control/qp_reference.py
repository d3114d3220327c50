"""The safety-filter QP through cvxpy + Clarabel: the reference the fast path is tested against.

Two forms. :func:`solve_reference` builds the problem from scratch (simple, obviously
right, slow). :class:`ReferenceQp` is DPP-parametrised, compiled once for ``k_max`` rows and
re-solved with new parameter values: the fair speed baseline for benchmarks, since a real
deployment of a generic solver would cache the compilation too. Clarabel (interior point)
is used with tight tolerances so the answers agree with the exact solver to ~1e-8.
"""
from __future__ import annotations

import cvxpy as cp
import numpy as np

from navkit.control.small_qp import QpSolution

_INFEASIBLE = (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE)
_SOLVED = (cp.OPTIMAL, cp.OPTIMAL_INACCURATE)
_CLARABEL_OPTS = {
    "tol_gap_abs": 1e-13,
    "tol_gap_rel": 1e-13,
    "tol_feas": 1e-10,
    "tol_infeas_abs": 1e-10,
    "tol_infeas_rel": 1e-10,
    "tol_ktratio": 1e-8,
    "max_iter": 200,
}
_ACTIVE_TOL = 1e-6


def _as_problem(w: np.ndarray, u_nom: np.ndarray, A: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, ...]:
    w = np.asarray(w, dtype=float)
    u_nom = np.asarray(u_nom, dtype=float)
    A = np.asarray(A, dtype=float).reshape(-1, 2)
    b = np.asarray(b, dtype=float).reshape(-1)
    if w.shape != (2,) or not np.all(w > 0):
        raise ValueError(f"w: expected two positive weights, got {w}")
    if u_nom.shape != (2,):
        raise ValueError(f"u_nom: expected shape (2,), got {u_nom.shape}")
    if b.shape[0] != A.shape[0]:
        raise ValueError(f"b: expected {A.shape[0]} entries, got {b.shape[0]}")
    return w, u_nom, A, b


def _solution(status: str, u_value: np.ndarray | None, A: np.ndarray, b: np.ndarray) -> QpSolution:
    k = A.shape[0]
    if status in _INFEASIBLE:
        return QpSolution(u=np.zeros(2), feasible=False, active=np.zeros(k, dtype=bool))
    if status not in _SOLVED or u_value is None:
        raise RuntimeError(f"cvxpy/Clarabel returned status {status!r}")
    u = np.asarray(u_value, dtype=float).reshape(2)
    active = (np.abs(A @ u - b) <= _ACTIVE_TOL * (1.0 + np.abs(b))) & (np.abs(A).sum(axis=1) > 0)
    return QpSolution(u=u, feasible=True, active=active)


def solve_reference(w: np.ndarray, u_nom: np.ndarray, A: np.ndarray, b: np.ndarray) -> QpSolution:
    """min ½ Σ w_i (u_i − u_nom_i)² s.t. A u ≥ b, built and solved from scratch each call."""
    w, u_nom, A, b = _as_problem(w, u_nom, A, b)
    u = cp.Variable(2)
    objective = cp.Minimize(0.5 * cp.sum(cp.multiply(w, cp.square(u - u_nom))))
    constraints = [A @ u >= b] if A.shape[0] else []
    problem = cp.Problem(objective, constraints)
    problem.solve(solver=cp.CLARABEL, **_CLARABEL_OPTS)
    return _solution(problem.status, u.value, A, b)


class ReferenceQp:
    """The same QP compiled once (DPP) for up to ``k_max`` rows; ``solve`` only swaps parameters.

    The objective is written as ½‖sqrt(w)∘u‖² − (w∘u_nom)·u (the constant dropped) so that
    every parameter enters affinely, which DPP requires. Unused rows are padded with the
    inactive constraint 0·u ≥ −1.
    """

    def __init__(self, k_max: int) -> None:
        if k_max < 0:
            raise ValueError(f"k_max: must be >= 0, got {k_max}")
        self.k_max = k_max
        self._u = cp.Variable(2)
        self._sqrt_w = cp.Parameter(2, nonneg=True)
        self._lin = cp.Parameter(2)
        self._A = cp.Parameter((max(k_max, 1), 2))
        self._b = cp.Parameter(max(k_max, 1))
        objective = cp.Minimize(0.5 * cp.sum_squares(cp.multiply(self._sqrt_w, self._u)) - self._lin @ self._u)
        self._problem = cp.Problem(objective, [self._A @ self._u >= self._b])
        if not self._problem.is_dpp():
            raise RuntimeError("ReferenceQp: problem is not DPP")  # guards future edits

    def solve(self, w: np.ndarray, u_nom: np.ndarray, A: np.ndarray, b: np.ndarray) -> QpSolution:
        """Solve with new data; raises ValueError when A has more than ``k_max`` rows."""
        w, u_nom, A, b = _as_problem(w, u_nom, A, b)
        k = A.shape[0]
        if k > self.k_max:
            raise ValueError(f"A: {k} rows exceed k_max={self.k_max}")
        rows = self._A.shape[0]
        A_pad = np.zeros((rows, 2))
        b_pad = np.full(rows, -1.0)
        A_pad[:k] = A
        b_pad[:k] = b
        self._sqrt_w.value = np.sqrt(w)
        self._lin.value = w * u_nom
        self._A.value = A_pad
        self._b.value = b_pad
        self._problem.solve(solver=cp.CLARABEL, **_CLARABEL_OPTS)
        return _solution(self._problem.status, self._u.value, A, b)


def least_violation_reference(A: np.ndarray, b: np.ndarray, weights: np.ndarray, limit_A: np.ndarray,
                              limit_b: np.ndarray, eps: float) -> tuple[np.ndarray, float]:
    """The infeasible-QP fallback solved by cvxpy (Clarabel): (u, objective) of
    min sum w max(0, b - A u)^2 + eps |u|^2 subject to limit_A u >= limit_b."""
    u = cp.Variable(2)
    violation = cp.pos(b - A @ u)
    objective = cp.sum(cp.multiply(weights, cp.square(violation))) + eps * cp.sum_squares(u)
    problem = cp.Problem(cp.Minimize(objective), [limit_A @ u >= limit_b])
    problem.solve(solver=cp.CLARABEL)
    return np.asarray(u.value, dtype=float), float(problem.value)
