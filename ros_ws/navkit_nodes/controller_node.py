"""ROS 2 controller node: ``plan`` + ``odom`` (+ ``scan``) -> ``cmd_vel_nav`` (nominal, unfiltered).

Wraps the ``local_controller`` plugin (pure pursuit by default; ``rl_policy`` also reads the
scan and drives to the plan's end). Its output is only a wish: the safety filter node turns it
into ``cmd_vel``. No plan, or odometry that is stale or non-finite, gives a zero command, never a
guess; so does a stale scan for a controller that reads it.
"""
from __future__ import annotations

import sys

from geometry_msgs.msg import TwistStamped
from nav_msgs.msg import Odometry as OdometryMsg
from nav_msgs.msg import Path as PathMsg
from sensor_msgs.msg import LaserScan as LaserScanMsg
from rclpy.node import Node
from rclpy.qos import QoSProfile

from navkit.common.sensor_data import VelocityCommand, is_fresh
from navkit.common.interfaces import LocalController
from navkit.common.observation import ControlTarget, Observation
from navkit.ros_ws.navkit_nodes.conversions import (command_to_msg, from_time, odometry_from_msg, path_from_msg,
                                                    scan_from_msg)
from navkit.ros_ws.navkit_nodes.node_main import node_params, params_source, run_node
from navkit.ros_ws.navkit_nodes.planner_node import PLAN_QOS
from navkit.stack.config import controller_from_params
from navkit.stack.plugin_catalog import default_registry

ODOM_TIMEOUT_S = 0.5


class ControllerNode(Node):
    def __init__(self) -> None:
        super().__init__("controller", automatically_declare_parameters_from_overrides=True)
        registry = default_registry()
        node_cfg, choice = controller_from_params(node_params(self), params_source(self), registry)
        self.controller: LocalController = registry.build(choice)
        self.path = None
        self.odom = None
        self.scan = None
        qos = QoSProfile(depth=10)
        self.cmd_pub = self.create_publisher(TwistStamped, "cmd_vel_nav", qos)
        self.create_subscription(PathMsg, "plan", self._on_plan, PLAN_QOS)  # latched: see PLAN_QOS
        self.create_subscription(OdometryMsg, "odom", self._on_odom, qos)
        self.create_subscription(LaserScanMsg, "scan", self._on_scan, qos)
        self.create_timer(1.0 / node_cfg.rate_hz, self._tick)

    def _on_plan(self, msg: PathMsg) -> None:
        path = path_from_msg(msg)
        self.path = path if len(path) else None
        self.controller.reset()

    def _on_odom(self, msg: OdometryMsg) -> None:
        self.odom = odometry_from_msg(msg)

    def _on_scan(self, msg: LaserScanMsg) -> None:
        self.scan = scan_from_msg(msg)

    def _tick(self) -> None:
        now = from_time(self.get_clock().now().to_msg())
        odom = self.odom
        command = VelocityCommand(now, 0.0, 0.0)
        if odom is None or not odom.is_finite() or not is_fresh(odom.stamp, now, ODOM_TIMEOUT_S):
            if odom is not None:
                self.get_logger().warning("odometry stale or invalid: commanding zero", throttle_duration_sec=1.0)
        else:
            scan = self.scan if self.scan is not None and is_fresh(self.scan.stamp, now, ODOM_TIMEOUT_S) else None
            command = self.controller.compute(Observation(now, odom=odom, scan=scan), ControlTarget.along(self.path))
        self.cmd_pub.publish(command_to_msg(command))


def main(argv: list[str] | None = None) -> int:
    return run_node(ControllerNode, argv)


if __name__ == "__main__":
    sys.exit(main())
