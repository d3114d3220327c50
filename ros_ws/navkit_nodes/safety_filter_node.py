"""ROS 2 safety filter node: ``cmd_vel_nav`` + ``scan`` -> ``cmd_vel`` (TwistStamped).

The last stage before the robot, like Nav2's collision monitor. It wraps the
``safety_filter`` plugin (:class:`~navkit.control.cbf_filter.CbfSafetyFilter` by default) unchanged: infeasible QP -> brake,
NaN/Inf or stale inputs -> zero velocity, each counted and logged at most once per
second, never a crash and never motion. With ``filter_on_scan`` it re-filters the last
nominal command the moment a scan arrives, so an obstacle reaches the wheels within
one message hop.
"""
from __future__ import annotations

import math
import sys
import time

from geometry_msgs.msg import TwistStamped
from rclpy.node import Node
from rclpy.qos import QoSProfile
from sensor_msgs.msg import LaserScan as LaserScanMsg

from navkit.common.sensor_data import VelocityCommand
from navkit.common.interfaces import FilterStatus, SafetyFilter
from navkit.common.observation import Observation
from navkit.ros_ws.navkit_nodes.conversions import command_from_msg, command_to_msg, from_time, scan_from_msg
from navkit.ros_ws.navkit_nodes.node_main import node_params, params_source, run_node
from navkit.stack.config import safety_filter_from_params
from navkit.stack.plugin_catalog import default_registry

_REFUSALS = {FilterStatus.INFEASIBLE_BRAKE: "QP infeasible",
             FilterStatus.INVALID_INPUT: "invalid input",
             FilterStatus.STALE_INPUT: "stale input",
             FilterStatus.NO_SCAN: "no scan yet"}
LOG_PERIOD_S = 1.0
"""Each kind of refusal is logged at most once per this many (wall) seconds."""


class SafetyFilterNode(Node):
    def __init__(self) -> None:
        super().__init__("safety_filter", automatically_declare_parameters_from_overrides=True)
        registry = default_registry()
        self.node_cfg, choice = safety_filter_from_params(node_params(self), params_source(self), registry)
        self.filter: SafetyFilter = registry.build(choice)
        self.scan = None
        self.cmd: VelocityCommand | None = None
        self._last_logged: dict[FilterStatus, float] = {}
        qos = QoSProfile(depth=10)
        self.cmd_pub = self.create_publisher(TwistStamped, "cmd_vel", qos)
        self.create_subscription(TwistStamped, "cmd_vel_nav", self._on_cmd, qos)
        self.create_subscription(LaserScanMsg, "scan", self._on_scan, qos)

    def _now(self) -> float:
        return from_time(self.get_clock().now().to_msg())

    def _on_cmd(self, msg: TwistStamped) -> None:
        self.cmd = command_from_msg(msg)
        self._publish()

    def _on_scan(self, msg: LaserScanMsg) -> None:
        self.scan = scan_from_msg(msg)
        if self.node_cfg.filter_on_scan and self.cmd is not None:
            self._publish()

    def _publish(self) -> None:
        now = self._now()
        result = self.filter.filter(self.cmd, Observation(now, scan=self.scan), now)
        text = _REFUSALS.get(result.status)
        wall = time.monotonic()
        if text is not None and wall - self._last_logged.get(result.status, -math.inf) >= LOG_PERIOD_S:
            self._last_logged[result.status] = wall
            s = self.filter.stats
            detail = f" ({result.detail})" if result.detail and result.detail != text else ""
            action = "braking" if result.status is FilterStatus.INFEASIBLE_BRAKE else "commanding zero"
            self.get_logger().warning(
                f"{text}{detail}: {action} [counts: infeasible {s.infeasible}, invalid {s.invalid_input}, "
                f"stale {s.stale_input}, no scan {s.no_scan}]")
        self.cmd_pub.publish(command_to_msg(result.command))

    def destroy_node(self) -> None:
        # Printed, not logged: at shutdown the rosout publisher may already be gone.
        s = self.filter.stats
        print(f"filter stats: ticks {s.ticks}, interventions {s.interventions}, infeasible {s.infeasible}, "
              f"invalid {s.invalid_input}, stale {s.stale_input}", file=sys.stderr)
        super().destroy_node()


def main(argv: list[str] | None = None) -> int:
    return run_node(SafetyFilterNode, argv)


if __name__ == "__main__":
    sys.exit(main())
