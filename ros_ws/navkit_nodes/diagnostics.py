"""``/diagnostics`` for navkit nodes, and watches that say *why* an input topic is silent.

Why: a safety filter that sits at "no scan yet" forever looks, from outside, exactly like one
that works. Each node publishes ``diagnostic_msgs/DiagnosticArray`` on ``/diagnostics`` the way
``diagnostic_updater`` does (status names ``"<node>: <check>"``, reliable/volatile QoS, depth
10), so ``rqt_robot_monitor``, ``ros2 topic echo /diagnostics`` and a diagnostic aggregator show
it, and every input topic gets a :class:`TopicWatch` whose WARN comes with a reason: no
publisher at all, or publishers whose QoS cannot match this node's subscription (the classic:
a lidar driver publishing BEST_EFFORT to a RELIABLE subscriber — nothing arrives, nothing fails).

The status levels are ``DiagnosticStatus.OK``/``WARN``/``ERROR``/``STALE``; in this distro the
``level`` field is an ``octet``, i.e. one-byte ``bytes`` (``b"\\x00"``), and plain ints 0-3 are
accepted here and converted.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.clock import Clock, ClockType
from rclpy.event_handler import QoSRequestedIncompatibleQoSInfo, SubscriptionEventCallbacks
from rclpy.node import Node
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSCompatibility, QoSPolicyKind, QoSProfile,
                       ReliabilityPolicy, qos_check_compatible)
from rclpy.timer import Timer

OK: bytes = DiagnosticStatus.OK
WARN: bytes = DiagnosticStatus.WARN
ERROR: bytes = DiagnosticStatus.ERROR
STALE: bytes = DiagnosticStatus.STALE

CheckResult = tuple[int | bytes, str, Mapping[str, Any]]
"""What a check returns: (level, one-line message, key/values; values are shown as ``str(value)``)."""

DIAGNOSTICS_QOS = QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.VOLATILE)
"""What diagnostic_updater publishes with; the aggregator and rqt subscribe to match it."""

_LEVEL_NAMES = {OK: "OK", WARN: "WARN", ERROR: "ERROR", STALE: "STALE"}


def as_level(level: int | bytes) -> bytes:
    """A status level as the message field wants it (one byte); ValueError for anything not OK..STALE."""
    if isinstance(level, int) and not isinstance(level, bool) and 0 <= level <= 3:
        level = bytes([level])
    if isinstance(level, bytes) and level in _LEVEL_NAMES:
        return level
    raise ValueError(f"not a diagnostic level: {level!r}")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class NodeDiagnostics:
    """Publishes one ``DiagnosticStatus`` per registered check on ``/diagnostics`` every ``period_s``.

    The timer runs on a STEADY clock: the beat keeps its 1 Hz when the node runs on sim time and
    ``/clock`` stalls (which is exactly when diagnostics matter). The header stamp is the node's
    clock (ROS time), as diagnostic_updater stamps it. A check that raises is reported as ERROR
    with the exception's one line; it never reaches the executor.

    Lifecycle: ``start()`` in ``on_activate``, ``stop()`` in ``on_deactivate`` (the timer is
    cancelled, nothing is published while inactive). The publisher is a plain one on purpose: a
    lifecycle publisher would drop messages while the node is inactive, and :meth:`publish` may be
    called by hand in any state (e.g. to say why ``configure`` failed).
    """

    def __init__(self, node: Node, hardware_id: str = "", period_s: float = 1.0) -> None:
        if not period_s > 0.0:
            raise ValueError(f"period_s: must be > 0, got {period_s}")
        self._node = node
        self.hardware_id = hardware_id
        self.period_s = period_s
        self._checks: dict[str, Callable[[], CheckResult]] = {}
        self._publisher = node.create_publisher(DiagnosticArray, "/diagnostics", DIAGNOSTICS_QOS)
        self._steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._timer: Timer | None = None

    def add_check(self, name: str, fn: Callable[[], CheckResult]) -> None:
        """Register (or replace) check ``name``; statuses appear in registration order."""
        self._checks[name] = fn

    def remove_check(self, name: str) -> None:
        self._checks.pop(name, None)

    @property
    def active(self) -> bool:
        return self._timer is not None and not self._timer.is_canceled()

    def start(self) -> None:
        """Begin the periodic beat (idempotent)."""
        if self._timer is None:
            self._timer = self._node.create_timer(self.period_s, self.publish, clock=self._steady)
        elif self._timer.is_canceled():
            self._timer.reset()

    def stop(self) -> None:
        """Cancel the beat (idempotent); ``start()`` resumes it."""
        if self._timer is not None:
            self._timer.cancel()

    def destroy(self) -> None:
        """Release the timer and publisher (lifecycle cleanup/shutdown)."""
        if self._timer is not None:
            self._node.destroy_timer(self._timer)
            self._timer = None
        self._node.destroy_publisher(self._publisher)

    def status(self, name: str, fn: Callable[[], CheckResult]) -> DiagnosticStatus:
        """Run one check into a status; any failure of the check itself becomes an ERROR status."""
        status = DiagnosticStatus(name=f"{self._node.get_name()}: {name}", hardware_id=self.hardware_id)
        try:
            level, message, values = fn()
            status.level = as_level(level)
            status.message = str(message)
            status.values = [KeyValue(key=str(k), value=str(v)) for k, v in values.items()]
        except Exception as exc:  # a broken check must show up in /diagnostics, not kill the node
            status.level = ERROR
            status.message = f"check raised {_one_line(exc)}"
            status.values = []
        return status

    def collect(self) -> DiagnosticArray:
        """All checks now, as the array the next beat would publish."""
        msg = DiagnosticArray()
        msg.header.stamp = self._node.get_clock().now().to_msg()
        msg.status = [self.status(name, fn) for name, fn in list(self._checks.items())]
        return msg

    def publish(self) -> DiagnosticArray:
        """Run the checks and publish at once (the timer's callback; callable by hand in any state)."""
        msg = self.collect()
        self._publisher.publish(msg)
        return msg


# ------------------------------------------------------------------ input topics


def _mismatch_text(offered: QoSProfile | None, requested: QoSProfile | None, kind: QoSPolicyKind | None) -> str:
    """The fix for one incompatible publisher/subscription pair, as one clause."""
    rel_req = requested.reliability if requested is not None else None
    dur_req = requested.durability if requested is not None else None
    if (kind in (None, QoSPolicyKind.RELIABILITY) and rel_req == ReliabilityPolicy.RELIABLE
            and (offered is None or offered.reliability == ReliabilityPolicy.BEST_EFFORT)):
        return ("publisher offers BEST_EFFORT, this node requests RELIABLE: "
                "subscribe with SensorDataQoS or make the driver reliable")
    if (kind in (None, QoSPolicyKind.DURABILITY) and dur_req == DurabilityPolicy.TRANSIENT_LOCAL
            and (offered is None or offered.durability == DurabilityPolicy.VOLATILE)):
        return ("publisher offers VOLATILE, this node requests TRANSIENT_LOCAL: "
                "subscribe VOLATILE or make the publisher TRANSIENT_LOCAL")
    if kind is not None:
        return f"a publisher's QoS is incompatible with this node's subscription (policy {kind.name})"
    return "a publisher's QoS is incompatible with this node's subscription"


def qos_hint(node: Node, topic: str, requested_profile: QoSProfile) -> str | None:
    """Why a subscription with ``requested_profile`` hears nothing although ``topic`` has publishers.

    Asks the ROS graph for the publishers' offered QoS; returns None when there is no publisher
    or at least one can match (or rmw cannot tell), else one line per distinct problem, e.g.
    "publisher /lidar offers BEST_EFFORT, this node requests RELIABLE: subscribe with
    SensorDataQoS or make the driver reliable". ``topic`` is not remapped by the graph query:
    pass the subscription's resolved ``topic_name``.
    """
    infos = node.get_publishers_info_by_topic(topic)
    if not infos:
        return None
    problems: list[str] = []
    for info in infos:
        compatibility, reason = qos_check_compatible(info.qos_profile, requested_profile)
        if compatibility != QoSCompatibility.ERROR:
            return None
        text = _mismatch_text(info.qos_profile, requested_profile, None)
        if text.startswith("a publisher's") and reason:
            text = f"{text}: {' '.join(reason.split())}"
        who = f"{info.node_namespace.rstrip('/')}/{info.node_name}" if info.node_name else "unknown node"
        problem = text.replace("publisher ", f"publisher {who} ", 1) if text.startswith("publisher ") else text
        if problem not in problems:
            problems.append(problem)
    return "; ".join(problems)


class TopicWatch:
    """Counts one input topic's messages and says, as a diagnostic check, whether they still come.

    Call :meth:`tick` first thing in the subscription callback (cheap: a counter and a monotonic
    time). Pass the subscription's QoS as ``requested`` (and the node) so a silent topic is
    explained: the incompatible-QoS events of :func:`qos_event_callbacks` and, when ``node`` is
    given, the graph (:func:`qos_hint`, or "no publisher"). Times are wall monotonic: a watch
    measures the data flow, not simulated time.
    """

    def __init__(self, topic: str, *, requested: QoSProfile | None = None, node: Node | None = None,
                 now: Callable[[], float] = time.monotonic) -> None:
        self.topic = topic
        self.requested = requested
        self._node = node
        self._now = now
        self.count = 0
        self.last_s: float | None = None
        """Monotonic time of the last message (None: none yet)."""
        self.incompatible_qos_events = 0
        self.last_policy_kind: QoSPolicyKind | None = None

    def reset(self) -> None:
        """Forget messages (lifecycle activate: the silence while inactive is not a fault). QoS
        events are kept: rmw reports an incompatible publisher once, at discovery."""
        self.count = 0
        self.last_s = None

    def tick(self) -> None:
        self.count += 1
        self.last_s = self._now()

    def on_incompatible_qos(self, event: QoSRequestedIncompatibleQoSInfo) -> None:
        """The subscription's REQUESTED_INCOMPATIBLE_QOS event: a publisher that can never match."""
        self.incompatible_qos_events = max(self.incompatible_qos_events + 1, int(event.total_count))
        try:
            self.last_policy_kind = QoSPolicyKind(int(event.last_policy_kind))
        except ValueError:
            self.last_policy_kind = QoSPolicyKind.INVALID

    def hint(self) -> str | None:
        """Why nothing arrives, if anything can be said: the graph first (it names the publisher),
        then the incompatible-QoS events."""
        if self._node is not None:
            try:
                if self.requested is not None:
                    found = qos_hint(self._node, self.topic, self.requested)
                    if found:
                        return found
                if self._node.count_publishers(self.topic) == 0:
                    return f"no publisher on {self.topic}"
            except Exception as exc:  # the graph query must not break the check (e.g. a context going down)
                return f"cannot query the ROS graph: {_one_line(exc)}"
        if self.incompatible_qos_events:
            return _mismatch_text(None, self.requested, self.last_policy_kind)
        return None

    def status(self, stale_after_s: float) -> CheckResult:
        """OK while a message came within ``stale_after_s``; WARN "no message on /scan for 3.2 s" or
        "no message on /scan yet", each with its reason when one is known."""
        values: dict[str, Any] = {"topic": self.topic, "messages": self.count,
                                  "incompatible_qos_events": self.incompatible_qos_events}
        if self.last_policy_kind is not None:
            values["last_incompatible_policy"] = self.last_policy_kind.name
        if self.last_s is None:
            message = f"no message on {self.topic} yet"
        else:
            age = self._now() - self.last_s
            values["age_s"] = f"{age:.2f}"
            if age <= stale_after_s:
                return OK, f"receiving {self.topic}", values
            message = f"no message on {self.topic} for {age:.1f} s"
        hint = self.hint()
        return WARN, f"{message}: {hint}" if hint else message, values


def qos_event_callbacks(watch: TopicWatch) -> SubscriptionEventCallbacks:
    """Event callbacks for ``create_subscription(..., event_callbacks=...)`` that feed ``watch``.

    rclpy's other default event callbacks (incompatible type: a warning log) stay on.
    """
    return SubscriptionEventCallbacks(incompatible_qos=watch.on_incompatible_qos)
