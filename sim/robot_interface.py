"""The one robot interface: simulators and real drivers implement it unchanged.

The in-process runner and the ROS 2 bridge node talk to a robot only through this
protocol, so swapping MuJoCo for a real base is a choice of backend, never a change
of node or algorithm code. Time is the robot's own clock (simulated seconds for a
simulator, wall seconds for hardware): ``advance`` steps physics in simulation and
waits on hardware.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

from navkit.common.errors import NavkitError
from navkit.common.sensor_data import CameraImage, LaserScan, Odometry, Pose2D, VelocityCommand


class SimulationDiverged(NavkitError):
    """Physics produced NaN/Inf or exploded; the episode cannot continue honestly."""



@runtime_checkable
class RobotInterface(Protocol):
    """What every backend (MuJoCo, PyBullet, a serial motor controller, ...) provides."""

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

    def read_scan(self) -> LaserScan:
        """The latest planar lidar scan in the base_scan frame."""

    def read_camera(self) -> CameraImage | None:
        """The latest camera image, or None when the robot has no camera."""


@runtime_checkable
class SimulationTruth(Protocol):
    """Extra access only a simulator has; used for metrics, never by the algorithms."""

    def true_pose(self) -> Pose2D:
        """Ground-truth pose of base_link in the world (map) frame."""

    def in_collision(self) -> bool:
        """True while the robot's body touches an obstacle or wall."""
