"""Files that ship with navkit's control room (kept free of heavy imports so anyone may name them)."""
from __future__ import annotations

from pathlib import Path

SHIPPED_ONLINE_CBF_POLICY = Path(__file__).resolve().parent / "policies" / "online_cbf_gnn.pt"
"""The online-CBF GNN policy trained by ``navkit train online-cbf`` (the default ``cbf_policy``)."""
SHIPPED_AGV_POLICY = Path(__file__).resolve().parent / "policies" / "rnd_agv.pt"
"""The warehouse-navigation policy trained by ``navkit train rnd-agv`` (the ``rl_policy`` controller's default)."""
