"""ROS 2 planner node: odom + scan -> ``plan`` (nav_msgs/Path in odom).

Wraps :class:`~navkit.stack.planning_stage.PlanningStage`, the same code the
in-process runner calls: scan-to-map localisation (map -> odom), lidar obstacles,
goal sequencing and the ``global_planner`` plugin. The path is planned on the map and
published in the odom frame, again whenever the localisation correction moves. The map
comes from the ``map_source`` plugin (a scenario in simulation, a map_server file on a
robot); the goal list from the scenario file when there is one. A ``goal_pose`` (frame
``map`` or ``odom``) replaces the goal list with that one goal; a non-finite, off-map or
wrongly framed one is refused with a log line. An empty Path means "no path: stop".
"""
from __future__ import annotations

import math
import sys
from collections import deque
from typing import Any

import numpy as np

from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import Odometry as OdometryMsg
from nav_msgs.msg import Path as PathMsg
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile
from sensor_msgs.msg import LaserScan as LaserScanMsg

from navkit.common.errors import NavkitError
from navkit.common.plugins import PluginChoice
from navkit.common.sensor_data import Odometry, is_fresh
from navkit.ros_ws.navkit_nodes.conversions import from_time, odometry_from_msg, path_to_msg, scan_from_msg
from navkit.ros_ws.navkit_nodes.node_main import node_params, params_source, run_node
from navkit.stack.config import planner_from_params
from navkit.stack.navigation_stack import build_planning_stage
from navkit.stack.plugin_catalog import default_registry


GOAL_FRAMES = ("map", "odom")
"""Frames a ``goal_pose`` may be given in (an ``odom`` goal is moved onto the map by the localiser)."""
ODOM_TIMEOUT_S = 0.5
"""Odometry stamped further than this from the node's clock (either way) is ignored."""
DEFAULT_GOAL_TOLERANCE_M = 0.25
"""Goal tolerance when no scenario gives one (goals from ``goal_pose``)."""
ODOM_HISTORY = 50
"""Odometry samples kept for matching scans by time (1 s at 50 Hz)."""
ODOM_MATCH_TOLERANCE_S = 0.05

PLAN_QOS = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
"""``plan`` QoS, shared with the controller: the last path reaches late subscribers."""


def load_mission(scenario_file: str, map_source: PluginChoice) -> tuple[list[tuple[float, float]], float, Any]:
    """Goals, goal tolerance and the scenario (if any) the planner starts with.

    In simulation the scenario file holds the goal list (and, for the ``scenario`` map
    source, the map); on a robot there is none: the planner waits for ``goal_pose``.
    """
    if not scenario_file:
        if map_source.name == "scenario" and not map_source.config.file:
            raise NavkitError("planner: scenario: the scenario map source needs a scenario file "
                              "(or map_source.plugin: map_file with map_source.file)")
        return [], DEFAULT_GOAL_TOLERANCE_M, None
    from navkit.sim.scenario import load_scenario

    scenario = load_scenario(scenario_file)
    return list(scenario.goals), scenario.goal_tolerance_m, scenario


class PlannerNode(Node):
    def __init__(self) -> None:
        super().__init__("planner", automatically_declare_parameters_from_overrides=True)
        source = params_source(self)
        registry = default_registry()
        node_cfg, map_source, planner, localizer_cfg = planner_from_params(node_params(self), source, registry)
        goals, tolerance, scenario = load_mission(node_cfg.scenario, map_source)
        self.stage = build_planning_stage(node_cfg, map_source, planner, localizer_cfg, registry, goals=goals,
                                          goal_tolerance_m=tolerance, scenario=scenario)
        self.odom = None
        self.odom_history: deque[Odometry] = deque(maxlen=ODOM_HISTORY)
        qos = QoSProfile(depth=10)
        # Latched (transient local, like Nav2's map): a new path is published only when it
        # changes, so a controller that discovers the planner late must still get it.
        self.plan_pub = self.create_publisher(PathMsg, "plan", PLAN_QOS)
        self.create_subscription(OdometryMsg, "odom", self._on_odom, qos)
        self.create_subscription(LaserScanMsg, "scan", self._on_scan, qos)
        self.create_subscription(PoseStamped, "goal_pose", self._on_goal, qos)
        self.create_timer(1.0 / node_cfg.rate_hz, self._tick)

    def _on_odom(self, msg: OdometryMsg) -> None:
        odom = odometry_from_msg(msg)
        if not odom.is_finite() or not is_fresh(odom.stamp, self._now(), ODOM_TIMEOUT_S):
            self.get_logger().warning(f"odometry rejected (non-finite, or stamped {odom.stamp - self._now():+.2f} s "
                                      "from now)", throttle_duration_sec=1.0)
            return
        self.odom = odom
        self.odom_history.append(self.odom)
        # Goal arrival is checked on every odometry message, as in the in-process runner.
        if self.stage.update(self.odom.stamp, self.odom):
            self._publish_plan(self.odom.stamp)

    def _publish_plan(self, stamp: float) -> None:
        # In the odom frame: the controller tracks it on raw odometry (no map -> odom TF needed).
        self.plan_pub.publish(path_to_msg(self.stage.path_in_odom(), stamp, frame_id="odom"))

    def _odom_at(self, stamp: float) -> Odometry | None:
        """The odometry sample closest in time to ``stamp`` (a TF lookup at the scan's time).

        Matching a scan against the *latest* odometry instead rotates it by however far the
        robot turned in between, which the localiser would read as drift.
        """
        if not self.odom_history:
            return None
        best = min(self.odom_history, key=lambda o: abs(o.stamp - stamp))
        return best if abs(best.stamp - stamp) <= ODOM_MATCH_TOLERANCE_S else None

    def _on_scan(self, msg: LaserScanMsg) -> None:
        scan = scan_from_msg(msg)
        odom = self._odom_at(scan.stamp)
        if odom is None:
            self.get_logger().warning("no odometry at the scan's time: scan skipped", throttle_duration_sec=1.0)
            return
        before = self.stage.localizer.correction if self.stage.localizer is not None else None
        self.stage.observe(scan, odom)
        moved = self.stage.localizer is not None and self.stage.localizer.correction != before
        if moved and self.stage.path is not None:
            self._publish_plan(self.odom.stamp)

    def _now(self) -> float:
        return from_time(self.get_clock().now().to_msg())

    def _on_goal(self, msg: PoseStamped) -> None:
        """A new goal replaces the goal list; a bad one is refused with a log line, never a crash."""
        goal = (msg.pose.position.x, msg.pose.position.y)
        frame = msg.header.frame_id
        if not all(math.isfinite(v) for v in goal):
            self.get_logger().error(f"goal_pose rejected: position {goal} is not finite")
            return
        if frame not in GOAL_FRAMES:
            self.get_logger().error(f"goal_pose rejected: frame {frame!r} (goals must be in {' or '.join(GOAL_FRAMES)})")
            return
        if frame == "odom" and self.stage.localizer is not None:
            goal = tuple(self.stage.localizer.odom_to_map_points(np.array([goal]))[0])
        if not self.stage.planner.in_map(goal):
            self.get_logger().error(f"goal_pose rejected: {tuple(round(v, 2) for v in goal)} is outside the map")
            return
        self.stage.set_goal(goal)
        self.get_logger().info(f"new goal {goal} (map frame)")

    def _tick(self) -> None:
        if self.odom is None:
            self.get_logger().info("waiting for odom", throttle_duration_sec=5.0)
            return
        now = from_time(self.get_clock().now().to_msg())
        if self.stage.update(now, self.odom) or self.stage.path is None:
            self._publish_plan(now)


def main(argv: list[str] | None = None) -> int:
    return run_node(PlannerNode, argv)


if __name__ == "__main__":
    sys.exit(main())
