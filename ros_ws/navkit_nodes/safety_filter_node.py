"""ROS 2 safety filter node: ``cmd_vel_nav`` + ``scan`` -> ``cmd_vel`` (TwistStamped or Twist).

The last stage before the robot, like Nav2's collision monitor. It wraps the
``safety_filter`` plugin (:class:`~navkit.control.cbf_filter.CbfSafetyFilter` by default) unchanged: infeasible QP -> brake,
NaN/Inf or stale inputs -> zero velocity, each counted, logged at most once per second and
reported on ``/diagnostics``; never a crash and never motion. With ``filter_on_scan`` it
re-filters the last nominal command the moment a scan arrives, so an obstacle reaches the
wheels within one message hop. The scan is placed on the robot by its mount from TF
(``base_link <- scan frame``), so an offset or turned lidar constrains the right place.

A lifecycle node (:mod:`~navkit.ros_ws.navkit_nodes.managed_node`): inactive, it publishes
nothing but one zero command on deactivation, so the driver's watchdog holds the robot.
``cmd_vel_stamped: false`` publishes plain ``geometry_msgs/Twist`` for drivers that take it
(older diff_drive_controller set-ups, Kobuki); the choice is a launch argument.
"""
from __future__ import annotations

import math
import sys
import time
from typing import Any

from geometry_msgs.msg import Twist, TwistStamped
from rclpy.qos import QoSProfile
from sensor_msgs.msg import LaserScan as LaserScanMsg

from navkit.common.interfaces import FilterStatus, SafetyFilter
from navkit.common.observation import Observation
from navkit.common.plugins import PluginChoice
from navkit.common.sensor_data import LaserScan, VelocityCommand
from navkit.ros_ws.navkit_nodes.conversions import command_from_msg, command_to_msg, from_time
from navkit.ros_ws.navkit_nodes.declared_params import ParamField, param_fields, plugin_fields
from navkit.ros_ws.navkit_nodes.diagnostics import NodeDiagnostics
from navkit.ros_ws.navkit_nodes.managed_node import ManagedNode
from navkit.ros_ws.navkit_nodes.node_main import run_node
from navkit.stack.config import SafetyFilterNodeConfig, safety_filter_from_params
from navkit.stack.plugin_catalog import default_registry

_REFUSALS = {FilterStatus.INFEASIBLE_BRAKE: "QP infeasible",
             FilterStatus.INVALID_INPUT: "invalid input",
             FilterStatus.STALE_INPUT: "stale input",
             FilterStatus.NO_SCAN: "no scan yet"}
LOG_PERIOD_S = 1.0
"""Each kind of refusal is logged at most once per this many (wall) seconds."""


class SafetyFilterNode(ManagedNode):
    def __init__(self) -> None:
        self.registry = default_registry()
        self.filter: SafetyFilter | None = None
        self.scan: LaserScan | None = None
        self.cmd: VelocityCommand | None = None
        self.last: Any = None
        self._last_logged: dict[FilterStatus, float] = {}
        self._pub: Any = None
        self._subs: list[Any] = []
        super().__init__("safety_filter")

    # -------------------------------------------------------------- configuration

    def read_config(self, params: dict[str, Any]) -> tuple[SafetyFilterNodeConfig, PluginChoice]:
        return safety_filter_from_params(params, self.source(), self.registry)

    def param_fields(self, config: Any) -> list[ParamField]:
        node_cfg, choice = config
        # The frame check is a safety property: not something to switch off at run time.
        return param_fields(SafetyFilterNodeConfig, "", node_cfg, structural=("cmd_vel_stamped",)) + \
            plugin_fields(choice, structural=("safety_filter.scan_frame_id",))

    def build(self, config: Any) -> None:
        old = self.filter
        self.filter = self.registry.build(config[1])
        if old is not None:  # keep counting across a parameter change
            self.filter.stats = old.stats

    def connect(self) -> None:
        stamped = self.config[0].cmd_vel_stamped
        self._pub = self.create_publisher(TwistStamped if stamped else Twist, "cmd_vel", QoSProfile(depth=10))
        self._subs = [self.create_subscription(TwistStamped, "cmd_vel_nav", self._on_cmd, QoSProfile(depth=10)),
                      self.sensor_subscription(LaserScanMsg, "scan", self._on_scan)]

    def disconnect(self) -> None:
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []
        if self._pub is not None:
            self.destroy_publisher(self._pub)
            self._pub = None
        self.scan = self.cmd = None

    def stop(self) -> None:
        # Leave the robot commanded to stand still, not coasting on the last command until its watchdog.
        self._send(VelocityCommand(self._now(), 0.0, 0.0))

    def add_checks(self, diagnostics: NodeDiagnostics) -> None:
        diagnostics.add_check("filter", self._filter_status)

    def _filter_status(self) -> tuple[int, str, dict[str, Any]]:
        if self.filter is None:
            return 1, "not configured", {}
        s = self.filter.stats
        values = {"ticks": s.ticks, "interventions": s.interventions, "infeasible": s.infeasible,
                  "invalid_input": s.invalid_input, "stale_input": s.stale_input, "no_scan": s.no_scan}
        last = self.last
        if last is None:
            return 0, "no command filtered yet", values
        values["last_status"] = last.status.value
        if last.detail:
            values["last_detail"] = last.detail
        if last.status in _REFUSALS:
            return 1, f"commanding zero: {_REFUSALS[last.status]}", values
        return 0, f"last command {last.status.value}", values

    # -------------------------------------------------------------- work

    def _now(self) -> float:
        return from_time(self.get_clock().now().to_msg())

    def _on_cmd(self, msg: TwistStamped) -> None:
        self.cmd = command_from_msg(msg)
        self._publish()

    def _on_scan(self, msg: LaserScanMsg) -> None:
        self.scan = self.scan_in_base(msg)
        if self.config[0].filter_on_scan and self.cmd is not None:
            self._publish()

    def _send(self, command: VelocityCommand) -> None:
        if self._pub is None:
            return
        msg = command_to_msg(command)
        self._pub.publish(msg if self.config[0].cmd_vel_stamped else msg.twist)

    def _publish(self) -> None:
        if not self.active or self.filter is None or self.cmd is None:
            return
        now = self._now()
        result = self.filter.filter(self.cmd, Observation(now, scan=self.scan), now)
        self.last = result
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
        self._send(result.command)

    def destroy_node(self) -> None:
        # Printed, not logged: at shutdown the rosout publisher may already be gone.
        if self.filter is not None:
            s = self.filter.stats
            print(f"filter stats: ticks {s.ticks}, interventions {s.interventions}, infeasible {s.infeasible}, "
                  f"invalid {s.invalid_input}, stale {s.stale_input}", file=sys.stderr)
        super().destroy_node()


def main(argv: list[str] | None = None) -> int:
    return run_node(SafetyFilterNode, argv)


if __name__ == "__main__":
    sys.exit(main())
