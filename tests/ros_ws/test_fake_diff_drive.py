"""The fake diff-drive base (navkit.ros_ws.navkit_nodes.fake_diff_drive_node) over DDS on an isolated domain.

It must apply diff_drive_controller's command rules, because those decide whether a
stack's commands move a real base: stale stamps are dropped, the watchdog stops the
wheels ``cmd_vel_timeout`` after the last command's stamp, and plain Twist works when asked.
"""
from __future__ import annotations

import math
import re
import signal
import subprocess
from typing import Any

import pytest

from ros_helpers import domain_id, node_argv, ros_env, twist_msg

pytestmark = pytest.mark.ros

DRIVE = node_argv("fake_diff_drive_node")
TIMEOUT_S = 0.5
PERIOD_S = 1.0 / 50.0


class OdomProbe:
    """Collects (stamp ns, x, yaw, v) from ``odom`` with a best-effort subscription (hears either QoS)."""

    def __init__(self, client: Any) -> None:
        from nav_msgs.msg import Odometry
        from rclpy.qos import qos_profile_sensor_data

        self.msgs: list[Any] = []
        client.node.create_subscription(Odometry, "odom", self.msgs.append, qos_profile_sensor_data)

    @staticmethod
    def stamp_ns(msg: Any) -> int:
        return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec

    def x(self) -> float:
        return self.msgs[-1].pose.pose.position.x


def publish_for(client: Any, pub: Any, make: Any, seconds: float, period: float = 0.05) -> Any:
    """Publish ``make()`` every ``period`` for ``seconds`` while spinning; returns the last message."""
    msg = None
    for _ in range(max(1, round(seconds / period))):
        msg = make()
        pub.publish(msg)
        client.spin_for(period)
    return msg


def test_stamped_commands_stale_drop_and_watchdog(spawn: Any, ros_client: Any) -> None:
    from geometry_msgs.msg import TwistStamped
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    domain = domain_id()
    client = ros_client(domain)
    drive = spawn([*DRIVE, "--ros-args", "-p", f"cmd_vel_timeout:={TIMEOUT_S}"], ros_env(domain), "drive")
    odom = OdomProbe(client)
    tfs: list[Any] = []
    try:  # /tf only where tf2_msgs is installed (scripts/build_tf2_msgs.sh), as in the node
        from tf2_msgs.msg import TFMessage
    except ImportError:
        TFMessage = None
    if TFMessage is not None:
        client.node.create_subscription(TFMessage, "/tf", tfs.append, QoSProfile(depth=100))
    pub = client.node.create_publisher(TwistStamped, "cmd_vel", QoSProfile(depth=10))
    assert client.spin_until(lambda: len(odom.msgs) >= 5 and pub.get_subscription_count() > 0, 20.0), drive.output()

    first = odom.msgs[-1]
    assert (first.header.frame_id, first.child_frame_id) == ("odom", "base_link")
    assert first.pose.covariance[0] > 0 and first.twist.covariance[35] > 0
    (info,) = client.node.get_publishers_info_by_topic("/odom")
    assert info.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT

    # Stale: stamped a full second ago -> dropped, the base does not move.
    n_before = len(odom.msgs)
    publish_for(client, pub, lambda: twist_msg(client, 1.0, 0.0, age_s=1.0), 0.5)
    client.spin_for(0.1)
    assert len(odom.msgs) > n_before
    assert odom.x() == 0.0 and all(m.twist.twist.linear.x == 0.0 for m in odom.msgs)

    # Fresh: moves forward at the commanded speed.
    last = publish_for(client, pub, lambda: twist_msg(client, 0.5, 0.0), 1.0)
    assert odom.x() > 0.2
    assert any(m.twist.twist.linear.x == pytest.approx(0.5) for m in odom.msgs)
    if TFMessage is not None:
        (tf,) = tfs[-1].transforms
        assert (tf.header.frame_id, tf.child_frame_id) == ("odom", "base_link")
        assert tf.transform.translation.x > 0.2

    # Commands stop: the wheels stop cmd_vel_timeout after the last command's stamp (+ one period).
    client.spin_for(TIMEOUT_S + 0.5)
    last_ns = OdomProbe.stamp_ns(last)
    deadline_ns = last_ns + round(TIMEOUT_S * 1e9)
    moving = [OdomProbe.stamp_ns(m) for m in odom.msgs if m.twist.twist.linear.x != 0.0]
    assert max(moving) <= deadline_ns + 1_000_000
    stopped = [OdomProbe.stamp_ns(m) for m in odom.msgs
               if m.twist.twist.linear.x == 0.0 and OdomProbe.stamp_ns(m) > last_ns]
    # One period late at most, plus slack for a loaded machine's timer.
    assert stopped and min(stopped) <= deadline_ns + round((PERIOD_S + 0.1) * 1e9)
    assert odom.msgs[-1].pose.pose.position.x == odom.msgs[-2].pose.pose.position.x  # standing still

    drive.proc.send_signal(signal.SIGINT)
    assert drive.proc.wait(timeout=15) == 0, drive.output()
    counters = re.search(r"commands accepted (\d+), dropped as stale (\d+), dropped as invalid (\d+), "
                         r"watchdog timeouts (\d+)", drive.output())
    assert counters, drive.output()
    accepted, stale, invalid, timeouts = map(int, counters.groups())
    assert accepted >= 10 and stale >= 5 and invalid == 0 and timeouts == 1


def test_plain_twist_mode_and_reliable_odom(spawn: Any, ros_client: Any) -> None:
    from geometry_msgs.msg import Twist
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    domain = domain_id()
    client = ros_client(domain)
    drive = spawn([*DRIVE, "--ros-args", "-p", "use_stamped_vel:=false", "-p", "odom_qos:=reliable"],
                  ros_env(domain), "drive")
    odom = OdomProbe(client)
    pub = client.node.create_publisher(Twist, "cmd_vel", QoSProfile(depth=10))
    assert client.spin_until(lambda: len(odom.msgs) >= 5 and pub.get_subscription_count() > 0, 20.0), drive.output()
    (info,) = client.node.get_publishers_info_by_topic("/odom")
    assert info.qos_profile.reliability == ReliabilityPolicy.RELIABLE

    def turn() -> Twist:
        msg = Twist()
        msg.linear.x, msg.angular.z = 0.4, 0.5
        return msg

    publish_for(client, pub, turn, 0.6)
    q = odom.msgs[-1].pose.pose.orientation
    assert odom.x() > 0.1 and 2.0 * math.atan2(q.z, q.w) > 0.1  # forward and turning left


def test_bad_parameter_is_one_line_and_exit_2() -> None:
    done = subprocess.run([*DRIVE, "--ros-args", "-p", "odom_qos:=fast"], capture_output=True, text=True,
                          timeout=60, env=ros_env(domain_id()))
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "odom_qos" in errors[0], done.stderr


def test_unicycle_integration_is_exact() -> None:
    from navkit.common.geometry import Pose2D
    from navkit.ros_ws.navkit_nodes.fake_diff_drive_node import integrate_unicycle

    pose = Pose2D(0.0, 0.0, 0.0)
    for _ in range(100):  # one full circle of radius 1 in 100 steps
        pose = integrate_unicycle(pose, 1.0, 1.0, 2.0 * math.pi / 100)
    assert (pose.x, pose.y) == pytest.approx((0.0, 0.0), abs=1e-9)
    straight = integrate_unicycle(Pose2D(1.0, 2.0, math.pi / 2), 0.5, 0.0, 2.0)
    assert (straight.x, straight.y, straight.yaw) == pytest.approx((1.0, 3.0, math.pi / 2))
