"""ROS 2 robot bridge: one robot backend behind standard topics.

Publishes ``odom`` (nav_msgs/Odometry, odom -> base_link, covariances filled), ``/tf``
(odom -> base_link), ``/tf_static`` (base_link -> each sensor it owns, by the sensor's
real mount), ``scan`` and ``camera/image_raw`` when the backend has those sensors, and,
when simulating, ``/clock``; applies ``cmd_vel`` (geometry_msgs/TwistStamped, or Twist with
``cmd_vel_stamped: false``; stale or future stamps are dropped as diff_drive_controller does)
unless ``e_stop`` (std_msgs/Bool, any reliable publisher) is pressed; reports the robot on
``/diagnostics`` at 1 Hz. Sensor
topics are published with ``SensorDataQoS`` (best effort), as real drivers do, so
subscribers written for real drivers match. Which robot is behind it is one parameter
(``backend``, the launch argument ``robot:=...``), a ``robot_backend`` plugin name; the
other nodes cannot tell the difference.

Two kinds of backend, told apart by what they can do, not by name:

* a **simulator** (it implements :class:`~navkit.common.interfaces.SimulationTruth`) is
  stepped by this node at ``real_time_factor``; the node publishes ``/clock``, watches the
  episode with the same :class:`~navkit.learning.navigation_task.NavigationTask` as the
  in-process runner (from the first cmd_vel on: see :data:`START_WAIT_S`), writes
  ``metrics.json`` to ``output_dir`` and exits (0: every goal reached, 3: time limit), so a
  launch with ``on_exit: shutdown`` ends with the run;
* a **hardware driver** runs on the robot's own time: the node services it at
  ``control_rate_hz``, stamps with the system clock (nodes run with ``use_sim_time: false``),
  never ends on its own and never asks for ground truth.

The bridge is the robot's driver, so it is not a lifecycle node: like a vendor driver it runs
from launch to shutdown, and its watchdog stops the wheels whenever the managed navigation
nodes stop commanding.
"""
from __future__ import annotations

import sys
from typing import Any

from geometry_msgs.msg import Twist, TwistStamped
from nav_msgs.msg import Odometry as OdometryMsg
from rclpy.node import Node
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image as ImageMsg
from sensor_msgs.msg import LaserScan as LaserScanMsg
from std_msgs.msg import Bool

from navkit.common.errors import NavkitError
from navkit.common.geometry import RigidTransform
from navkit.common.interfaces import RobotBackend, SimulationTruth
from navkit.common.sensor_data import Odometry, VelocityCommand, is_fresh
from navkit.ros_ws.navkit_nodes.conversions import (
    command_from_msg, from_time, image_to_msg, odometry_to_msg, scan_to_msg, to_time)
from navkit.ros_ws.navkit_nodes.diagnostics import NodeDiagnostics
from navkit.ros_ws.navkit_nodes.node_main import leave_metrics, node_params, params_source, run_node
from navkit.ros_ws.navkit_nodes.tf_tree import StaticTfBroadcaster, TfBroadcaster, tf2_msgs_available, transform_msg
from navkit.learning.navigation_task import NavigationTask
from navkit.stack.config import bridge_from_params
from navkit.stack.plugin_catalog import default_registry
from navkit.sim.scenario import load_scenario


START_WAIT_S = 30.0
"""Simulation: the episode (its clock, time limit and metrics) starts with the first cmd_vel, i.e. once
the lifecycle manager has brought the stack up, so bring-up time is not charged to the robot; it
starts anyway after this much sim time without one (the robot stands still meanwhile)."""


class RobotBridgeNode(Node):
    def __init__(self) -> None:
        super().__init__("robot_bridge", automatically_declare_parameters_from_overrides=True)
        registry = default_registry()
        self.config, choice = bridge_from_params(node_params(self), params_source(self), registry)
        cfg = self.config
        self.scenario = load_scenario(cfg.scenario) if cfg.scenario else None
        self.robot: RobotBackend = registry.build(choice, scenario=self.scenario, cmd_timeout_s=cfg.cmd_timeout_s)
        self.simulated = isinstance(self.robot, SimulationTruth)
        if self.simulated and self.scenario is None:
            self.robot.close()
            raise NavkitError(f"{params_source(self)}: scenario: a simulated robot needs a scenario file")
        self.dt = 1.0 / cfg.control_rate_hz
        self.monitor = NavigationTask(self.scenario, self.dt) if self.simulated and self.scenario else None
        self.exit_code = 0
        self.finished = False
        self._t0: float | None = None
        """Sim time the episode started: the first cmd_vel (the managed stack is up), or START_WAIT_S."""
        sensor_qos = qos_profile_sensor_data
        self.clock_pub = self.create_publisher(Clock, "/clock", QoSProfile(depth=10)) if self.simulated else None
        self.odom_pub = self.create_publisher(OdometryMsg, "odom", sensor_qos)
        self.scan_pub = self.create_publisher(LaserScanMsg, "scan", sensor_qos)
        self.image_pub = self.create_publisher(ImageMsg, "camera/image_raw", sensor_qos)
        self.tf = TfBroadcaster(self) if tf2_msgs_available() else None
        self.tf_static = StaticTfBroadcaster(self) if tf2_msgs_available() else None
        if self.tf is None:
            self.get_logger().warning("tf2_msgs is not installed: no /tf (run scripts/build_tf2_msgs.sh); "
                                      "the odom message still carries odom -> base_link")
        if cfg.cmd_vel_stamped:
            self.create_subscription(TwistStamped, "cmd_vel", self._on_cmd, QoSProfile(depth=10))
        else:
            self.create_subscription(Twist, "cmd_vel", self._on_twist, QoSProfile(depth=10))
        self.stale_cmds = 0
        # Reliable + volatile matches every publisher (a default one, or a latched e-stop button node).
        self.estop = False
        self.create_subscription(Bool, "e_stop", self._on_estop, QoSProfile(depth=10))
        self.diagnostics = NodeDiagnostics(self, hardware_id=cfg.backend)
        self.diagnostics.add_check("robot", self._robot_status)
        self.diagnostics.start()
        self._next_scan = 0.0
        self._next_image = 0.0
        self._mounts_sent: set[str] = set()
        self._publish_sensors()
        period = self.dt / cfg.real_time_factor if self.simulated else self.dt
        self.timer = self.create_timer(period, self._step)
        if self.scenario is not None and self.simulated:
            self.get_logger().info(
                f"simulating {self.scenario.name!r} ({cfg.backend}) at {cfg.real_time_factor}x real time, "
                f"{len(self.scenario.goals)} goals")
        else:
            self.get_logger().info(f"driving the robot through {cfg.backend!r} at {cfg.control_rate_hz:g} Hz")

    def _stamp(self) -> float:
        """Simulated seconds in simulation (what /clock says); the system clock on a robot."""
        if self.simulated:
            return self.robot.now()
        return from_time(self.get_clock().now().to_msg())

    def _start_episode(self, why: str) -> None:
        if self._t0 is None and self.monitor is not None:
            self._t0 = self.robot.now()
            self.get_logger().info(f"episode starts at sim time {self._t0:.2f} s ({why})")

    def _on_estop(self, msg: Bool) -> None:
        """``e_stop`` (std_msgs/Bool, true = pressed): hold the wheels at zero until released.

        The bridge refuses every command while pressed (any backend); a hardware driver with its
        own latch (``set_estop``) is told too, so the stop holds even if this node stalls.
        """
        engaged = bool(msg.data)
        if engaged == self.estop:
            return
        self.estop = engaged
        set_estop = getattr(self.robot, "set_estop", None)
        if set_estop is not None:
            set_estop(engaged)
        self.robot.apply_command(VelocityCommand(self.robot.now(), 0.0, 0.0))
        self.get_logger().warning("e-stop pressed: wheels held at zero" if engaged else "e-stop released")

    def _robot_status(self) -> tuple[int, str, dict[str, Any]]:
        values: dict[str, Any] = {"backend": self.config.backend, "watchdog_trips": self.robot.watchdog_trips,
                                  "e_stop": self.estop, "stale_cmd_vel_dropped": self.stale_cmds}
        stats = getattr(self.robot, "stats", None)
        if stats is not None and hasattr(stats, "__dataclass_fields__"):
            values.update({k: getattr(stats, k) for k in stats.__dataclass_fields__})
        if self.estop:
            return 1, "e-stop pressed", values
        connected = getattr(self.robot, "connected", None)
        if connected is not None and not connected:
            return 2, f"robot link down: {getattr(self.robot, 'last_error', '') or 'not connected'}", values
        if self.simulated:
            values["sim_time_s"] = round(self.robot.now(), 3)
            return 0, "simulating" if self._t0 is not None else "waiting for the navigation stack", values
        return 0, "driving", values

    def _on_twist(self, msg: Twist) -> None:
        """Plain Twist (cmd_vel_stamped: false) carries no stamp: it counts as sent now."""
        stamped = TwistStamped()
        stamped.header.stamp = to_time(self._stamp())
        stamped.twist = msg
        self._on_cmd(stamped)

    def _on_cmd(self, msg: TwistStamped) -> None:
        self._start_episode("first cmd_vel: the navigation stack is up")
        if self.estop:
            return
        cmd = command_from_msg(msg)
        # Like diff_drive_controller: a command stamped further than cmd_timeout_s from now (old, or from a
        # clock running ahead) is dropped; a zero stamp means "now". Non-finite ones stop the base.
        now = self._stamp()
        if cmd.stamp != 0.0 and not is_fresh(cmd.stamp, now, self.config.cmd_timeout_s):
            self.stale_cmds += 1
            self.get_logger().warning(f"cmd_vel stamped {cmd.stamp - now:+.2f} s from now: dropped "
                                      f"({self.stale_cmds} so far)", throttle_duration_sec=1.0)
            return
        # The driver watchdog then measures freshness from arrival, as a motor driver does.
        self.robot.apply_command(VelocityCommand(self.robot.now(), cmd.v, cmd.omega))
        if not cmd.is_finite():
            self.get_logger().warning("non-finite cmd_vel received: stopping", throttle_duration_sec=1.0)

    def _send_mount(self, mount: RigidTransform | None) -> None:
        """Publish a sensor's mount on /tf_static the first time it is seen (latched for late joiners)."""
        if mount is None or self.tf_static is None or mount.child_frame in self._mounts_sent:
            return
        self._mounts_sent.add(mount.child_frame)
        self.tf_static.send(transform_msg(mount.parent_frame, mount.child_frame, self._stamp(), mount))

    def _publish_sensors(self) -> None:
        now = self._stamp()
        if self.clock_pub is not None:
            self.clock_pub.publish(Clock(clock=to_time(now)))
        odom = self.robot.read_odometry()
        # A driver's stamp is on its own clock (monotonic on hardware): keep its age, on the ROS clock, so
        # odometry that stopped updating (a link down) looks as stale downstream as it is.
        stamp = now if self.simulated else now - max(self.robot.now() - odom.stamp, 0.0)
        odom = Odometry(stamp, odom.pose, odom.v, odom.omega, odom.frame_id, odom.child_frame_id)
        cfg = self.config
        self.odom_pub.publish(odometry_to_msg(odom, cfg.pose_covariance_diagonal, cfg.twist_covariance_diagonal))
        if self.tf is not None:
            self.tf.send(transform_msg(odom.frame_id, odom.child_frame_id, stamp, odom.pose))
        if now >= self._next_scan - 1e-9:
            scan = self.robot.read_scan()
            if scan is not None:
                self._send_mount(scan.mount)
                self.scan_pub.publish(scan_to_msg(scan, stamp=now))
            if self.scenario is not None:
                self._next_scan += 1.0 / self.scenario.sensors.lidar.rate_hz
            else:
                self._next_scan = now
        cam = self.scenario.sensors.camera if self.scenario is not None else None
        if self.config.publish_camera and cam is not None and cam.enabled and now >= self._next_image - 1e-9:
            image = self.robot.read_camera()
            if image is not None:
                self._send_mount(image.extrinsics)
                self.image_pub.publish(image_to_msg(image, stamp=now))
            self._next_image += 1.0 / cam.rate_hz
        if self.monitor is not None and self._t0 is not None:
            truth: Any = self.robot
            self.monitor.update(now - self._t0, odom, truth.true_pose(), truth.in_collision())

    def _step(self) -> None:
        # A simulator is stepped by one control period; a hardware driver is serviced (its
        # own clock runs on), so advance(0) only reads encoders and feeds its watchdog.
        self.robot.advance(self.dt if self.simulated else 0.0)
        self._publish_sensors()
        if self.monitor is None or self.scenario is None:
            return
        if self._t0 is None and self.robot.now() >= START_WAIT_S:
            self._start_episode(f"no cmd_vel within {START_WAIT_S:g} s of sim time")
        if self._t0 is not None and (self.monitor.done or self.robot.now() - self._t0 >= self.scenario.time_limit_s):
            self._finish()

    def _metrics(self) -> dict:
        metrics = self.monitor.summary() if self.monitor is not None else {}
        metrics["watchdog_trips"] = self.robot.watchdog_trips
        return metrics

    def _write(self, metrics: dict) -> None:
        leave_metrics(metrics, self.config.output_dir)

    def finish_early(self, reason: str) -> None:
        """The launch ended before the episode did: leave what was measured, marked as aborted."""
        if self.finished:
            return
        self.finished = True
        if self.monitor is not None:
            metrics = self._metrics()
            metrics.update(aborted=True, abort_reason=reason)
            self._write(metrics)
        self.robot.close()

    def _finish(self) -> None:
        self.timer.cancel()
        self.finished = True
        metrics = self._metrics()
        self._write(metrics)
        outcome = "all goals reached" if metrics["success"] else "time limit reached"
        self.get_logger().info(
            f"{outcome}: goals {metrics['goals_reached']}/{metrics['goals_total']}, collisions {metrics['collisions']}, "
            f"min clearance {metrics['min_clearance_m']:.3f} m, sim time {metrics['sim_time_s']:.1f} s")
        self.exit_code = 0 if metrics["success"] else 3
        self.robot.close()
        self.context.try_shutdown()


def main(argv: list[str] | None = None) -> int:
    return run_node(RobotBridgeNode, argv)


if __name__ == "__main__":
    sys.exit(main())
