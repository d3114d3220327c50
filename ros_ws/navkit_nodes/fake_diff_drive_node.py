"""A fake differential-drive base that answers ``cmd_vel`` the way ros2_control's ``diff_drive_controller`` does.

Why: a stack that drives a real robot talks to a vendor driver, and most of them are
``diff_drive_controller`` or imitate it. Its command rules decide whether a navigation
stack's commands move the robot at all, so tests (and users without hardware) need a base
that applies the *same* rules, not a friendlier one:

* ``cmd_vel`` is ``geometry_msgs/TwistStamped`` (``use_stamped_vel: true``, what current
  controller releases expect) or plain ``geometry_msgs/Twist`` (``false``, older setups).
* A stamped command older than ``cmd_vel_timeout`` (0.5 s, the controller's default) on
  this node's clock is **dropped**, with a throttled warning. A zero stamp means "now", as
  in the controller. A plain Twist is stamped on arrival.
* When the last accepted command's stamp is more than ``cmd_vel_timeout`` old at an update,
  the wheels **stop** (the controller's watchdog). One deliberate difference: a command
  stamped in the future (sender clock ahead) is timed from its arrival instead of its stamp,
  so clock skew can never keep the wheels turning after the sender has gone quiet.
* An ideal unicycle is integrated at ``publish_rate`` (50 Hz, the controller's default):
  velocities apply instantly, no limits, no slip; the pose is exact on the arc.

Published: ``odom`` (``nav_msgs/Odometry``, frames ``odom_frame_id``/``base_frame_id``,
diagonal covariances from ``pose_covariance_diagonal``/``twist_covariance_diagonal`` as in
the controller's parameters) with ``odom_qos``: ``best_effort`` (default, as many vendor
drivers publish it; a best-effort subscriber hears either) or ``reliable`` (the
controller's own ``~/odom``). And ``/tf`` odom -> base_link when ``enable_odom_tf`` and
``tf2_msgs`` is importable (it is not on PyPI; without it the Odometry frame ids carry the
same transform). No sensors: this is a base driver only.

At exit it logs its counters: commands accepted, dropped as stale, dropped as invalid
(NaN/Inf), and watchdog timeouts (a moving command that expired).
"""
from __future__ import annotations

import array
import math
import sys
from dataclasses import dataclass
from typing import Any

from geometry_msgs.msg import Twist, TwistStamped
from nav_msgs.msg import Odometry as OdometryMsg
from rclpy.node import Node
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from rclpy.time import Time

from navkit.common.errors import ParameterError
from navkit.common.geometry import Pose2D, wrap_angle
from navkit.common.params import config_from_params
from navkit.common.sensor_data import Odometry
from navkit.ros_ws.navkit_nodes.conversions import odometry_to_msg
from navkit.ros_ws.navkit_nodes.node_main import node_params, params_source, run_node
from navkit.ros_ws.navkit_nodes.tf_tree import TfBroadcaster, tf2_msgs_available, transform_msg

NODE_NAME = "fake_diff_drive"
ODOM_QOS = ("best_effort", "reliable")
_WARN_PERIOD_S = 1.0


@dataclass(frozen=True)
class FakeDiffDriveConfig:
    """The node's parameters; names follow diff_drive_controller's so a params file carries over."""

    use_stamped_vel: bool = True
    cmd_vel_timeout: float = 0.5
    publish_rate: float = 50.0
    odom_qos: str = "best_effort"
    odom_frame_id: str = "odom"
    base_frame_id: str = "base_link"
    enable_odom_tf: bool = True
    pose_covariance_diagonal: tuple[float, ...] = (0.001, 0.001, 0.001, 0.001, 0.001, 0.01)
    twist_covariance_diagonal: tuple[float, ...] = (0.001, 0.001, 0.001, 0.001, 0.001, 0.01)


def check_config(cfg: FakeDiffDriveConfig, source: str) -> None:
    """Refuse values the controller would misbehave on; ParameterError names the parameter."""
    if not (math.isfinite(cfg.cmd_vel_timeout) and cfg.cmd_vel_timeout > 0):
        raise ParameterError(source, "cmd_vel_timeout", f"must be > 0 seconds, got {cfg.cmd_vel_timeout}")
    if not (math.isfinite(cfg.publish_rate) and 0 < cfg.publish_rate <= 1000):
        raise ParameterError(source, "publish_rate", f"must be in (0, 1000] Hz, got {cfg.publish_rate}")
    if cfg.odom_qos not in ODOM_QOS:
        raise ParameterError(source, "odom_qos", f"expected one of {', '.join(ODOM_QOS)}, got {cfg.odom_qos!r}")
    for name in ("odom_frame_id", "base_frame_id"):
        if not getattr(cfg, name):
            raise ParameterError(source, name, "must not be empty")
    for name in ("pose_covariance_diagonal", "twist_covariance_diagonal"):
        values = getattr(cfg, name)
        if len(values) != 6 or not all(math.isfinite(v) and v >= 0 for v in values):
            raise ParameterError(source, name, f"expected 6 finite numbers >= 0, got {list(values)}")


def integrate_unicycle(pose: Pose2D, v: float, omega: float, dt: float) -> Pose2D:
    """Exact unicycle motion over ``dt`` at constant (v, omega): an arc, or a line when omega ~ 0."""
    if abs(omega) < 1e-9:
        return Pose2D(pose.x + v * dt * math.cos(pose.yaw), pose.y + v * dt * math.sin(pose.yaw), pose.yaw)
    yaw = pose.yaw + omega * dt
    radius = v / omega
    return Pose2D(pose.x + radius * (math.sin(yaw) - math.sin(pose.yaw)),
                  pose.y - radius * (math.cos(yaw) - math.cos(pose.yaw)), float(wrap_angle(yaw)))


class FakeDiffDriveNode(Node):
    """See the module docstring; counters are attributes so in-process users can read them."""

    def __init__(self) -> None:
        super().__init__(NODE_NAME, automatically_declare_parameters_from_overrides=True)
        source = params_source(self)
        # rclpy hands double arrays over as array.array; the strict parser takes lists.
        params = {k: list(v) if isinstance(v, array.array) else v for k, v in node_params(self).items()}
        self.config = config_from_params(FakeDiffDriveConfig, params, source)
        check_config(self.config, source)
        cfg = self.config
        self.timeout_ns = round(cfg.cmd_vel_timeout * 1e9)
        self.period_s = 1.0 / cfg.publish_rate
        self.pose = Pose2D(0.0, 0.0, 0.0)
        self.v = 0.0
        self.omega = 0.0
        self.accepted = 0
        self.dropped_stale = 0
        self.dropped_invalid = 0
        self.timeouts = 0
        self._command: tuple[int, float, float] | None = None  # (stamp ns, v, omega) of the last accepted one
        self._command_expired = True
        self._warned_zero_stamp = False
        self._last_step_ns: int | None = None
        reliable = cfg.odom_qos == "reliable"
        odom_qos = QoSProfile(depth=10) if reliable else qos_profile_sensor_data
        self.odom_pub = self.create_publisher(OdometryMsg, "odom", odom_qos)
        self.tf = TfBroadcaster(self) if tf2_msgs_available() and cfg.enable_odom_tf else None
        # Reliable, as the controller's SystemDefaultsQoS subscription: a best-effort cmd_vel
        # publisher does not reach it there either.
        if cfg.use_stamped_vel:
            self.create_subscription(TwistStamped, "cmd_vel", self._on_stamped, QoSProfile(depth=10))
        else:
            self.create_subscription(Twist, "cmd_vel", self._on_twist, QoSProfile(depth=10))
        self.create_timer(self.period_s, self._step)
        self.get_logger().info(
            f"fake diff drive: cmd_vel as {'TwistStamped' if cfg.use_stamped_vel else 'Twist'}, timeout "
            f"{cfg.cmd_vel_timeout:g} s, odom at {cfg.publish_rate:g} Hz ({cfg.odom_qos}), "
            f"/tf {'on' if self.tf is not None else 'off (no tf2_msgs)' if cfg.enable_odom_tf else 'off'}")

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    # -- commands ------------------------------------------------------------

    def _on_stamped(self, msg: TwistStamped) -> None:
        now = self._now_ns()
        stamp = Time.from_msg(msg.header.stamp).nanoseconds
        if stamp == 0:
            if not self._warned_zero_stamp:
                self._warned_zero_stamp = True
                self.get_logger().warning("received TwistStamped with zero stamp, setting it to the current time "
                                          "(shown once)")
            stamp = now
        age_ns = now - stamp
        if age_ns >= self.timeout_ns:
            self.dropped_stale += 1
            self.get_logger().warning(
                f"ignoring cmd_vel stamped {age_ns * 1e-9:.3f} s ago: older than cmd_vel_timeout "
                f"{self.config.cmd_vel_timeout:g} s", throttle_duration_sec=_WARN_PERIOD_S)
            return
        self._accept(min(stamp, now), msg.twist)

    def _on_twist(self, msg: Twist) -> None:
        self._accept(self._now_ns(), msg)

    def _accept(self, stamp_ns: int, twist: Twist) -> None:
        v, omega = float(twist.linear.x), float(twist.angular.z)
        if not (math.isfinite(v) and math.isfinite(omega)):
            self.dropped_invalid += 1
            self.get_logger().warning("ignoring non-finite cmd_vel", throttle_duration_sec=_WARN_PERIOD_S)
            return
        self.accepted += 1
        self._command = (stamp_ns, v, omega)
        self._command_expired = False

    # -- the control loop ------------------------------------------------------

    def _step(self) -> None:
        """One update: apply the command (or the watchdog's stop), integrate, publish."""
        now = self._now_ns()
        if self._last_step_ns is None or now < self._last_step_ns:  # first step, or the clock went back
            self._last_step_ns = now
        # A stalled executor must not turn one command into a long drive: never integrate
        # more than the command timeout in one step.
        dt = min((now - self._last_step_ns) * 1e-9, self.config.cmd_vel_timeout)
        self._last_step_ns = now
        self.pose = integrate_unicycle(self.pose, self.v, self.omega, dt)
        if self._command is not None and now - self._command[0] <= self.timeout_ns:
            _, self.v, self.omega = self._command
        else:
            if self._command is not None and not self._command_expired:
                self._command_expired = True
                if self.v != 0.0 or self.omega != 0.0:
                    self.timeouts += 1
            self.v = self.omega = 0.0
        self._publish(now)

    def _publish(self, now_ns: int) -> None:
        cfg = self.config
        msg = odometry_to_msg(Odometry(now_ns * 1e-9, self.pose, self.v, self.omega, cfg.odom_frame_id,
                                       cfg.base_frame_id), cfg.pose_covariance_diagonal, cfg.twist_covariance_diagonal)
        stamp = Time(nanoseconds=now_ns).to_msg()  # exact: seconds as a float lose ~0.2 us at today's epoch
        msg.header.stamp = stamp
        self.odom_pub.publish(msg)
        if self.tf is not None:
            tf = transform_msg(cfg.odom_frame_id, cfg.base_frame_id, now_ns * 1e-9, self.pose)
            tf.header.stamp = stamp
            self.tf.send(tf)

    def counters(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "dropped_stale": self.dropped_stale,
                "dropped_invalid": self.dropped_invalid, "timeouts": self.timeouts}

    def finish_early(self, reason: str) -> None:
        """Called by run_node on any exit: the counters are the driver's report, so print them."""
        c = self.counters()
        print(f"[{NODE_NAME}] {reason}: commands accepted {c['accepted']}, dropped as stale {c['dropped_stale']}, "
              f"dropped as invalid {c['dropped_invalid']}, watchdog timeouts {c['timeouts']}; final pose "
              f"x={self.pose.x:.3f} y={self.pose.y:.3f} yaw={self.pose.yaw:.3f}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    return run_node(FakeDiffDriveNode, argv)


if __name__ == "__main__":
    sys.exit(main())
