"""navkit.control: path following and the CBF safety filter that guards every command.

The cvxpy reference QP (``navkit.control.qp_reference``) is not re-exported: it exists for
tests and benchmarks, and importing cvxpy would slow every node that only needs the filter.
"""
from navkit.control.cbf_filter import (
    CbfFilterConfig,
    CbfSafetyFilter,
    FilterResult,
    FilterStats,
    FilterStatus,
)
from navkit.control.pure_pursuit import PurePursuit, PurePursuitConfig
from navkit.control.small_qp import QpSolution, solve_qp_2d

__all__ = [
    "CbfFilterConfig",
    "CbfSafetyFilter",
    "FilterResult",
    "FilterStats",
    "FilterStatus",
    "PurePursuit",
    "PurePursuitConfig",
    "QpSolution",
    "solve_qp_2d",
]
