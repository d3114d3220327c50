"""A learned local controller: a small policy network maps lidar + goal + twist to (v, ω).

This is the deployable half of navkit's RL for warehouse AGVs (Yin et al., RND for AGV
path planning; trained by ``navkit train rnd-agv``): plugin ``rl_policy`` of the
``local_controller`` slot. It reads what any robot has — the scan, wheel odometry and the
current goal in the odom frame — encodes it exactly as the training envs do
(:func:`encode_observation`), and its command then passes through the CBF safety filter like
every controller's. The policy file records the observation's parameters (rays, ranges,
limits), so a policy cannot be fed an observation it was not trained on.
"""
from __future__ import annotations

import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from navkit.common.errors import FieldError, brief
from navkit.common.geometry import wrap_angle
from navkit.common.observation import ControlTarget, Observation
from navkit.common.sensor_data import LaserScan, VelocityCommand

POLICY_FORMAT = "navkit.agv_rl_policy"
POLICY_VERSION = 1
MAX_INVALID_RAY_FRACTION = 0.1
"""As the safety filter's default: beyond this share of invalid rays (read as no return) the scan is refused."""
GOAL_SCALE_M = 10.0
"""Goal distances are divided by this (and clipped to 1) in the observation."""


def encode_observation(ranges: np.ndarray, range_max: float, pose: np.ndarray, goal: np.ndarray,
                       twist: np.ndarray, v_max: float, omega_max: float) -> np.ndarray:
    """(E, R + 5) float32 in [-1, 1]: lidar / range_max (no return = 1), the goal in the robot's frame
    (distance / 10 m clipped to 1, cos and sin of its bearing), the twist / its limits.

    ``pose`` (E, 3) and ``goal`` (E, 2) in one frame: world in the simulators, odom on a robot."""
    dx, dy = goal[:, 0] - pose[:, 0], goal[:, 1] - pose[:, 1]
    bearing = np.arctan2(dy, dx) - pose[:, 2]
    out = np.concatenate([np.asarray(ranges) / range_max,
                          np.stack([np.minimum(np.hypot(dx, dy) / GOAL_SCALE_M, 1.0), np.cos(bearing),
                                    np.sin(bearing)], axis=1),
                          np.clip(np.stack([twist[:, 0] / v_max, twist[:, 1] / omega_max], axis=1), -1.0, 1.0)],
                         axis=1)
    return np.clip(np.nan_to_num(out), -1.0, 1.0).astype(np.float32)


def sector_ranges(scan: LaserScan, num_rays: int, range_max: float) -> np.ndarray | None:
    """The scan min-pooled into ``num_rays`` equal sectors around the robot, sector k covering bearings
    [-π + k·2π/num_rays, -π + (k+1)·2π/num_rays) as in training, capped at ``range_max``.

    Rays are placed by their own angle, so a lidar that starts at 0 instead of -π pools the same.
    None (the robot must not move on it) when the scan cannot show obstacles or leaves a sector
    without a ray (a lidar with a narrower field of view than the training lidar's 360°): the policy
    never saw a blind sector, and reading it as free space would be driving blind. A "too close to
    measure" reading (-inf, REP-117) is an obstacle at distance 0; other invalid readings show nothing.
    """
    if scan.problem(MAX_INVALID_RAY_FRACTION) is not None:
        return None
    r = np.asarray(scan.ranges, dtype=float)
    r = np.where(r == -np.inf, 0.0, np.where(np.isfinite(r) & (r >= scan.range_min), np.minimum(r, range_max),
                                             range_max))
    bearings = scan.angles
    if scan.mount is not None:
        # An offset or turned lidar: each ray's bearing and hit distance as seen from base_link.
        # (No-return rays sit at range_max here, far points in their direction; too-close ones stay 0.)
        d = np.stack([np.cos(bearings), np.sin(bearings), np.zeros(len(r))], axis=1)
        base_dirs = d @ scan.mount.matrix.T
        bearings = np.arctan2(base_dirs[:, 1], base_dirs[:, 0])
        base_pts = scan.mount.apply(d * r[:, None])[:, :2]
        r = np.where(r > 0.0, np.minimum(np.hypot(base_pts[:, 0], base_pts[:, 1]), range_max), 0.0)
    # + 1e-6: a ray exactly on a sector's first bearing belongs to it despite rounding.
    sector = np.floor((wrap_angle(bearings) + math.pi) * (num_rays / (2.0 * math.pi)) + 1e-6).astype(int)
    sector %= num_rays
    if np.bincount(sector, minlength=num_rays).min() == 0:
        return None
    out = np.full(num_rays, range_max)
    np.minimum.at(out, sector, r)
    return out


class AgvPolicy(nn.Module):
    """The deployable actor: observation → tanh MLP (64, 64) → action mean in [-1, 1]²."""

    def __init__(self, obs_size: int, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(obs_size, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
                                 nn.Linear(hidden, 2))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs)

    @torch.no_grad()
    def act(self, obs: np.ndarray) -> np.ndarray:
        return np.clip(self.net(torch.as_tensor(obs, dtype=torch.float32)).numpy(), -1.0, 1.0)


@dataclass(frozen=True)
class ObservationSpec:
    """What the policy was trained to read (stored in its file)."""

    num_rays: int = 24
    range_max_m: float = 6.0
    v_max: float = 0.8
    omega_max: float = 1.5
    dt: float = 0.1

    def __post_init__(self) -> None:
        # A policy file is input like any other: a spec that would divide by zero or build a
        # million-input network is refused here, with the file named by the loader.
        if not (isinstance(self.num_rays, int) and 1 <= self.num_rays <= 4096):
            raise ValueError(f"num_rays: must be an integer in [1, 4096], got {brief(self.num_rays)}")
        for name in ("range_max_m", "v_max", "omega_max", "dt"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name}: must be a finite number > 0, got {brief(value)}")

    @property
    def size(self) -> int:
        return self.num_rays + 5


class PolicyFileError(FieldError):
    """A policy file is missing, unreadable or malformed; names the file and key."""


def save_agv_policy(policy: AgvPolicy, spec: ObservationSpec, path: str | Path, meta: dict | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": POLICY_FORMAT, "version": POLICY_VERSION, "observation": spec.__dict__,
                "meta": meta or {}, "state_dict": {k: v.detach().clone() for k, v in policy.state_dict().items()}},
               path)
    return path


def load_agv_policy(path: str | Path) -> tuple[AgvPolicy, ObservationSpec, dict]:
    """(policy, observation spec, meta) from a file written by :func:`save_agv_policy` (weights only)."""
    src = str(path)
    path = Path(path)
    if not path.is_file():
        raise PolicyFileError(src, "<file>", "policy file not found")
    if not zipfile.is_zipfile(path):
        raise PolicyFileError(src, "<file>", "not a torch checkpoint (not a zip archive)")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise PolicyFileError(src, "<file>", f"unreadable ({type(exc).__name__}: {brief(str(exc), 100)})") from None
    if not isinstance(blob, dict) or blob.get("format") != POLICY_FORMAT or blob.get("version") != POLICY_VERSION:
        raise PolicyFileError(src, "format", f"expected {POLICY_FORMAT} version {POLICY_VERSION}")
    try:
        spec = ObservationSpec(**blob["observation"])
    except (KeyError, TypeError, ValueError) as exc:
        raise PolicyFileError(src, "observation", brief(str(exc), 160)) from None
    policy = AgvPolicy(spec.size)
    try:
        policy.load_state_dict(blob["state_dict"])
    except (KeyError, RuntimeError) as exc:
        raise PolicyFileError(src, "state_dict", brief(str(exc), 160)) from None
    policy.eval()
    return policy, spec, dict(blob.get("meta") or {})


@dataclass(frozen=True)
class LearnedControllerConfig:
    """Plugin ``rl_policy`` of the ``local_controller`` slot."""

    path: str = ""
    """Policy file (``navkit train rnd-agv`` writes one); empty: the policy shipped with navkit."""
    speed_scale: float = 1.0
    """Multiplies the policy's commands (≤ 1 to drive a new robot more gently than it was trained)."""

    def __post_init__(self) -> None:
        if not 0.0 < self.speed_scale <= 1.0:
            raise ValueError(f"speed_scale: must be in (0, 1], got {self.speed_scale}")


class LearnedController:
    """Scan + odometry + goal → the policy's (v, ω); zero whenever an input is missing or unusable."""

    def __init__(self, config: LearnedControllerConfig, default_path: str | Path) -> None:
        self.config = config
        self.policy, self.spec, self.meta = load_agv_policy(config.path or default_path)

    def reset(self) -> None:
        """The policy is memoryless: nothing to forget."""

    def compute(self, observation: Observation, target: ControlTarget) -> VelocityCommand:
        odom, scan, goal = observation.odom, observation.scan, target.goal
        stop = VelocityCommand(observation.stamp, 0.0, 0.0)
        if odom is None or scan is None or goal is None or not odom.is_finite():
            return stop
        if not (math.isfinite(goal.x) and math.isfinite(goal.y)):
            return stop
        s = self.spec
        ranges = sector_ranges(scan, s.num_rays, s.range_max_m)
        if ranges is None:
            return stop
        obs = encode_observation(ranges[None], s.range_max_m, np.array([[odom.pose.x, odom.pose.y, odom.pose.yaw]]),
                                 np.array([[goal.x, goal.y]]), np.array([[odom.v, odom.omega]]), s.v_max, s.omega_max)
        a = self.policy.act(obs)[0] * self.config.speed_scale
        if not np.all(np.isfinite(a)):  # e.g. a policy file with NaN weights: never a command
            return stop
        return VelocityCommand(observation.stamp, float(a[0]) * s.v_max, float(a[1]) * s.omega_max)
