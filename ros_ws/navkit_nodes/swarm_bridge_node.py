"""ROS 2 swarm simulator bridge: one swarm scenario behind per-robot namespaced topics.

Topics (``i`` = 0..N-1; all poses in the world frame ``map``):

* ``/clock`` (rosgraph_msgs/Clock): sim time, one message per control period.
* ``/robot_i/odom`` (nav_msgs/Odometry): ``header.frame_id = map``,
  ``child_frame_id = robot_i/base_link``; the pose, and the twist **in the child frame**
  (REP-105 / nav_msgs convention): world velocity rotated by -yaw. Single-integrator
  agents have heading 0, so for them body frame = world frame.
* ``/robot_i/obstacles`` (visualization_msgs/MarkerArray): a stand-in for robot i's
  perception. A ``DELETEALL`` marker, then one ``CYLINDER`` marker (namespace
  ``obstacles``, id = obstacle index, frame ``map``) per obstacle whose *surface* lies
  within ``sensing_radius_m`` of the robot's centre (the multi-agent CBF's rule): centre
  in ``pose.position``, diameter in ``scale.x``/``scale.y``, and its world-frame velocity
  in ``points[0]`` (x, y; 0 for static obstacles). RViz shows it as is.
* Subscribes ``/robot_i/cmd_vel`` (geometry_msgs/TwistStamped): single integrator ->
  ``linear.x``, ``linear.y`` (robot frame = world frame, heading 0); unicycle ->
  ``linear.x`` (v), ``angular.z`` (ω).

Every control period (``scenario.control_dt_s`` sim seconds, ``1/real_time_factor`` of
that in wall time) it steps the backend with each robot's latest command. Watchdog: a
robot whose last command arrived more than ``cmd_timeout_s`` sim seconds ago (or never)
is stopped, and counted once per stale episode in ``watchdog_trips``. The episode is
scored by :class:`~navkit.learning.swarm_rollout.EpisodeScorer` (the definitions of
:func:`~navkit.learning.swarm_rollout.rollout`); ``infeasible`` is -1 because the QPs
run in the agent nodes. At the end it writes ``metrics.json`` to ``output_dir`` and exits
0 (every robot at its goal at once) or 3 (time limit), so ``on_exit: shutdown`` ends
the launch.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass

import numpy as np
from geometry_msgs.msg import Point, TwistStamped
from nav_msgs.msg import Odometry as OdometryMsg
from rclpy.node import Node
from rclpy.qos import QoSProfile
from rosgraph_msgs.msg import Clock
from visualization_msgs.msg import Marker, MarkerArray

from navkit.common.errors import NavkitError
from navkit.common.params import config_from_params
from navkit.learning.swarm_task import EpisodeScorer
from navkit.common.geometry import yaw_to_quaternion
from navkit.ros_ws.navkit_nodes.conversions import to_time
from navkit.ros_ws.navkit_nodes.diagnostics import NodeDiagnostics
from navkit.ros_ws.navkit_nodes.node_main import leave_metrics, node_params, params_source, run_node
from navkit.sim.swarm_perception import perceived_obstacles
from navkit.sim.swarm_scenario import load_swarm_scenario
from navkit.stack.plugin_catalog import default_registry

OBSTACLE_MARKER_NS = "obstacles"
OBSTACLE_MARKER_HEIGHT_M = 0.5


@dataclass(frozen=True)
class SwarmBridgeConfig:
    """The swarm simulator bridge (node ``swarm_bridge``)."""

    scenario: str = ""
    """Swarm scenario YAML (``kind: swarm``)."""
    num_agents: int = 0
    """Resize the layout to this many robots; 0 = the file's count."""
    seed: int = -1
    """Scenario seed; -1 = the file's seed."""
    backend: str = "mujoco"
    """A ``swarm_backend`` plugin: ``mujoco`` (physics) or ``kinematic`` (vectorised kinematics)."""
    real_time_factor: float = 1.0
    """Simulated seconds per wall second."""
    cmd_timeout_s: float = 0.5
    """Watchdog, in sim seconds: a robot whose cmd_vel is older than this is stopped."""
    output_dir: str = ""
    """Where metrics.json goes at the end (empty: nowhere)."""
    wait_for_robots_s: float = 60.0
    """Hold the clock at 0 until every robot has sent a first cmd_vel, for up to this many wall seconds:
    agent nodes take seconds to start (torch, the policy), and an episode must not run while they load.
    After the timeout the run starts anyway; a silent robot is stopped by the watchdog."""

    def __post_init__(self) -> None:
        if self.wait_for_robots_s < 0:
            raise ValueError("wait_for_robots_s must be >= 0")
        if self.num_agents < 0:
            raise ValueError("num_agents must be >= 0")
        for name in ("real_time_factor", "cmd_timeout_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")


class SwarmBridgeNode(Node):
    def __init__(self) -> None:
        super().__init__("swarm_bridge", automatically_declare_parameters_from_overrides=True)
        source = params_source(self)
        cfg = self.config = config_from_params(SwarmBridgeConfig, node_params(self), source)
        if not cfg.scenario:
            raise NavkitError(f"{source}: scenario: the swarm bridge needs a swarm scenario file")
        spec = load_swarm_scenario(cfg.scenario)
        self.scenario = spec.expand(seed=None if cfg.seed < 0 else cfg.seed, num_agents=cfg.num_agents or None)
        registry = default_registry()
        choice = registry.choose("swarm_backend", {"swarm_backend.plugin": cfg.backend}, source, prefix="swarm_backend")
        self.sim, self.backend = registry.build(choice, scenario=self.scenario), cfg.backend
        self.sim.reset()
        n = self.n = self.scenario.num_agents
        self.dt = self.scenario.control_dt_s
        self.unicycle = self.scenario.dynamics == "unicycle"
        self.state = self.sim.state
        self.scorer = EpisodeScorer([self.scenario], self.state.positions.copy())
        self.commands = np.zeros((n, 2))
        self.cmd_arrival = np.full(n, -math.inf)  # sim time each robot's latest command arrived
        self.heard = np.zeros(n, dtype=bool)
        self.started = False
        self.wall_start = time.monotonic()
        self.stale = np.ones(n, dtype=bool)
        self.watchdog_trips = 0
        self.nonfinite_cmds = 0
        self.exit_code = 0
        self.finished = False
        qos = QoSProfile(depth=10)
        self.clock_pub = self.create_publisher(Clock, "/clock", qos)
        self.odom_pubs = [self.create_publisher(OdometryMsg, f"/robot_{i}/odom", qos) for i in range(n)]
        self.obstacle_pubs = [self.create_publisher(MarkerArray, f"/robot_{i}/obstacles", qos) for i in range(n)]
        for i in range(n):
            self.create_subscription(TwistStamped, f"/robot_{i}/cmd_vel", lambda m, i=i: self._on_cmd(i, m), qos)
        self._publish()
        self.timer = self.create_timer(self.dt / cfg.real_time_factor, self._step)
        self.diagnostics = NodeDiagnostics(self, hardware_id="swarm")
        self.diagnostics.add_check("team", lambda: (0, "simulating", {"watchdog_trips": int(self.watchdog_trips)}))
        self.diagnostics.start()
        self.get_logger().info(
            f"simulating {self.scenario.name!r} seed {self.scenario.seed} with {n} robots ({self.backend}, "
            f"{self.scenario.dynamics}) at {cfg.real_time_factor}x real time")

    # ------------------------------------------------------------------ commands

    def _on_cmd(self, i: int, msg: TwistStamped) -> None:
        t = msg.twist
        u = (t.linear.x, t.angular.z) if self.unicycle else (t.linear.x, t.linear.y)
        if not all(math.isfinite(v) for v in u):
            self.nonfinite_cmds += 1
            self.get_logger().warning(f"non-finite cmd_vel for robot_{i}: stopping it", throttle_duration_sec=1.0)
            u = (0.0, 0.0)
        self.commands[i] = u
        self.heard[i] = True
        # Freshness from arrival, as a motor driver measures it.
        self.cmd_arrival[i] = float(self.state.time)

    def _applied_commands(self) -> np.ndarray:
        stale = (self.state.time - self.cmd_arrival) > self.config.cmd_timeout_s
        self.watchdog_trips += int((stale & ~self.stale).sum())
        self.stale = stale
        return np.where(stale[:, None], 0.0, self.commands)

    # ------------------------------------------------------------------ stepping

    def _step(self) -> None:
        if not self.started:
            waited = time.monotonic() - self.wall_start
            if not self.heard.all() and waited < self.config.wait_for_robots_s:
                self._publish()  # time stands still; robots see their start state
                self.get_logger().info(f"waiting for robots: {int(self.heard.sum())}/{self.n} have sent cmd_vel",
                                       throttle_duration_sec=2.0)
                return
            if not self.heard.all():
                self.get_logger().warning(f"starting without robots {np.flatnonzero(~self.heard).tolist()}: "
                                          f"no cmd_vel after {waited:.0f} s")
            self.started = True
            self.cmd_arrival[:] = float(self.state.time)  # commands sent while waiting count as fresh
        before = self.state.positions.copy()
        step = self.sim.step(self._applied_commands()[None])
        self.state = step.state
        done = self.scorer.update(before, step, float(self.state.time))
        self._publish()
        if done.all():
            self._finish()

    def _publish(self) -> None:
        s = self.state
        stamp = to_time(float(s.time))
        self.clock_pub.publish(Clock(clock=stamp))
        pos, yaw, vel = s.positions[0], s.headings[0], s.velocities[0]
        opos, orad, ovel = s.obstacle_positions[0], s.obstacle_radii[0], s.obstacle_velocities[0]
        for i in range(self.n):
            msg = OdometryMsg()
            msg.header.stamp = stamp
            msg.header.frame_id = "map"
            msg.child_frame_id = f"robot_{i}/base_link"
            msg.pose.pose.position.x, msg.pose.pose.position.y = float(pos[i, 0]), float(pos[i, 1])
            q = msg.pose.pose.orientation
            q.x, q.y, q.z, q.w = yaw_to_quaternion(float(yaw[i]))
            c, sn = math.cos(yaw[i]), math.sin(yaw[i])  # world -> body: rotate by -yaw
            msg.twist.twist.linear.x = float(c * vel[i, 0] + sn * vel[i, 1])
            msg.twist.twist.linear.y = float(-sn * vel[i, 0] + c * vel[i, 1])
            self.odom_pubs[i].publish(msg)
            markers = MarkerArray()
            clear = Marker()
            clear.header.stamp, clear.header.frame_id = stamp, "map"
            clear.ns, clear.action = OBSTACLE_MARKER_NS, Marker.DELETEALL
            markers.markers.append(clear)
            for k in perceived_obstacles(pos[i], opos, orad, self.scenario.sensing_radius_m):
                m = Marker()
                m.header.stamp, m.header.frame_id = stamp, "map"
                m.ns, m.id, m.type, m.action = OBSTACLE_MARKER_NS, int(k), Marker.CYLINDER, Marker.ADD
                m.pose.position.x, m.pose.position.y = float(opos[k, 0]), float(opos[k, 1])
                m.pose.position.z = OBSTACLE_MARKER_HEIGHT_M / 2
                m.pose.orientation.w = 1.0
                m.scale.x = m.scale.y = float(2.0 * orad[k])
                m.scale.z = OBSTACLE_MARKER_HEIGHT_M
                m.color.r, m.color.g, m.color.b, m.color.a = 0.5, 0.5, 0.5, 1.0
                m.points.append(Point(x=float(ovel[k, 0]), y=float(ovel[k, 1]), z=0.0))
                markers.markers.append(m)
            self.obstacle_pubs[i].publish(markers)

    def _metrics(self) -> dict:
        row = self.scorer.metrics(infeasible_observed=False)[0].as_dict()
        row.update(backend=self.backend, watchdog_trips=self.watchdog_trips, nonfinite_cmds=self.nonfinite_cmds,
                   real_time_factor=self.config.real_time_factor)
        return row

    def _write(self, metrics: dict) -> None:
        leave_metrics(metrics, self.config.output_dir)

    def finish_early(self, reason: str) -> None:
        """The launch ended before the episode did: leave what was measured, marked as aborted."""
        if self.finished:
            return
        self.finished = True
        row = self._metrics()
        row.update(aborted=True, abort_reason=reason, episode_time_s=float(self.state.time))
        self._write(row)
        close = getattr(self.sim, "close", None)
        if close is not None:
            close()

    def _finish(self) -> None:
        self.timer.cancel()
        self.finished = True
        row = self._metrics()
        self._write(row)
        outcome = "all robots at their goals" if row["success"] else "time limit reached"
        self.get_logger().info(
            f"{outcome}: {row['agents_at_goal']}/{row['num_agents']} arrived, collisions {row['collisions']}, "
            f"min separation {row['min_separation_m']:.3f} m, sim time {row['episode_time_s']:.1f} s")
        self.exit_code = 0 if row["success"] else 3
        close = getattr(self.sim, "close", None)
        if close is not None:
            close()
        self.context.try_shutdown()


def main(argv: list[str] | None = None) -> int:
    return run_node(SwarmBridgeNode, argv)


if __name__ == "__main__":
    sys.exit(main())
