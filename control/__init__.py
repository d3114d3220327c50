"""navkit.control: local controllers, CBF safety filters (single robot, multi-agent) and online CBF policies.

Controllers implement :class:`navkit.common.interfaces.LocalController`, filters
:class:`~navkit.common.interfaces.SafetyFilter`; both are chosen by name in the parameter file.

The cvxpy reference QP (``navkit.control.qp_reference``) is not re-exported: it exists for
tests and benchmarks, and importing cvxpy would slow every node that only needs the filter.
"""
from navkit.control.cbf_filter import CbfFilterConfig, CbfSafetyFilter
from navkit.control.pure_pursuit import PurePursuit, PurePursuitConfig
from navkit.control.small_qp import QpSolution, solve_qp_2d

__all__ = [
    "CbfFilterConfig",
    "CbfSafetyFilter",
    "PurePursuit",
    "PurePursuitConfig",
    "QpSolution",
    "solve_qp_2d",
]
