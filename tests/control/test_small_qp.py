"""The exact 2-D QP against the cvxpy/Clarabel reference, plus its edge cases."""
from __future__ import annotations

import numpy as np
import pytest

from navkit.control.qp_reference import ReferenceQp, solve_reference
from navkit.control.small_qp import solve_qp_2d


def _random_instance(rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """A mix of feasible (built around a known point) and infeasible (contradicting pair) QPs."""
    k = int(rng.integers(0, 31))
    w = rng.uniform(0.02, 3.0, size=2)
    x_star = rng.normal(scale=1.0, size=2)
    A = rng.normal(size=(k, 2)) * rng.uniform(0.1, 3.0, size=(k, 1))
    slack = rng.exponential(0.5, size=k) * (rng.random(k) < 0.8)  # some rows tight at x_star
    b = A @ x_star - slack
    if k >= 2 and rng.random() < 0.35:  # contradicting pair: a·u >= beta and a·u <= beta - gap
        i, j = rng.choice(k, size=2, replace=False)
        a = rng.normal(size=2)
        beta = float(a @ x_star) + rng.normal()
        A[i], b[i] = a, beta
        A[j], b[j] = -a * rng.uniform(0.5, 2.0), 0.0
        b[j] = float(A[j] @ a) / float(a @ a) * (beta - rng.uniform(0.05, 1.0))
    if k >= 1 and rng.random() < 0.15:
        A[int(rng.integers(k))] = 0.0  # degenerate row; b decides tautology vs contradiction
    u_nom = x_star + rng.normal(scale=1.5, size=2)
    return w, u_nom, A, b


def test_fast_path_matches_cvxpy_on_random_instances() -> None:
    rng = np.random.default_rng(1234)
    reference = ReferenceQp(30)
    n_feasible = n_infeasible = n_some_active = n_none_active = 0
    for _ in range(300):
        w, u_nom, A, b = _random_instance(rng)
        fast = solve_qp_2d(w, u_nom, A, b)
        ref = solve_reference(w, u_nom, A, b)
        ref_dpp = reference.solve(w, u_nom, A, b)
        assert fast.feasible == ref.feasible == ref_dpp.feasible, (w, u_nom, A, b)
        assert fast.active.shape == (A.shape[0],)
        if not fast.feasible:
            n_infeasible += 1
            assert not fast.active.any()
            continue
        n_feasible += 1
        np.testing.assert_allclose(fast.u, ref.u, atol=1e-5)
        np.testing.assert_allclose(fast.u, ref_dpp.u, atol=1e-5)
        assert np.all(A @ fast.u >= b - 1e-9)
        np.testing.assert_array_equal(fast.active, ref.active)
        if fast.active.any():
            n_some_active += 1
        else:
            n_none_active += 1
    # The generator must exercise every regime, or the agreement above proves little.
    assert n_feasible >= 100 and n_infeasible >= 50
    assert n_some_active >= 50 and n_none_active >= 10


def test_no_constraints_returns_nominal() -> None:
    sol = solve_qp_2d(np.array([1.0, 0.1]), np.array([0.3, -0.7]), np.zeros((0, 2)), np.zeros(0))
    assert sol.feasible
    np.testing.assert_array_equal(sol.u, [0.3, -0.7])
    assert sol.active.shape == (0,)


def test_single_halfplane_projection_is_weighted() -> None:
    # u0 + u1 >= 1 from the origin: the cheaper variable (smaller weight) moves more.
    w = np.array([1.0, 0.25])
    sol = solve_qp_2d(w, np.zeros(2), np.array([[1.0, 1.0]]), np.array([1.0]))
    lam = 1.0 / (1.0 / w[0] + 1.0 / w[1])
    np.testing.assert_allclose(sol.u, lam / w, atol=1e-12)
    assert sol.active.tolist() == [True]


def test_vertex_solution_and_parallel_rows() -> None:
    # Box corner u >= (1, 2), with duplicated parallel rows that have no intersection.
    A = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.0, 3.0]])
    b = np.array([1.0, 2.0, 2.0, 6.0])
    sol = solve_qp_2d(np.ones(2), np.zeros(2), A, b)
    assert sol.feasible
    np.testing.assert_allclose(sol.u, [1.0, 2.0], atol=1e-12)
    assert sol.active.all()


def test_parallel_contradiction_is_infeasible() -> None:
    A = np.array([[1.0, 0.0], [-1.0, 0.0]])
    b = np.array([1.0, -0.5])  # u0 >= 1 and u0 <= 0.5
    sol = solve_qp_2d(np.ones(2), np.zeros(2), A, b)
    assert not sol.feasible
    np.testing.assert_array_equal(sol.u, [0.0, 0.0])


@pytest.mark.parametrize(("b_zero", "feasible"), [(-1.0, True), (0.0, True), (0.5, False)])
def test_zero_rows(b_zero: float, feasible: bool) -> None:
    A = np.array([[0.0, 0.0], [1.0, 0.0]])
    b = np.array([b_zero, 0.5])
    sol = solve_qp_2d(np.ones(2), np.zeros(2), A, b)
    assert sol.feasible is feasible
    if feasible:
        np.testing.assert_allclose(sol.u, [0.5, 0.0], atol=1e-12)
        assert sol.active.tolist() == [False, True]


def test_rejects_bad_input() -> None:
    A, b = np.array([[1.0, 0.0]]), np.array([0.0])
    with pytest.raises(ValueError, match="w"):
        solve_qp_2d(np.array([1.0, 0.0]), np.zeros(2), A, b)
    with pytest.raises(ValueError, match="b"):
        solve_qp_2d(np.ones(2), np.zeros(2), A, np.zeros(2))
    with pytest.raises(ValueError, match="non-finite"):
        solve_qp_2d(np.ones(2), np.array([np.nan, 0.0]), A, b)
    with pytest.raises(ValueError, match="non-finite"):
        solve_qp_2d(np.ones(2), np.zeros(2), A, np.array([np.inf]))


def test_reference_rejects_too_many_rows() -> None:
    with pytest.raises(ValueError, match="k_max"):
        ReferenceQp(2).solve(np.ones(2), np.zeros(2), np.ones((3, 2)), np.zeros(3))
