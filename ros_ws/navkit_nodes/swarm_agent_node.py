"""ROS 2 swarm agent: one robot's online-CBF policy + CBF-QP, from what that robot knows.

One node per robot, in namespace ``/robot_i``. It sees only what robot i could sense or
receive from neighbours within range:

* ``odom`` (nav_msgs/Odometry): its own pose; twist in the child (body) frame, REP-105.
* ``obstacles`` (visualization_msgs/MarkerArray): its perception: CYLINDER markers in
  namespace ``obstacles`` (centre, diameter in ``scale.x``, world velocity in
  ``points[0]``), as the swarm bridge publishes them.
* ``/swarm/states`` (nav_msgs/Odometry, shared): every agent broadcasts its own state each
  tick, ``child_frame_id = robot_j`` naming the sender, pose in ``map``, twist in the
  sender's body frame (the same convention as ``odom``).
* ``/swarm/goals`` (nav_msgs/Odometry, shared, transient-local): every agent's goal,
  ``child_frame_id = robot_j``, the goal in ``pose``. A neighbour whose goal has not
  arrived yet is given its own position as goal (the policy then sees it as parked).

The decisions are :class:`~navkit.stack.swarm_agent.SwarmAgent`'s (no ROS there): a received
neighbour state is kept only when fresh (``stale_timeout_s``), finite and within
``sensing_radius_m``; the agent builds a :class:`~navkit.common.swarm_state.SwarmState` with
itself at index 0, calls its ``cbf_policy`` plugin (the online-CBF GNN from ``policy``, or a
fixed ``alpha`` when ``policy`` is empty; a missing or corrupt checkpoint stops the node with
one line) and the CBF-QP. This node publishes the resulting ``cmd_vel`` (TwistStamped:
single integrator -> ``linear.x/y`` in the robot frame = world frame; unicycle ->
``linear.x``, ``angular.z``). It computes once per own-odometry message (the bridge
publishes one per control period, so the node runs at ``rate_hz``); a timer at
``rate_hz`` commands zero when odometry is stale. NaN/Inf or stale inputs -> zero
command, logged at most once per second; never a crash.

Its goal, radius, limits and sensing radius come from the same ``scenario`` file, ``seed``
and ``num_agents`` as the bridge (the scenario is the mission definition both share).
"""
from __future__ import annotations

import math
import sys
import time

import numpy as np
from geometry_msgs.msg import TwistStamped
from nav_msgs.msg import Odometry as OdometryMsg
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile
from visualization_msgs.msg import Marker, MarkerArray

from navkit.common.errors import NavkitError
from navkit.common.params import config_from_params
from navkit.common.sensor_data import is_fresh
from navkit.common.geometry import quaternion_to_yaw
from navkit.ros_ws.navkit_nodes.conversions import from_time
from navkit.ros_ws.navkit_nodes.diagnostics import NodeDiagnostics
from navkit.ros_ws.navkit_nodes.node_main import node_params, params_source, run_node
from navkit.sim.swarm_scenario import load_swarm_scenario
from navkit.stack.plugin_catalog import default_registry
from navkit.stack.swarm_agent import NeighbourState, SwarmAgent, SwarmAgentConfig, make_cbf_policy

STATES_TOPIC = "/swarm/states"
GOALS_TOPIC = "/swarm/goals"
OBSTACLE_MARKER_NS = "obstacles"


def robot_index_of(frame: str) -> int | None:
    """``robot_7`` -> 7; anything else -> None."""
    name, _, idx = frame.strip("/").partition("_")
    return int(idx) if name == "robot" and idx.isdigit() else None


def odometry_world(msg: OdometryMsg) -> tuple[np.ndarray, float, np.ndarray]:
    """(position, yaw, world velocity) from an Odometry whose twist is in the body frame."""
    p, q, v = msg.pose.pose.position, msg.pose.pose.orientation, msg.twist.twist.linear
    yaw = quaternion_to_yaw(q.x, q.y, q.z, q.w)
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([p.x, p.y]), yaw, np.array([c * v.x - s * v.y, s * v.x + c * v.y])


def obstacles_from_markers(msg: MarkerArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(M, 2) centres, (M,) radii, (M, 2) velocities of the ADD markers in namespace ``obstacles``."""
    pos, rad, vel = [], [], []
    for m in msg.markers:
        if m.ns != OBSTACLE_MARKER_NS or m.action != Marker.ADD or m.type != Marker.CYLINDER:
            continue
        pos.append((m.pose.position.x, m.pose.position.y))
        rad.append(0.5 * m.scale.x)
        vel.append((m.points[0].x, m.points[0].y) if m.points else (0.0, 0.0))
    return np.array(pos, dtype=float).reshape(-1, 2), np.array(rad, dtype=float), np.array(vel, dtype=float).reshape(-1, 2)


class SwarmAgentNode(Node):
    def __init__(self) -> None:
        super().__init__("swarm_agent", automatically_declare_parameters_from_overrides=True)
        source = params_source(self)
        cfg = self.config = config_from_params(SwarmAgentConfig, node_params(self), source)
        if not cfg.scenario:
            raise NavkitError(f"{source}: scenario: the agent needs the swarm scenario file for its goal and limits")
        sc = load_swarm_scenario(cfg.scenario).expand(seed=None if cfg.seed < 0 else cfg.seed,
                                                      num_agents=cfg.num_agents or None)
        if cfg.robot_index >= sc.num_agents:
            raise NavkitError(f"{source}: robot_index: {cfg.robot_index} but the scenario has {sc.num_agents} robots")
        policy, described = make_cbf_policy(cfg, default_registry(), source)
        self.agent = SwarmAgent(cfg, sc, policy)
        self.scenario = sc
        self.me = f"robot_{cfg.robot_index}"
        self.goal = self.agent.goal
        self.unicycle = self.agent.unicycle
        self.odom_stamp = -math.inf
        self.refusals = 0
        self._last_logged: dict[str, float] = {}
        qos = QoSProfile(depth=10)
        latched = QoSProfile(depth=100, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.cmd_pub = self.create_publisher(TwistStamped, "cmd_vel", qos)
        self.state_pub = self.create_publisher(OdometryMsg, STATES_TOPIC, QoSProfile(depth=50))
        self.goal_pub = self.create_publisher(OdometryMsg, GOALS_TOPIC, latched)
        # Own odometry: only the newest sample matters (one writer, KEEP_LAST 1), so a node that
        # falls behind skips to the present instead of working through a backlog of old states.
        self.create_subscription(OdometryMsg, "odom", self._on_odom, QoSProfile(depth=1))
        self.create_subscription(MarkerArray, "obstacles", self._on_obstacles, qos)
        self.states_sub = self.create_subscription(OdometryMsg, STATES_TOPIC, self._on_state, QoSProfile(depth=50))
        self.create_subscription(OdometryMsg, GOALS_TOPIC, self._on_goal, latched)
        self._publish_goal()
        self.create_timer(1.0 / cfg.rate_hz, self._watchdog)
        self._last_refusal = ""
        self.diagnostics = NodeDiagnostics(self, hardware_id=self.me)
        self.diagnostics.add_check("agent", self._status)
        self.diagnostics.start()
        self.get_logger().info(f"{self.me}: goal {self.goal.round(2).tolist()}, {described}, "
                               f"sensing radius {sc.sensing_radius_m} m")

    def _now(self) -> float:
        return from_time(self.get_clock().now().to_msg())

    def _status(self) -> tuple[int, str, dict[str, object]]:
        values = {"refusals": self.refusals, "last_refusal": self._last_refusal}
        return (1, f"commanding zero: {self._last_refusal}", values) if self._last_refusal else (0, "driving", values)

    def _refuse(self, why: str) -> None:
        """Zero command; each reason logged at most once per (wall) second."""
        self.refusals += 1
        self._last_refusal = why
        now = time.monotonic()
        if now - self._last_logged.get(why, -math.inf) >= 1.0:
            self._last_logged[why] = now
            self.get_logger().warning(f"{why}: commanding zero ({self.refusals} refusals)")
        self._publish_cmd(0.0, 0.0)

    def _publish_cmd(self, a: float, b: float) -> None:
        msg = TwistStamped()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = f"{self.me}/base_link"
        if self.unicycle:
            msg.twist.linear.x, msg.twist.angular.z = a, b
        else:
            msg.twist.linear.x, msg.twist.linear.y = a, b
        self.cmd_pub.publish(msg)

    def _publish_goal(self) -> None:
        msg = OdometryMsg()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id, msg.child_frame_id = "map", self.me
        msg.pose.pose.position.x, msg.pose.pose.position.y = float(self.goal[0]), float(self.goal[1])
        msg.pose.pose.orientation.w = 1.0
        self.goal_pub.publish(msg)

    # ------------------------------------------------------------------ inputs

    def _on_state(self, msg: OdometryMsg) -> None:
        j = robot_index_of(msg.child_frame_id)
        if j is None:
            return
        pos, yaw, vel = odometry_world(msg)
        self.agent.hear_state(j, NeighbourState(pos, vel, yaw, from_time(msg.header.stamp)))

    def _drain_states(self) -> None:
        """Take every neighbour broadcast already delivered but not yet handled by the executor.

        /swarm/states carries N messages per control period against one ``odom``, and the
        single-threaded executor takes one message per ready subscription per wait cycle, so
        whenever the node is short of CPU the broadcasts queue up (up to the depth, 50 = about
        half a second at N = 4) and the neighbour table lags the robot's own odometry: close
        neighbours then look stale (dropped) or are seen where they were ~0.5 s ago. Reading
        the queue empty before each control step makes the table as fresh as DDS delivered it.
        """
        sub = self.states_sub
        try:
            with sub.handle:
                while (taken := sub.handle.take_message(sub.msg_type, sub.raw)) is not None:
                    self._on_state(taken[0])
        except Exception as exc:
            self._log_once(f"cannot drain {STATES_TOPIC} ({type(exc).__name__}: {exc})")

    def _log_once(self, why: str) -> None:
        now = time.monotonic()
        if now - self._last_logged.get(why, -math.inf) >= 1.0:
            self._last_logged[why] = now
            self.get_logger().warning(why)

    def _on_goal(self, msg: OdometryMsg) -> None:
        j = robot_index_of(msg.child_frame_id)
        if j is not None:
            self.agent.hear_goal(j, np.array([msg.pose.pose.position.x, msg.pose.pose.position.y]))

    def _on_obstacles(self, msg: MarkerArray) -> None:
        stamps = [from_time(m.header.stamp) for m in msg.markers]
        self.agent.sense_obstacles(*obstacles_from_markers(msg), max(stamps) if stamps else self._now())

    def _watchdog(self) -> None:
        if not is_fresh(self.odom_stamp, self._now(), self.config.stale_timeout_s):
            self._refuse("no fresh odometry")

    def _on_odom(self, msg: OdometryMsg) -> None:
        pos, yaw, vel = odometry_world(msg)
        stamp = from_time(msg.header.stamp)
        if not (np.all(np.isfinite(pos)) and math.isfinite(yaw) and np.all(np.isfinite(vel))):
            self._refuse("NaN/Inf odometry")
            return
        if not is_fresh(stamp, self._now(), self.config.stale_timeout_s):
            self._refuse(f"odometry stamped {stamp - self._now():+.2f} s from now")
            return
        self.odom_stamp = stamp
        # Broadcast first: neighbours use it whatever this robot decides.
        state = OdometryMsg()
        state.header.stamp = msg.header.stamp
        state.header.frame_id, state.child_frame_id = "map", self.me
        state.pose.pose = msg.pose.pose
        state.twist.twist = msg.twist.twist
        self.state_pub.publish(state)
        self._drain_states()
        try:
            u, refusal = self.agent.command(pos, yaw, vel, stamp)
        except Exception as exc:
            self._refuse(f"controller failed ({type(exc).__name__}: {exc})")
            return
        if refusal:
            self._refuse(refusal)
            return
        self._last_refusal = ""
        self._publish_cmd(float(u[0]), float(u[1]))
        if int(stamp / self.scenario.control_dt_s) % max(1, int(round(1.0 / self.scenario.control_dt_s))) == 0:
            self._publish_goal()  # ~1 Hz re-announcement for late joiners that missed the latched sample


def main(argv: list[str] | None = None) -> int:
    return run_node(SwarmAgentNode, argv)


if __name__ == "__main__":
    sys.exit(main())
