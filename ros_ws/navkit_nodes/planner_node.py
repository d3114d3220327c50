"""ROS 2 planner node: odom + scan -> ``plan`` (nav_msgs/Path in odom).

Wraps :class:`~navkit.runner.navigation_stack.PlanningStage`, the same code the
in-process runner calls. The static map and the goal list come from the scenario
file (parameter ``scenario``); a ``goal_pose`` message replaces the goal list with
that one goal. An empty Path means "no path: stop".
"""
from __future__ import annotations

import sys

from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import Odometry as OdometryMsg
from nav_msgs.msg import Path as PathMsg
from rclpy.node import Node
from rclpy.qos import QoSProfile
from sensor_msgs.msg import LaserScan as LaserScanMsg

from navkit.common.errors import NavkitError
from navkit.planning.goal_sequencer import GoalSequencer, GoalSequencerConfig
from navkit.ros_ws.navkit_nodes.conversions import from_time, odometry_from_msg, path_to_msg, scan_from_msg
from navkit.ros_ws.navkit_nodes.node_main import node_params, params_source, run_node
from navkit.runner.navigation_stack import PlanningStage
from navkit.runner.stack_config import planner_from_params
from navkit.sim.scenario import load_scenario


class PlannerNode(Node):
    def __init__(self) -> None:
        super().__init__("planner", automatically_declare_parameters_from_overrides=True)
        node_cfg, planner_cfg = planner_from_params(node_params(self), params_source(self))
        if not node_cfg.scenario:
            raise NavkitError(f"{params_source(self)}: scenario: the planner needs the scenario file for its map")
        self.scenario = load_scenario(node_cfg.scenario)
        self.stage = PlanningStage(self.scenario, node_cfg, planner_cfg)
        self.odom = None
        qos = QoSProfile(depth=10)
        self.plan_pub = self.create_publisher(PathMsg, "plan", qos)
        self.create_subscription(OdometryMsg, "odom", self._on_odom, qos)
        self.create_subscription(LaserScanMsg, "scan", self._on_scan, qos)
        self.create_subscription(PoseStamped, "goal_pose", self._on_goal, qos)
        self.create_timer(1.0 / node_cfg.rate_hz, self._tick)

    def _on_odom(self, msg: OdometryMsg) -> None:
        self.odom = odometry_from_msg(msg)
        # Goal arrival is checked on every odometry message, as in the in-process runner.
        if self.stage.update(self.odom.stamp, self.odom):
            self.plan_pub.publish(path_to_msg(self.stage.path, self.odom.stamp))

    def _on_scan(self, msg: LaserScanMsg) -> None:
        if self.odom is not None:
            self.stage.observe(scan_from_msg(msg), self.odom)

    def _on_goal(self, msg: PoseStamped) -> None:
        goal = (msg.pose.position.x, msg.pose.position.y)
        self.stage.goals = GoalSequencer([goal], GoalSequencerConfig(self.scenario.goal_tolerance_m))
        self.stage.path = None
        self.get_logger().info(f"new goal {goal}")

    def _tick(self) -> None:
        if self.odom is None:
            self.get_logger().info("waiting for odom", throttle_duration_sec=5.0)
            return
        now = from_time(self.get_clock().now().to_msg())
        if self.stage.update(now, self.odom) or self.stage.path is None:
            self.plan_pub.publish(path_to_msg(self.stage.path, now))


def main(argv: list[str] | None = None) -> int:
    return run_node(PlannerNode, argv)


if __name__ == "__main__":
    sys.exit(main())
