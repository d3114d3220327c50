"""The shape every navkit navigation node shares: a lifecycle node with declared, guarded parameters,
``/diagnostics`` at 1 Hz, SensorDataQoS sensor inputs and a TF listener.

Why a lifecycle node (REP-2002 / ``rclpy.lifecycle``): a launch brings the stack up in a known order
(``navkit_lifecycle_manager`` configures, then activates, planner -> controller -> safety
filter), a node can be paused (deactivated) and re-configured without a restart, and an
operator can see from ``get_state`` which one is not ready. The transitions here:

* construct: the parameters the node was given are read and checked at once — a bad file is
  one line and exit code 2 before anything runs (nothing is declared yet, nothing moves);
* ``on_configure``: declare the parameters from the config dataclasses (type, description from the
  field's docstring, range, read-only plugin choices), build the components (plugins), create
  publishers and subscriptions, start diagnostics; run-time parameter changes are validated by
  the same ``*_from_params`` function and applied or refused with the reason;
* ``on_activate`` / ``on_deactivate``: start / stop the node's work (timers; a node that commands
  motion sends one zero command on deactivation);
* ``on_cleanup``: drop components and communication; parameters stay declared with their values.

Sensor subscriptions use ``SensorDataQoS`` (best effort): a best-effort subscription matches both
reliable and best-effort publishers, so a vendor driver's scans reach the filter either way, and
a QoS mismatch on any input shows in ``/diagnostics`` with what to change.

``autostart: true`` (a parameter every managed node accepts) configures and activates the node by
itself, for running one node by hand; launches leave it false and use the lifecycle manager.

On Ctrl-C the whole launch receives the signal at once and each node's context shuts down before
a last command could be sent: what stops the wheels then is the driver's command timeout
(0.5 s), as with any ROS 2 stack. A deactivation (lifecycle manager, or a node failing) does send
one zero command.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import QoSProfile, qos_profile_sensor_data

from navkit.common.errors import NavkitError, ParameterError
from navkit.common.geometry import RigidTransform
from navkit.common.sensor_data import LaserScan
from navkit.ros_ws.navkit_nodes.conversions import scan_from_msg
from navkit.ros_ws.navkit_nodes.declared_params import (ParameterGuard, ParamField, declare_from_configs,
                                                        declared_values, parameter_overrides)
from navkit.ros_ws.navkit_nodes.diagnostics import NodeDiagnostics, TopicWatch, qos_event_callbacks
from navkit.ros_ws.navkit_nodes.node_main import params_source
from navkit.ros_ws.navkit_nodes.tf_tree import TfBuffer, TfListener, tf2_msgs_available

SENSOR_QOS: QoSProfile = qos_profile_sensor_data
"""Sensor inputs (scan, odom, images): best effort, small queue — matches any driver's publisher."""
AUTOSTART = "autostart"
BASE_FRAME = "base_link"


class ManagedNode(LifecycleNode):
    """Subclasses implement :meth:`read_config`, :meth:`param_fields`, :meth:`build` (components),
    :meth:`connect`/:meth:`disconnect` (communication) and :meth:`start`/:meth:`stop` (work); the
    transitions and the bookkeeping are here. A run-time parameter change calls :meth:`build` again."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        try:
            self.declare_parameter(AUTOSTART, False)
        except (InvalidParameterTypeException, InvalidParameterValueException):
            raise ParameterError(params_source(self), AUTOSTART, "expected true/false") from None
        # Read and check what we were given now: a bad parameter file fails at start, with one line.
        self.config: Any = self.read_config(self._given())
        self.guard: ParameterGuard | None = None
        self.diagnostics: NodeDiagnostics | None = None
        self.watches: dict[str, TopicWatch] = {}
        self.tf_buffer = TfBuffer()
        self.tf_listener: TfListener | None = None
        self.unplaced_scans = 0
        self.unplaced_reason = ""
        self._work: tuple[Any, float, Callable[[], None]] | None = None
        self._active = False

    # ----------------------------------------------------------------- for subclasses

    def read_config(self, params: dict[str, Any]) -> Any:
        """The node's configs and plugin choices from flat parameters; raises NavkitError on a bad one."""
        raise NotImplementedError

    def param_fields(self, config: Any) -> list[ParamField]:
        """Every parameter the node declares, for ``config``."""
        raise NotImplementedError

    def build(self, config: Any) -> None:
        """Build the components (plugins) from ``config``; also called for a run-time parameter change."""
        raise NotImplementedError

    def connect(self) -> None:
        """Publishers and subscriptions (once per configure)."""

    def start(self) -> None:
        """Begin working (timers)."""

    def stop(self) -> None:
        """Stop working; a node that commands motion sends zero here."""

    def disconnect(self) -> None:
        """Destroy what :meth:`connect` created (timers included)."""

    def restart_timers(self) -> None:
        """Re-create timers after a parameter change (a new rate must take effect, not just be stored)."""

    def start_work(self, rate_hz: float, tick: Callable[[], None]) -> None:
        """Run ``tick`` at ``rate_hz`` (the node's clock) until :meth:`stop_work`; replaces a running one."""
        self.stop_work()
        self._work = (self.create_timer(1.0 / rate_hz, tick), rate_hz, tick)

    def stop_work(self) -> None:
        if self._work is not None:
            self.destroy_timer(self._work[0])
            self._work = None

    def add_checks(self, diagnostics: NodeDiagnostics) -> None:
        """Register the node's own diagnostic checks."""

    # ----------------------------------------------------------------- helpers

    @property
    def active(self) -> bool:
        return self._active

    def _given(self) -> dict[str, Any]:
        given = parameter_overrides(self) | declared_values(self)
        given.pop(AUTOSTART, None)
        return given

    def source(self) -> str:
        return params_source(self)

    def watch(self, topic_name: str, qos: QoSProfile) -> Any:
        """A :class:`TopicWatch` for an input and the event callbacks that feed it QoS mismatches."""
        watch = TopicWatch(topic_name, requested=qos, node=self)
        self.watches[topic_name] = watch
        return qos_event_callbacks(watch)

    def sensor_subscription(self, msg_type: Any, topic: str, callback: Callable[[Any], None]) -> Any:
        """A SensorDataQoS subscription whose arrivals and QoS problems show in /diagnostics."""
        resolved = self.resolve_topic_name(topic)
        events = self.watch(resolved, SENSOR_QOS)
        watch = self.watches[resolved]

        def on_msg(msg: Any) -> None:
            watch.tick()
            callback(msg)

        return self.create_subscription(msg_type, topic, on_msg, SENSOR_QOS, event_callbacks=events)

    def scan_in_base(self, msg: Any) -> LaserScan | None:
        """A LaserScan message placed on the robot by its mount (``base_link <- header.frame_id``) from TF.

        None (the scan must not be used) while TF cannot place it: a scan whose mount is unknown could
        sit anywhere, and reading it as if on the base's axis puts the barriers in the wrong place, as
        a TurtleBot's offset ``base_scan`` would. Only without a TF listener at all (tf2_msgs missing,
        reported in /diagnostics) are scans taken as they are, where the safety filter accepts just
        its on-axis ``scan_frame_id``.
        """
        frame = msg.header.frame_id
        if self.tf_listener is None or frame == BASE_FRAME:
            return scan_from_msg(msg)
        found = self.tf_buffer.lookup(BASE_FRAME, frame, None)
        if found is None:
            self.unplaced_scans += 1
            self.unplaced_reason = self.tf_buffer.why(BASE_FRAME, frame, None) or f"no transform {BASE_FRAME} <- {frame}"
            self.get_logger().warning(f"scan not used: {self.unplaced_reason}", throttle_duration_sec=1.0)
            return None
        self.unplaced_reason = ""
        return scan_from_msg(msg, RigidTransform(found.translation, found.rotation, BASE_FRAME, frame))

    # ----------------------------------------------------------------- transitions

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        given = self._given()
        try:
            config = self.read_config(given)
            declare_from_configs(self, given, self.param_fields(config))
            self.config = config
            if tf2_msgs_available():
                self.tf_listener = TfListener(self, self.tf_buffer)
            self.build(config)
            self.connect()
        except (NavkitError, ValueError, OSError) as exc:
            # Leave nothing half made: a second configure must not stack a second TF listener or
            # subscriptions on the first (every transform and message would arrive twice).
            self.get_logger().error(f"configure failed: {exc}")
            self._release()
            return TransitionCallbackReturn.FAILURE
        self.guard = ParameterGuard(self, lambda p: self.read_config({k: v for k, v in p.items() if k != AUTOSTART}),
                                    self._apply)
        self.diagnostics = NodeDiagnostics(self)
        self.diagnostics.add_check("state", lambda: (0, "active" if self._active else "inactive", {}))
        self.diagnostics.add_check("tf", self._tf_status)
        for topic, watch in self.watches.items():
            self.diagnostics.add_check(f"input {topic}", lambda w=watch: w.status(1.0))
        self.add_checks(self.diagnostics)
        self.diagnostics.start()
        return TransitionCallbackReturn.SUCCESS

    def _tf_status(self) -> tuple[int, str, dict[str, Any]]:
        values = {"scans_without_transform": self.unplaced_scans}
        if self.tf_listener is None:
            return 1, "no TF listener (tf2_msgs missing: run scripts/build_tf2_msgs.sh): scans taken as on-axis", values
        if self.unplaced_reason:
            return 1, f"scans not used: {self.unplaced_reason}", values
        return 0, "ok", values

    def _apply(self, config: Any) -> None:
        self.config = config
        self.build(config)
        if self._active:
            self.restart_timers()
        self.get_logger().info("parameters changed and applied")

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        for watch in self.watches.values():
            watch.reset()
        self._active = True
        self.start()
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.stop()
        self._active = False
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self._active:
            self.stop()
            self._active = False
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> None:
        if self.guard is not None:
            self.guard.close()
            self.guard = None
        if self.diagnostics is not None:
            self.diagnostics.destroy()
            self.diagnostics = None
        if self.tf_listener is not None:
            self.tf_listener.destroy()
            self.tf_listener = None
        self.disconnect()
        self.watches.clear()

    def autostart(self) -> None:
        """Configure and activate now when the ``autostart`` parameter is true (a node run by hand).

        A transition that fails is the node's end (exit 2 with the reason, which configure logged):
        a hand-started node must not sit unconfigured, looking alive.
        """
        if not self.get_parameter(AUTOSTART).get_parameter_value().bool_value:
            return
        for name, trigger in (("configure", self.trigger_configure), ("activate", self.trigger_activate)):
            if trigger() != TransitionCallbackReturn.SUCCESS:
                raise NavkitError(f"{params_source(self)}: autostart: {name} failed (see the line above)")
