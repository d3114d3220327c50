"""Control-barrier-function safety filter: the last stage between any controller and the robot.

Derivation (static obstacles, unicycle u = (v, ω)). A unicycle's base position has
relative degree two w.r.t. ω, so the barrier is placed on a look-ahead point
p = (l, 0) in base_link, whose velocity depends on both inputs directly. In the
instantaneous body frame ṗ = (v, l·ω) (the frame's rotation is accounted for by the
lidar points being re-expressed each tick). For an obstacle point o (base frame; the lidar
sits on the base axis) let

    h(p) = ‖p − o‖² − D²,   D = robot_radius + lookahead + margin.

h ≥ 0 gives ‖p − o‖ ≥ D, hence ‖base − o‖ ≥ ‖p − o‖ − l ≥ robot_radius + margin: the
robot's disk stays ``margin`` clear of o. With ȯ = 0 in the world, ḣ = 2 (p − o)·ṗ, and
the CBF condition ḣ ≥ −α h becomes one half-plane in u:

    2 (p_x − o_x) v + 2 l (p_y − o_y) ω ≥ −α h.

Together with the box v_min ≤ v ≤ v_max, |ω| ≤ ω_max this is the constraint set A u ≥ b.
The filter returns the command closest to the nominal one (ω deviations weighted by
``omega_weight``) inside that set, solved exactly by :func:`solve_qp_2d`. At u = 0 every
CBF row reads 0 ≥ −α h, so stopping is always feasible unless the robot is already inside
some D: only then can the QP be infeasible, and the filter brakes.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from navkit.common.interfaces import FilterResult, FilterStats, FilterStatus
from navkit.common.params import check_ranges
from navkit.common.observation import Observation
from navkit.common.sensor_data import LaserScan, VelocityCommand, is_fresh
from navkit.control.batched_qp import solve_qp_2d_batched
from navkit.control.small_qp import solve_qp_2d

_PASS_TOL = 1e-9
"""|u − u_nom| below which the nominal command counts as passed through unchanged."""


@dataclass
class CbfFilterConfig:
    """Parameters of :class:`CbfSafetyFilter` (ROS 2 parameter prefix ``cbf``)."""

    alpha: float = field(default=1.0, metadata={"range": (0.0, 100.0)})
    """Class-K gain: how fast h may decay towards 0. Larger lets the robot approach obstacles
    faster (braking later); smaller is more conservative."""
    lookahead_m: float = field(default=0.1, metadata={"range": (0.0, 1.0)})
    """Distance of the barrier point ahead of the axle; > 0 makes ω appear in ḣ (relative
    degree one), so the filter can steer around obstacles rather than only brake."""
    robot_radius_m: float = field(default=0.3, metadata={"range": (0.0, 5.0)})
    """Radius of the disk that must stay clear of every scan point."""
    margin_m: float = field(default=0.05, metadata={"range": (0.0, 1.0)})
    """Extra clearance on top of the radius, absorbing discretisation and sensing error."""
    v_min: float = field(default=-0.2, metadata={"range": (-5.0, 0.0)})
    """Most negative forward speed (m/s); reversing lets the robot back out of tight spots."""
    v_max: float = field(default=0.8, metadata={"range": (0.0, 5.0)})
    """Largest forward speed (m/s) the filter will ever output."""
    omega_max: float = field(default=1.5, metadata={"range": (0.0, 10.0)})
    """Largest |ω| (rad/s) the filter will ever output."""
    omega_weight: float = 0.05
    """Weight of ω deviation vs v deviation in the QP objective; small means 'prefer to
    steer rather than slow down'."""
    sensing_range_m: float = field(default=3.0, metadata={"range": (0.0, 100.0)})
    """Scan points farther than this from the base are ignored: they cannot bind within a
    tick and would only add constraints."""
    max_constraints: int = field(default=24, metadata={"range": (1, 360)})
    """Number of angular sectors around the look-ahead point; only the nearest point per
    sector becomes a constraint, pruning hundreds of rays to a few non-redundant half-planes
    and keeping the QP small and fast."""
    stale_timeout_s: float = field(default=0.5, metadata={"range": (0.0, 10.0)})
    """A command or scan older (or from further in the future) than this is refused and the
    robot stops: acting on old data is driving blind."""
    scan_frame_id: str = "base_scan"
    """The frame a scan *without a mount* must be in (the lidar on the base's vertical axis);
    a mount-less scan in any other frame is refused, since its points would put the barriers
    in the wrong place. Scans that carry their mount (from TF) are placed by it. Empty accepts
    any frame."""
    max_invalid_ray_fraction: float = field(default=0.1, metadata={"range": (0.0, 1.0)})
    """Largest share of rays with invalid readings (finite but outside [range_min, range_max])
    a scan may hold and still be used; those rays show nothing, so beyond this the scan is
    refused and the robot stops. A scan that cannot show obstacles is not free space."""

    def __post_init__(self) -> None:
        check_ranges(self)
        finite = ("alpha", "lookahead_m", "robot_radius_m", "margin_m", "v_min", "v_max", "omega_max",
                  "omega_weight", "sensing_range_m", "stale_timeout_s")
        for name in finite:
            if not math.isfinite(float(getattr(self, name))):
                raise ValueError(f"{name}: must be finite, got {getattr(self, name)!r}")
        if self.alpha <= 0.0:
            raise ValueError(f"alpha: must be > 0, got {self.alpha}")
        for name in ("lookahead_m", "robot_radius_m"):
            if getattr(self, name) <= 0.0:  # lookahead 0 leaves the filter unable to steer, only to brake
                raise ValueError(f"{name}: must be > 0, got {getattr(self, name)}")
        if self.margin_m < 0.0:
            raise ValueError(f"margin_m: must be >= 0, got {self.margin_m}")
        if self.v_min > 0.0:
            raise ValueError(f"v_min: must be <= 0 so that stopping is allowed, got {self.v_min}")
        if self.v_max <= 0.0:
            raise ValueError(f"v_max: must be > 0 (0 would never let the robot move), got {self.v_max}")
        if self.omega_max <= 0.0:
            raise ValueError(f"omega_max: must be > 0, got {self.omega_max}")
        if self.omega_weight <= 0.0:
            raise ValueError(f"omega_weight: must be > 0, got {self.omega_weight}")
        if self.sensing_range_m <= 0.0:
            raise ValueError(f"sensing_range_m: must be > 0, got {self.sensing_range_m}")
        count = self.max_constraints
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"max_constraints: must be an integer >= 1, got {self.max_constraints!r}")
        if self.stale_timeout_s <= 0.0:
            raise ValueError(f"stale_timeout_s: must be > 0, got {self.stale_timeout_s}")
        if not 0.0 <= self.max_invalid_ray_fraction < 1.0:
            raise ValueError(f"max_invalid_ray_fraction: must be in [0, 1), got {self.max_invalid_ray_fraction}")
        if self.max_constraints > 360:
            raise ValueError(f"max_constraints: must be <= 360, got {self.max_constraints}")


class CbfSafetyFilter:
    """Minimally modifies velocity commands so the robot keeps clear of scan points.

    Plugin ``cbf_lidar`` of the ``safety_filter`` slot
    (:class:`~navkit.common.interfaces.SafetyFilter`): reads ``observation.scan``.
    """

    def __init__(self, config: CbfFilterConfig | None = None) -> None:
        self.config = config if config is not None else CbfFilterConfig()
        self.stats = FilterStats()
        self._weights = np.array([1.0, self.config.omega_weight])
        c = self.config
        self._box_A = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
        self._box_b = np.array([c.v_min, -c.v_max, -c.omega_max, -c.omega_max])
        self._cached_scan: LaserScan | None = None
        self._cached_rows: tuple[np.ndarray, np.ndarray, float] = (self._box_A, self._box_b, math.inf)

    def reset_stats(self) -> None:
        self.stats = FilterStats()

    def _select(self, points_base: np.ndarray) -> np.ndarray:
        """Points within sensing range, nearest one per angular sector around p."""
        c = self.config
        pts = np.asarray(points_base, dtype=float).reshape(-1, 2)
        pts = pts[np.einsum("ij,ij->i", pts, pts) <= c.sensing_range_m**2]
        if pts.shape[0] == 0:
            return pts
        rel = pts - np.array([c.lookahead_m, 0.0])
        dist2 = np.einsum("ij,ij->i", rel, rel)
        sector = ((np.arctan2(rel[:, 1], rel[:, 0]) + math.pi) * (c.max_constraints / (2.0 * math.pi))).astype(int)
        np.minimum(sector, c.max_constraints - 1, out=sector)
        order = np.argsort(dist2, kind="stable")
        _, first = np.unique(sector[order], return_index=True)
        return pts[order[first]]

    def _barrier_rows(self, points_base: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        c = self.config
        obstacles = self._select(points_base)
        d = np.array([c.lookahead_m, 0.0]) - obstacles  # p − o
        clearance = c.robot_radius_m + c.lookahead_m + c.margin_m
        h = np.einsum("ij,ij->i", d, d) - clearance**2
        A = np.empty((d.shape[0], 2))
        A[:, 0] = 2.0 * d[:, 0]
        A[:, 1] = 2.0 * c.lookahead_m * d[:, 1]
        return A, -c.alpha * h, h

    def constraints(self, points_base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(A, b) with A u ≥ b for u = (v, ω): the CBF rows of the kept points, then the 4 box rows."""
        A, b, _ = self._barrier_rows(points_base)
        return np.vstack([A, self._box_A]), np.concatenate([b, self._box_b])

    def filter_batch(self, u_nom: np.ndarray, points: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """(E, 2) commands for E robots at once: what :meth:`filter` outputs for robot e's nominal
        ``u_nom[e]`` and scan points ``points[e][valid[e]]`` (base frame, (E, R, 2) and (E, R)).

        For simulators that step many robots as arrays (training envs): the same point selection and
        barrier rows as :meth:`_select` / :meth:`_barrier_rows`, built for every robot with a few array
        operations and solved by the batched exact QP; an infeasible QP brakes. Input validity and
        staleness are the caller's to guarantee (a simulated scan is whole and fresh); the stats are
        not counted. Tested equal to :meth:`filter` robot by robot.
        """
        c = self.config
        e, r = valid.shape
        valid = valid & (np.einsum("erk,erk->er", points, points) <= c.sensing_range_m**2)
        # _select for every robot: the nearest point to p per angular sector around p, ties to the earlier ray.
        rel = points - np.array([c.lookahead_m, 0.0])
        dist2 = np.einsum("erk,erk->er", rel, rel).ravel()
        sector = ((np.arctan2(rel[..., 1], rel[..., 0]) + math.pi) * (c.max_constraints / (2.0 * math.pi))).astype(int)
        sector = np.minimum(sector, c.max_constraints - 1).ravel()
        robot = np.repeat(np.arange(e), r)
        keep = np.flatnonzero(valid.ravel())
        order = keep[np.lexsort((dist2[keep], sector[keep], robot[keep]))]
        first = np.ones(order.size, dtype=bool)
        first[1:] = (robot[order[1:]] != robot[order[:-1]]) | (sector[order[1:]] != sector[order[:-1]])
        chosen = order[first]
        # _barrier_rows for the chosen points, one row slot per sector, then the 4 input-limit rows.
        d = np.array([c.lookahead_m, 0.0]) - points.reshape(-1, 2)[chosen]  # p − o
        clearance = c.robot_radius_m + c.lookahead_m + c.margin_m
        k = c.max_constraints
        A, b, mask = np.zeros((e, k + 4, 2)), np.zeros((e, k + 4)), np.zeros((e, k + 4), dtype=bool)
        rows, cols = robot[chosen], sector[chosen]
        A[rows, cols, 0] = 2.0 * d[:, 0]
        A[rows, cols, 1] = 2.0 * c.lookahead_m * d[:, 1]
        b[rows, cols] = -c.alpha * (np.einsum("ij,ij->i", d, d) - clearance**2)
        mask[rows, cols] = True
        A[:, k:], b[:, k:], mask[:, k:] = self._box_A, self._box_b, True
        sol = solve_qp_2d_batched(self._weights, np.asarray(u_nom, dtype=float), A, b, mask)
        return np.column_stack([np.clip(sol.u[:, 0], c.v_min, c.v_max),
                                np.clip(sol.u[:, 1], -c.omega_max, c.omega_max)])

    def _scan_constraints(self, scan: LaserScan) -> tuple[np.ndarray, np.ndarray, float]:
        """Constraint rows for a scan, cached while the same scan is reused.

        The controller runs at 50 Hz and the lidar at 10 Hz, so most ticks filter against
        the scan they filtered against last time; recomputing its rows would be waste.
        """
        if self._cached_scan is scan:
            return self._cached_rows
        A_cbf, b_cbf, h = self._barrier_rows(scan.points_base(too_close_as_hits=True))
        rows = (np.vstack([A_cbf, self._box_A]), np.concatenate([b_cbf, self._box_b]),
                float(h.min()) if h.size else math.inf)
        self._cached_scan, self._cached_rows = scan, rows
        return rows

    def _refuse(self, status: FilterStatus, now: float, t0: float, detail: str = "") -> FilterResult:
        stamp = now if math.isfinite(now) else 0.0
        return FilterResult(
            command=VelocityCommand(stamp=stamp, v=0.0, omega=0.0),
            status=status,
            num_constraints=0,
            min_h=math.inf,
            solve_time_s=time.perf_counter() - t0,
            detail=detail,
        )

    def _frame_problem(self, scan: LaserScan) -> str | None:
        """Why the scan's points cannot be placed on the robot, or None.

        A scan with a mount (``base_link <- scan frame``, from TF) is placed by it, whatever
        its frame; one without must be in ``scan_frame_id``, the frame documented to sit on
        the base's vertical axis. Anything else would put the barriers in the wrong place.
        """
        mount = scan.mount
        if mount is not None:
            if mount.parent_frame != "base_link" or mount.child_frame != scan.frame_id:
                return (f"scan mount is {mount.parent_frame!r} <- {mount.child_frame!r}, "
                        f"expected 'base_link' <- {scan.frame_id!r}")
            return None
        expected = self.config.scan_frame_id
        if expected and scan.frame_id != expected:
            return f"scan in frame {scan.frame_id!r} with no transform to base_link (expected {expected!r})"
        return None

    def _is_stale(self, stamp: float, now: float) -> bool:
        return not is_fresh(stamp, now, self.config.stale_timeout_s)

    def filter(self, cmd: VelocityCommand, observation: Observation, now: float) -> FilterResult:
        """The command to send this tick; zero whenever the inputs cannot be trusted."""
        t0 = time.perf_counter()
        scan = observation.scan
        s = self.stats
        s.ticks += 1
        c = self.config
        if not math.isfinite(now):
            s.invalid_input += 1
            return self._refuse(FilterStatus.INVALID_INPUT, now, t0, "clock is NaN/Inf")
        if not cmd.is_finite():
            s.invalid_input += 1
            return self._refuse(FilterStatus.INVALID_INPUT, now, t0, "command holds NaN/Inf")
        if self._is_stale(cmd.stamp, now):
            s.stale_input += 1
            return self._refuse(FilterStatus.STALE_INPUT, now, t0, f"command stamped {cmd.stamp - now:+.3f} s from now")
        if scan is None:
            s.no_scan += 1
            return self._refuse(FilterStatus.NO_SCAN, now, t0, "no scan yet")
        if scan is not self._cached_scan:
            problem = scan.problem(c.max_invalid_ray_fraction)
            if problem is None:
                problem = self._frame_problem(scan)
            if problem is not None:
                s.invalid_input += 1
                return self._refuse(FilterStatus.INVALID_INPUT, now, t0, problem)
        if self._is_stale(scan.stamp, now):
            s.stale_input += 1
            return self._refuse(FilterStatus.STALE_INPUT, now, t0, f"scan stamped {scan.stamp - now:+.3f} s from now")

        A, b, min_h = self._scan_constraints(scan)
        u_nom = np.array([cmd.v, cmd.omega])
        sol = solve_qp_2d(self._weights, u_nom, A, b)
        if not sol.feasible:
            s.infeasible += 1
            s.interventions += 1
            result = self._refuse(FilterStatus.INFEASIBLE_BRAKE, now, t0)
            return FilterResult(result.command, result.status, A.shape[0], min_h, result.solve_time_s)
        # The box rows already hold u inside; the clip only guards against float slack.
        v = min(max(float(sol.u[0]), c.v_min), c.v_max)
        omega = min(max(float(sol.u[1]), -c.omega_max), c.omega_max)
        if abs(v - cmd.v) <= _PASS_TOL and abs(omega - cmd.omega) <= _PASS_TOL:
            status = FilterStatus.PASS
            v, omega = cmd.v, cmd.omega
        else:
            status = FilterStatus.MODIFIED
            s.interventions += 1
        return FilterResult(
            command=VelocityCommand(stamp=now, v=v, omega=omega),
            status=status,
            num_constraints=A.shape[0],
            min_h=min_h,
            solve_time_s=time.perf_counter() - t0,
        )
