"""The batched exact 2-D QP against the cvxpy/Clarabel reference, agent by agent."""
from __future__ import annotations

import numpy as np
import pytest

from navkit.control.batched_qp import solve_qp_2d_batched
from navkit.control.qp_reference import solve_reference
from navkit.control.small_qp import solve_qp_2d


def _random_batch(rng: np.random.Generator, n: int, k_max: int) -> tuple[np.ndarray, ...]:
    """N padded QPs sharing w: a mix of feasible (built around a known point) and infeasible ones.

    Each agent has its own number of rows (0..k_max), scattered over the K slots so that
    masked-out rows are interleaved with present ones; padded slots hold garbage (incl. NaN)
    that the solver must never read.
    """
    w = rng.uniform(0.02, 3.0, size=2)
    u_nom = np.empty((n, 2))
    A = rng.normal(size=(n, k_max, 2)) * 50.0  # garbage unless overwritten
    b = rng.normal(size=(n, k_max)) * 50.0
    A[rng.random((n, k_max)) < 0.1] = np.nan
    mask = np.zeros((n, k_max), dtype=bool)
    for i in range(n):
        k = int(rng.integers(0, k_max + 1))
        slots = rng.choice(k_max, size=k, replace=False)
        x_star = rng.normal(size=2)
        Ai = rng.normal(size=(k, 2)) * rng.uniform(0.1, 3.0, size=(k, 1))
        slack = rng.exponential(0.5, size=k) * (rng.random(k) < 0.8)
        bi = Ai @ x_star - slack
        if k >= 2 and rng.random() < 0.35:  # contradicting pair
            p, q = rng.choice(k, size=2, replace=False)
            a = rng.normal(size=2)
            beta = float(a @ x_star) + rng.normal()
            Ai[p], bi[p] = a, beta
            Ai[q] = -a * rng.uniform(0.5, 2.0)
            bi[q] = float(Ai[q] @ a) / float(a @ a) * (beta - rng.uniform(0.05, 1.0))
        if k >= 1 and rng.random() < 0.1:
            Ai[int(rng.integers(k))] = 0.0  # degenerate row: b decides tautology vs contradiction
        A[i, slots], b[i, slots], mask[i, slots] = Ai, bi, True
        u_nom[i] = x_star + rng.normal(scale=1.5, size=2)
    return w, u_nom, A, b, mask


def _agent(A: np.ndarray, b: np.ndarray, mask: np.ndarray, i: int) -> tuple[np.ndarray, np.ndarray]:
    return A[i][mask[i]], b[i][mask[i]]


def test_agrees_with_cvxpy_reference_per_agent() -> None:
    rng = np.random.default_rng(2024)
    n_feasible = n_infeasible = n_modified = 0
    for _ in range(20):
        n = int(rng.integers(1, 30))
        w, u_nom, A, b, mask = _random_batch(rng, n, k_max=24)
        sol = solve_qp_2d_batched(w, u_nom, A, b, mask)
        assert sol.u.shape == (n, 2) and sol.feasible.shape == (n,)
        for i in range(n):
            Ai, bi = _agent(A, b, mask, i)
            ref = solve_reference(w, u_nom[i], Ai, bi)
            assert bool(sol.feasible[i]) == ref.feasible, (i, w, u_nom[i], Ai, bi)
            if not ref.feasible:
                n_infeasible += 1
                np.testing.assert_array_equal(sol.u[i], 0.0)
                continue
            n_feasible += 1
            np.testing.assert_allclose(sol.u[i], ref.u, atol=1e-5)
            assert np.all(Ai @ sol.u[i] >= bi - 1e-8)
            if not np.allclose(sol.u[i], u_nom[i]):
                n_modified += 1
    # The generator must exercise every regime, or the agreement above proves little.
    assert n_feasible >= 100 and n_infeasible >= 40 and n_modified >= 80


def test_matches_single_agent_solver_exactly_in_regime() -> None:
    rng = np.random.default_rng(7)
    w, u_nom, A, b, mask = _random_batch(rng, 200, k_max=24)
    sol = solve_qp_2d_batched(w, u_nom, A, b, mask)
    for i in range(200):
        Ai, bi = _agent(A, b, mask, i)
        one = solve_qp_2d(w, u_nom[i], Ai, bi)
        assert bool(sol.feasible[i]) == one.feasible
        np.testing.assert_allclose(sol.u[i], one.u, atol=1e-9)


def test_infeasible_agents_get_zero_and_others_unaffected() -> None:
    w = np.array([1.0, 1.0])
    u_nom = np.array([[1.0, 2.0], [0.5, -0.5], [3.0, 0.0]])
    A = np.zeros((3, 2, 2))
    b = np.zeros((3, 2))
    A[0] = [[1.0, 0.0], [-1.0, 0.0]]  # u_x >= 1 and u_x <= 0: empty
    b[0] = [1.0, 0.0]
    A[1, 0], b[1, 0] = [1.0, 0.0], 1.0  # u_x >= 1: projection is (1, -0.5)
    A[2, 0], b[2, 0] = [0.0, 0.0], 0.5  # 0 >= 0.5: a contradiction
    mask = np.array([[True, True], [True, False], [True, False]])
    sol = solve_qp_2d_batched(w, u_nom, A, b, mask)
    np.testing.assert_array_equal(sol.feasible, [False, True, False])
    np.testing.assert_array_equal(sol.u[0], 0.0)
    np.testing.assert_allclose(sol.u[1], [1.0, -0.5], atol=1e-12)
    np.testing.assert_array_equal(sol.u[2], 0.0)


def test_mask_hides_rows_completely() -> None:
    rng = np.random.default_rng(3)
    w = np.array([1.0, 0.1])
    u_nom = rng.normal(size=(5, 2))
    A = rng.normal(size=(5, 6, 2))
    b = rng.normal(size=(5, 6)) - 2.0
    base_mask = np.zeros((5, 6), dtype=bool)
    base_mask[:, :3] = True
    base = solve_qp_2d_batched(w, u_nom, A, b, base_mask)
    # Masked-out rows that would contradict (or be NaN) must change nothing.
    A2, b2 = A.copy(), b.copy()
    A2[:, 3] = [1.0, 0.0]
    b2[:, 3] = 1e6
    A2[:, 4] = np.nan
    b2[:, 5] = np.inf
    hidden = solve_qp_2d_batched(w, u_nom, A2, b2, base_mask)
    np.testing.assert_array_equal(hidden.u, base.u)
    np.testing.assert_array_equal(hidden.feasible, base.feasible)
    # Unmasking the huge row makes every agent infeasible? No: u_x >= 1e6 is satisfiable
    # (no upper bound), so it must be enforced, proving the mask is the only switch.
    shown_mask = base_mask.copy()
    shown_mask[:, 3] = True
    shown = solve_qp_2d_batched(w, u_nom, A2, b2, shown_mask)
    assert np.all(shown.u[shown.feasible, 0] >= 1e6 - 1e-3)
    # No rows at all: the nominal passes through.
    empty = solve_qp_2d_batched(w, u_nom, A, b, np.zeros((5, 6), dtype=bool))
    np.testing.assert_array_equal(empty.u, u_nom)
    assert empty.feasible.all()


@pytest.mark.parametrize("n", [1, 64])
def test_batch_sizes(n: int) -> None:
    rng = np.random.default_rng(100 + n)
    w, u_nom, A, b, mask = _random_batch(rng, n, k_max=24)
    sol = solve_qp_2d_batched(w, u_nom, A, b, mask)
    assert sol.u.shape == (n, 2)
    for i in range(n):
        Ai, bi = _agent(A, b, mask, i)
        ref = solve_reference(w, u_nom[i], Ai, bi)
        assert bool(sol.feasible[i]) == ref.feasible
        if ref.feasible:
            np.testing.assert_allclose(sol.u[i], ref.u, atol=1e-5)


def test_zero_agents_and_bad_inputs() -> None:
    sol = solve_qp_2d_batched(np.ones(2), np.zeros((0, 2)), np.zeros((0, 3, 2)), np.zeros((0, 3)),
                              np.zeros((0, 3), dtype=bool))
    assert sol.u.shape == (0, 2) and sol.feasible.shape == (0,)
    ok = (np.ones(2), np.zeros((2, 2)), np.ones((2, 1, 2)), np.zeros((2, 1)), np.ones((2, 1), dtype=bool))
    with pytest.raises(ValueError, match="w"):
        solve_qp_2d_batched(np.array([1.0, 0.0]), *ok[1:])
    with pytest.raises(ValueError, match="b"):
        solve_qp_2d_batched(ok[0], ok[1], ok[2], np.zeros((2, 2)), ok[4])
    with pytest.raises(ValueError, match="mask"):
        solve_qp_2d_batched(*ok[:4], np.ones((2, 2), dtype=bool))
    with pytest.raises(ValueError, match="u_nom"):
        solve_qp_2d_batched(ok[0], np.array([[np.nan, 0.0], [0.0, 0.0]]), *ok[2:])
    A_nan = np.ones((2, 1, 2))
    A_nan[1, 0, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        solve_qp_2d_batched(ok[0], ok[1], A_nan, ok[3], ok[4])
