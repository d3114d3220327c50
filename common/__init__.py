"""Shared core: plain data types for sensor data and the ROS 2 parameter-file reader.

Every room leans on these; nothing here imports ROS, MuJoCo or a planner.
"""
from navkit.common.errors import FieldError, NavkitError, ParameterError
from navkit.common.params import config_from_params, load_node_params
from navkit.common.sensor_data import CameraImage, LaserScan, Odometry, Pose2D, VelocityCommand
from navkit.common.swarm_state import SwarmState

__all__ = [
    "FieldError",
    "CameraImage",
    "LaserScan",
    "NavkitError",
    "Odometry",
    "ParameterError",
    "Pose2D",
    "SwarmState",
    "VelocityCommand",
    "config_from_params",
    "load_node_params",
]
