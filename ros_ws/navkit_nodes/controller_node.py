"""ROS 2 controller node: ``plan`` / ``goal_image`` + ``odom`` (+ ``scan``, ``camera/image_raw``) -> ``cmd_vel_nav``.

Wraps the ``local_controller`` plugin (pure pursuit by default; ``rl_policy`` also reads the
scan and drives to the plan's end; ``world_model_mpc`` drives from the front camera towards a
goal image, no plan needed). Its output is only a wish: the safety filter node turns it into
``cmd_vel``. Selecting a controller is a parameter-file change: the node always offers every
input and the controller reads what it needs.

Inputs (names remappable as usual):

* ``plan`` (nav_msgs/Path, latched: :data:`PLAN_QOS`): a new plan resets the controller; an empty
  one means "no path";
* ``goal_image`` (sensor_msgs/Image, reliable + transient-local depth 1: :data:`GOAL_IMAGE_QOS`, so a
  goal published before the node started still arrives): becomes ``ControlTarget.goal_image`` and
  resets the controller. An empty (0 x 0) image clears the goal; an unreadable one clears it too
  (the robot must not keep driving to the previous goal), with a warning;
* ``odom``, ``scan``, ``camera/image_raw`` (SensorDataQoS). A camera image within
  :data:`IMAGE_TIMEOUT_S` of now is passed as ``Observation.cameras["front"]``; a stale one (or
  none) is left out, and what missing data means is the controller's to decide (a goal-image
  controller stops). An unreadable camera image is dropped with a warning (the last good one
  ages out).

Odometry that is missing, stale or non-finite gives a zero command, never a guess; so does a
stale scan for a controller that reads it. Unreadable images (wrong data length, zero size,
unknown encoding: see :func:`~navkit.ros_ws.navkit_nodes.conversions.image_from_msg`) are one
throttled warning and the ``images`` diagnostic, never a traceback. A silent camera topic is a
diagnostic warning only while there is a goal image (a robot without a camera is fine otherwise).
A lifecycle node: it commands only while active, and sends one zero command when deactivated.
"""
from __future__ import annotations

import dataclasses
import sys
from typing import Any

from geometry_msgs.msg import TwistStamped
from nav_msgs.msg import Odometry as OdometryMsg
from nav_msgs.msg import Path as PathMsg
from sensor_msgs.msg import Image as ImageMsg
from sensor_msgs.msg import LaserScan as LaserScanMsg
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from navkit.common.sensor_data import VelocityCommand, is_fresh
from navkit.common.interfaces import LocalController
from navkit.common.observation import FRONT_CAMERA, ControlTarget, Observation
from navkit.ros_ws.navkit_nodes.conversions import (command_to_msg, from_time, image_from_msg, odometry_from_msg,
                                                    path_from_msg)
from navkit.ros_ws.navkit_nodes.declared_params import ParamField, param_fields, plugin_fields
from navkit.ros_ws.navkit_nodes.diagnostics import OK, NodeDiagnostics, TopicWatch
from navkit.ros_ws.navkit_nodes.managed_node import ManagedNode
from navkit.ros_ws.navkit_nodes.node_main import run_node
from navkit.ros_ws.navkit_nodes.planner_node import PLAN_QOS
from navkit.stack.config import ControllerNodeConfig, controller_from_params
from navkit.stack.plugin_catalog import default_registry

ODOM_TIMEOUT_S = 0.5
IMAGE_TIMEOUT_S = 2.0
"""A camera image further than this from now (either way) is left out of the observation. Generous (four
periods of a 2 Hz camera): a controller with a tighter limit of its own (``world_model_mpc``'s
``max_image_age_s``) applies it to the image's stamp."""
CAMERA_TOPIC = "camera/image_raw"
GOAL_IMAGE_TOPIC = "goal_image"
GOAL_IMAGE_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
"""``goal_image`` QoS, latched like a goal: publish with it and the last goal reaches a controller started later."""


class ControllerNode(ManagedNode):
    def __init__(self) -> None:
        self.registry = default_registry()
        self.controller: LocalController | None = None
        self.path = None
        self.odom = None
        self.scan = None
        self.image = None
        self.goal_image = None
        self.rejected_images = 0
        self.image_errors: dict[str, str] = {}
        """Per input topic, why its last image was refused (cleared by the next readable one)."""
        self._computing = False
        """The controller was asked for commands on the last tick (a stop must reset it)."""
        self.last_reason = "not started"
        self._io: list[Any] = []
        self._pub: Any = None
        super().__init__("controller")

    def read_config(self, params: dict[str, Any]) -> Any:
        return controller_from_params(params, self.source(), self.registry)

    def param_fields(self, config: Any) -> list[ParamField]:
        node_cfg, choice = config
        return param_fields(ControllerNodeConfig, "", node_cfg) + plugin_fields(choice)

    def build(self, config: Any) -> None:
        self.controller = self.registry.build(config[1])

    def connect(self) -> None:
        self._pub = self.create_publisher(TwistStamped, "cmd_vel_nav", QoSProfile(depth=10))
        self._io = [self.create_subscription(PathMsg, "plan", self._on_plan, PLAN_QOS),  # latched: see PLAN_QOS
                    self.sensor_subscription(OdometryMsg, "odom", self._on_odom),
                    self.sensor_subscription(LaserScanMsg, "scan", self._on_scan),
                    self.sensor_subscription(ImageMsg, CAMERA_TOPIC, self._on_image),
                    self.create_subscription(ImageMsg, GOAL_IMAGE_TOPIC, self._on_goal_image, GOAL_IMAGE_QOS)]

    def start(self) -> None:
        if self.controller is not None:
            self.controller.reset()  # nothing of a plan from before the pause is resumed
        self.start_work(self.config[0].rate_hz, self._tick)

    def restart_timers(self) -> None:
        self.start_work(self.config[0].rate_hz, self._tick)  # the rate may have changed

    def stop(self) -> None:
        self.stop_work()
        if self._pub is not None:
            self._pub.publish(command_to_msg(VelocityCommand(self._now(), 0.0, 0.0)))

    def disconnect(self) -> None:
        for sub in self._io:
            self.destroy_subscription(sub)
        self._io = []
        if self._pub is not None:
            self.destroy_publisher(self._pub)
            self._pub = None
        self.path = self.odom = self.scan = self.image = self.goal_image = None
        self.image_errors.clear()

    def add_checks(self, diagnostics: NodeDiagnostics) -> None:
        diagnostics.add_check("control", lambda: (0 if self.last_reason == "tracking" else 1, self.last_reason,
                                                  {"has_path": self.path is not None,
                                                   "has_goal_image": self.goal_image is not None,
                                                   "has_fresh_camera_image": self._fresh_image(self._now()) is not None}))
        diagnostics.add_check("images", self._image_status)
        camera = self.resolve_topic_name(CAMERA_TOPIC)
        watch = self.watches.get(camera)
        if watch is not None:  # replaces the generic check: a robot without a camera is fine until a goal image
            diagnostics.add_check(f"input {camera}", lambda: self._camera_input_status(watch))

    def _camera_input_status(self, watch: TopicWatch) -> tuple[Any, str, Any]:
        level, message, values = watch.status(1.0)
        if level != OK and self.goal_image is None:
            return OK, f"{message} (not needed without a goal image)", values
        return level, message, values

    def _image_status(self) -> tuple[int, str, dict[str, Any]]:
        values = {"rejected_images": self.rejected_images}
        if self.image_errors:
            return 1, "; ".join(f"{topic}: {why}" for topic, why in sorted(self.image_errors.items())), values
        return 0, "ok", values

    def _now(self) -> float:
        return from_time(self.get_clock().now().to_msg())

    def _on_plan(self, msg: PathMsg) -> None:
        path = path_from_msg(msg)
        self.path = path if len(path) else None
        if self.controller is not None:
            self.controller.reset()

    def _on_odom(self, msg: OdometryMsg) -> None:
        self.odom = odometry_from_msg(msg)

    def _on_scan(self, msg: LaserScanMsg) -> None:
        self.scan = self.scan_in_base(msg)

    def _read_image(self, msg: ImageMsg, topic: str) -> Any:
        """The message as a CameraImage, or None (one throttled warning, the ``images`` diagnostic) when unreadable."""
        try:
            image = image_from_msg(msg)
        except ValueError as exc:
            self.rejected_images += 1
            self.image_errors[topic] = str(exc)
            self.get_logger().warning(f"{topic}: image not used: {exc}", throttle_duration_sec=1.0)
            return None
        self.image_errors.pop(topic, None)
        return image

    def _on_image(self, msg: ImageMsg) -> None:
        image = self._read_image(msg, CAMERA_TOPIC)
        if image is not None:
            self.image = image

    def _on_goal_image(self, msg: ImageMsg) -> None:
        if msg.width == 0 and msg.height == 0:  # an empty goal: "no goal", as an empty plan is "no path"
            self.image_errors.pop(GOAL_IMAGE_TOPIC, None)
            self.goal_image = None
        else:
            image = self._read_image(msg, GOAL_IMAGE_TOPIC)
            self.goal_image = None if image is None else image.rgb  # unreadable: stop rather than seek the old goal
        if self.controller is not None:
            self.controller.reset()

    def _fresh_image(self, now: float) -> Any:
        image = self.image
        return image if image is not None and is_fresh(image.stamp, now, IMAGE_TIMEOUT_S) else None

    def _target(self) -> ControlTarget:
        """The plan as :meth:`ControlTarget.along` makes it (as in-process), plus the goal image when there is one."""
        target = ControlTarget.along(self.path)
        return target if self.goal_image is None else dataclasses.replace(target, goal_image=self.goal_image)

    def _tick(self) -> None:
        now = self._now()
        odom = self.odom
        command = VelocityCommand(now, 0.0, 0.0)
        if self.controller is None:
            return
        if odom is None or not odom.is_finite() or not is_fresh(odom.stamp, now, ODOM_TIMEOUT_S):
            if self._computing:
                self.controller.reset()  # zeros go out now: a plan (and a history of its actions) must not resume
                self._computing = False
            self.last_reason = "no odometry yet" if odom is None else "odometry stale or invalid: commanding zero"
            if odom is not None:
                self.get_logger().warning("odometry stale or invalid: commanding zero", throttle_duration_sec=1.0)
        else:
            scan = self.scan if self.scan is not None and is_fresh(self.scan.stamp, now, ODOM_TIMEOUT_S) else None
            image = self._fresh_image(now)
            if self.path is None and self.goal_image is None:  # nothing to drive to: zero, whatever the controller
                self.last_reason = "no path or goal image: commanding zero"
                if self._computing:
                    self.controller.reset()
                    self._computing = False
            else:
                self.last_reason = ("goal image but no fresh camera image: the controller decides (a goal-image one "
                                    "stops)" if self.path is None and image is None else "tracking")
                cameras = {FRONT_CAMERA: image} if image is not None else {}
                command = self.controller.compute(Observation(now, odom=odom, scan=scan, cameras=cameras),
                                                  self._target())
                self._computing = True
        if self._pub is not None:
            self._pub.publish(command_to_msg(command))


def main(argv: list[str] | None = None) -> int:
    return run_node(ControllerNode, argv)


if __name__ == "__main__":
    sys.exit(main())
