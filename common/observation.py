"""What a robot knows at one instant, and what a local controller is asked to reach.

:class:`Observation` bundles the latest sensor data a robot backend produced (odometry,
scan, named cameras with their intrinsics and extrinsics, an optional point cloud), so a
slot's interface does not change when a new sensor appears: a lidar-only controller reads
``scan``, a visual world-model controller reads ``cameras["front"]``.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from navkit.common.geometry import Pose2D
from navkit.common.sensor_data import CameraImage, LaserScan, Odometry, PointCloud


FRONT_CAMERA = "front"
"""The name of the robot's forward camera in :attr:`Observation.cameras` (in-process and in the ROS 2 controller
node, where it is ``camera/image_raw``)."""


@dataclass(frozen=True)
class Observation:
    """The latest data of every sensor at ``stamp`` (seconds on the robot's clock).

    A sensor that has not reported (or that the robot lacks) is ``None`` / absent. Data
    keeps its own stamps: the scan may be up to one lidar period older than ``stamp``.
    """

    stamp: float
    odom: Odometry | None = None
    scan: LaserScan | None = None
    cameras: Mapping[str, CameraImage] = field(default_factory=dict)
    point_cloud: PointCloud | None = None

    def camera(self, name: str) -> CameraImage | None:
        return self.cameras.get(name)


@dataclass(frozen=True)
class ControlTarget:
    """What the local controller should drive to: a path, a goal pose, and/or a goal image.

    A path-tracking controller uses ``path`` (N, 2) in the odom frame (the frame odometry is
    in); a goal-image controller uses ``goal_image`` (H, W, 3) uint8. Absent fields are None.
    """

    path: np.ndarray | None = None
    goal: Pose2D | None = None
    goal_image: np.ndarray | None = None

    @classmethod
    def along(cls, path: np.ndarray | None) -> ControlTarget:
        """A target from a planner's path: the path, and its end as the goal (the planner's paths end exactly
        at the goal). The in-process stack and the ROS 2 controller node both build targets this way, so a
        path-following and a goal-seeking controller see the same thing in either wiring."""
        if path is None or len(path) == 0:
            return cls()
        end = path[-1]
        return cls(path=path, goal=Pose2D(float(end[0]), float(end[1]), 0.0))
