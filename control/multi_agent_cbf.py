"""Decentralized multi-agent CBF-QP with per-agent class-K gains (Gao, Yang & Prorok 2023; Wang, Ames & Egerstedt 2017).

Each agent i solves its own QP from what it could sense (neighbours and obstacles within
``sensing_radius_m``); all N QPs are solved together by :func:`solve_qp_2d_batched`.

Barrier point. A single integrator (ṗ = u) uses its position. A unicycle's base has
relative degree two w.r.t. ω, so, as in :mod:`navkit.control.cbf_filter`, the barrier sits
on the look-ahead point q = p + l·(cos θ, sin θ), whose velocity depends on both inputs:

    q̇ = R(θ) · diag(1, l) · (v, ω) =: J(θ) u.

For a single integrator J = I. Every CBF row below is therefore 2 (qᵢ − ·)ᵀ Jᵢ u ≥ ….

Agent–agent (reciprocal). h_ij = ‖qᵢ − qⱼ‖² − D², ḣ_ij = 2 (qᵢ − qⱼ)·(q̇ᵢ − q̇ⱼ). Agents do not
know each other's commands, so the usual decentralized split (Wang, Ames & Egerstedt
2017) gives each agent half of the responsibility:

    agent i enforces   2 (qᵢ − qⱼ)·q̇ᵢ ≥ −(αᵢ/2) h_ij.

Agent j enforces the mirror row 2 (qⱼ − qᵢ)·q̇ⱼ ≥ −(αⱼ/2) h_ij; adding both gives
ḣ_ij ≥ −((αᵢ + αⱼ)/2) h_ij, a valid CBF condition with the mean gain, so the pair stays safe
whenever both agents' QPs are feasible. Neighbours' velocities are not needed.

Obstacles (static, or moving with known velocity vₒ): h = ‖qᵢ − o‖² − D_o²,

    2 (qᵢ − o)·q̇ᵢ ≥ −αᵢ h + 2 (qᵢ − o)·vₒ   (agent takes all the responsibility).

Distances. D = 2·agent_radius + margin and D_o = agent_radius + r_o + margin for single
integrators. For unicycles each body disk lies inside a disk of radius radius + l around
its look-ahead point, so D gains 2l and D_o gains l; h ≥ 0 then still keeps the bodies
``margin`` apart.

Input limits. Single integrator: the regular octagon inscribed in ‖u‖ ≤ u_max (8
half-planes nᵏ·u ≤ u_max·cos(π/8); its vertices lie on the circle, so every output has
‖u‖ ≤ u_max, at most 7.6 % slower than the disk along the edge midpoints) or, with
``input_limit="box"``, |u_x|, |u_y| ≤ u_max. Unicycle: v_min ≤ v ≤ v_max, |ω| ≤ ω_max.

Discrete time. Commands are held for a control period Δt, so what must hold is the
discrete-time condition h(x_{k+1}) ≥ (1 − γ) h(x_k) with γ ∈ (0, 1]. Every h here is convex
in the positions, so h(x + δ) ≥ h(x) + ∇h·δ, and the linear row ∇h·u Δt ≥ −γ h *implies* it
exactly for single integrators (moving obstacles: at their current velocity). The filter
therefore uses γ = min(α Δt, ``gamma_max``), i.e. α is capped at ``gamma_max`` / Δt whatever
a policy asks, and the barrier holds at any control rate. For unicycles the look-ahead point
moves on an arc, not a line: D gains the worst-case arc error ½ Δt² |ω| √(v² + l²ω²).

Feasibility and fallback. At u = 0 every agent row reads 0 ≥ −(α/2) h, true while h ≥ 0,
and every static-obstacle row likewise; so the QP is infeasible only when an agent is
already inside some D or a moving obstacle closes in faster than the agent may move.
Braking then is not safe (the obstacle does not stop), so the agent takes the *least-
violating* command (:mod:`navkit.control.least_violation`): the weighted least-squares
violation of its rows within its input limits, obstacle rows weighing
``fallback_obstacle_weight`` times a robot row. The tick is counted (INFEASIBLE_FALLBACK);
``fallback: brake`` restores the old zero command.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

from navkit.control.batched_qp import solve_qp_2d_batched
from navkit.control.least_violation import least_violation_2d_batched

_PASS_TOL = 1e-9
"""|u − u_nom| below which an agent's nominal command counts as passed through unchanged."""

_DYNAMICS = ("single_integrator", "unicycle")
_INPUT_LIMITS = ("octagon", "box")


@dataclass
class MultiAgentCbfConfig:
    """Parameters of :class:`MultiAgentCbfFilter`, shared by all agents."""

    dynamics: str = "single_integrator"
    """"single_integrator" (u = world velocity) or "unicycle" (u = (v, ω), barrier on a
    look-ahead point)."""
    agent_radius_m: float = 0.2
    """Radius of every agent's body disk."""
    margin_m: float = 0.05
    """Clearance on top of the radii, absorbing the error of integrating a continuous-time
    CBF with a finite control period; per-agent margins passed to ``filter`` replace it."""
    sensing_radius_m: float = 2.0
    """An agent only sees agents (centre distance) and obstacles (surface distance) this
    close: the decentralized QP uses nothing it could not sense."""
    max_neighbors: int = 8
    """Nearest sensed agents that become constraints; bounds the QP size in crowds."""
    max_obstacles: int = 8
    """Nearest sensed obstacles that become constraints."""
    u_max: float = 1.0
    """Single integrator speed limit (m/s), see ``input_limit``."""
    input_limit: str = "octagon"
    """"octagon": 8 half-planes inscribed in ‖u‖ ≤ u_max (never faster than u_max in any
    direction); "box": |u_x|, |u_y| ≤ u_max (4 rows, up to √2·u_max diagonally)."""
    v_min: float = -0.2
    """Unicycle: most negative forward speed (m/s); reversing lets an agent back off."""
    v_max: float = 1.0
    """Unicycle: largest forward speed (m/s)."""
    omega_max: float = 2.0
    """Unicycle: largest |ω| (rad/s)."""
    lookahead_m: float = 0.15
    """Unicycle: distance of the barrier point ahead of the axle; > 0 puts ω into ḣ so
    agents can steer around each other instead of only braking."""
    omega_weight: float = 0.1
    """Unicycle: weight of ω deviation vs v deviation in the QP objective; small means
    'prefer turning to slowing down'."""
    alpha_default: float = 1.0
    """Class-K gain used when ``filter`` gets no α; larger lets agents approach faster."""
    alpha_max: float = 100.0
    """A per-agent α above this (or ≤ 0, or non-finite) is a policy bug: that agent stops."""
    control_dt_s: float = 0.05
    """Control period Δt (the command is held this long); with ``gamma_max`` it caps α at γ_max/Δt."""
    gamma_max: float = 1.0
    """Largest discrete-time decay γ = α·Δt the filter allows (≤ 1 keeps h(x_{k+1}) ≥ (1−γ) h(x_k) ≥ 0)."""
    fallback: str = "least_violation"
    """Infeasible QP: "least_violation" (evade: weighted least-squares violation in the limits) or "brake"."""
    fallback_obstacle_weight: float = 10.0
    """In the fallback, an obstacle row weighs this many robot rows (obstacles do not yield)."""

    def __post_init__(self) -> None:
        if not 0.0 < self.gamma_max <= 1.0:
            raise ValueError(f"gamma_max: must be in (0, 1], got {self.gamma_max}")
        if not 0.0 < self.control_dt_s <= 1.0:
            raise ValueError(f"control_dt_s: must be in (0, 1], got {self.control_dt_s}")
        if self.fallback not in ("least_violation", "brake"):
            raise ValueError(f"fallback: must be least_violation or brake, got {self.fallback!r}")
        if self.dynamics not in _DYNAMICS:
            raise ValueError(f"dynamics: must be one of {_DYNAMICS}, got {self.dynamics!r}")
        if self.input_limit not in _INPUT_LIMITS:
            raise ValueError(f"input_limit: must be one of {_INPUT_LIMITS}, got {self.input_limit!r}")
        for name in ("agent_radius_m", "margin_m", "sensing_radius_m", "u_max", "v_min", "v_max", "omega_max",
                     "lookahead_m", "omega_weight", "alpha_default", "alpha_max"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name}: must be a finite number, got {value!r}")
        for name in ("agent_radius_m", "margin_m", "lookahead_m"):
            if getattr(self, name) < 0.0:
                raise ValueError(f"{name}: must be >= 0, got {getattr(self, name)}")
        for name in ("sensing_radius_m", "u_max", "omega_max", "omega_weight", "alpha_default", "alpha_max"):
            if getattr(self, name) <= 0.0:
                raise ValueError(f"{name}: must be > 0, got {getattr(self, name)}")
        if self.v_min > 0.0:
            raise ValueError(f"v_min: must be <= 0 so that stopping is allowed, got {self.v_min}")
        if self.v_max < 0.0:
            raise ValueError(f"v_max: must be >= 0 so that stopping is allowed, got {self.v_max}")
        if self.alpha_default > self.alpha_max:
            raise ValueError(f"alpha_default: must be <= alpha_max={self.alpha_max}, got {self.alpha_default}")
        for name in ("max_neighbors", "max_obstacles"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name}: must be an integer >= 0, got {value!r}")


class AgentStatus(IntEnum):
    """What the filter did for one agent on one tick (an IntEnum so statuses fit an array)."""

    PASS = 0
    """The nominal command was safe and is output unchanged."""
    MODIFIED = 1
    """The nominal command was replaced by the closest safe one."""
    INFEASIBLE_FALLBACK = 2
    """No command satisfies every constraint: output is the least-violating command (or zero with
    ``fallback: brake``)."""
    INVALID_INPUT = 3
    """Non-finite state/command or an out-of-range α or margin for this agent: output is zero."""


@dataclass(frozen=True)
class MultiAgentFilterResult:
    """One tick's output for N agents; ``u`` is what must be sent."""

    u: np.ndarray
    """(N, 2) safe commands (zero rows for braking/invalid agents)."""
    status: np.ndarray
    """(N,) int array of :class:`AgentStatus` values."""
    num_constraints: np.ndarray
    """(N,) rows in each agent's QP (CBF rows + input-limit rows; 0 for invalid agents)."""
    min_h: np.ndarray
    """(N,) smallest barrier value over each agent's sensed agents/obstacles (inf if none)."""


@dataclass
class MultiAgentFilterStats:
    """Counters since construction or :meth:`MultiAgentCbfFilter.reset_stats`."""

    ticks: int = 0
    """Calls to ``filter``."""
    agent_ticks: int = 0
    """Agent-QPs handled (N per call)."""
    interventions: int = 0
    """Agent-ticks whose command was changed (MODIFIED or INFEASIBLE_FALLBACK)."""
    infeasible: int = 0
    """Agent-ticks that braked because the QP was infeasible."""
    invalid_input: int = 0
    """Agent-ticks zeroed for invalid inputs."""


@dataclass(frozen=True)
class _Rows:
    """Constraint rows of all agents plus the bookkeeping ``filter`` needs."""

    A: np.ndarray
    b: np.ndarray
    mask: np.ndarray
    min_h: np.ndarray
    valid: np.ndarray
    weights: np.ndarray = field(repr=False)
    n_barrier: int = 0
    """Columns before the input-limit rows (neighbour rows, then obstacle rows)."""
    n_neighbour: int = 0


def _as_array(name: str, value: object, shape: tuple[int, ...]) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    if arr.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {arr.shape}")
    return arr


def _per_agent(name: str, value: float | np.ndarray, n: int) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    if arr.ndim == 0:
        return np.full(n, float(arr))
    if arr.shape != (n,):
        raise ValueError(f"{name}: expected a scalar or shape ({n},), got {arr.shape}")
    return arr


def _nearest(dist: np.ndarray, k: int, in_range: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices (N, k) of the k smallest ``dist`` per row and whether each is in range.

    Rows are sorted by distance (stable), so the choice is independent of the order of the
    candidates except for exact ties.
    """
    if k == 0 or dist.shape[1] == 0:
        return np.zeros((dist.shape[0], 0), dtype=int), np.zeros((dist.shape[0], 0), dtype=bool)
    d = np.where(in_range, dist, np.inf)
    idx = np.argsort(d, axis=1, kind="stable")[:, :k]
    return idx, np.take_along_axis(in_range, idx, axis=1)


class MultiAgentCbfFilter:
    """Minimally modifies N agents' commands so they keep clear of each other and obstacles."""

    def __init__(self, config: MultiAgentCbfConfig | None = None) -> None:
        self.config = config if config is not None else MultiAgentCbfConfig()
        self.stats = MultiAgentFilterStats()
        c = self.config
        if c.dynamics == "unicycle":
            self._weights = np.array([1.0, c.omega_weight])
            self._limit_A = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
            self._limit_b = np.array([c.v_min, -c.v_max, -c.omega_max, -c.omega_max])
            # Arc error of the look-ahead point over one held command (see the module docstring).
            speed = max(c.v_max, -c.v_min)
            arc = 0.5 * c.control_dt_s**2 * c.omega_max * math.hypot(speed, c.lookahead_m * c.omega_max)
            self._pad = c.lookahead_m + arc
        else:
            self._weights = np.ones(2)
            if c.input_limit == "box":
                self._limit_A = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
                self._limit_b = np.full(4, -c.u_max)
            else:  # -n_k·u >= -u_max cos(π/8): the octagon inscribed in the u_max circle
                angles = np.arange(8) * (math.pi / 4.0)
                self._limit_A = -np.stack([np.cos(angles), np.sin(angles)], axis=1)
                self._limit_b = np.full(8, -c.u_max * math.cos(math.pi / 8.0))
            self._pad = 0.0

    def reset_stats(self) -> None:
        self.stats = MultiAgentFilterStats()

    def _rows(
        self,
        positions: np.ndarray,
        headings: np.ndarray | None,
        u_nom: np.ndarray,
        alpha: float | np.ndarray | None,
        obstacle_positions: np.ndarray | None,
        obstacle_radii: np.ndarray | None,
        obstacle_velocities: np.ndarray | None,
        margins: float | np.ndarray | None,
    ) -> _Rows:
        c = self.config
        p = np.asarray(positions, dtype=float)
        if p.ndim != 2 or p.shape[1] != 2:
            raise ValueError(f"positions: expected shape (N, 2), got {p.shape}")
        n = p.shape[0]
        u_nom = _as_array("u_nom", u_nom, (n, 2))
        alpha_arr = _per_agent("alpha", c.alpha_default if alpha is None else alpha, n)
        margin_arr = _per_agent("margins", c.margin_m if margins is None else margins, n)
        unicycle = c.dynamics == "unicycle"
        if unicycle:
            if headings is None:
                raise ValueError("headings: required for unicycle dynamics")
            theta = _as_array("headings", headings, (n,))
        else:
            theta = np.zeros(n) if headings is None else _as_array("headings", headings, (n,))
        if obstacle_positions is None:
            obs = np.zeros((0, 2))
        else:
            obs = np.asarray(obstacle_positions, dtype=float)
            if obs.ndim != 2 or obs.shape[1] != 2:
                raise ValueError(f"obstacle_positions: expected shape (M, 2), got {obs.shape}")
        m = obs.shape[0]
        radii = np.zeros(m) if obstacle_radii is None else _as_array("obstacle_radii", obstacle_radii, (m,))
        obs_vel = np.zeros((m, 2)) if obstacle_velocities is None else _as_array(
            "obstacle_velocities", obstacle_velocities, (m, 2))
        if np.any(radii < 0.0):
            raise ValueError("obstacle_radii: must be >= 0")

        # Where an agent is (locatable by others) vs whether its own QP can be trusted.
        located = np.isfinite(p).all(axis=1) & (np.isfinite(theta) if unicycle else True)
        valid = (located & np.isfinite(u_nom).all(axis=1) & np.isfinite(alpha_arr) & (alpha_arr > 0.0)
                 & (alpha_arr <= c.alpha_max) & np.isfinite(margin_arr) & (margin_arr >= 0.0))
        # An obstacle that cannot be located could be anywhere: nobody may move on it.
        if not (np.isfinite(obs).all() and np.isfinite(radii).all() and np.isfinite(obs_vel).all()):
            valid = np.zeros(n, dtype=bool)

        p0 = np.where(located[:, None], p, 0.0)
        th0 = np.where(np.isfinite(theta), theta, 0.0)
        cos, sin = np.cos(th0), np.sin(th0)
        if unicycle:
            q = p0 + c.lookahead_m * np.stack([cos, sin], axis=1)
            J = np.empty((n, 2, 2))
            J[:, 0, 0], J[:, 0, 1] = cos, -c.lookahead_m * sin
            J[:, 1, 0], J[:, 1, 1] = sin, c.lookahead_m * cos
        else:
            q = p0
            J = np.broadcast_to(np.eye(2), (n, 2, 2))
        # Discrete time: γ = α·Δt never above gamma_max, whatever the α source asked for.
        alpha0 = np.where(valid, np.minimum(alpha_arr, c.gamma_max / c.control_dt_s), 0.0)
        margin0 = np.where(valid, margin_arr, 0.0)

        # Agent–agent rows: nearest located agents within sensing range (base centre distance).
        diff_p = p0[:, None, :] - p0[None, :, :]
        dist_p = np.sqrt(np.einsum("ijc,ijc->ij", diff_p, diff_p))
        sees = located[:, None] & located[None, :] & ~np.eye(n, dtype=bool) & (dist_p <= c.sensing_radius_m)
        nbr, nbr_ok = _nearest(dist_p, min(c.max_neighbors, max(n - 1, 0)), sees)
        d_nbr = q[:, None, :] - q[nbr]  # (N, Kn, 2)
        D_ag = 2.0 * (c.agent_radius_m + self._pad) + margin0  # (N,)
        h_nbr = np.einsum("nkc,nkc->nk", d_nbr, d_nbr) - D_ag[:, None] ** 2
        A_nbr = 2.0 * np.einsum("nkc,ncd->nkd", d_nbr, J)
        b_nbr = -0.5 * alpha0[:, None] * h_nbr

        # Obstacle rows: nearest obstacles by surface distance from the base.
        diff_o = p0[:, None, :] - obs[None, :, :]
        surf = np.sqrt(np.einsum("imc,imc->im", diff_o, diff_o)) - radii[None, :]
        obs_idx, obs_ok = _nearest(surf, min(c.max_obstacles, m), located[:, None] & (surf <= c.sensing_radius_m))
        d_obs = q[:, None, :] - obs[obs_idx]
        D_obs = (c.agent_radius_m + self._pad) + radii[obs_idx] + margin0[:, None]
        h_obs = np.einsum("nkc,nkc->nk", d_obs, d_obs) - D_obs**2
        A_obs = 2.0 * np.einsum("nkc,ncd->nkd", d_obs, J)
        b_obs = -alpha0[:, None] * h_obs + 2.0 * np.einsum("nkc,nkc->nk", d_obs, obs_vel[obs_idx])

        n_lim = self._limit_A.shape[0]
        A = np.concatenate([A_nbr, A_obs, np.broadcast_to(self._limit_A, (n, n_lim, 2))], axis=1)
        b = np.concatenate([b_nbr, b_obs, np.broadcast_to(self._limit_b, (n, n_lim))], axis=1)
        mask = np.concatenate([nbr_ok, obs_ok, np.ones((n, n_lim), dtype=bool)], axis=1)
        mask &= valid[:, None]
        h_all = np.concatenate([np.where(nbr_ok, h_nbr, np.inf), np.where(obs_ok, h_obs, np.inf)], axis=1)
        min_h = h_all.min(axis=1) if h_all.shape[1] else np.full(n, np.inf)
        min_h = np.where(valid, min_h, np.inf)
        A = np.where(mask[:, :, None], A, 0.0)
        b = np.where(mask, b, 0.0)
        return _Rows(A=A, b=b, mask=mask, min_h=min_h, valid=valid, weights=self._weights,
                     n_barrier=A_nbr.shape[1] + A_obs.shape[1], n_neighbour=A_nbr.shape[1])

    def _least_violation(self, r: _Rows, stuck: np.ndarray) -> np.ndarray:
        """The fallback commands of the agents whose QP is infeasible (see the module docstring)."""
        nb, nn = r.n_barrier, r.n_neighbour
        weights = np.ones((int(stuck.sum()), nb))
        weights[:, nn:] = self.config.fallback_obstacle_weight
        return least_violation_2d_batched(r.A[stuck, :nb], r.b[stuck, :nb], r.mask[stuck, :nb], weights,
                                          self._limit_A, self._limit_b)

    def constraints(
        self,
        positions: np.ndarray,
        headings: np.ndarray | None,
        u_nom: np.ndarray,
        alpha: float | np.ndarray | None = None,
        obstacle_positions: np.ndarray | None = None,
        obstacle_radii: np.ndarray | None = None,
        obstacle_velocities: np.ndarray | None = None,
        margins: float | np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(A (N, K, 2), b (N, K), mask (N, K)): agent n's QP is A[n, k]·u ≥ b[n, k] over mask[n].

        Column layout: ``min(max_neighbors, N−1)`` neighbour slots, ``min(max_obstacles, M)``
        obstacle slots, then the input-limit rows. Invalid agents have an all-False mask.
        """
        r = self._rows(positions, headings, u_nom, alpha, obstacle_positions, obstacle_radii,
                       obstacle_velocities, margins)
        return r.A, r.b, r.mask

    def filter(
        self,
        positions: np.ndarray,
        headings: np.ndarray | None,
        u_nom: np.ndarray,
        alpha: float | np.ndarray | None = None,
        obstacle_positions: np.ndarray | None = None,
        obstacle_radii: np.ndarray | None = None,
        obstacle_velocities: np.ndarray | None = None,
        margins: float | np.ndarray | None = None,
    ) -> MultiAgentFilterResult:
        """Safe commands for all agents this tick.

        Args:
            positions: (N, 2) world positions (unicycle: axle centre).
            headings: (N,) yaw in rad; required for unicycles, ignored otherwise.
            u_nom: (N, 2) nominal commands: world velocity, or (v, ω) for unicycles.
            alpha: per-agent class-K gain, scalar or (N,); None uses ``alpha_default``.
            obstacle_positions, obstacle_radii, obstacle_velocities: (M, 2), (M,), (M, 2)
                discs (velocities None = static).
            margins: per-agent margin replacing ``margin_m``, scalar or (N,).

        An agent with non-finite position/heading/command, or α outside (0, alpha_max], or a
        negative/non-finite margin gets zero and INVALID_INPUT; the others are unaffected
        (an agent whose own position is unknown is also invisible to the others). A
        non-finite obstacle zeroes everyone. Raises ValueError on malformed shapes.
        """
        r = self._rows(positions, headings, u_nom, alpha, obstacle_positions, obstacle_radii,
                       obstacle_velocities, margins)
        n = r.valid.shape[0]
        u_nom_arr = np.asarray(u_nom, dtype=float)
        u_safe_nom = np.where(r.valid[:, None], u_nom_arr, 0.0)
        sol = solve_qp_2d_batched(r.weights, u_safe_nom, r.A, r.b, r.mask)
        u = np.where((r.valid & sol.feasible)[:, None], sol.u, 0.0)
        stuck = r.valid & ~sol.feasible
        if self.config.fallback == "least_violation" and stuck.any():
            u[stuck] = self._least_violation(r, stuck)
        unchanged = np.all(np.abs(u - u_safe_nom) <= _PASS_TOL, axis=1)
        u = np.where(unchanged[:, None], u_safe_nom, u)
        status = np.where(unchanged, AgentStatus.PASS, AgentStatus.MODIFIED).astype(int)
        status[~sol.feasible] = AgentStatus.INFEASIBLE_FALLBACK
        status[~r.valid] = AgentStatus.INVALID_INPUT

        s = self.stats
        s.ticks += 1
        s.agent_ticks += n
        s.infeasible += int(np.sum(status == AgentStatus.INFEASIBLE_FALLBACK))
        s.invalid_input += int(np.sum(status == AgentStatus.INVALID_INPUT))
        s.interventions += int(np.sum((status == AgentStatus.MODIFIED) | (status == AgentStatus.INFEASIBLE_FALLBACK)))
        return MultiAgentFilterResult(
            u=u,
            status=status,
            num_constraints=r.mask.sum(axis=1),
            min_h=r.min_h,
        )
