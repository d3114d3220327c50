"""Online CBF tuning: a 1-hop GNN that picks each robot's class-K gain α every tick.

After Gao, Yang & Prorok, "Online Control Barrier Functions for Decentralized Multi-Agent
Navigation" (MRS 2023, arXiv 2303.04313). The policy is a
:class:`~navkit.common.interfaces.CbfParameterPolicy` (plugin ``online_cbf_gnn``): it reads a
:class:`~navkit.common.swarm_state.SwarmState` and returns one α per agent for the
per-agent CBF-QPs of :class:`~navkit.control.swarm_controller.SwarmController`.

Why a GNN, and why one hop. Each robot only sees neighbours and obstacles within
``sensing_radius_m``; with a single message-passing layer whose edges go *into agents*
from whatever they sense, a robot's α depends on exactly that and nothing else, so the
same weights run decentralised, one robot per ROS 2 node (B = 1, N = 1 plus its sensed
neighbours). The graph is built from relative positions and velocities only, so the
output is translation invariant; aggregation is sum + max over senders, so it is
permutation equivariant. Rotation invariance is deliberately *not* imposed: the goal
direction is given in the world frame, so the policy can learn the symmetry-breaking
"priority by heading" convention that lets an antipodal swap pass where every fixed α
deadlocks.

Robustness. α is squashed into [alpha_min, alpha_max]; a non-finite or out-of-range
output (or an agent whose own or sensed state is non-finite) falls back to
``fallback_alpha`` and is counted in :attr:`OnlineCbfPolicy.fallbacks` — the filter never
sees a bad gain.
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
from torch_geometric.data import Data
from torch_geometric.nn import MessagePassing

from navkit.common.errors import FieldError, brief
from navkit.common.swarm_state import SwarmState

AGENT_FEATURES = 10
"""Node feature width: [is_agent, is_obstacle, goal offset (2), goal direction (2), velocity (2), active, radius]
followed by heading (cos, sin) — see :func:`build_graph`."""
NODE_FEATURES = 12
EDGE_FEATURES = 7
"""[relative position (2), relative velocity (2), distance, barrier value h, sender is obstacle]."""
FORMAT_VERSION = 2


CORRUPT_CHECKPOINT_ERRORS = (pickle.UnpicklingError, EOFError, OSError, RuntimeError, KeyError, ValueError,
                             IndexError, zipfile.BadZipFile)
"""What ``torch.load(weights_only=True)`` raises on a file that is not a checkpoint (measured: empty ->
EOFError, random bytes or pickled code -> UnpicklingError, text -> KeyError, truncated -> OSError, a broken
zip -> RuntimeError). Anything else (MemoryError, a bug) is not "a bad file" and is not caught."""


class PolicyCheckpointError(FieldError):
    """A policy checkpoint is missing, unreadable or does not fit the network; names file and key."""


@dataclass(frozen=True)
class OnlineCbfPolicyConfig:
    """Shape and safety envelope of the online-CBF GNN policy."""

    hidden: int = 64
    """Width of every hidden layer; 64 keeps the whole network ~100 kB and one tick under a millisecond."""
    alpha_min: float = 0.05
    """Smallest α the policy can output: > 0 so the CBF stays a valid class-K condition; small α = timid."""
    alpha_max: float = 20.0
    """Largest α: bounded so a policy cannot switch the safety filter off (the filter rejects α above its own
    ``alpha_max`` anyway)."""
    sensing_radius_m: float = 2.0
    """Edges exist only to agents (centre distance) and obstacles (surface distance) this close: must match
    what a robot can sense, which is what keeps the policy decentralised."""
    max_speed_m_s: float = 1.0
    """Velocity feature scale, so inputs stay O(1) across robot types."""
    agent_radius_m: float = 0.2
    """Body radius used for the barrier-value edge feature h = d² − D² (D = sum of radii)."""
    fallback_alpha: float = 1.0
    """Conservative α used when the network output is non-finite or out of range, or the agent's inputs are."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{f.name}: must be a finite number, got {value!r}")
        if not isinstance(self.hidden, int) or self.hidden < 1:
            raise ValueError(f"hidden: must be a positive integer, got {self.hidden!r}")
        if not 0.0 < self.alpha_min < self.alpha_max:
            raise ValueError(f"alpha_min/alpha_max: need 0 < alpha_min < alpha_max, got {self.alpha_min}, "
                             f"{self.alpha_max}")
        if not self.alpha_min <= self.fallback_alpha <= self.alpha_max:
            raise ValueError(f"fallback_alpha: must lie in [alpha_min, alpha_max], got {self.fallback_alpha}")
        for name in ("sensing_radius_m", "max_speed_m_s", "agent_radius_m"):
            if getattr(self, name) <= 0.0:
                raise ValueError(f"{name}: must be > 0, got {getattr(self, name)}")


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float32))


def build_graph(state: SwarmState, sensing_radius_m: float, max_speed_m_s: float = 1.0,
                agent_radius_m: float = 0.2) -> Data:
    """All B scenes as one graph: nodes = agents then obstacles, edges j → i into agents within sensing range.

    Returned :class:`torch_geometric.data.Data` fields:

    - ``x`` (B·N + B·M, 12): agents ``[1, 0, goal_offset/R clipped to ±2, goal unit direction, v/v_max,
      active, 0, cos yaw, sin yaw]``; obstacles ``[0, 1, 0, 0, 0, 0, v/v_max, 0, r/R, 0, 0]``.
    - ``edge_index`` (2, E) sender j, receiver i (always an agent); ``edge_attr`` (E, 7)
      ``[(p_j − p_i)/R, (v_j − v_i)/v_max, d/R, (d² − D²)/R², sender is obstacle]``.
    - ``num_agents`` = B·N (agent nodes come first, agent i of scene b at ``b·N + i``), ``batch`` scene per node,
      ``bad_agent`` (B·N,) bool: own or sensed state non-finite (its α must fall back).

    Everything uses relative quantities, so translating a scene leaves the graph unchanged.
    """
    R = float(sensing_radius_m)
    vmax = float(max_speed_m_s)
    b, n = state.positions.shape[:2]
    m = state.obstacle_positions.shape[1]
    pos = _t(state.positions)
    vel = _t(state.velocities)
    goal_off = _t(state.goals) - pos
    dist_goal = goal_off.norm(dim=-1, keepdim=True)
    direction = goal_off / dist_goal.clamp_min(1e-6)
    yaw = _t(state.headings)
    active = torch.as_tensor(np.asarray(state.active)).to(torch.float32)
    ax = torch.cat([torch.ones(b, n, 1), torch.zeros(b, n, 1), (goal_off / R).clamp(-2.0, 2.0), direction,
                    vel / vmax, active[..., None], torch.zeros(b, n, 1), torch.cos(yaw)[..., None],
                    torch.sin(yaw)[..., None]], dim=-1)
    opos = _t(state.obstacle_positions)
    ovel = _t(state.obstacle_velocities)
    orad = _t(state.obstacle_radii)
    ox = torch.cat([torch.zeros(b, m, 1), torch.ones(b, m, 1), torch.zeros(b, m, 4), ovel / vmax,
                    torch.zeros(b, m, 1), (orad / R)[..., None], torch.zeros(b, m, 2)], dim=-1)
    x = torch.cat([ax.reshape(b * n, NODE_FEATURES), ox.reshape(b * m, NODE_FEATURES)])
    node_bad = ~torch.isfinite(x).all(dim=1)

    # Agent-agent: receiver i, sender j (dense over each scene, then masked).
    rel = pos[:, None, :, :] - pos[:, :, None, :]                      # [b, i, j] = p_j − p_i
    d = rel.norm(dim=-1)
    eye = torch.eye(n, dtype=torch.bool)[None]
    aa = (d <= R) & ~eye
    bi, ii, jj = aa.nonzero(as_tuple=True)
    d_aa = d[bi, ii, jj]
    D_aa = 2.0 * agent_radius_m
    e_aa = torch.cat([rel[bi, ii, jj] / R, (vel[bi, jj] - vel[bi, ii]) / vmax, (d_aa / R)[:, None],
                      ((d_aa ** 2 - D_aa ** 2) / R ** 2)[:, None], torch.zeros(len(bi), 1)], dim=1)
    src_aa = bi * n + jj
    dst_aa = bi * n + ii
    # Agent-obstacle: within range by surface distance (as the filter senses them).
    if m:
        orel = opos[:, None, :, :] - pos[:, :, None, :]                # [b, i, k] = o_k − p_i
        od = orel.norm(dim=-1)
        ao = (od - orad[:, None, :]) <= R
        bo, io, ko = ao.nonzero(as_tuple=True)
        d_ao = od[bo, io, ko]
        D_ao = agent_radius_m + orad[bo, ko]
        e_ao = torch.cat([orel[bo, io, ko] / R, (ovel[bo, ko] - vel[bo, io]) / vmax, (d_ao / R)[:, None],
                          ((d_ao ** 2 - D_ao ** 2) / R ** 2)[:, None], torch.ones(len(bo), 1)], dim=1)
        src_ao = b * n + bo * m + ko
        dst_ao = bo * n + io
        src = torch.cat([src_aa, src_ao])
        dst = torch.cat([dst_aa, dst_ao])
        edge_attr = torch.cat([e_aa, e_ao])
    else:
        src, dst, edge_attr = src_aa, dst_aa, e_aa
    edge_bad = ~torch.isfinite(edge_attr).all(dim=1) | node_bad[src]
    bad_agent = node_bad[: b * n].clone()
    if edge_bad.any():
        bad_agent[dst[edge_bad]] = True
    batch = torch.cat([torch.arange(b).repeat_interleave(n), torch.arange(b).repeat_interleave(m)])
    return Data(x=torch.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0),
                edge_index=torch.stack([src, dst]).long(),
                edge_attr=torch.nan_to_num(edge_attr, nan=0.0, posinf=0.0, neginf=0.0),
                batch=batch, num_agents=b * n, bad_agent=bad_agent, num_nodes=x.shape[0])


def _mlp(sizes: list[int], last_act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = []
    for k in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[k], sizes[k + 1]))
        if k < len(sizes) - 2 or last_act:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


class _SenseConv(MessagePassing):
    """One hop: message = MLP(sender embedding, edge features); aggregated by sum (scaled) and max."""

    def __init__(self, hidden: int) -> None:
        super().__init__(aggr=["sum", "max"], aggr_kwargs={"mode": "cat"})
        self.msg = _mlp([hidden + hidden, hidden, hidden])

    def forward(self, h: torch.Tensor, edge_index: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        return self.propagate(edge_index, h=h, e=e)

    def message(self, h_j: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        return self.msg(torch.cat([h_j, e], dim=-1))

    def update(self, aggr_out: torch.Tensor) -> torch.Tensor:
        hidden = aggr_out.shape[-1] // 2
        return torch.cat([aggr_out[:, :hidden] / 4.0, aggr_out[:, hidden:]], dim=-1)


class OnlineCbfGnn(nn.Module):
    """Encoders → one message-passing layer into agents → actor head: pre-squash z per agent.

    Deterministic by design: it is trained by evolution strategies, which explore in
    parameter space (see :mod:`navkit.learning.online_cbf_training`), so it needs no
    action noise, log-std or critic.
    """

    def __init__(self, hidden: int = 64) -> None:
        super().__init__()
        self.node_enc = _mlp([NODE_FEATURES, hidden, hidden])
        self.edge_enc = _mlp([EDGE_FEATURES, hidden, hidden])
        self.conv = _SenseConv(hidden)
        self.actor = _mlp([3 * hidden, hidden, 1], last_act=False)

    def forward(self, graph: Data) -> torch.Tensor:
        """z (num_agents,) for the agent nodes of ``graph``, in order."""
        h = self.node_enc(graph.x)
        e = self.edge_enc(graph.edge_attr)
        na = int(graph.num_agents)
        agg = self.conv(h, graph.edge_index, e)[:na]
        return self.actor(torch.cat([h[:na], agg], dim=-1)).squeeze(-1)


def squash(z: torch.Tensor, alpha_min: float, alpha_max: float) -> torch.Tensor:
    """α = exp(log α_min + sigmoid(z)·(log α_max − log α_min)): any real z maps into [α_min, α_max]."""
    lo, hi = math.log(alpha_min), math.log(alpha_max)
    return torch.exp(lo + torch.sigmoid(z) * (hi - lo))


class OnlineCbfPolicy:
    """The trained GNN as an α source: ``policy(state) -> (B, N)`` gains, deterministic (mean of z)."""

    def __init__(self, config: OnlineCbfPolicyConfig | None = None, model: OnlineCbfGnn | None = None) -> None:
        self.config = config or OnlineCbfPolicyConfig()
        self.model = model if model is not None else OnlineCbfGnn(self.config.hidden)
        self.model.eval()
        self.fallbacks = 0
        """Agent-ticks whose α was replaced by ``fallback_alpha`` (bad input or bad output)."""

    def graph(self, state: SwarmState) -> Data:
        c = self.config
        return build_graph(state, c.sensing_radius_m, c.max_speed_m_s, c.agent_radius_m)

    def __call__(self, state: SwarmState) -> np.ndarray:
        b, n = state.positions.shape[:2]
        g = self.graph(state)
        with torch.no_grad():
            z = self.model(g)
            alpha = squash(z, self.config.alpha_min, self.config.alpha_max).double().numpy()
        return self.guard(alpha, g.bad_agent.numpy()).reshape(b, n)

    def guard(self, alpha: np.ndarray, bad_agent: np.ndarray) -> np.ndarray:
        """Replace non-finite / out-of-range α (and α of agents with bad inputs) by the fallback; count them."""
        c = self.config
        bad = bad_agent | ~np.isfinite(alpha) | (alpha < c.alpha_min * (1 - 1e-6)) | (alpha > c.alpha_max * (1 + 1e-6))
        self.fallbacks += int(bad.sum())
        return np.where(bad, c.fallback_alpha, np.clip(alpha, c.alpha_min, c.alpha_max))

    def save(self, path: str | Path) -> Path:
        """A plain dict (config, state_dict, format version) readable with ``torch.load(weights_only=True)``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"format": "navkit.online_cbf_gnn", "version": FORMAT_VERSION, "config": asdict(self.config),
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
        model = OnlineCbfGnn(config.hidden)
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
                                            f"shape {shape} does not fit the network's {tuple(tensor.shape)} "
                                            f"(config.hidden={config.hidden})")
        for key in state:
            if key not in expected:
                raise PolicyCheckpointError(src, f"state_dict.{key}", "unexpected key")
        model.load_state_dict(state)
        return cls(config, model)
