"""Detecting a MuJoCo simulation that has silently gone bad (shared by every MuJoCo backend)."""
from __future__ import annotations

import mujoco
import numpy as np

from navkit.common.errors import SimulationDiverged


def check_mujoco_divergence(data: object, source: str) -> None:
    """Raise :class:`SimulationDiverged` if MuJoCo's state went bad since the last reset.

    MuJoCo auto-resets the data when qpos/qvel/qacc become non-finite or huge (so the state
    looks fine again, back at the start with t reset); only its warning counters remember.
    """
    w = mujoco.mjtWarning
    bad = any(data.warning[k].number > 0 for k in (w.mjWARN_BADQPOS, w.mjWARN_BADQVEL, w.mjWARN_BADQACC))
    if bad or not (np.all(np.isfinite(data.qpos)) and np.all(np.isfinite(data.qvel))):
        raise SimulationDiverged(
            f"{source}: MuJoCo diverged at t={data.time:.3f} s (non-finite state or bad acceleration)")
