"""/diagnostics publishing and input-topic watches (navkit.ros_ws.navkit_nodes.diagnostics).

Two nodes in one rclpy context talk over DDS on loopback, on a domain of their own.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

rclpy = pytest.importorskip("rclpy")

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.qos import (DurabilityPolicy, QoSPolicyKind, QoSProfile, ReliabilityPolicy,  # noqa: E402
                       qos_profile_sensor_data)
from rclpy.signals import SignalHandlerOptions  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from navkit.ros_ws.navkit_nodes.diagnostics import (  # noqa: E402
    DIAGNOSTICS_QOS, ERROR, OK, WARN, NodeDiagnostics, TopicWatch, as_level, qos_event_callbacks, qos_hint)
from ros_helpers import domain_id  # noqa: E402

pytestmark = pytest.mark.ros

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


class Ros:
    """Nodes in one fresh context and domain, spun by hand with deadlines."""

    def __init__(self) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id(), signal_handler_options=SignalHandlerOptions.NO)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.nodes: list[Node] = []

    def node(self, name: str) -> Node:
        node = Node(name, context=self.context)
        self.executor.add_node(node)
        self.nodes.append(node)
        return node

    def spin_until(self, condition: Callable[[], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if condition():
                return True
            self.executor.spin_once(timeout_sec=0.02)
        return condition()

    def close(self) -> None:
        for node in self.nodes:  # out of the executor before destroying (see ros_helpers.RosClient)
            self.executor.remove_node(node)
            node.destroy_node()
        self.executor.shutdown()
        rclpy.try_shutdown(context=self.context)


@pytest.fixture()
def ros(monkeypatch: pytest.MonkeyPatch) -> Iterator[Ros]:
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    r = Ros()
    yield r
    r.close()


def by_name(msg: DiagnosticArray) -> dict[str, DiagnosticStatus]:
    return {s.name: s for s in msg.status}


def test_levels_are_bytes_and_ints_convert() -> None:
    assert DiagnosticStatus.OK == b"\x00" and as_level(2) == ERROR and as_level(WARN) == WARN
    with pytest.raises(ValueError):
        as_level(7)


def test_two_checks_are_published_about_once_a_second(ros: Ros) -> None:
    node = ros.node("diag_node")
    listener = ros.node("diag_listener")
    got: list[DiagnosticArray] = []
    listener.create_subscription(DiagnosticArray, "/diagnostics", got.append, DIAGNOSTICS_QOS)
    diag = NodeDiagnostics(node, hardware_id="test_bench")
    diag.add_check("inputs", lambda: (OK, "all good", {"rate_hz": 10.0}))
    diag.add_check("solver", lambda: (1, "slow", {"ms": 12}))
    assert not diag.active
    diag.start()
    assert diag.active
    started = time.monotonic()
    assert ros.spin_until(lambda: len(got) >= 2, timeout_s=4.0), f"{len(got)} arrays in 4 s"
    assert time.monotonic() - started > 0.8  # a period, not a burst
    status = by_name(got[-1])
    assert list(status) == ["diag_node: inputs", "diag_node: solver"]
    inputs, solver = status["diag_node: inputs"], status["diag_node: solver"]
    assert (inputs.level, inputs.message, inputs.hardware_id) == (OK, "all good", "test_bench")
    assert [(kv.key, kv.value) for kv in inputs.values] == [("rate_hz", "10.0")]
    assert (solver.level, solver.message, solver.values[0].value) == (WARN, "slow", "12")
    diag.stop()
    assert not diag.active
    ros.spin_until(lambda: False, 0.3)  # let an array already in flight land
    count = len(got)
    ros.spin_until(lambda: False, 1.5)
    assert len(got) == count  # stopped: nothing while inactive
    diag.start()
    assert ros.spin_until(lambda: len(got) > count, timeout_s=3.0)


def test_raising_check_is_an_error_status(ros: Ros) -> None:
    node = ros.node("diag_raise")
    diag = NodeDiagnostics(node)

    def broken() -> Any:
        raise RuntimeError("lidar driver\nvanished")

    diag.add_check("broken", broken)
    diag.add_check("bad_level", lambda: (9, "?", {}))
    diag.add_check("fine", lambda: (OK, "ok", {}))
    status = by_name(diag.publish())
    assert status["diag_raise: broken"].level == ERROR
    assert status["diag_raise: broken"].message == "check raised RuntimeError: lidar driver vanished"
    assert status["diag_raise: bad_level"].level == ERROR and "not a diagnostic level" in status["diag_raise: bad_level"].message
    assert status["diag_raise: fine"].level == OK


def test_topic_watch_goes_stale() -> None:
    clock = [100.0]
    watch = TopicWatch("/scan", now=lambda: clock[0])
    level, message, values = watch.status(1.0)
    assert (level, message, values["messages"]) == (WARN, "no message on /scan yet", 0)
    watch.tick()
    clock[0] += 0.5
    level, message, values = watch.status(1.0)
    assert (level, message, values["messages"]) == (OK, "receiving /scan", 1)
    clock[0] += 2.7
    level, message, _ = watch.status(1.0)
    assert (level, message) == (WARN, "no message on /scan for 3.2 s")
    watch.tick()
    assert watch.status(1.0)[0] == OK and watch.count == 2
    watch.reset()
    assert watch.status(1.0)[1] == "no message on /scan yet"


def test_reliable_subscriber_against_best_effort_publisher(ros: Ros) -> None:
    driver = ros.node("lidar_driver")
    node = ros.node("filter")
    driver.create_publisher(String, "/scan_be", qos_profile_sensor_data)  # BEST_EFFORT, as lidar drivers do
    watch = TopicWatch("/scan_be", requested=RELIABLE, node=node)
    node.create_subscription(String, "/scan_be", lambda _: watch.tick(), RELIABLE,
                             event_callbacks=qos_event_callbacks(watch))
    assert ros.spin_until(lambda: watch.incompatible_qos_events > 0, timeout_s=10.0)
    assert watch.last_policy_kind is QoSPolicyKind.RELIABILITY
    hint = qos_hint(node, "/scan_be", RELIABLE)
    assert hint is not None
    assert "publisher /lidar_driver offers BEST_EFFORT, this node requests RELIABLE" in hint and "SensorDataQoS" in hint
    level, message, values = watch.status(1.0)
    assert level == WARN and message.startswith("no message on /scan_be yet: publisher /lidar_driver offers BEST_EFFORT")
    assert values["last_incompatible_policy"] == "RELIABILITY"
    graphless = TopicWatch("/scan_be", requested=RELIABLE)  # no node: the event alone explains it
    graphless.incompatible_qos_events, graphless.last_policy_kind = 1, QoSPolicyKind.RELIABILITY
    assert "offers BEST_EFFORT, this node requests RELIABLE" in graphless.status(1.0)[1]


def test_transient_local_subscriber_against_volatile_publisher(ros: Ros) -> None:
    publisher = ros.node("map_server")
    node = ros.node("planner")
    publisher.create_publisher(String, "/map_v", RELIABLE)  # VOLATILE
    assert ros.spin_until(lambda: node.count_publishers("/map_v") == 1, timeout_s=10.0)
    hint = qos_hint(node, "/map_v", LATCHED)
    assert hint is not None and "offers VOLATILE, this node requests TRANSIENT_LOCAL" in hint


def test_compatible_pair_gives_no_hint(ros: Ros) -> None:
    driver = ros.node("good_driver")
    node = ros.node("listener")
    pub = driver.create_publisher(String, "/scan_ok", RELIABLE)
    watch = TopicWatch("/scan_ok", requested=qos_profile_sensor_data, node=node)
    node.create_subscription(String, "/scan_ok", lambda _: watch.tick(), qos_profile_sensor_data,
                             event_callbacks=qos_event_callbacks(watch))
    assert ros.spin_until(lambda: node.count_publishers("/scan_ok") == 1, timeout_s=10.0)
    assert qos_hint(node, "/scan_ok", qos_profile_sensor_data) is None
    assert qos_hint(node, "/scan_ok", RELIABLE) is None

    def sent_and_heard() -> bool:
        pub.publish(String(data="x"))
        return watch.count > 0

    assert ros.spin_until(sent_and_heard, timeout_s=10.0)
    assert watch.status(5.0)[0] == OK and watch.incompatible_qos_events == 0


def test_silent_topic_without_publisher_says_so(ros: Ros) -> None:
    node = ros.node("lonely")
    watch = TopicWatch("/nobody", requested=RELIABLE, node=node)
    assert qos_hint(node, "/nobody", RELIABLE) is None
    assert watch.status(1.0) == (WARN, "no message on /nobody yet: no publisher on /nobody",
                                 {"topic": "/nobody", "messages": 0, "incompatible_qos_events": 0})
