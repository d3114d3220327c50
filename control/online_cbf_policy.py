"""Online CBF tuning: a policy that picks each robot's barrier decay every tick from what it senses.

After Gao, Yang & Prorok, "Online Control Barrier Functions for Decentralized Multi-Agent
Navigation" (MRS 2023, arXiv 2303.04313). The policy is a
:class:`~navkit.common.interfaces.CbfParameterPolicy` (plugin ``online_cbf_gnn``): it reads a
:class:`~navkit.common.swarm_state.SwarmState` and returns each robot's class-K gain α for its
CBF-QP (:class:`~navkit.control.swarm_controller.SwarmController`).

**What a robot sees, in its own frame.** Every input is expressed in the robot's *goal
frame* (x towards its goal, y to its left): its distance to the goal, its velocity, and for
the nearest sensed robots and obstacles their relative position and velocity, barrier value,
and for robots their goal direction, whether they are still travelling and the difference of
their random priority token from its own. Nothing is in world coordinates, so rotating or
translating a whole scene cannot change any output (tested exactly), and ties are broken by
the tokens a team shares, not by which way the robots happen to face. The control period and
the dynamics (single integrator or unicycle) are inputs too.

**Network.** A one-hop graph network over the sensed neighbourhood: an ego encoder, one
message MLP per sender kind (robots, obstacles) applied to (ego embedding, sender features),
masked sum and max aggregation (permutation invariant, any number of neighbours up to ``k``),
a hidden layer and a linear action a, mapped log-uniformly onto α ∈ [``alpha_min``,
``alpha_max``]. The filter turns α into the discrete-time decay γ = min(α·Δt, 1) per control
period, so its barrier holds at any rate whatever the policy says. The same network is trained by
evolution strategies or by PPO (whose actor mean is a), see :mod:`navkit.learning`.

**Robustness.** A non-finite output, or a robot whose own or sensed state is non-finite,
gets ``fallback_alpha`` and is counted in :attr:`OnlineCbfPolicy.fallbacks`.
"""
from __future__ import annotations

import math
import pickle
import zipfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from torch import nn

from navkit.common.errors import FieldError, brief
from navkit.common.swarm_state import SwarmState

FORMAT = "navkit.online_cbf_policy"
FORMAT_VERSION = 3
EGO_FEATURES = 9
"""[distance to goal / R (≤ 2), velocity in the goal frame / v_max (2), still travelling, own token,
is unicycle, heading relative to the goal direction (cos, sin), control period / 0.1 s]."""
NEIGHBOUR_FEATURES = 11
"""[position (2) / R, velocity (2) / v_max relative, distance / R, barrier h / R², token difference,
its goal direction (2), still travelling, present]: all in the receiver's goal frame."""
OBSTACLE_FEATURES = 8
"""[position (2) / R, velocity (2) / v_max relative, surface distance / R, barrier h / R², radius / R,
present]: in the receiver's goal frame."""

CORRUPT_CHECKPOINT_ERRORS = (pickle.UnpicklingError, EOFError, OSError, RuntimeError, KeyError, ValueError,
                             IndexError, zipfile.BadZipFile)
"""What ``torch.load(weights_only=True)`` raises on a file that is not a checkpoint (measured: empty ->
EOFError, random bytes or pickled code -> UnpicklingError, text -> KeyError, truncated -> OSError, a broken
zip -> RuntimeError). Anything else (MemoryError, a bug) is not "a bad file" and is not caught."""


class PolicyCheckpointError(FieldError):
    """A policy checkpoint is missing, unreadable or does not fit the network; names file and key."""


@dataclass(frozen=True)
class OnlineCbfPolicyConfig:
    """Shape and envelope of the online-CBF policy."""

    hidden: int = 48
    """Width of every hidden layer (a ~20 k-parameter network: small, fast, trainable by ES)."""
    k_neighbours: int = 6
    """Nearest sensed robots a robot's decision uses."""
    k_obstacles: int = 6
    """Nearest sensed obstacles a robot's decision uses."""
    alpha_min: float = 0.1
    """Smallest gain the policy can output (> 0: the CBF stays valid; small = timid)."""
    alpha_max: float = 20.0
    """Largest gain (the filter caps γ = α·Δt at 1 anyway: at 20 Hz α > 20 changes nothing)."""
    sensing_radius_m: float = 2.0
    """Robots (centre distance) and obstacles (surface distance) farther than this are not seen."""
    max_speed_m_s: float = 1.0
    """Velocity feature scale."""
    agent_radius_m: float = 0.2
    """Body radius for the barrier-value features."""
    fallback_alpha: float = 1.0
    """α used when the output or the robot's inputs are non-finite."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{f.name}: must be a finite number, got {brief(value)}")
        for name in ("hidden", "k_neighbours", "k_obstacles"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 1 <= value <= 256:
                raise ValueError(f"{name}: must be an integer in [1, 256], got {value!r}")
        if not 0.0 < self.alpha_min < self.alpha_max <= 1000.0:
            raise ValueError(f"alpha_min, alpha_max: need 0 < alpha_min < alpha_max <= 1000, got {self.alpha_min}, "
                             f"{self.alpha_max}")
        if not self.alpha_min <= self.fallback_alpha <= self.alpha_max:
            raise ValueError(f"fallback_alpha: must be in [alpha_min, alpha_max], got {self.fallback_alpha}")
        for name in ("sensing_radius_m", "max_speed_m_s", "agent_radius_m"):
            if getattr(self, name) <= 0.0:
                raise ValueError(f"{name}: must be > 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class LocalFeatures:
    """Every robot's view of its neighbourhood, in its goal frame (see the module docstring)."""

    ego: np.ndarray
    """(B, N, EGO_FEATURES)."""
    neighbours: np.ndarray
    """(B, N, k_neighbours, NEIGHBOUR_FEATURES), nearest first; absent slots are zero."""
    obstacles: np.ndarray
    """(B, N, k_obstacles, OBSTACLE_FEATURES), nearest first; absent slots are zero."""
    bad: np.ndarray
    """(B, N) the robot's own or sensed state is non-finite (its α must fall back)."""

    def flat(self) -> np.ndarray:
        """(B, N, F) all of it concatenated (what a flat-vector learner such as SB3 consumes)."""
        b, n = self.ego.shape[:2]
        return np.concatenate([self.ego, self.neighbours.reshape(b, n, -1), self.obstacles.reshape(b, n, -1)],
                              axis=-1).astype(np.float32)


def flat_size(config: OnlineCbfPolicyConfig) -> int:
    return EGO_FEATURES + config.k_neighbours * NEIGHBOUR_FEATURES + config.k_obstacles * OBSTACLE_FEATURES


def local_features(state: SwarmState, config: OnlineCbfPolicyConfig) -> LocalFeatures:
    """What each robot senses, in its goal frame; one numpy pass over all B x N robots."""
    R, vmax, r0 = config.sensing_radius_m, config.max_speed_m_s, config.agent_radius_m
    pos, vel = np.asarray(state.positions, float), np.asarray(state.velocities, float)
    b, n = pos.shape[:2]
    bad = ~(np.isfinite(pos).all(-1) & np.isfinite(vel).all(-1) & np.isfinite(state.headings))
    pos0, vel0 = np.where(bad[..., None], 0.0, pos), np.where(bad[..., None], 0.0, vel)
    # A robot with a non-finite goal falls back itself (counted) but is still a neighbour others must see.
    goal_bad = ~np.isfinite(np.asarray(state.goals, float)).all(-1)
    goals = np.where(goal_bad[..., None], pos0, state.goals)
    offset = goals - pos0
    dist = np.linalg.norm(offset, axis=-1)
    ex = np.where(dist[..., None] > 1e-6, offset / np.maximum(dist, 1e-6)[..., None], np.array([1.0, 0.0]))
    ey = np.stack([-ex[..., 1], ex[..., 0]], axis=-1)

    def frame(v: np.ndarray) -> np.ndarray:  # (B, N, K, 2) world -> each receiver's goal frame
        return np.stack([np.einsum("bnkd,bnd->bnk", v, ex), np.einsum("bnkd,bnd->bnk", v, ey)], axis=-1)

    tokens = np.zeros((b, n)) if state.priorities is None else np.asarray(state.priorities, float)
    unicycle = state.dynamics == "unicycle"
    heading_dir = np.stack([np.cos(state.headings), np.sin(state.headings)], axis=-1)
    rel_heading = frame(heading_dir[:, :, None, :])[:, :, 0] if unicycle else np.broadcast_to([1.0, 0.0], (b, n, 2))
    dt = state.control_dt_s
    ego = np.concatenate([np.minimum(dist / R, 2.0)[..., None], frame(vel0[:, :, None, :])[:, :, 0] / vmax,
                          np.asarray(state.active, float)[..., None], tokens[..., None],
                          np.full((b, n, 1), float(unicycle)), rel_heading, np.full((b, n, 1), dt / 0.1)], axis=-1)

    # Robots within sensing range, nearest first.
    rel = pos0[:, None, :, :] - pos0[:, :, None, :]                     # [b, i, j] = p_j - p_i
    d = np.linalg.norm(rel, axis=-1)
    d[:, np.arange(n), np.arange(n)] = np.inf
    d = np.where(bad[:, None, :], np.inf, d)
    k = min(config.k_neighbours, max(n - 1, 0))
    order = np.argsort(d, axis=-1)[..., :k]
    take2 = lambda a: np.take_along_axis(a, order[..., None], axis=2)
    take1 = lambda a: np.take_along_axis(a, order, axis=2)
    dn = take1(d)
    present = dn <= R
    goal_dir_j = np.broadcast_to(ex[:, None, :, :], (b, n, n, 2))
    nbr = np.concatenate([
        frame(take2(rel)) / R, frame(take2(vel0[:, None, :, :] - vel0[:, :, None, :])) / vmax,
        (np.where(present, dn, 0.0) / R)[..., None], (np.where(present, dn**2 - (2 * r0) ** 2, 0.0) / R**2)[..., None],
        take1(np.broadcast_to(tokens[:, None, :] - tokens[:, :, None], (b, n, n)))[..., None],
        frame(take2(goal_dir_j)),
        take1(np.broadcast_to(np.asarray(state.active, float)[:, None, :], (b, n, n)))[..., None],
        present[..., None].astype(float)], axis=-1) * present[..., None]
    neighbours = np.zeros((b, n, config.k_neighbours, NEIGHBOUR_FEATURES))
    neighbours[:, :, :k] = nbr

    # Obstacles by surface distance, nearest first.
    m = state.obstacle_positions.shape[1]
    obstacles = np.zeros((b, n, config.k_obstacles, OBSTACLE_FEATURES))
    if m:
        opos, orad, ovel = state.obstacle_positions, state.obstacle_radii, state.obstacle_velocities
        bad |= ~(np.isfinite(opos).all((-1, -2)) & np.isfinite(orad).all(-1) & np.isfinite(ovel).all((-1, -2)))[:, None]
        orel = np.nan_to_num(opos)[:, None, :, :] - pos0[:, :, None, :]
        centre = np.linalg.norm(orel, axis=-1)
        surface = centre - np.nan_to_num(orad)[:, None, :]
        ko = min(config.k_obstacles, m)
        oorder = np.argsort(surface, axis=-1)[..., :ko]
        otake2 = lambda a: np.take_along_axis(a, oorder[..., None], axis=2)
        otake1 = lambda a: np.take_along_axis(a, oorder, axis=2)
        s_k = otake1(surface)
        present_o = s_k <= R
        c_k = otake1(centre)
        r_k = otake1(np.broadcast_to(np.nan_to_num(orad)[:, None, :], (b, n, m)))
        obs = np.concatenate([
            frame(otake2(orel)) / R, frame(otake2(np.nan_to_num(ovel)[:, None, :, :] - vel0[:, :, None, :])) / vmax,
            (np.where(present_o, s_k, 0.0) / R)[..., None],
            (np.where(present_o, c_k**2 - (r0 + r_k) ** 2, 0.0) / R**2)[..., None],
            (r_k / R)[..., None], present_o[..., None].astype(float)], axis=-1) * present_o[..., None]
        obstacles[:, :, :ko] = obs
    ego, neighbours, obstacles = (np.clip(np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0), -10.0, 10.0)
                                  for a in (ego, neighbours, obstacles))
    return LocalFeatures(ego=ego, neighbours=neighbours, obstacles=obstacles, bad=bad | goal_bad)


def _mlp(sizes: list[int], last_act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = []
    for k in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[k], sizes[k + 1]))
        if k < len(sizes) - 2 or last_act:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


class NeighbourhoodNet(nn.Module):
    """One-hop message passing over a robot's sensed neighbourhood -> one pre-squash output per robot."""

    def __init__(self, config: OnlineCbfPolicyConfig) -> None:
        super().__init__()
        h = config.hidden
        self.config = config
        self.ego = _mlp([EGO_FEATURES, h, h])
        self.robot_msg = _mlp([h + NEIGHBOUR_FEATURES, h, h])
        self.obstacle_msg = _mlp([h + OBSTACLE_FEATURES, h, h])
        self.hidden = _mlp([5 * h, h])
        self.action = nn.Linear(h, 1)

    @staticmethod
    def _pool(messages: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """Masked (sum / 4, max) over the neighbour axis: permutation invariant, 0 when nothing is sensed."""
        mask = present.unsqueeze(-1)
        total = (messages * mask).sum(dim=-2) / 4.0
        largest = torch.where(mask > 0, messages, torch.full_like(messages, -1e9)).amax(dim=-2)
        largest = torch.where(present.any(dim=-1, keepdim=True), largest, torch.zeros_like(largest))
        return torch.cat([total, largest], dim=-1)

    def embed(self, ego: torch.Tensor, neighbours: torch.Tensor, obstacles: torch.Tensor) -> torch.Tensor:
        """(..., 5·hidden) per robot: its own embedding and the pooled messages of both kinds."""
        e = self.ego(ego)
        def expand(t: torch.Tensor) -> torch.Tensor:
            return e.unsqueeze(-2).expand(*t.shape[:-1], e.shape[-1])
        robot = self.robot_msg(torch.cat([expand(neighbours), neighbours], dim=-1))
        obstacle = self.obstacle_msg(torch.cat([expand(obstacles), obstacles], dim=-1))
        return torch.cat([e, self._pool(robot, neighbours[..., -1]), self._pool(obstacle, obstacles[..., -1])], dim=-1)

    def features(self, ego: torch.Tensor, neighbours: torch.Tensor, obstacles: torch.Tensor) -> torch.Tensor:
        """(..., hidden): the last hidden layer (what an actor-critic's value head also reads)."""
        return self.hidden(self.embed(ego, neighbours, obstacles))

    def forward(self, ego: torch.Tensor, neighbours: torch.Tensor, obstacles: torch.Tensor) -> torch.Tensor:
        """(...,) the action a; α = :func:`alpha_from_action` (a)."""
        return self.action(self.features(ego, neighbours, obstacles)).squeeze(-1)

    def split_flat(self, flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`LocalFeatures.flat` vectors (..., F) -> (ego, neighbours, obstacles)."""
        c = self.config
        kn, ko = c.k_neighbours, c.k_obstacles
        ego = flat[..., :EGO_FEATURES]
        nb = flat[..., EGO_FEATURES:EGO_FEATURES + kn * NEIGHBOUR_FEATURES].reshape(*flat.shape[:-1], kn,
                                                                                   NEIGHBOUR_FEATURES)
        ob = flat[..., EGO_FEATURES + kn * NEIGHBOUR_FEATURES:].reshape(*flat.shape[:-1], ko, OBSTACLE_FEATURES)
        return ego, nb, ob


def alpha_from_action(a: torch.Tensor | np.ndarray, alpha_min: float, alpha_max: float) -> np.ndarray:
    """Action a (clipped to [-1, 1]) -> α ∈ [alpha_min, alpha_max], log-uniform (a = 0: the geometric mean).

    The same map for the network's output and for an RL agent's action (the gymnasium envs), so a
    policy trained either way is the same :class:`NeighbourhoodNet`."""
    a = np.clip(np.asarray(a, dtype=float), -1.0, 1.0)
    lo, hi = math.log(alpha_min), math.log(alpha_max)
    return np.exp(lo + (a + 1.0) / 2.0 * (hi - lo))


class OnlineCbfPolicy:
    """The trained network as a ``cbf_policy``: ``policy(state) -> (B, N)`` gains α."""

    def __init__(self, config: OnlineCbfPolicyConfig | None = None, model: NeighbourhoodNet | None = None) -> None:
        self.config = config or OnlineCbfPolicyConfig()
        self.model = model if model is not None else NeighbourhoodNet(self.config)
        self.model.eval()
        self.fallbacks = 0
        """Robot-ticks whose α was replaced by ``fallback_alpha`` (bad input or bad output)."""

    def actions(self, state: SwarmState) -> tuple[np.ndarray, np.ndarray]:
        """(B, N) raw actions a and (B, N) which robots must fall back (bad input or non-finite a)."""
        feats = local_features(state, self.config)
        with torch.no_grad():
            a = self.model(torch.as_tensor(feats.ego, dtype=torch.float32),
                           torch.as_tensor(feats.neighbours, dtype=torch.float32),
                           torch.as_tensor(feats.obstacles, dtype=torch.float32)).numpy()
        return a, feats.bad | ~np.isfinite(a)

    def __call__(self, state: SwarmState) -> np.ndarray:
        a, bad = self.actions(state)
        self.fallbacks += int(bad.sum())
        alpha = alpha_from_action(np.where(bad, 0.0, a), self.config.alpha_min, self.config.alpha_max)
        return np.where(bad, self.config.fallback_alpha, alpha)

    def save(self, path: str | Path) -> Path:
        """A plain dict (format, version, config, state_dict) readable with ``torch.load(weights_only=True)``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"format": FORMAT, "version": FORMAT_VERSION, "config": asdict(self.config),
                    "state_dict": {k: v.detach().clone() for k, v in self.model.state_dict().items()}}, path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> OnlineCbfPolicy:
        """Load a checkpoint written by :meth:`save`; :class:`PolicyCheckpointError` names file and key at fault."""
        path = Path(path)
        src = str(path)
        if not path.is_file():
            raise PolicyCheckpointError(src, "<file>", "policy checkpoint not found")
        if not zipfile.is_zipfile(path):  # every torch.save since 1.6 is a zip archive
            raise PolicyCheckpointError(src, "<file>", "not a torch checkpoint (not a zip archive)")
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
        except CORRUPT_CHECKPOINT_ERRORS as exc:
            raise PolicyCheckpointError(src, "<file>", f"not a readable weights-only checkpoint "
                                                       f"({type(exc).__name__}: {brief(str(exc), 120)})") from None
        if not isinstance(blob, dict):
            raise PolicyCheckpointError(src, "<root>", f"expected a dict, got {type(blob).__name__}")
        if blob.get("format") != FORMAT or blob.get("version") != FORMAT_VERSION:
            got = f"{brief(blob.get('format'))} version {brief(blob.get('version'))}"
            raise PolicyCheckpointError(src, "format", f"expected {FORMAT} version {FORMAT_VERSION}, got {got} "
                                                       "(retrain with navkit train online-cbf)")
        for key in ("config", "state_dict"):
            if key not in blob:
                raise PolicyCheckpointError(src, key, "missing")
        raw = blob["config"]
        if not isinstance(raw, dict):
            raise PolicyCheckpointError(src, "config", "expected a mapping")
        known = {f.name for f in fields(OnlineCbfPolicyConfig)}
        for key in raw:
            if key not in known:
                raise PolicyCheckpointError(src, f"config.{key}", "unknown policy config key")
        try:
            config = OnlineCbfPolicyConfig(**raw)
        except (TypeError, ValueError) as exc:
            raise PolicyCheckpointError(src, "config", str(exc)) from None
        model = NeighbourhoodNet(config)
        expected = model.state_dict()
        state = blob["state_dict"]
        if not isinstance(state, dict):
            raise PolicyCheckpointError(src, "state_dict", "expected a mapping")
        for key, tensor in expected.items():
            if key not in state:
                raise PolicyCheckpointError(src, f"state_dict.{key}", "missing")
            got = state[key]
            if not isinstance(got, torch.Tensor) or got.shape != tensor.shape:
                shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
                raise PolicyCheckpointError(src, f"state_dict.{key}",
                                            f"shape {shape} does not fit the network's {tuple(tensor.shape)}")
        for key in state:
            if key not in expected:
                raise PolicyCheckpointError(src, f"state_dict.{key}", "unexpected key")
        model.load_state_dict(state)
        return cls(config, model)
