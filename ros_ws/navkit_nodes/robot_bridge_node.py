"""ROS 2 robot bridge: one robot backend behind standard topics.

Publishes ``odom`` (nav_msgs/Odometry, odom -> base_link), ``scan``, ``camera/image_raw``
and, when simulating, ``/clock``; applies ``cmd_vel`` (geometry_msgs/TwistStamped).
Which robot is behind it is one parameter (``backend``, the launch argument
``robot:=...``), a ``robot_backend`` plugin name; the other nodes cannot tell the difference.

TF: the odom -> base_link transform needs ``tf2_msgs``, which is not on PyPI; the
bridge publishes ``/tf`` when tf2_msgs is importable (a ROS 2 install) and otherwise
relies on the Odometry message's frame ids, which carry the same transform.

When simulating, the bridge also watches the episode with the same
:class:`~navkit.learning.navigation_task.NavigationTask` as the in-process runner, writes
``metrics.json`` to ``output_dir`` and exits (0: every goal reached, 3: time limit),
so a launch with ``on_exit: shutdown`` ends with the run.
"""
from __future__ import annotations

import sys

from rclpy.node import Node
from rclpy.qos import QoSProfile
from rosgraph_msgs.msg import Clock
from geometry_msgs.msg import TwistStamped
from nav_msgs.msg import Odometry as OdometryMsg
from sensor_msgs.msg import Image as ImageMsg
from sensor_msgs.msg import LaserScan as LaserScanMsg

from navkit.common.errors import NavkitError
from navkit.common.sensor_data import VelocityCommand
from navkit.ros_ws.navkit_nodes.conversions import (
    command_from_msg, image_to_msg, odometry_to_msg, scan_to_msg, to_time, yaw_to_quaternion)
from navkit.ros_ws.navkit_nodes.node_main import leave_metrics, node_params, params_source, run_node
from navkit.learning.navigation_task import NavigationTask
from navkit.stack.config import bridge_from_params
from navkit.stack.plugin_catalog import default_registry
from navkit.sim.scenario import load_scenario

try:  # present on a ROS 2 install, absent from PyPI
    from geometry_msgs.msg import TransformStamped
    from tf2_msgs.msg import TFMessage
except ImportError:  # pragma: no cover - depends on the machine
    TFMessage = None


class RobotBridgeNode(Node):
    def __init__(self) -> None:
        super().__init__("robot_bridge", automatically_declare_parameters_from_overrides=True)
        registry = default_registry()
        self.config = bridge_from_params(node_params(self), params_source(self), registry)
        cfg = self.config
        if not cfg.scenario:
            raise NavkitError(f"{params_source(self)}: scenario: a simulated robot needs a scenario file")
        self.scenario = load_scenario(cfg.scenario)
        choice = registry.choose("robot_backend", {"robot_backend.plugin": cfg.backend}, params_source(self),
                                 prefix="robot_backend")
        self.robot = registry.build(choice, scenario=self.scenario, cmd_timeout_s=cfg.cmd_timeout_s)
        self.dt = 1.0 / cfg.control_rate_hz
        self.monitor = NavigationTask(self.scenario, self.dt)
        self.exit_code = 0
        self.finished = False
        qos = QoSProfile(depth=10)
        self.clock_pub = self.create_publisher(Clock, "/clock", qos)
        self.odom_pub = self.create_publisher(OdometryMsg, "odom", qos)
        self.scan_pub = self.create_publisher(LaserScanMsg, "scan", qos)
        self.image_pub = self.create_publisher(ImageMsg, "camera/image_raw", qos)
        self.tf_pub = self.create_publisher(TFMessage, "/tf", qos) if TFMessage is not None else None
        self.create_subscription(TwistStamped, "cmd_vel", self._on_cmd, qos)
        self._next_scan = 0.0
        self._next_image = 0.0
        self._publish_sensors()
        self.timer = self.create_timer(self.dt / cfg.real_time_factor, self._step)
        self.get_logger().info(
            f"simulating {self.scenario.name!r} ({cfg.backend}) at {cfg.real_time_factor}x real time, "
            f"{len(self.scenario.goals)} goals")

    def _on_cmd(self, msg: TwistStamped) -> None:
        cmd = command_from_msg(msg)
        # The driver watchdog measures freshness from arrival, as a motor driver does.
        self.robot.apply_command(VelocityCommand(self.robot.now(), cmd.v, cmd.omega))
        if not cmd.is_finite():
            self.get_logger().warning("non-finite cmd_vel received: stopping", throttle_duration_sec=1.0)

    def _publish_sensors(self) -> None:
        now = self.robot.now()
        self.clock_pub.publish(Clock(clock=to_time(now)))
        odom = self.robot.read_odometry()
        self.odom_pub.publish(odometry_to_msg(odom))
        if self.tf_pub is not None:
            tf = TransformStamped()
            tf.header.stamp = to_time(now)
            tf.header.frame_id, tf.child_frame_id = odom.frame_id, odom.child_frame_id
            tf.transform.translation.x, tf.transform.translation.y = odom.pose.x, odom.pose.y
            r = tf.transform.rotation
            r.x, r.y, r.z, r.w = yaw_to_quaternion(odom.pose.yaw)
            self.tf_pub.publish(TFMessage(transforms=[tf]))
        if now >= self._next_scan - 1e-9:
            self.scan_pub.publish(scan_to_msg(self.robot.read_scan()))
            self._next_scan += 1.0 / self.scenario.sensors.lidar.rate_hz
        cam = self.scenario.sensors.camera
        if self.config.publish_camera and cam.enabled and now >= self._next_image - 1e-9:
            image = self.robot.read_camera()
            if image is not None:
                self.image_pub.publish(image_to_msg(image))
            self._next_image += 1.0 / cam.rate_hz
        self.monitor.update(now, odom, self.robot.true_pose(), self.robot.in_collision())

    def _step(self) -> None:
        self.robot.advance(self.dt)
        self._publish_sensors()
        if self.monitor.done or self.robot.now() >= self.scenario.time_limit_s:
            self._finish()

    def _metrics(self) -> dict:
        metrics = self.monitor.summary()
        metrics["watchdog_trips"] = self.robot.watchdog_trips
        return metrics

    def _write(self, metrics: dict) -> None:
        leave_metrics(metrics, self.config.output_dir)

    def finish_early(self, reason: str) -> None:
        """The launch ended before the episode did: leave what was measured, marked as aborted."""
        if self.finished:
            return
        self.finished = True
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
