"""navkit sensor types <-> ROS 2 messages, field by field.

The only place that knows both worlds: nodes stay thin and algorithms never see a
ROS message. Frames follow REP-105 (odom -> base_link, scan in base_scan).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseStamped, TwistStamped
from nav_msgs.msg import OccupancyGrid as OccupancyGridMsg
from nav_msgs.msg import Odometry as OdometryMsg
from nav_msgs.msg import Path as PathMsg
from sensor_msgs.msg import Image as ImageMsg
from sensor_msgs.msg import LaserScan as LaserScanMsg

from navkit.common.geometry import Pose2D, RigidTransform, quaternion_to_yaw, yaw_to_quaternion
from navkit.common.occupancy_grid import OccupancyGrid
from navkit.common.sensor_data import CameraImage, LaserScan, Odometry, VelocityCommand


def to_time(seconds: float) -> Time:
    ns = int(round(seconds * 1e9))
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def from_time(stamp: Time) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def _diagonal_6x6(diagonal: Sequence[float]) -> list[float]:
    cov = [0.0] * 36
    for i, value in enumerate(diagonal):
        cov[7 * i] = float(value)
    return cov


def odometry_to_msg(odom: Odometry, pose_covariance_diagonal: Sequence[float] | None = None,
                    twist_covariance_diagonal: Sequence[float] | None = None) -> OdometryMsg:
    """``odom`` as nav_msgs/Odometry; covariances from the given 6-element diagonals (row-major 6x6)."""
    msg = OdometryMsg()
    if pose_covariance_diagonal is not None:
        msg.pose.covariance = _diagonal_6x6(pose_covariance_diagonal)
    if twist_covariance_diagonal is not None:
        msg.twist.covariance = _diagonal_6x6(twist_covariance_diagonal)
    msg.header.stamp = to_time(odom.stamp)
    msg.header.frame_id = odom.frame_id
    msg.child_frame_id = odom.child_frame_id
    msg.pose.pose.position.x = float(odom.pose.x)
    msg.pose.pose.position.y = float(odom.pose.y)
    q = msg.pose.pose.orientation
    q.x, q.y, q.z, q.w = yaw_to_quaternion(float(odom.pose.yaw))
    msg.twist.twist.linear.x = float(odom.v)
    msg.twist.twist.angular.z = float(odom.omega)
    return msg


def odometry_from_msg(msg: OdometryMsg) -> Odometry:
    p, q = msg.pose.pose.position, msg.pose.pose.orientation
    return Odometry(stamp=from_time(msg.header.stamp), pose=Pose2D(p.x, p.y, quaternion_to_yaw(q.x, q.y, q.z, q.w)),
                    v=msg.twist.twist.linear.x, omega=msg.twist.twist.angular.z,
                    frame_id=msg.header.frame_id, child_frame_id=msg.child_frame_id)


def scan_to_msg(scan: LaserScan, stamp: float | None = None) -> LaserScanMsg:
    """``scan`` as sensor_msgs/LaserScan (stamped ``stamp`` when given: a driver's clock). The mount is not
    in the message: it travels on /tf_static, as on any ROS robot."""
    msg = LaserScanMsg()
    msg.header.stamp = to_time(scan.stamp if stamp is None else stamp)
    msg.header.frame_id = scan.frame_id
    msg.angle_min = float(scan.angle_min)
    msg.angle_increment = float(scan.angle_increment)
    msg.angle_max = float(scan.angle_min + scan.angle_increment * (len(scan.ranges) - 1))
    msg.range_min = float(scan.range_min)
    msg.range_max = float(scan.range_max)
    msg.ranges = np.asarray(scan.ranges, dtype=np.float32)
    return msg


def scan_from_msg(msg: LaserScanMsg, mount: RigidTransform | None = None) -> LaserScan:
    """A LaserScan message; ``mount`` (``base_link <- header.frame_id``, looked up in TF) places its points."""
    return LaserScan(stamp=from_time(msg.header.stamp), angle_min=msg.angle_min, angle_increment=msg.angle_increment,
                     range_min=msg.range_min, range_max=msg.range_max,
                     ranges=np.asarray(msg.ranges, dtype=np.float32), frame_id=msg.header.frame_id, mount=mount)


def image_to_msg(image: CameraImage, stamp: float | None = None) -> ImageMsg:
    msg = ImageMsg()
    msg.header.stamp = to_time(image.stamp if stamp is None else stamp)
    msg.header.frame_id = image.frame_id
    msg.height, msg.width = int(image.rgb.shape[0]), int(image.rgb.shape[1])
    msg.encoding = "rgb8"
    msg.step = msg.width * 3
    msg.data = np.ascontiguousarray(image.rgb, dtype=np.uint8).tobytes()
    return msg


IMAGE_CHANNELS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}
"""The 8-bit encodings :func:`image_from_msg` reads (sensor_msgs/image_encodings names), channels per pixel."""


def image_from_msg(msg: ImageMsg) -> CameraImage:
    """sensor_msgs/Image -> an RGB (H, W, 3) uint8 :class:`CameraImage` (its own copy of the pixels).

    The inverse of :func:`image_to_msg`. ``rgb8`` is taken as is, ``bgr8`` has its channels
    swapped, ``rgba8``/``bgra8`` lose alpha, ``mono8`` is replicated into three channels; ``step``
    (bytes per row, possibly padded) is honoured and ``is_bigendian`` is irrelevant for 8-bit
    data. Intrinsics and extrinsics are not in the message (camera_info, TF) and stay None.

    Raises ValueError naming the field for an image navkit cannot read right: zero width or
    height, an unknown encoding, a ``step`` shorter than a row, or ``data`` whose length is not
    ``step * height``. Nothing else escapes: a node catches ValueError and reports the message.
    """
    h, w = int(msg.height), int(msg.width)
    if h <= 0 or w <= 0:
        raise ValueError(f"height/width: {h} x {w} pixels is an empty image")
    encoding = str(msg.encoding)
    channels = IMAGE_CHANNELS.get(encoding)
    if channels is None:
        raise ValueError(f"encoding: {encoding!r} is not one of {', '.join(IMAGE_CHANNELS)}")
    step = int(msg.step)
    if step < w * channels:
        raise ValueError(f"step: {step} bytes per row, a {w}-pixel {encoding} row needs at least {w * channels}")
    data = np.frombuffer(msg.data, dtype=np.uint8) if len(msg.data) else np.zeros(0, dtype=np.uint8)
    if data.size != step * h:
        raise ValueError(f"data: {data.size} bytes, expected step x height = {step * h}")
    pixels = data.reshape(h, step)[:, :w * channels].reshape(h, w, channels)
    if encoding == "rgb8":
        rgb = pixels
    elif encoding == "bgr8":
        rgb = pixels[..., ::-1]
    elif encoding == "rgba8":
        rgb = pixels[..., :3]
    elif encoding == "bgra8":
        rgb = pixels[..., 2::-1]
    else:  # mono8
        rgb = np.repeat(pixels, 3, axis=2)
    return CameraImage(stamp=from_time(msg.header.stamp), rgb=np.array(rgb, dtype=np.uint8, order="C"),
                       frame_id=msg.header.frame_id or "camera_optical_frame")


def command_to_msg(cmd: VelocityCommand, frame_id: str = "base_link") -> TwistStamped:
    msg = TwistStamped()
    msg.header.stamp = to_time(cmd.stamp)
    msg.header.frame_id = frame_id
    msg.twist.linear.x = float(cmd.v)
    msg.twist.angular.z = float(cmd.omega)
    return msg


def command_from_msg(msg: TwistStamped) -> VelocityCommand:
    return VelocityCommand(stamp=from_time(msg.header.stamp), v=msg.twist.linear.x, omega=msg.twist.angular.z)


def path_to_msg(path: np.ndarray | None, stamp: float, frame_id: str = "odom") -> PathMsg:
    """An empty Path means 'no path: stop'."""
    msg = PathMsg()
    msg.header.stamp = to_time(stamp)
    msg.header.frame_id = frame_id
    if path is not None:
        for x, y in np.asarray(path, dtype=float):
            pose = PoseStamped()
            pose.header = msg.header
            pose.pose.position.x = float(x)
            pose.pose.position.y = float(y)
            pose.pose.orientation.w = 1.0
            msg.poses.append(pose)
    return msg


def path_from_msg(msg: PathMsg) -> np.ndarray:
    return np.array([[p.pose.position.x, p.pose.position.y] for p in msg.poses], dtype=float).reshape(-1, 2)


MAX_MAP_CELLS = 25_000_000


def planar_quaternion(q: Any, tolerance: float = 1e-3) -> bool:
    """True for a unit quaternion that only rotates about z (x = y = 0): a pose on the floor plane.

    A zero quaternion or a rolled one (a mirrored map, a pose upside down) is not a planar pose and
    must be refused rather than read as yaw 0.
    """
    norm = math.sqrt(q.x * q.x + q.y * q.y + q.z * q.z + q.w * q.w)
    return abs(norm - 1.0) <= tolerance and abs(q.x) <= tolerance and abs(q.y) <= tolerance


def grid_from_msg(msg: OccupancyGridMsg, *, unknown_is_occupied: bool = True,
                  occupied_threshold: int = 65) -> OccupancyGrid:
    """nav_msgs/OccupancyGrid -> navkit's grid (row 0 at the origin, as in the message).

    Raises ValueError naming the field for a map navkit cannot read right: an empty or
    oversized grid, data of the wrong length, a non-finite or non-positive resolution, or a
    rotated origin (it would be misread, not approximated).
    """
    info = msg.info
    w, h, res = int(info.width), int(info.height), float(info.resolution)
    if w <= 0 or h <= 0 or w * h > MAX_MAP_CELLS:
        raise ValueError(f"info.width/height: {w} x {h} cells is empty or larger than {MAX_MAP_CELLS}")
    if not (np.isfinite(res) and res > 0.0):
        raise ValueError(f"info.resolution: must be a positive finite number, got {res}")
    if len(msg.data) != w * h:
        raise ValueError(f"data: {len(msg.data)} cells, expected width x height = {w * h}")
    p, q = info.origin.position, info.origin.orientation
    if not all(np.isfinite(v) for v in (p.x, p.y, q.x, q.y, q.z, q.w)):
        raise ValueError("info.origin: holds NaN/Inf")
    if not planar_quaternion(q) or abs(quaternion_to_yaw(q.x, q.y, q.z, q.w)) > 1e-6:
        raise ValueError("info.origin: rotated (or not unit) map origins are not supported")
    cells = np.asarray(msg.data, dtype=np.int16).reshape(h, w)
    occupied = cells >= occupied_threshold
    if unknown_is_occupied:
        occupied |= cells < 0
    return OccupancyGrid(occupied, res, (float(p.x), float(p.y)))
