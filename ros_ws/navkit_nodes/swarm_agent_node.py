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

Each received neighbour state is kept only when it is fresh (``stale_timeout_s``), finite
and within ``sensing_radius_m`` of this robot (:func:`select_neighbours`). The node builds a
:class:`~navkit.common.swarm_state.SwarmState` with itself at index 0 (B = 1), calls the
α source (the online-CBF GNN from ``policy``, or :class:`FixedAlpha` ``alpha`` when
``policy`` is empty, missing, or the policy module does not import: a warning says so)
and :meth:`SwarmController.act`, and publishes its own ``cmd_vel`` (TwistStamped:
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
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from geometry_msgs.msg import TwistStamped
from nav_msgs.msg import Odometry as OdometryMsg
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile
from visualization_msgs.msg import Marker, MarkerArray

from navkit.common.errors import NavkitError
from navkit.common.params import config_from_params
from navkit.common.sensor_data import is_fresh
from navkit.common.swarm_state import SwarmState
from navkit.control.multi_agent_cbf import MultiAgentCbfConfig
from navkit.control.swarm_controller import FixedAlpha, SwarmController
from navkit.ros_ws.navkit_nodes.conversions import from_time, quaternion_to_yaw
from navkit.ros_ws.navkit_nodes.node_main import node_params, params_source, run_node
from navkit.sim.swarm_scenario import load_swarm_scenario

STATES_TOPIC = "/swarm/states"
GOALS_TOPIC = "/swarm/goals"
OBSTACLE_MARKER_NS = "obstacles"


@dataclass(frozen=True)
class SwarmAgentConfig:
    """One robot's decentralised controller (node ``swarm_agent`` in ``/robot_i``)."""

    robot_index: int = -1
    """Which robot this node drives (its goal in the scenario, its name ``robot_i``)."""
    scenario: str = ""
    """The swarm scenario file the bridge runs: goal, agent radius, limits, sensing radius."""
    num_agents: int = 0
    """As the bridge's: resize the layout; 0 = the file's count."""
    seed: int = -1
    """As the bridge's: the scenario seed; -1 = the file's."""
    policy: str = ""
    """Online-CBF GNN checkpoint; empty = fixed ``alpha``."""
    alpha: float = 1.0
    """Class-K gain when no policy is used."""
    rate_hz: float = 20.0
    """Control rate (= 1 / control_dt_s); also the stale-odometry check rate."""
    stale_timeout_s: float = 0.5
    """Own odometry, obstacles or a neighbour state older than this is not used."""
    alpha_cap: float = 5.0
    """Largest α this robot's QP uses, whatever the policy says. A CBF is exact in continuous time; over
    ROS 2 a command acts about two control periods (Δ ≈ 0.1 s) after the state it was computed from, and
    the discrete-time condition needs α·Δ well below 1. In-process (no delay) the policy's α up to 20 is
    safe; measured in-process, capping at 5 keeps the swap success at 95 % with 0 collisions."""
    comm_margin_m: float = 0.05
    """Extra safety margin for what a broadcast cannot tell: a neighbour's state is one control period
    (plus DDS latency) old even after constant-velocity prediction. Added to the CBF margin."""

    def __post_init__(self) -> None:
        if self.comm_margin_m < 0:
            raise ValueError("comm_margin_m must be >= 0")
        if self.robot_index < 0:
            raise ValueError("robot_index must be set (>= 0)")
        for name in ("alpha", "rate_hz", "stale_timeout_s", "alpha_cap"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0")


@dataclass(frozen=True)
class NeighbourState:
    """What robot ``j`` last broadcast on /swarm/states (world frame)."""

    position: np.ndarray
    velocity: np.ndarray
    heading: float
    stamp: float


def select_neighbours(own_position: np.ndarray, others: dict[int, NeighbourState], sensing_radius_m: float,
                      now: float, max_age_s: float) -> list[int]:
    """Robots whose last broadcast is fresh, finite and within sensing range (centre distance), sorted."""
    keep = []
    for j, s in sorted(others.items()):
        if not (np.all(np.isfinite(s.position)) and np.all(np.isfinite(s.velocity)) and math.isfinite(s.heading)):
            continue
        if not is_fresh(s.stamp, now, max_age_s):
            continue
        if float(np.linalg.norm(s.position - own_position)) <= sensing_radius_m:
            keep.append(j)
    return keep


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


def load_alpha_source(cfg: SwarmAgentConfig, log_warning) -> tuple[object, str]:
    """The online-CBF policy when ``cfg.policy`` names a loadable checkpoint, else FixedAlpha(cfg.alpha)."""
    if not cfg.policy:
        return FixedAlpha(cfg.alpha), f"fixed alpha {cfg.alpha}"
    if not Path(cfg.policy).is_file():
        log_warning(f"policy {cfg.policy} not found: using fixed alpha {cfg.alpha}")
        return FixedAlpha(cfg.alpha), f"fixed alpha {cfg.alpha}"
    try:
        from navkit.control.online_cbf_policy import OnlineCbfPolicy
    except ImportError as exc:
        log_warning(f"navkit.control.online_cbf_policy does not import ({exc}): using fixed alpha {cfg.alpha}")
        return FixedAlpha(cfg.alpha), f"fixed alpha {cfg.alpha}"
    _single_threaded_torch()
    return OnlineCbfPolicy.load(cfg.policy), f"policy {cfg.policy}"


def _single_threaded_torch() -> None:
    """One intra-op (and inter-op) thread for the policy's torch in this process.

    The GNN runs on a graph of a handful of nodes, where threads buy nothing; but a launch runs
    one agent process per robot plus the bridge, and torch's default of one OpenMP thread per core
    in every process oversubscribes the CPU (idle OpenMP workers spin-wait). Measured with 4 robots
    on 2 cores: agents then handled only about half of the control periods, their /swarm/states
    broadcasts reached neighbours 0.1-1 s late (or were dropped as stale), and robots passing each
    other touched (min separation 0.38 m < D = 0.45 m). With one thread every period is handled
    and neighbour states are at most one period old.
    """
    import torch

    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set, or inter-op work has started: intra-op is what matters
        pass


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
        self.scenario = sc
        self.me = f"robot_{cfg.robot_index}"
        self.goal = sc.goals[cfg.robot_index].astype(float)
        self.unicycle = sc.dynamics == "unicycle"
        base = MultiAgentCbfConfig()
        self.controller = SwarmController.for_scenario(
            sc, cbf=replace(base, margin_m=base.margin_m + self.config.comm_margin_m))
        self.alpha_source, described = load_alpha_source(cfg, self.get_logger().warning)
        self.reached = False
        self.neighbours: dict[int, NeighbourState] = {}
        self.goals: dict[int, np.ndarray] = {}
        self.reached_by: dict[int, bool] = {}
        self.obstacles: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self.obstacles_stamp = -math.inf
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
        self.get_logger().info(f"{self.me}: goal {self.goal.round(2).tolist()}, {described}, "
                               f"sensing radius {sc.sensing_radius_m} m")

    def _now(self) -> float:
        return from_time(self.get_clock().now().to_msg())

    def _refuse(self, why: str) -> None:
        """Zero command; each reason logged at most once per (wall) second."""
        self.refusals += 1
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
        if j is None or j == self.config.robot_index:
            return
        pos, yaw, vel = odometry_world(msg)
        self.neighbours[j] = NeighbourState(pos, vel, yaw, from_time(msg.header.stamp))

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
        except Exception as exc:  # noqa: BLE001 - an rclpy internals change must not stop the robot
            self._log_once(f"cannot drain {STATES_TOPIC} ({type(exc).__name__}: {exc})")

    def _log_once(self, why: str) -> None:
        now = time.monotonic()
        if now - self._last_logged.get(why, -math.inf) >= 1.0:
            self._last_logged[why] = now
            self.get_logger().warning(why)

    def _on_goal(self, msg: OdometryMsg) -> None:
        j = robot_index_of(msg.child_frame_id)
        if j is not None and j != self.config.robot_index:
            self.goals[j] = np.array([msg.pose.pose.position.x, msg.pose.pose.position.y])

    def _on_obstacles(self, msg: MarkerArray) -> None:
        self.obstacles = obstacles_from_markers(msg)
        stamps = [from_time(m.header.stamp) for m in msg.markers]
        self.obstacles_stamp = max(stamps) if stamps else self._now()

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
        if not self.unicycle:
            yaw = 0.0
        # Broadcast first: neighbours use it whatever this robot decides.
        state = OdometryMsg()
        state.header.stamp = msg.header.stamp
        state.header.frame_id, state.child_frame_id = "map", self.me
        state.pose.pose = msg.pose.pose
        state.twist.twist = msg.twist.twist
        self.state_pub.publish(state)
        if self.obstacles is None or not is_fresh(self.obstacles_stamp, stamp, self.config.stale_timeout_s):
            self._refuse("no fresh obstacle perception")
            return
        tol = self.scenario.goal_tolerance_m
        self.reached |= bool(np.linalg.norm(pos - self.goal) <= tol)
        self._drain_states()
        chosen = select_neighbours(pos, self.neighbours, self.scenario.sensing_radius_m, stamp,
                                   self.config.stale_timeout_s)
        positions, velocities, headings, goals, active = [pos], [vel], [yaw], [self.goal], [not self.reached]
        for j in chosen:
            s = self.neighbours[j]
            goal = self.goals.get(j, s.position)
            self.reached_by[j] = self.reached_by.get(j, False) or bool(np.linalg.norm(s.position - goal) <= tol)
            # Constant-velocity prediction to this robot's time: the broadcast is up to a control
            # period old, and at 1 m/s that alone is more than the CBF's margin.
            ahead = float(np.clip(stamp - s.stamp, 0.0, self.config.stale_timeout_s))
            positions.append(s.position + s.velocity * ahead)
            velocities.append(s.velocity)
            headings.append(s.heading if self.unicycle else 0.0)
            goals.append(goal)
            active.append(not self.reached_by[j])
        opos, orad, ovel = self.obstacles
        swarm = SwarmState(positions=np.array(positions)[None], headings=np.array(headings)[None],
                           velocities=np.array(velocities)[None], goals=np.array(goals)[None],
                           active=np.array(active)[None], obstacle_positions=opos[None], obstacle_radii=orad[None],
                           obstacle_velocities=ovel[None], time=stamp)
        try:
            alpha = np.minimum(self.alpha_source(swarm), self.config.alpha_cap)
            u = self.controller.act(swarm, alpha).u[0, 0]
        except Exception as exc:  # noqa: BLE001 - a controller failure must stop the robot, not the node
            self._refuse(f"controller failed ({type(exc).__name__}: {exc})")
            return
        if not np.all(np.isfinite(u)):
            self._refuse("controller produced NaN/Inf")
            return
        self._publish_cmd(float(u[0]), float(u[1]))
        if int(stamp / self.scenario.control_dt_s) % max(1, int(round(1.0 / self.scenario.control_dt_s))) == 0:
            self._publish_goal()  # ~1 Hz re-announcement for late joiners that missed the latched sample


def main(argv: list[str] | None = None) -> int:
    return run_node(SwarmAgentNode, argv)


if __name__ == "__main__":
    sys.exit(main())
