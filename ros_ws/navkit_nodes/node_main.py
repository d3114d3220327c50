"""Shared node plumbing: parameters -> dataclass configs, and a clean main()."""
from __future__ import annotations

import sys
from typing import Any, Callable

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node

from navkit.common.errors import NavkitError


def node_params(node: Node) -> dict[str, Any]:
    """All parameters the node received (from --params-file and -p), as a flat dict.

    Nodes are created with ``automatically_declare_parameters_from_overrides`` so every
    key in the file arrives here and :func:`navkit.common.params.config_from_params`
    can reject the unknown ones instead of silently ignoring a typo.
    """
    return {name: p.value for name, p in node._parameters.items()}  # noqa: SLF001 - rclpy has no public "all"


def params_source(node: Node) -> str:
    return f"parameters of node {node.get_fully_qualified_name()}"


def run_node(factory: Callable[[], Node], argv: list[str] | None = None) -> int:
    """Init rclpy, build the node, spin until Ctrl-C/shutdown; bad parameters exit 2 with one line."""
    rclpy.init(args=sys.argv if argv is None else argv)
    node = None
    try:
        node = factory()
        rclpy.spin(node)
        return int(getattr(node, "exit_code", 0))
    except NavkitError as exc:
        print(f"navkit node error: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, ExternalShutdownException):
        return int(getattr(node, "exit_code", 0)) if node is not None else 0
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
