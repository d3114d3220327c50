"""Shared node plumbing: parameters -> dataclass configs, and a clean main()."""
from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any
from collections.abc import Callable

import rclpy
from rclpy.clock import Clock, ClockType
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node

from navkit.common.errors import NavkitError, ParameterError
from navkit.common.json_output import write_metrics
from navkit.common.yaml_file import read_yaml_file
from navkit.ros_ws.supervision import HEARTBEAT_PERIOD_S, HeartbeatWriter, die_with_launcher


def node_params(node: Node) -> dict[str, Any]:
    """All parameters the node received (from --params-file and -p), as a flat dict.

    Nodes are created with ``automatically_declare_parameters_from_overrides`` so every
    key in the file arrives here and :func:`navkit.common.params.config_from_params`
    can reject the unknown ones instead of silently ignoring a typo.
    """
    return {name: p.value for name, p in node._parameters.items()}


def params_source(node: Node) -> str:
    return f"parameters of node {node.get_fully_qualified_name()}"


def leave_metrics(metrics: dict[str, Any], output_dir: str) -> None:
    """Write ``output_dir/metrics.json`` when an output folder was given; a write failure (full disk,
    read-only folder) is one line on stderr, never a crash of a node that is shutting down."""
    if not output_dir:
        return
    try:
        write_metrics(metrics, Path(output_dir))
    except OSError as exc:
        print(f"navkit: cannot write metrics to {output_dir}: {exc.strerror or exc}", file=sys.stderr)


def check_params_files(argv: list[str]) -> None:
    """Read every ``--params-file`` the node was given with navkit's strict reader first.

    rcl's own parser keeps the last of two duplicate keys; a node must not start on a
    file where ``cbf.alpha`` appears twice. Raises :class:`ParameterError` naming file and line.
    """
    for i, arg in enumerate(argv[:-1]):
        if arg == "--params-file":
            read_yaml_file(argv[i + 1], ParameterError, "parameter file")


def _watch_launcher(node: Node) -> None:
    """Beat the launcher's heartbeat pipe from this node's executor (see navkit.ros_ws.supervision).

    A steady-clock timer, so the beats follow wall time even when the node runs on sim
    time and /clock stands still; a broken pipe means the launcher is gone: shut down.
    """
    heartbeat = HeartbeatWriter()
    if not heartbeat.active:
        return

    def beat() -> None:
        if not heartbeat.beat():
            print("navkit: the launcher is gone; shutting down", file=sys.stderr)
            node.context.try_shutdown()

    beat()
    node.create_timer(HEARTBEAT_PERIOD_S, beat, clock=Clock(clock_type=ClockType.STEADY_TIME))


def run_node(factory: Callable[[], Node], argv: list[str] | None = None) -> int:
    """Init rclpy, build the node, spin until Ctrl-C/shutdown; bad parameters exit 2 with one line.

    A node that ends before its work is done (signal, launcher gone, an error) is told why
    through ``finish_early(reason)`` when it has one, so it can leave its results behind.
    """
    die_with_launcher()
    args = sys.argv if argv is None else argv
    try:
        check_params_files(list(args))
    except NavkitError as exc:
        print(f"navkit node error: {exc}", file=sys.stderr)
        return 2
    rclpy.init(args=args)
    node = None
    reason = "the node stopped"
    try:
        node = factory()
        _watch_launcher(node)
        autostart = getattr(node, "autostart", None)
        if autostart is not None:  # a lifecycle node run by hand (autostart:=true) brings itself up
            autostart()
        rclpy.spin(node)
        reason = "shutdown requested"
        return int(getattr(node, "exit_code", 0))
    except NavkitError as exc:
        print(f"navkit node error: {exc}", file=sys.stderr)
        reason = str(exc)
        return 2
    except (KeyboardInterrupt, ExternalShutdownException):
        reason = "stopped by a signal or its launcher"
        return int(getattr(node, "exit_code", 0)) if node is not None else 0
    finally:
        # A terminal's Ctrl-C reaches every process of the group and ros2 launch then sends each node a
        # second SIGINT: the clean-up below (leaving results, destroying the node) must not be cut short
        # by it, so further SIGINTs are ignored from here on.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if node is not None:
            finish_early = getattr(node, "finish_early", None)
            if finish_early is not None:
                finish_early(reason)
            node.destroy_node()
        rclpy.try_shutdown()
