"""ROS 2 planner node: odom + scan -> ``plan`` (nav_msgs/Path in odom).

Wraps :class:`~navkit.stack.planning_stage.PlanningStage`, the same code the
in-process runner calls: scan-to-map localisation (map -> odom), lidar obstacles,
goal sequencing and the ``global_planner`` plugin. The path is planned on the map and
published in the odom frame, again whenever the localisation correction moves; the correction
itself goes out as TF ``map -> odom``. Scans are placed on the robot by their mount from TF.
The map comes from the ``map_source`` plugin: a scenario in simulation, a map_server YAML +
PGM file on a robot, or ``map_topic`` (``nav_msgs/OccupancyGrid`` on ``/map``, latched, from
map_server or a SLAM node: the planner waits for it). The goal list comes from the scenario
file when there is one. A ``goal_pose`` (frame
``map`` or ``odom``) replaces the goal list with that one goal; a non-finite, off-map or
wrongly framed one is refused with a log line; ``initialpose`` (map frame) tells the localiser where
the robot starts on the map. An empty Path means "no path: stop".
"""
from __future__ import annotations

import math
import sys
from collections import deque
from dataclasses import fields
from typing import Any

import numpy as np

from geometry_msgs.msg import PoseStamped, PoseWithCovarianceStamped
from nav_msgs.msg import OccupancyGrid as OccupancyGridMsg
from nav_msgs.msg import Odometry as OdometryMsg
from nav_msgs.msg import Path as PathMsg
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import LaserScan as LaserScanMsg

from navkit.common.errors import NavkitError
from navkit.common.geometry import Pose2D, compose, inverse, quaternion_to_yaw
from navkit.common.plugins import PluginChoice
from navkit.common.sensor_data import Odometry, is_fresh
from navkit.perception.scan_localizer import ScanLocalizerConfig
from navkit.ros_ws.navkit_nodes.conversions import (from_time, grid_from_msg, odometry_from_msg, path_to_msg,
                                                    planar_quaternion)
from navkit.ros_ws.navkit_nodes.declared_params import ParamField, param_fields, plugin_fields
from navkit.ros_ws.navkit_nodes.diagnostics import NodeDiagnostics
from navkit.ros_ws.navkit_nodes.managed_node import ManagedNode
from navkit.ros_ws.navkit_nodes.node_main import run_node
from navkit.ros_ws.navkit_nodes.tf_tree import TfBroadcaster, tf2_msgs_available, transform_msg
from navkit.stack.config import PlannerNodeConfig, planner_from_params
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
MAP_QOS = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL, reliability=ReliabilityPolicy.RELIABLE)
"""``/map`` QoS as map_server publishes it (latched), so a planner started later still gets the map."""


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


class PlannerNode(ManagedNode):
    def __init__(self) -> None:
        self.registry = default_registry()
        self.stage: Any = None
        self.odom: Odometry | None = None
        self.odom_history: deque[Odometry] = deque(maxlen=ODOM_HISTORY)
        self.map_received: float | None = None
        self.map_problem = ""
        self.tf: TfBroadcaster | None = None
        self._mission: Any = None
        self._io: list[Any] = []
        super().__init__("planner")

    # -------------------------------------------------------------- configuration

    def read_config(self, params: dict[str, Any]) -> Any:
        return planner_from_params(params, self.source(), self.registry)

    def param_fields(self, config: Any) -> list[ParamField]:
        node_cfg, map_source, planner, localizer_cfg = config
        return (param_fields(PlannerNodeConfig, "", node_cfg, structural=("scenario",))
                + plugin_fields(map_source, structural=tuple(f"map_source.{f.name}" for f in fields(map_source.config)))
                + plugin_fields(planner)
                + param_fields(ScanLocalizerConfig, "localizer", localizer_cfg))

    def build(self, config: Any) -> None:
        node_cfg, map_source, planner, localizer_cfg = config
        if self._mission is None:
            self._mission = load_mission(node_cfg.scenario, map_source)
        if map_source.name == "map_topic":
            if self.stage is not None:
                self._rebuild_stage(config, self.stage.grid)
            return  # otherwise built when the map arrives
        self._rebuild_stage(config, None)

    def _rebuild_stage(self, config: Any, grid: Any) -> None:
        """A new planning stage (new parameters, or a map from /map) that keeps the goals and where the
        robot is on the map (map -> odom): neither a parameter change nor a re-sent map moves the robot."""
        node_cfg, map_source, planner, localizer_cfg = config
        goals, tolerance, scenario = self._mission
        old = self.stage
        self.stage = build_planning_stage(node_cfg, map_source, planner, localizer_cfg, self.registry, goals=goals,
                                          goal_tolerance_m=tolerance, scenario=scenario, map_grid=grid)
        if old is not None:
            self.stage.goals = old.goals
            if self.stage.localizer is not None and old.localizer is not None:
                self.stage.localizer.reset(old.localizer.correction)

    def connect(self) -> None:
        node_cfg, map_source, _, _ = self.config
        # Latched (transient local, like Nav2's map): a new path is published only when it
        # changes, so a controller that discovers the planner late must still get it.
        self.plan_pub = self.create_publisher(PathMsg, "plan", PLAN_QOS)
        self.tf = TfBroadcaster(self) if tf2_msgs_available() else None
        self._io = [self.plan_pub,
                    self.sensor_subscription(OdometryMsg, "odom", self._on_odom),
                    self.sensor_subscription(LaserScanMsg, "scan", self._on_scan),
                    self.create_subscription(PoseStamped, "goal_pose", self._on_goal, QoSProfile(depth=10)),
                    self.create_subscription(PoseWithCovarianceStamped, "initialpose", self._on_initial_pose,
                                             QoSProfile(depth=10))]
        if map_source.name == "map_topic":
            self._io.append(self.create_subscription(OccupancyGridMsg, map_source.config.topic, self._on_map,
                                                     MAP_QOS))

    def start(self) -> None:
        self.start_work(self.config[0].rate_hz, self._tick)

    def restart_timers(self) -> None:
        self.start_work(self.config[0].rate_hz, self._tick)  # the rate may have changed

    def stop(self) -> None:
        self.stop_work()

    def disconnect(self) -> None:
        self.stop()
        for entity in self._io:
            if entity is self.plan_pub:
                self.destroy_publisher(entity)
            else:
                self.destroy_subscription(entity)
        self._io = []
        self.tf = None

    def add_checks(self, diagnostics: NodeDiagnostics) -> None:
        diagnostics.add_check("planning", self._planning_status)

    def _planning_status(self) -> tuple[int, str, dict[str, Any]]:
        if self.stage is None:
            topic = self.config[1].config.topic if self.config[1].name == "map_topic" else "map"
            why = f": {self.map_problem}" if self.map_problem else ""
            return 1, f"waiting for a map on {topic}{why}", {}
        st = self.stage
        values = {"goals_reached": st.goals.index,
                  "replans": st.replans, "plan_failures": st.plan_failures,
                  "has_path": st.path is not None}
        if st.localizer is not None:
            c = st.localizer.correction
            values["map_to_odom"] = f"{c.x:.3f} {c.y:.3f} {c.yaw:.4f}"
        if self.odom is None:
            return 1, "waiting for odometry", values
        return 0, "planning", values

    # -------------------------------------------------------------- work

    def _on_map(self, msg: OccupancyGridMsg) -> None:
        cfg = self.config[1].config
        try:
            grid = grid_from_msg(msg, unknown_is_occupied=cfg.unknown_is_occupied,
                                 occupied_threshold=cfg.occupied_threshold)
        except ValueError as exc:
            self.map_problem = f"map on {cfg.topic} refused: {exc}"
            self.get_logger().error(self.map_problem)
            return
        if msg.header.frame_id and msg.header.frame_id != "map":
            self.map_problem = f"map on {cfg.topic} refused: frame {msg.header.frame_id!r}, expected 'map'"
            self.get_logger().error(self.map_problem)
            return
        self._rebuild_stage(self.config, grid)  # a re-sent map (map_server restart, SLAM) keeps the robot's place
        self.map_problem = ""
        self.get_logger().info(f"map received on {cfg.topic}: {grid.shape[1]} x {grid.shape[0]} cells "
                               f"at {grid.resolution:g} m")

    def _on_odom(self, msg: OdometryMsg) -> None:
        if not self.active or self.stage is None:
            return
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
        if not self.active or self.stage is None:
            return
        scan = self.scan_in_base(msg)
        if scan is None:
            return
        odom = self._odom_at(scan.stamp)
        if odom is None:
            self.get_logger().warning("no odometry at the scan's time: scan skipped", throttle_duration_sec=1.0)
            return
        before = self.stage.localizer.correction if self.stage.localizer is not None else None
        self.stage.observe(scan, odom)
        moved = self.stage.localizer is not None and self.stage.localizer.correction != before
        self._publish_map_to_odom(odom.stamp)
        if moved and self.stage.path is not None and self.odom is not None:
            self._publish_plan(self.odom.stamp)

    def _publish_map_to_odom(self, stamp: float) -> None:
        """The localiser's correction as TF ``map -> odom`` (REP-105), at the odometry's time."""
        if self.tf is not None and self.stage is not None and self.stage.localizer is not None:
            self.tf.send(transform_msg("map", "odom", stamp, self.stage.localizer.correction))

    def _now(self) -> float:
        return from_time(self.get_clock().now().to_msg())

    def _on_initial_pose(self, msg: PoseWithCovarianceStamped) -> None:
        """Where the robot is on the map (RViz's "2D Pose Estimate", or a robot's start-up script).

        Sets ``map -> odom`` so that the latest odometry lands on that pose; the localiser refines
        it from there. Refused with a log line when not in ``map``, not finite, or before odometry.
        """
        if not self.active:
            self.get_logger().error("initialpose rejected: the planner is not active")
            return
        p, q = msg.pose.pose.position, msg.pose.pose.orientation
        frame = msg.header.frame_id
        if frame != "map":
            self.get_logger().error(f"initialpose rejected: frame {frame!r} (must be 'map')")
            return
        if not all(math.isfinite(v) for v in (p.x, p.y, q.x, q.y, q.z, q.w)) or not planar_quaternion(q):
            self.get_logger().error("initialpose rejected: not finite, or not a rotation about z")
            return
        pose = Pose2D(p.x, p.y, quaternion_to_yaw(q.x, q.y, q.z, q.w))
        if self.stage is None or self.stage.localizer is None or self.odom is None:
            self.get_logger().error("initialpose rejected: needs the map, localize: true and odometry first")
            return
        self.stage.localizer.reset(compose(pose, inverse(self.odom.pose)))
        self._publish_map_to_odom(self.odom.stamp)
        self.stage.path = None  # replan from where the robot really is
        self.get_logger().info(f"initial pose set: ({pose.x:.2f}, {pose.y:.2f}, {pose.yaw:.2f}) in map")

    def _on_goal(self, msg: PoseStamped) -> None:
        """A new goal replaces the goal list; a bad one is refused with a log line, never a crash."""
        if not self.active:  # an inactive planner must not queue a goal to drive to on reactivation
            self.get_logger().error("goal_pose rejected: the planner is not active")
            return
        if self.stage is None:
            self.get_logger().error("goal_pose rejected: no map yet")
            return
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
        if self.stage is None:
            self.get_logger().info("waiting for the map", throttle_duration_sec=5.0)
            return
        if self.odom is None:
            self.get_logger().info("waiting for odom", throttle_duration_sec=5.0)
            return
        now = from_time(self.get_clock().now().to_msg())
        if self.stage.update(now, self.odom) or self.stage.path is None:
            self._publish_plan(now)
        self._publish_map_to_odom(now)  # the node's time: stalled odometry must not repeat an old stamp


def main(argv: list[str] | None = None) -> int:
    return run_node(PlannerNode, argv)


if __name__ == "__main__":
    sys.exit(main())
