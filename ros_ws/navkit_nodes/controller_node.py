"""ROS 2 controller node: ``plan`` + ``odom`` (+ ``scan``) -> ``cmd_vel_nav`` (nominal, unfiltered).

Wraps the ``local_controller`` plugin (pure pursuit by default; ``rl_policy`` also reads the
scan and drives to the plan's end). Its output is only a wish: the safety filter node turns it
into ``cmd_vel``. No plan, or odometry that is stale or non-finite, gives a zero command, never a
guess; so does a stale scan for a controller that reads it. A lifecycle node: it commands only
while active, and sends one zero command when deactivated.
"""
from __future__ import annotations

import sys
from typing import Any

from geometry_msgs.msg import TwistStamped
from nav_msgs.msg import Odometry as OdometryMsg
from nav_msgs.msg import Path as PathMsg
from sensor_msgs.msg import LaserScan as LaserScanMsg
from rclpy.qos import QoSProfile

from navkit.common.sensor_data import VelocityCommand, is_fresh
from navkit.common.interfaces import LocalController
from navkit.common.observation import ControlTarget, Observation
from navkit.ros_ws.navkit_nodes.conversions import command_to_msg, from_time, odometry_from_msg, path_from_msg
from navkit.ros_ws.navkit_nodes.declared_params import ParamField, param_fields, plugin_fields
from navkit.ros_ws.navkit_nodes.diagnostics import NodeDiagnostics
from navkit.ros_ws.navkit_nodes.managed_node import ManagedNode
from navkit.ros_ws.navkit_nodes.node_main import run_node
from navkit.ros_ws.navkit_nodes.planner_node import PLAN_QOS
from navkit.stack.config import ControllerNodeConfig, controller_from_params
from navkit.stack.plugin_catalog import default_registry

ODOM_TIMEOUT_S = 0.5


class ControllerNode(ManagedNode):
    def __init__(self) -> None:
        self.registry = default_registry()
        self.controller: LocalController | None = None
        self.path = None
        self.odom = None
        self.scan = None
        self.last_reason = "not started"
        self._io: list[Any] = []
        self._pub: Any = None
        super().__init__("controller")

    def read_config(self, params: dict[str, Any]) -> Any:
        return controller_from_params(params, self.source(), self.registry)

    def param_fields(self, config: Any) -> list[ParamField]:
        node_cfg, choice = config
        return param_fields(ControllerNodeConfig, "", node_cfg) + plugin_fields(choice)

    def build(self, config: Any) -> None:
        self.controller = self.registry.build(config[1])

    def connect(self) -> None:
        self._pub = self.create_publisher(TwistStamped, "cmd_vel_nav", QoSProfile(depth=10))
        self._io = [self.create_subscription(PathMsg, "plan", self._on_plan, PLAN_QOS),  # latched: see PLAN_QOS
                    self.sensor_subscription(OdometryMsg, "odom", self._on_odom),
                    self.sensor_subscription(LaserScanMsg, "scan", self._on_scan)]

    def start(self) -> None:
        self.start_work(self.config[0].rate_hz, self._tick)

    def restart_timers(self) -> None:
        self.start_work(self.config[0].rate_hz, self._tick)  # the rate may have changed

    def stop(self) -> None:
        self.stop_work()
        if self._pub is not None:
            self._pub.publish(command_to_msg(VelocityCommand(self._now(), 0.0, 0.0)))

    def disconnect(self) -> None:
        for sub in self._io:
            self.destroy_subscription(sub)
        self._io = []
        if self._pub is not None:
            self.destroy_publisher(self._pub)
            self._pub = None
        self.path = self.odom = self.scan = None

    def add_checks(self, diagnostics: NodeDiagnostics) -> None:
        diagnostics.add_check("control", lambda: (0 if self.last_reason == "tracking" else 1, self.last_reason,
                                                  {"has_path": self.path is not None}))

    def _now(self) -> float:
        return from_time(self.get_clock().now().to_msg())

    def _on_plan(self, msg: PathMsg) -> None:
        path = path_from_msg(msg)
        self.path = path if len(path) else None
        if self.controller is not None:
            self.controller.reset()

    def _on_odom(self, msg: OdometryMsg) -> None:
        self.odom = odometry_from_msg(msg)

    def _on_scan(self, msg: LaserScanMsg) -> None:
        self.scan = self.scan_in_base(msg)

    def _tick(self) -> None:
        now = self._now()
        odom = self.odom
        command = VelocityCommand(now, 0.0, 0.0)
        if self.controller is None:
            return
        if odom is None or not odom.is_finite() or not is_fresh(odom.stamp, now, ODOM_TIMEOUT_S):
            self.last_reason = "no odometry yet" if odom is None else "odometry stale or invalid: commanding zero"
            if odom is not None:
                self.get_logger().warning("odometry stale or invalid: commanding zero", throttle_duration_sec=1.0)
        else:
            self.last_reason = "tracking" if self.path is not None else "no path: commanding zero"
            scan = self.scan if self.scan is not None and is_fresh(self.scan.stamp, now, ODOM_TIMEOUT_S) else None
            command = self.controller.compute(Observation(now, odom=odom, scan=scan), ControlTarget.along(self.path))
        if self._pub is not None:
            self._pub.publish(command_to_msg(command))


def main(argv: list[str] | None = None) -> int:
    return run_node(ControllerNode, argv)


if __name__ == "__main__":
    sys.exit(main())
