"""navkit sensor types <-> ROS 2 messages, field by field.

The only place that knows both worlds: nodes stay thin and algorithms never see a
ROS message. Frames follow REP-105 (odom -> base_link, scan in base_scan).
"""
from __future__ import annotations


import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseStamped, TwistStamped
from nav_msgs.msg import Odometry as OdometryMsg
from nav_msgs.msg import Path as PathMsg
from sensor_msgs.msg import Image as ImageMsg
from sensor_msgs.msg import LaserScan as LaserScanMsg

from navkit.common.geometry import Pose2D, quaternion_to_yaw, yaw_to_quaternion
from navkit.common.sensor_data import CameraImage, LaserScan, Odometry, VelocityCommand


def to_time(seconds: float) -> Time:
    ns = int(round(seconds * 1e9))
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def from_time(stamp: Time) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def odometry_to_msg(odom: Odometry) -> OdometryMsg:
    msg = OdometryMsg()
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


def scan_to_msg(scan: LaserScan) -> LaserScanMsg:
    msg = LaserScanMsg()
    msg.header.stamp = to_time(scan.stamp)
    msg.header.frame_id = scan.frame_id
    msg.angle_min = float(scan.angle_min)
    msg.angle_increment = float(scan.angle_increment)
    msg.angle_max = float(scan.angle_min + scan.angle_increment * (len(scan.ranges) - 1))
    msg.range_min = float(scan.range_min)
    msg.range_max = float(scan.range_max)
    msg.ranges = np.asarray(scan.ranges, dtype=np.float32)
    return msg


def scan_from_msg(msg: LaserScanMsg) -> LaserScan:
    return LaserScan(stamp=from_time(msg.header.stamp), angle_min=msg.angle_min, angle_increment=msg.angle_increment,
                     range_min=msg.range_min, range_max=msg.range_max,
                     ranges=np.asarray(msg.ranges, dtype=np.float32), frame_id=msg.header.frame_id)


def image_to_msg(image: CameraImage) -> ImageMsg:
    msg = ImageMsg()
    msg.header.stamp = to_time(image.stamp)
    msg.header.frame_id = image.frame_id
    msg.height, msg.width = int(image.rgb.shape[0]), int(image.rgb.shape[1])
    msg.encoding = "rgb8"
    msg.step = msg.width * 3
    msg.data = np.ascontiguousarray(image.rgb, dtype=np.uint8).tobytes()
    return msg


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
