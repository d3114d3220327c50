"""navkit.common, the base room: plain types, the protocol of every slot, parameters, errors, plugins.

Every other room leans on these; nothing here imports ROS, a simulator, torch or another
room (a test enforces it).
"""
from navkit.common.errors import FieldError, NavkitError, ParameterError, PlanningFailed, SimulationDiverged
from navkit.common.geometry import Pose2D, RigidTransform, wrap_angle
from navkit.common.observation import ControlTarget, Observation
from navkit.common.params import config_from_params, load_node_params
from navkit.common.plugins import Plugin, PluginChoice, PluginRegistry, Slot
from navkit.common.sensor_data import (CameraImage, CameraIntrinsics, LaserScan, Odometry, PointCloud,
                                       VelocityCommand, is_fresh)
from navkit.common.swarm_state import SwarmState, SwarmStep

__all__ = [
    "CameraImage",
    "CameraIntrinsics",
    "ControlTarget",
    "FieldError",
    "LaserScan",
    "NavkitError",
    "Observation",
    "Odometry",
    "ParameterError",
    "PlanningFailed",
    "Plugin",
    "PluginChoice",
    "PluginRegistry",
    "PointCloud",
    "Pose2D",
    "RigidTransform",
    "SimulationDiverged",
    "Slot",
    "SwarmState",
    "SwarmStep",
    "VelocityCommand",
    "config_from_params",
    "is_fresh",
    "load_node_params",
    "wrap_angle",
]
