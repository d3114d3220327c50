"""The protocols of every slot in navkit: what a plugin must provide, in numpy terms.

Like MuJoCo MPC's planner interface or Nav2's plugin base classes, each slot is one small
contract; implementations live in the rooms above (``sim/``, ``hardware/``, ``perception/``,
``planning/``, ``control/``) and are chosen by name through
:class:`~navkit.common.plugins.PluginRegistry`. Everything crosses these boundaries as
numpy arrays and the plain types of :mod:`navkit.common.sensor_data`, so no algorithm
imports ROS, a simulator or another algorithm room.

Slots and the protocol each plugin implements:

============================  ==============================================================
``robot_backend``             :class:`RobotBackend` (+ :class:`SimulationTruth` in simulation)
``swarm_backend``             :class:`SwarmBackend`
``map_source``                :class:`MapSource`
``global_planner``            :class:`GlobalPlanner`
``local_controller``          :class:`LocalController`
``safety_filter``             :class:`SafetyFilter`
``cbf_policy``                :class:`CbfParameterPolicy`
``image_encoder``             :class:`ImageEncoder`
``world_model``               :class:`WorldModel`
============================  ==============================================================
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["CbfParameterPolicy", "EncodedImages", "FilterResult", "FilterStats", "FilterStatus", "GlobalPlanner",
           "ImageEncoder", "LocalController", "MapSource", "PlanningFailed", "RobotBackend", "SafetyFilter",
           "SimulationTruth", "SwarmBackend", "WorldModel"]

from navkit.common.errors import PlanningFailed
from navkit.common.geometry import Pose2D
from navkit.common.observation import ControlTarget, Observation
from navkit.common.occupancy_grid import OccupancyGrid
from navkit.common.sensor_data import CameraImage, LaserScan, Odometry, VelocityCommand
from navkit.common.swarm_state import SwarmState, SwarmStep


# ----------------------------------------------------------------------------------------- robots


@runtime_checkable
class RobotBackend(Protocol):
    """One robot, simulated or real: what the in-process runner and the ROS 2 bridge drive.

    Time is the robot's own clock (simulated seconds, or wall seconds on hardware):
    ``advance`` steps physics in simulation and waits on hardware. Commands go through the
    driver's watchdog: a command older than its timeout stops the base.
    """

    def reset(self, seed: int | None = None) -> None:
        """Put the robot at its start and zero its command; reseed sensor noise."""

    def now(self) -> float:
        """Robot clock in seconds."""

    def advance(self, duration_s: float) -> None:
        """Let ``duration_s`` of robot time pass (simulate it, or wait for it)."""

    def apply_command(self, cmd: VelocityCommand) -> None:
        """Drive with (v, omega) until the next command; non-finite or stale commands stop the base."""

    def read_odometry(self) -> Odometry:
        """Wheel odometry, odom -> base_link (REP-105)."""

    def read_scan(self) -> LaserScan | None:
        """The latest planar lidar scan (with its mount), or None when the lidar has its own driver
        (a real base: the scan then arrives on ``scan`` from that driver)."""

    def read_camera(self) -> CameraImage | None:
        """The latest camera image (with intrinsics and mount), or None when the robot has no camera."""

    @property
    def watchdog_trips(self) -> int:
        """How many times the driver watchdog stopped the base because commands went stale."""

    def close(self) -> None:
        """Release the simulator, renderer or serial port."""


@runtime_checkable
class SimulationTruth(Protocol):
    """What only a simulator knows; for metrics and videos, never for the algorithms."""

    def true_pose(self) -> Pose2D:
        """Ground-truth pose of base_link in the world (map) frame."""

    def in_collision(self) -> bool:
        """True while the robot's body touches an obstacle or wall."""

    def render_topdown(self, width: int, height: int) -> np.ndarray:
        """An overhead RGB frame (H, W, 3) uint8 for videos."""


@runtime_checkable
class SwarmBackend(Protocol):
    """A robot team stepped together: the vectorised kinematic simulator or MuJoCo physics."""

    @property
    def state(self) -> SwarmState:
        """The team now (B scenes x N agents)."""

    def reset(self) -> SwarmState:
        """Every agent back at its start."""

    def step(self, u: np.ndarray) -> SwarmStep:
        """Apply commands (B, N, 2) for one control period; non-finite commands mean stop."""


# ----------------------------------------------------------------------------------------- maps


class MapSource(Protocol):
    """Where a planner's static map comes from: a scenario in simulation, a map file on a robot."""

    def load(self) -> OccupancyGrid:
        """The static map, in the ``map`` frame."""


# -------------------------------------------------------------------------------------- planning


class GlobalPlanner(Protocol):
    """Map + start + goal -> a path, or :class:`PlanningFailed`."""

    def plan(self, start: Pose2D, goal: tuple[float, float]) -> np.ndarray:
        """Waypoints (N, 2) in the map frame from ``start`` to ``goal``; raises PlanningFailed."""

    def observe(self, points_map: np.ndarray) -> None:
        """Obstacle points (M, 2) the sensors see that the static map may lack."""

    def path_blocked(self, path: np.ndarray, position: tuple[float, float]) -> bool:
        """True when what was observed now blocks ``path`` ahead of ``position``."""

    def forget_observations(self) -> None:
        """Drop what was observed (obstacles move); the static map stays."""

    def in_map(self, position: tuple[float, float]) -> bool:
        """True when ``position`` lies inside the planner's map."""


# --------------------------------------------------------------------------------------- control


class LocalController(Protocol):
    """Observation + target -> a nominal command (the safety filter comes after it)."""

    def compute(self, observation: Observation, target: ControlTarget) -> VelocityCommand:
        """The command to send now; zero when the inputs it needs are missing or invalid."""

    def reset(self) -> None:
        """Forget progress along the previous target (a new path or goal arrived)."""


@runtime_checkable
class CommandObserver(Protocol):
    """Optional for a local controller: it is told the command the robot was actually given, after the
    safety filter, every control period. A controller whose internal state depends on what was executed
    (a world model's action history) needs this: the filter may have braked or steered its wish."""

    def observe_command(self, command: VelocityCommand) -> None:
        """The filtered command sent for the period that ``compute`` was just asked about."""


class FilterStatus(Enum):
    """What a safety filter did on one tick."""

    PASS = "pass"
    """The nominal command was safe and is output unchanged."""
    MODIFIED = "modified"
    """The nominal command was replaced by the closest safe one."""
    INFEASIBLE_BRAKE = "infeasible_brake"
    """No safe command exists (robot already too close): the documented fallback (zero)."""
    INVALID_INPUT = "invalid_input"
    """NaN/Inf in the command, its stamp or the clock, or sensor data that cannot show obstacles: zero."""
    STALE_INPUT = "stale_input"
    """Command or sensor data too old (or from the future): zero."""
    NO_SCAN = "no_scan"
    """No sensor data yet: zero (never drive blind)."""


@dataclass(frozen=True)
class FilterResult:
    """One tick's output; ``command`` is what must be sent to the robot."""

    command: VelocityCommand
    status: FilterStatus
    num_constraints: int
    min_h: float
    solve_time_s: float
    detail: str = ""
    """Why an input was refused (empty otherwise), for the log line."""


@dataclass
class FilterStats:
    """Counters since construction or ``reset_stats``."""

    ticks: int = 0
    interventions: int = 0
    infeasible: int = 0
    invalid_input: int = 0
    stale_input: int = 0
    no_scan: int = 0


class SafetyFilter(Protocol):
    """Command + observation -> the closest safe command and what was done; always the last stage."""

    stats: FilterStats

    def filter(self, cmd: VelocityCommand, observation: Observation, now: float) -> FilterResult:
        """Never raises on bad data: bad, stale or missing inputs give a zero command and a status."""

    def reset_stats(self) -> None:
        """Zero the counters."""


class CbfParameterPolicy(Protocol):
    """Where each robot's CBF gain α comes from every control period (fixed, or a learned policy)."""

    def __call__(self, state: SwarmState) -> np.ndarray:
        """(B, N) positive gains."""


# ------------------------------------------------------------------------------------ perception


@dataclass(frozen=True)
class EncodedImages:
    """What an image encoder gives: per-patch features and one global descriptor per image."""

    patch_tokens: np.ndarray
    """(B, P, D) float32, P = grid_h * grid_w patches in row-major order."""
    global_descriptor: np.ndarray
    """(B, D) float32 (e.g. the CLS token, or pooled patches)."""
    grid: tuple[int, int]
    """(grid_h, grid_w) of the patches."""


class ImageEncoder(Protocol):
    """Images -> patch features + global descriptor (a DINOv2-style ViT, or any backbone)."""

    patch_size: int
    embed_dim: int

    def encode(self, images: np.ndarray) -> EncodedImages:
        """``images`` (B, H, W, 3) uint8 RGB."""


class WorldModel(Protocol):
    """A learned latent dynamics model a planner optimises actions through (DINO-WM)."""

    action_dim: int

    def encode(self, images: np.ndarray, proprio: np.ndarray | None = None) -> np.ndarray:
        """Observations (B, H, W, 3) (+ proprioception (B, P)) -> latents (B, ...)."""

    def predict(self, latents: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Roll latents (B, ...) forward under action sequences (B, T, action_dim) -> (B, T, ...)."""

    def cost(self, predicted: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """(B,) distance of each predicted final latent to the goal latent."""
