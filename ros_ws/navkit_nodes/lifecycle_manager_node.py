"""ROS 2 lifecycle manager node (Nav2's ``lifecycle_manager`` role): bring managed nodes up in order, watch them.

Managed nodes (``rclpy.lifecycle.LifecycleNode`` / ``rclcpp_lifecycle``, the state
machine of the ROS 2 "managed nodes" design) do nothing useful until configured and
activated. This node, ``lifecycle_manager``, drives them through
``<name>/change_state`` and watches them through ``<name>/get_state``
(``lifecycle_msgs/srv/ChangeState``, ``GetState``):

1. Waits for both services of every node in ``node_names`` (logging the missing ones
   every few seconds; a node that never starts leaves nothing active, so it waits on).
2. With ``autostart``: configures every node in order, then activates every node in
   order. A transition that answers ``success=false`` or does not answer within
   ``transition_timeout_s`` is logged as one line naming the node and the transition;
   the manager then brings the others down and exits 1, so a launch with
   ``on_exit: shutdown`` stops rather than run half a stack.
3. While all are active it asks each node's state every ``check_period_s``; a node that
   does not answer within ``bond_period_s`` (its process died or hangs: Nav2's bond) or
   answers anything but ACTIVE is logged, the others are brought down, and the manager
   exits 1. The launch stops, and the robot bridge's watchdog stops the wheels.
4. On Ctrl-C, SIGTERM or a launcher that goes away: the nodes are brought down, best effort.

"Brought down" means, as Nav2 does: every ACTIVE node deactivated in reverse order, then
every INACTIVE one cleaned up in reverse order, each call bounded by
``transition_timeout_s``; the state is asked first, so a node half-way through a timed-out
transition is still handled right, and an unreachable one is skipped with a log line.

Node names may be relative (``controller``, ``robot_1/planner``): they resolve against
this node's namespace (and remappings) like any service name; ``/abs/name`` is taken as is.

All timing is wall (steady) time, never ROS time: a manager under ``use_sim_time`` whose
``/clock`` stands still must still notice a dead node.

Why a worker thread: the service calls are made with ``call_async`` from one thread
that waits on the futures, while ``run_node``'s executor, in the main thread, delivers
the responses. Nothing ever blocks inside an executor callback, so no deadlock.
When rclpy's signal handler has already shut the context down (Ctrl-C), the bring-down
runs on a fresh, private context.

Without ``autostart`` the manager waits for the services and then only leaves the nodes
as they are (there is no ``manage_nodes`` service: ``nav2_msgs`` is not a navkit dependency);
it still brings down whatever is up when it stops.
"""
from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import rclpy
from lifecycle_msgs.msg import State, Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.client import Client
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from navkit.common.errors import ParameterError
from navkit.common.params import config_from_params
from navkit.ros_ws.navkit_nodes.node_main import node_params, params_source, run_node

WAIT_LOG_PERIOD_S = 5.0
"""How often the missing services are listed while waiting for them."""
BRINGDOWN_DISCOVERY_S = 3.0
"""On a fresh context (after Ctrl-C), how long to wait for the managed nodes' services to be discovered."""
_POLL_S = 0.05
"""How often a waiting call looks at its stop flag: the latency of Ctrl-C in the middle of a call."""

_STATE_LABELS = {State.PRIMARY_STATE_UNKNOWN: "unknown", State.PRIMARY_STATE_UNCONFIGURED: "unconfigured",
                 State.PRIMARY_STATE_INACTIVE: "inactive", State.PRIMARY_STATE_ACTIVE: "active",
                 State.PRIMARY_STATE_FINALIZED: "finalized"}
_TRANSITION_LABELS = {Transition.TRANSITION_CONFIGURE: "configure", Transition.TRANSITION_CLEANUP: "cleanup",
                      Transition.TRANSITION_ACTIVATE: "activate", Transition.TRANSITION_DEACTIVATE: "deactivate"}


@dataclass(frozen=True)
class LifecycleManagerConfig:
    """The lifecycle manager (node ``lifecycle_manager``)."""

    node_names: tuple[str, ...] = ()
    """Managed nodes in bring-up order (relative names resolve against the manager's namespace)."""
    autostart: bool = True
    """Configure and activate them all at start."""
    transition_timeout_s: float = 5.0
    """How long one change_state call may take before the transition counts as failed."""
    bond_period_s: float = 1.0
    """How long a get_state call may go unanswered before the node counts as gone (Nav2's bond timeout)."""
    check_period_s: float = 1.0
    """How often every active node's state is asked."""

    def __post_init__(self) -> None:
        if not self.node_names:
            raise ValueError("node_names is empty: name the managed nodes in bring-up order")
        if any(not name.strip() for name in self.node_names):
            raise ValueError("node_names holds an empty name")
        duplicates = sorted({name for name in self.node_names if self.node_names.count(name) > 1})
        if duplicates:
            raise ValueError(f"node_names lists {', '.join(duplicates)} more than once")
        for name in ("transition_timeout_s", "bond_period_s", "check_period_s"):
            if not getattr(self, name) > 0.0:
                raise ValueError(f"{name} must be > 0")


class _ManagedNode:
    """The change_state/get_state clients of one managed node, with calls bounded in wall time."""

    def __init__(self, node: Node, name: str, fqn: str) -> None:
        self.name = name
        self.fqn = fqn
        self.change_client: Client[Any, Any] = node.create_client(ChangeState, f"{fqn}/change_state")
        self.get_client: Client[Any, Any] = node.create_client(GetState, f"{fqn}/get_state")

    @property
    def label(self) -> str:
        return f"'{self.name}'" if self.fqn.lstrip("/") == self.name else f"'{self.name}' ({self.fqn})"

    def ready(self) -> bool:
        try:
            return self.change_client.service_is_ready() and self.get_client.service_is_ready()
        except Exception:  # the context was shut down under us (Ctrl-C): nothing is reachable from it
            return False

    def get_state(self, timeout_s: float, stop: threading.Event) -> int | None:
        """The node's primary state id, or None when it did not answer in time."""
        response = _wait(self.get_client, self.ask_state(), time.monotonic() + timeout_s, stop)
        return None if response is None else int(response.current_state.id)

    def ask_state(self) -> Any:
        """Send a get_state request; the future, or None when the request could not be sent."""
        return _send(self.get_client, GetState.Request())

    def change_state(self, transition: int, timeout_s: float, stop: threading.Event) -> bool | None:
        """The node's ``success`` answer, or None when it did not answer in time."""
        request = ChangeState.Request()
        request.transition.id = transition
        response = _wait(self.change_client, _send(self.change_client, request), time.monotonic() + timeout_s, stop)
        return None if response is None else bool(response.success)


def _send(client: Client[Any, Any], request: Any) -> Any:
    # A shut-down context or destroyed client raises from rclpy's C layer (RCLError, InvalidHandle):
    # for a manager that is bringing nodes down, that is "no answer", never a traceback.
    try:
        return client.call_async(request)
    except Exception:
        return None


def _wait(client: Client[Any, Any], future: Any, deadline: float, stop: threading.Event) -> Any:
    """The response of ``future`` by ``deadline`` (None on timeout or stop; the request is then dropped)."""
    if future is None:
        return None
    while not future.done():
        remaining = deadline - time.monotonic()
        if remaining <= 0.0 or stop.is_set():
            client.remove_pending_request(future)
            return None
        stop.wait(min(remaining, _POLL_S))
    return future.result()


def _state_label(state: int | None) -> str:
    return "no answer" if state is None else _STATE_LABELS.get(state, f"transition state {state}")


class LifecycleManagerNode(Node):
    def __init__(self) -> None:
        super().__init__("lifecycle_manager", automatically_declare_parameters_from_overrides=True)
        source = params_source(self)
        self.config = cfg = config_from_params(LifecycleManagerConfig, node_params(self), source)
        self.managed = [_ManagedNode(self, name, self._resolve(name, source)) for name in cfg.node_names]
        self.exit_code = 0
        self._domain_id = self.context.get_domain_id()
        self._stop = threading.Event()
        self._brought_down = threading.Event()
        self._lost: set[str] = set()
        self._worker = threading.Thread(target=self._run, name="lifecycle_manager", daemon=True)
        self._worker.start()

    def _resolve(self, name: str, source: str) -> str:
        """The node's fully qualified name: relative names resolve against this node's namespace."""
        try:
            return self.resolve_service_name(f"{name.rstrip('/')}/change_state").rsplit("/", 1)[0]
        except Exception as exc:  # rclpy raises its own name-validation exceptions, not ValueError
            raise ParameterError(source, "node_names", f"{name!r} is not a valid node name: {exc}") from None

    # ------------------------------------------------------------------ the worker thread

    def _run(self) -> None:
        # A bug here must not leave a manager that looks alive but watches nothing: it ends the run.
        try:
            self._bring_up_and_watch()
        except Exception as exc:
            self._fail(f"lifecycle manager internal error: {exc!r}")

    def _bring_up_and_watch(self) -> None:
        log = self.get_logger()
        if not self._wait_for_services():
            return
        if not self.config.autostart:
            log.info(f"autostart is false: {len(self.managed)} nodes found, leaving them as they are")
            return
        for transition in (Transition.TRANSITION_CONFIGURE, Transition.TRANSITION_ACTIVATE):
            for managed in self.managed:
                ok = managed.change_state(transition, self.config.transition_timeout_s, self._stop)
                if self._stop.is_set():
                    return
                if not ok:
                    why = ("answered success=false" if ok is False
                           else f"did not answer within transition_timeout_s={self.config.transition_timeout_s:g} s")
                    self._fail(f"bring-up failed: node {managed.label} could not "
                               f"{_TRANSITION_LABELS[transition]}: it {why}")
                    return
        log.info(f"all {len(self.managed)} managed nodes are active: "
                 f"{', '.join(m.name for m in self.managed)}")
        self._watch()

    def _wait_for_services(self) -> bool:
        next_log = time.monotonic() + WAIT_LOG_PERIOD_S
        while not self._stop.is_set():
            missing = [m for m in self.managed if not m.ready()]
            if not missing:
                return True
            if time.monotonic() >= next_log:
                next_log += WAIT_LOG_PERIOD_S
                self.get_logger().info(
                    f"waiting for the lifecycle services of {', '.join(m.label for m in missing)}")
            self._stop.wait(0.1)
        return False

    def _watch(self) -> None:
        """Ask every node's state each check period; a silent node or one not ACTIVE ends the run."""
        cfg = self.config
        while not self._stop.wait(cfg.check_period_s):
            futures = [(m, m.ask_state() if m.ready() else None) for m in self.managed]
            deadline = time.monotonic() + cfg.bond_period_s
            for managed, future in futures:
                if future is None:
                    self._lost.add(managed.name)
                    self._fail(f"managed node {managed.label} is gone: its lifecycle services disappeared")
                    return
                response = _wait(managed.get_client, future, deadline, self._stop)
                if self._stop.is_set():
                    return
                if response is None:
                    self._lost.add(managed.name)
                    self._fail(f"managed node {managed.label} is gone: get_state unanswered for "
                               f"bond_period_s={cfg.bond_period_s:g} s")
                    return
                state = int(response.current_state.id)
                if state != State.PRIMARY_STATE_ACTIVE:
                    self._fail(f"managed node {managed.label} left ACTIVE: it is now {_state_label(state)}")
                    return

    def _fail(self, line: str) -> None:
        """Log ``line``, bring the others down, exit 1 (the launch stops).

        When the context is already down (Ctrl-C raced the check) the silence was ours, not
        the node's: nothing is logged and finish_early brings the nodes down instead.
        """
        if self._stop.is_set() or not self.context.ok():
            return
        self.get_logger().error(f"{line}; bringing the managed nodes down and exiting 1")
        self.exit_code = 1
        _bring_down(self.managed, self.config.transition_timeout_s, self._stop, self.get_logger().warning,
                    skip=self._lost)
        if not self._stop.is_set():  # a Ctrl-C in the middle: finish_early finishes the job on a fresh context
            self._brought_down.set()
        self.context.try_shutdown()

    # ------------------------------------------------------------------ stopping

    def finish_early(self, reason: str) -> None:
        """Called by run_node as the node stops: bring the managed nodes down unless a failure already did."""
        self._stop.set()
        self._worker.join(timeout=2.0 * self.config.transition_timeout_s)
        if self._brought_down.is_set():
            return
        print(f"lifecycle_manager: {reason}: bringing the managed nodes down", file=sys.stderr)
        try:
            self._bring_down_on_fresh_context()
        except KeyboardInterrupt:
            print("lifecycle_manager: interrupted again: leaving the managed nodes as they are", file=sys.stderr)
        except Exception as exc:  # rclpy refusing a new context while the process shuts down: say so, in one line
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            print(f"lifecycle_manager: cannot reach the managed nodes to bring them down ({text}); "
                  "they stop with their own signal", file=sys.stderr)

    def _bring_down_on_fresh_context(self) -> None:
        """rclpy's signal handler shut the node's context down, so talk to the nodes from a private one."""
        context = rclpy.Context()
        # No arguments: the names are already resolved (remapping them again would be wrong).
        rclpy.init(args=[], context=context, domain_id=self._domain_id,
                   signal_handler_options=SignalHandlerOptions.NO)
        executor = SingleThreadedExecutor(context=context)
        node = rclpy.create_node(f"{self.get_name()}_bringdown", context=context, start_parameter_services=False,
                                 enable_rosout=False)
        spinner = threading.Thread(target=executor.spin, name="lifecycle_manager_bringdown", daemon=True)
        try:
            executor.add_node(node)
            spinner.start()
            managed = [_ManagedNode(node, m.name, m.fqn) for m in self.managed]
            deadline = time.monotonic() + min(BRINGDOWN_DISCOVERY_S, self.config.transition_timeout_s)
            while time.monotonic() < deadline and not all(m.ready() for m in managed):
                time.sleep(_POLL_S)

            def say(line: str) -> None:
                print(f"lifecycle_manager: {line}", file=sys.stderr)

            _bring_down(managed, self.config.transition_timeout_s, threading.Event(), say,
                        skip={m.name for m in managed if not m.ready()} | self._lost)
        finally:
            executor.shutdown(timeout_sec=1.0)
            spinner.join(timeout=2.0)
            node.destroy_node()
            rclpy.try_shutdown(context=context)


def _bring_down(managed: Sequence[_ManagedNode], timeout_s: float, stop: threading.Event,
                warn: Callable[[str], object], *, skip: set[str] | frozenset[str] = frozenset()) -> None:
    """Deactivate every ACTIVE node in reverse order, then clean up every INACTIVE one in reverse order.

    Nav2's order: nothing is cleaned up while a node after it might still use it. The state
    is asked before each step, so a node that finished a timed-out transition late is
    handled, and one that does not answer is named and skipped (best effort, never raises).
    """
    steps = ((Transition.TRANSITION_DEACTIVATE, State.PRIMARY_STATE_ACTIVE),
             (Transition.TRANSITION_CLEANUP, State.PRIMARY_STATE_INACTIVE))
    unreachable = set(skip)
    for name in skip:
        warn(f"node '{name}' is unreachable: leaving it as it is")
    for transition, from_state in steps:
        for m in reversed(managed):
            if m.name in unreachable or stop.is_set():
                continue
            state = m.get_state(timeout_s, stop)
            if state is None:
                unreachable.add(m.name)
                warn(f"node {m.label} did not answer get_state: leaving it as it is")
                continue
            if state != from_state:
                continue
            ok = m.change_state(transition, timeout_s, stop)
            if not ok:
                why = "answered success=false" if ok is False else f"did not answer within {timeout_s:g} s"
                warn(f"node {m.label} could not {_TRANSITION_LABELS[transition]}: it {why}")


def main(argv: list[str] | None = None) -> int:
    return run_node(LifecycleManagerNode, argv)


if __name__ == "__main__":
    sys.exit(main())
