"""Lidar scan -> obstacle points: the perception stage of the navigation spine.

The planner needs lidar hits in the map frame (to notice what the map lacks); the
safety filter works on the raw scan in the robot frame. Keeping this conversion in
one place means both wirings (in-process and ROS 2) see the same points.
"""
from __future__ import annotations

import math

import numpy as np

from navkit.common.sensor_data import LaserScan, Pose2D


def scan_to_world_points(scan: LaserScan, pose: Pose2D, *, max_range_m: float | None = None) -> np.ndarray:
    """Hit points (N, 2) in the frame ``pose`` lives in (odom/map).

    ``max_range_m`` drops far returns: they are noisy and the planner only needs what
    can block the next few metres of its path.
    """
    pts = scan.points_base(max_range_m=math.inf if max_range_m is None else max_range_m)
    c, s = np.cos(pose.yaw), np.sin(pose.yaw)
    return np.stack([pose.x + c * pts[:, 0] - s * pts[:, 1], pose.y + s * pts[:, 0] + c * pts[:, 1]], axis=1)
