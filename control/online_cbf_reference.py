"""The online-CBF network written with torch-geometric message passing: the reference for the fast path.

:class:`~navkit.control.online_cbf_policy.NeighbourhoodNet` pools messages over fixed-size,
padded neighbour slots with dense tensor ops, which is what runs on robots (one small batch
per tick; measured faster than building a sparse graph every tick, see
``navkit bench online-cbf``). This module computes the same network as a graph in
torch-geometric's ``MessagePassing`` (one edge per sensed robot or obstacle into the robot
that senses it, the slot's features as the edge attribute, sum and max aggregation), with the
*same weights*; the tests require both to agree to float precision on random scenes.
"""
from __future__ import annotations

import torch
from torch import nn
from torch_geometric.nn import MessagePassing

from navkit.common.swarm_state import SwarmState
from navkit.control.online_cbf_policy import NeighbourhoodNet, OnlineCbfPolicyConfig, local_features


class _Pool(MessagePassing):
    """Messages mlp([receiver embedding, edge features]); aggregated by sum (scaled by 1/4) and by max."""

    def __init__(self, mlp: nn.Module) -> None:
        super().__init__(aggr=["sum", "max"])
        self.mlp = mlp

    def forward(self, embedding: torch.Tensor, edge_index: torch.Tensor, edge_attr: torch.Tensor) -> torch.Tensor:
        out = self.propagate(edge_index, x=embedding, edge_attr=edge_attr, size=(embedding.shape[0],
                                                                                 embedding.shape[0]))
        h = embedding.shape[1]
        return torch.cat([out[:, :h] / 4.0, out[:, h:]], dim=1)

    def message(self, x_i: torch.Tensor, edge_attr: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.cat([x_i, edge_attr], dim=1))


def _edges(slots: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(edge_index, edge_attr) from (R, K, F) padded slots whose last feature says 'present'."""
    receiver, slot = torch.nonzero(slots[..., -1] > 0, as_tuple=True)
    attr = slots[receiver, slot]
    # Senders are not nodes of their own here: each edge carries its sender's features, so the source
    # index only has to be valid; the receiver is what aggregation groups by.
    return torch.stack([receiver, receiver]), attr


def reference_actions(model: NeighbourhoodNet, state: SwarmState,
                      config: OnlineCbfPolicyConfig | None = None) -> torch.Tensor:
    """(B, N) actions of ``model`` on ``state`` computed through torch-geometric message passing."""
    cfg = config or model.config
    feats = local_features(state, cfg)
    b, n = feats.ego.shape[:2]
    ego = torch.as_tensor(feats.ego.reshape(b * n, -1), dtype=torch.float32)
    nb = torch.as_tensor(feats.neighbours.reshape(b * n, cfg.k_neighbours, -1), dtype=torch.float32)
    ob = torch.as_tensor(feats.obstacles.reshape(b * n, cfg.k_obstacles, -1), dtype=torch.float32)
    with torch.no_grad():
        e = model.ego(ego)
        robots = _Pool(model.robot_msg)(e, *_edges(nb))
        obstacles = _Pool(model.obstacle_msg)(e, *_edges(ob))
        a = model.action(model.hidden(torch.cat([e, robots, obstacles], dim=1))).squeeze(-1)
    return a.reshape(b, n)
