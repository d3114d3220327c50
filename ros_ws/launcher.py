"""Run ROS 2 YAML launch files on machines without ``ros2 launch``.

``launch``, ``launch_ros`` and ``ros2cli`` are not on PyPI, so navkit reads the ROS 2
YAML launch frontend itself. The *same* file must still run under ``ros2 launch`` on a
ROS machine, so this module accepts only the documented frontend format (a top-level
``launch:`` list of ``arg``, ``let``, ``node``, ``group``, ``push-ros-namespace``,
``include``, ``for``) and refuses anything else with a :class:`LaunchError` naming the file and
field, instead of guessing.

Two halves, kept apart so tests and ``--print`` need no processes:

* :func:`parse_launch_file` resolves arguments, substitutions and conditions into a
  flat list of :class:`NodeSpec`; :func:`node_command` turns one into an argv.
* :func:`run_launch` supervises the processes: prefixed output, Ctrl-C forwarding and
  "one dies, all stop" (what ``ros2 launch`` users expect from ``on_exit: shutdown``).

Semantics that follow ROS 2 (so both launchers agree):

* ``arg`` keeps a value given by the command line, a parent file or an ``include``;
  otherwise it takes ``default``; with neither it is an error.
* ``group`` is scoped: ``let``/``arg``/``push-ros-namespace`` inside it do not leak out.
  An ``include`` sees the including file's variables and is scoped too.
* A node ``namespace`` that starts with ``/`` is absolute; otherwise it is appended to the
  pushed namespaces.
* ``param`` values that are strings are read as YAML after substitution (``"1.5"`` is a
  float), as launch_ros does.
* ``if``/``unless`` accept ``true``/``false``/``1``/``0`` (any case) after substitution.
* ``output`` is accepted (screen/log/both) but every line is shown, prefixed ``[name]``.
* ``for: {len: N, name: i, children: [...]}`` (launch's ``ForLoop``, ROS 2 Jazzy and later)
  expands its children for ``i`` = 0..N-1; ``len`` is substituted then read with ``int()``
  (N <= 0: no iteration). As in launch, only the index is scoped: ``$(index i)`` is
  defined inside the body (and files it includes) and nowhere else, while a ``let`` or
  ``push-ros-namespace`` directly in the body leaks into the next iteration and past the
  loop, because launch's ForLoop scopes its locals, not launch configurations. Put a
  ``group`` in the body for per-iteration namespaces.
"""
from __future__ import annotations

import argparse
import importlib.metadata
import json
import math
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from navkit.common.errors import FieldError, brief
from navkit.common.params import flatten_params
from navkit.common.yaml_file import YamlProblem, parse_yaml_text, read_yaml_file
from navkit.ros_ws.launch_eval import EvalError, safe_eval
from navkit.ros_ws.supervision import HEARTBEAT_PERIOD_S, HeartbeatReader

DEFAULT_HEARTBEAT_TIMEOUT_S = 10 * HEARTBEAT_PERIOD_S
"""A node silent this long (after its first beat) is treated as failed and the launch stops."""

PACKAGE = "navkit"
_ENTITY_KEYS = {
    "arg": {"name", "default", "description", "choice", "if", "unless"},
    "let": {"name", "value", "if", "unless"},
    "node": {"pkg", "exec", "name", "namespace", "output", "on_exit", "param", "remap", "args", "if", "unless"},
    "group": {"scoped", "forwarding", "children", "if", "unless"},
    "push-ros-namespace": {"namespace", "if", "unless"},
    "include": {"file", "arg", "if", "unless"},
    "for": {"len", "name", "children", "if", "unless"},
}
_ALIASES = {"push_ros_namespace": "push-ros-namespace"}
# Keys ros2 launch understands that this launcher does not implement: say so plainly.
_ROS_ONLY_NODE_KEYS = {"respawn", "respawn_delay", "ros_args", "launch-prefix", "launch_prefix", "env", "exec_name",
                       "sigterm_timeout", "sigkill_timeout", "emulate_tty", "cwd"}
_ROS_ONLY_ENTITIES = {"executable", "set_env", "set-env", "unset_env", "set_parameter", "set_remap", "timer",
                      "log", "shutdown", "node_container", "composable_node", "load_composable_node"}


MAX_FOR_LENGTH = 1024
"""Most iterations of one ``for`` (a launch starts processes: a thousand robots is already a lot)."""
MAX_NODES = 2048
"""Most nodes one launch file (with its includes and loops) may start."""
MAX_INCLUDE_DEPTH = 32
MAX_TEXT_LENGTH = 10_000
"""Longest value (before substitution) a launch file may hold."""


_NODE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NAMESPACE = re.compile(r"/?([A-Za-z_][A-Za-z0-9_]*/?)*")


class LaunchError(FieldError):
    """A launch file (or command-line argument) is malformed; names the file and field."""


@dataclass(frozen=True)
class NodeSpec:
    """One ``node`` action after substitution: everything needed to build its argv."""

    name: str | None
    namespace: str
    pkg: str
    exec: str
    params_files: tuple[str, ...] = ()
    params: Mapping[str, Any] = field(default_factory=dict)
    remaps: tuple[tuple[str, str], ...] = ()
    args: tuple[str, ...] = ()
    on_exit_shutdown: bool = False
    output: str = "screen"

    @property
    def label(self) -> str:
        """The ``[prefix]`` of this node's output lines: ``robot_0/agent`` inside a namespace."""
        base = self.name or self.exec
        ns = self.namespace.strip("/")
        return f"{ns}/{base}" if ns else base


@dataclass(frozen=True)
class ProcessSpec:
    """A process for :func:`run_launch`: a label, a full argv, and the on_exit policy."""

    name: str
    argv: tuple[str, ...]
    on_exit_shutdown: bool = False


# --------------------------------------------------------------------------- parsing


@dataclass
class _Scope:
    """Mutable per-scope state; copied on entry to a group or include."""

    file: Path
    variables: dict[str, str]
    namespace: str  # pushed namespace, "" or "/a/b"
    indices: dict[str, int] = field(default_factory=dict)  # for-loop indices in scope ($(index NAME))

    def child(self, file: Path | None = None) -> _Scope:
        return _Scope(file or self.file, dict(self.variables), self.namespace, dict(self.indices))


def package_share_dir() -> Path:
    """What ``$(find-pkg-share navkit)`` means here, so that ``launch/``, ``config/``, ``scenarios/``
    and ``policies/`` under it resolve wherever this module runs from.

    Installed as a ROS 2 package (``colcon build``, or a pip wheel into an environment), this module
    lies under an install prefix whose ament index lists navkit: the answer is ``<prefix>/share/navkit``,
    as for ``ros2 launch``. In a source checkout it is the ``navkit.ros_ws`` package folder, which holds
    ``launch/`` and ``config/`` and links ``scenarios`` and ``policies`` to the checkout's folders.
    """
    here = Path(__file__).resolve().parent
    for prefix in here.parents:
        if (prefix / "share" / "ament_index" / "resource_index" / "packages" / PACKAGE).is_file():
            return prefix / "share" / PACKAGE
    return here


def parse_launch_file(path: str | Path, args: Mapping[str, str] | None = None) -> list[NodeSpec]:
    """Resolve a YAML launch file (and its includes) into the nodes it would start.

    ``args`` are the ``name:=value`` launch arguments; they override ``arg`` defaults.
    """
    nodes: list[NodeSpec] = []
    scope = _Scope(Path(path).resolve(), {k: str(v) for k, v in (args or {}).items()}, "")
    _parse_file(scope, nodes, stack=())
    return nodes


def _parse_file(scope: _Scope, nodes: list[NodeSpec], stack: tuple[Path, ...]) -> None:
    src = str(scope.file)
    if scope.file in stack:
        raise LaunchError(src, "include", "launch file includes itself (cycle)")
    if len(stack) >= MAX_INCLUDE_DEPTH:
        raise LaunchError(src, "include", f"includes nested deeper than {MAX_INCLUDE_DEPTH} files")
    if scope.file.is_file() and scope.file.suffix not in (".yaml", ".yml"):
        raise LaunchError(src, "<file>", "only YAML launch files (.yaml/.yml) can run without ros2 launch")
    doc = read_yaml_file(scope.file, LaunchError, "launch file", source=src)
    if not isinstance(doc, dict) or set(doc) != {"launch"} or not isinstance(doc["launch"], list):
        raise LaunchError(src, "<top level>", "expected a mapping with one key 'launch' holding a list of actions")
    _parse_actions(doc["launch"], scope, nodes, "launch", stack + (scope.file,))


def _parse_actions(actions: list[Any], scope: _Scope, nodes: list[NodeSpec], where: str,
                   stack: tuple[Path, ...]) -> None:
    src = str(scope.file)
    for index, item in enumerate(actions):
        at = f"{where}[{index}]"
        if not isinstance(item, dict) or len(item) != 1:
            raise LaunchError(src, at, "each action must be a mapping with exactly one key (arg, let, node, group, ...)")
        ((kind, body),) = item.items()
        kind = _ALIASES.get(kind, kind)
        at = f"{at}.{kind}"
        if kind in _ROS_ONLY_ENTITIES:
            raise LaunchError(src, at, f"'{kind}' runs only under ros2 launch; navkit's launcher does not support it")
        if kind not in _ENTITY_KEYS:
            raise LaunchError(src, at, f"unknown action (known: {', '.join(sorted(_ENTITY_KEYS))})")
        if kind == "group" and isinstance(body, list):
            body = {"children": body}
        if not isinstance(body, dict):
            raise LaunchError(src, at, "expected a mapping of attributes")
        unknown = set(body) - _ENTITY_KEYS[kind]
        if unknown:
            extra = sorted(unknown)
            if kind == "node" and unknown <= _ROS_ONLY_NODE_KEYS:
                raise LaunchError(src, f"{at}.{extra[0]}", "runs only under ros2 launch; navkit's launcher does not support it")
            raise LaunchError(src, f"{at}.{extra[0]}", f"unknown attribute (known: {', '.join(sorted(_ENTITY_KEYS[kind]))})")
        if not _condition_holds(body, scope, at):
            continue
        if kind == "arg":
            _parse_arg(body, scope, at)
        elif kind == "let":
            name = _required_str(body, "name", scope, at, substitute=False)
            scope.variables[name] = _text(body.get("value", ""), scope, f"{at}.value")
        elif kind == "push-ros-namespace":
            ns = _required_str(body, "namespace", scope, at)
            scope.namespace = _join_namespace(scope.namespace, ns)
        elif kind == "group":
            _parse_group(body, scope, nodes, at, stack)
        elif kind == "include":
            _parse_include(body, scope, nodes, at, stack)
        elif kind == "for":
            _parse_for(body, scope, nodes, at, stack)
        else:
            if len(nodes) >= MAX_NODES:
                raise LaunchError(src, at, f"the launch would start more than {MAX_NODES:,} nodes")
            nodes.append(_parse_node(body, scope, at))


def _parse_arg(body: dict[str, Any], scope: _Scope, at: str) -> None:
    name = _required_str(body, "name", scope, at, substitute=False)
    if name not in scope.variables:
        if "default" not in body:
            raise LaunchError(str(scope.file), f"{at}.{name}",
                              f"required launch argument not given; pass {name}:=VALUE")
        scope.variables[name] = _text(body["default"], scope, f"{at}.default")
    # ROS 2's YAML frontend spells allowed values ``choice: [{value: a}, {value: b}]``.
    choices = body.get("choice")
    if choices is not None:
        entries = choices if isinstance(choices, list) else [choices]
        if not all(isinstance(c, dict) and set(c) == {"value"} for c in entries):
            raise LaunchError(str(scope.file), f"{at}.choice", "expected a list of {value: ...} entries")
        allowed = [_text(c["value"], scope, f"{at}.choice") for c in entries]
        if scope.variables[name] not in allowed:
            raise LaunchError(str(scope.file), f"{at}.{name}",
                              f"value {brief(scope.variables[name])} is not one of {', '.join(allowed)}")


def _parse_group(body: dict[str, Any], scope: _Scope, nodes: list[NodeSpec], at: str,
                 stack: tuple[Path, ...]) -> None:
    children = body.get("children")
    if not isinstance(children, list):
        raise LaunchError(str(scope.file), f"{at}.children", "expected a list of actions")
    scoped = _bool(body.get("scoped", True), scope, f"{at}.scoped")
    inner = scope.child() if scoped else scope
    _parse_actions(children, inner, nodes, f"{at}.children", stack)


def _parse_for(body: dict[str, Any], scope: _Scope, nodes: list[NodeSpec], at: str,
                stack: tuple[Path, ...]) -> None:
    """launch's ForLoop: the children once per index; only the index itself is scoped."""
    src = str(scope.file)
    name = _required_str(body, "name", scope, at, substitute=False)
    length_text = _required_str(body, "len", scope, at)
    try:
        length = int(length_text)
    except ValueError:
        raise LaunchError(src, f"{at}.len", f"expected an integer number of iterations, got {brief(length_text)}") from None
    if length > MAX_FOR_LENGTH:
        raise LaunchError(src, f"{at}.len", f"{length:,} iterations exceed the limit of {MAX_FOR_LENGTH:,}")
    children = body.get("children")
    if not isinstance(children, list):
        raise LaunchError(src, f"{at}.children", "expected a list of actions")
    outer = scope.indices
    try:
        for i in range(length):
            scope.indices = {**outer, name: i}
            _parse_actions(children, scope, nodes, f"{at}[{name}={i}].children", stack)
    finally:
        scope.indices = outer


def _parse_include(body: dict[str, Any], scope: _Scope, nodes: list[NodeSpec], at: str,
                   stack: tuple[Path, ...]) -> None:
    src = str(scope.file)
    target = Path(_required_str(body, "file", scope, at))
    if not target.is_absolute():
        target = Path.cwd() / target
    if not target.is_file():
        raise LaunchError(src, f"{at}.file", f"{target} not found (relative paths are from the working "
                                             "directory, as in ros2 launch; use $(dirname) or $(find-pkg-share navkit))")
    inner = scope.child(target.resolve())
    overrides = body.get("arg", [])
    if not isinstance(overrides, list):
        raise LaunchError(src, f"{at}.arg", "expected a list of {name: ..., value: ...}")
    for i, entry in enumerate(overrides):
        where = f"{at}.arg[{i}]"
        if not isinstance(entry, dict) or set(entry) != {"name", "value"}:
            raise LaunchError(src, where, "expected {name: ..., value: ...}")
        # Values are substituted in the *including* file's context.
        inner.variables[str(entry["name"])] = _text(entry["value"], scope, f"{where}.value")
    _parse_file(inner, nodes, stack)


def _parse_node(body: dict[str, Any], scope: _Scope, at: str) -> NodeSpec:
    src = str(scope.file)
    pkg = _required_str(body, "pkg", scope, at)
    exe = _required_str(body, "exec", scope, at)
    if pkg != PACKAGE:
        raise LaunchError(src, f"{at}.pkg", f"'{pkg}': only {PACKAGE} nodes can run without ros2 launch")
    _entry_point(exe, src, f"{at}.exec")  # fail at parse time, naming the file
    name = _text(body["name"], scope, f"{at}.name") if "name" in body else None
    if name is not None and not _NODE_NAME.fullmatch(name):
        raise LaunchError(src, f"{at}.name", f"{brief(name)} is not a valid ROS node name (letters, digits, _; "
                                             "not starting with a digit)")
    ns = _text(body.get("namespace", ""), scope, f"{at}.namespace")
    if not _NAMESPACE.fullmatch(ns):
        raise LaunchError(src, f"{at}.namespace", f"{brief(ns)} is not a valid ROS namespace (names of letters, "
                                                  "digits and _ separated by /)")
    namespace = _join_namespace(scope.namespace, ns) or "/"
    output = _text(body.get("output", "screen"), scope, f"{at}.output")
    if output not in ("screen", "log", "both"):
        raise LaunchError(src, f"{at}.output", f"expected screen, log or both, got {brief(output)}")
    on_exit = _text(body["on_exit"], scope, f"{at}.on_exit") if "on_exit" in body else None
    if on_exit not in (None, "shutdown"):
        raise LaunchError(src, f"{at}.on_exit", f"only 'shutdown' is supported, got {brief(on_exit)}")
    files, params = _parse_params(body.get("param", []), scope, f"{at}.param")
    remaps = _parse_remaps(body.get("remap", []), scope, f"{at}.remap")
    extra = body.get("args", "")
    try:
        args = tuple(shlex.split(_text(extra, scope, f"{at}.args"))) if extra else ()
    except ValueError as exc:  # shlex: "No closing quotation"
        raise LaunchError(src, f"{at}.args", f"cannot split into arguments ({exc})") from None
    return NodeSpec(name=name, namespace=namespace, pkg=pkg, exec=exe, params_files=files, params=params,
                    remaps=remaps, args=args, on_exit_shutdown=on_exit == "shutdown", output=output)


def _parse_params(entries: Any, scope: _Scope, at: str) -> tuple[tuple[str, ...], dict[str, Any]]:
    src = str(scope.file)
    if not isinstance(entries, list):
        raise LaunchError(src, at, "expected a list of {from: FILE} or {name: ..., value: ...}")
    files: list[str] = []
    params: dict[str, Any] = {}
    for i, entry in enumerate(entries):
        where = f"{at}[{i}]"
        if isinstance(entry, dict) and set(entry) == {"from"}:
            path = Path(_text(entry["from"], scope, f"{where}.from"))
            if not path.is_file():
                raise LaunchError(src, f"{where}.from", f"parameter file {path} not found")
            # Read it strictly now (duplicate keys, bad YAML): rcl would keep the last duplicate.
            read_yaml_file(path, LaunchError, "parameter file")
            files.append(str(path.resolve()))
        elif isinstance(entry, dict) and set(entry) == {"name", "value"}:
            name = _text(entry["name"], scope, f"{where}.name")
            value = _param_value(entry["value"], scope, f"{where}.value")
            if isinstance(value, dict):
                params.update(flatten_params(value, name))
            else:
                params[name] = value
        else:
            raise LaunchError(src, where, "expected {from: FILE} or {name: ..., value: ...}")
    return tuple(files), params


def _parse_remaps(entries: Any, scope: _Scope, at: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(entries, list):
        raise LaunchError(str(scope.file), at, "expected a list of {from: ..., to: ...}")
    out = []
    for i, entry in enumerate(entries):
        where = f"{at}[{i}]"
        if not isinstance(entry, dict) or set(entry) != {"from", "to"}:
            raise LaunchError(str(scope.file), where, "expected {from: ..., to: ...}")
        out.append((_text(entry["from"], scope, f"{where}.from"), _text(entry["to"], scope, f"{where}.to")))
    return tuple(out)


def _param_value(value: Any, scope: _Scope, at: str) -> Any:
    if isinstance(value, str):
        text = _text(value, scope, at)
        try:
            loaded = parse_yaml_text(text) if text.strip() else text
        except YamlProblem:
            return text
        return loaded if isinstance(loaded, (bool, int, float, str, list)) else text
    if isinstance(value, list):
        return [_param_value(v, scope, f"{at}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {str(k): _param_value(v, scope, f"{at}.{k}") for k, v in value.items()}
    return value


def _condition_holds(body: dict[str, Any], scope: _Scope, at: str) -> bool:
    if "if" in body and not _bool(body["if"], scope, f"{at}.if"):
        return False
    if "unless" in body and _bool(body["unless"], scope, f"{at}.unless"):
        return False
    return True


def _bool(value: Any, scope: _Scope, at: str) -> bool:
    text = _text(value, scope, at).strip().lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise LaunchError(str(scope.file), at, f"expected true/false/1/0, got {brief(text)}")


def _required_str(body: dict[str, Any], key: str, scope: _Scope, at: str, *, substitute: bool = True) -> str:
    if key not in body or body[key] is None:
        raise LaunchError(str(scope.file), f"{at}.{key}", "required attribute missing")
    if not substitute:
        return str(body[key])
    return _text(body[key], scope, f"{at}.{key}")


def _join_namespace(base: str, ns: str) -> str:
    """ROS 2 rule: an absolute namespace replaces the pushed one, a relative one extends it."""
    ns = ns.strip()
    if ns.startswith("/"):
        joined = ns
    else:
        joined = f"{base}/{ns}" if ns else base
    parts = [p for p in joined.split("/") if p]
    return "/" + "/".join(parts) if parts else ""


# ------------------------------------------------------------------ substitutions


def _text(value: Any, scope: _Scope, at: str) -> str:
    """A YAML scalar with ``$(...)`` substitutions resolved, as a string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if not isinstance(value, str):
        raise LaunchError(str(scope.file), at, f"expected a string, got {type(value).__name__}")
    if len(value) > MAX_TEXT_LENGTH:
        raise LaunchError(str(scope.file), at, f"a value of {len(value):,} characters exceeds {MAX_TEXT_LENGTH:,}")
    try:
        text, _ = _Substituter(scope, at).template(value, 0, "")
    except RecursionError:
        raise LaunchError(str(scope.file), at, "substitutions nested too deeply") from None
    return text


class _Substituter:
    """Recursive-descent reader for ``$(name arg ...)``; args may be quoted or nested."""

    def __init__(self, scope: _Scope, at: str) -> None:
        self.scope = scope
        self.at = at

    def error(self, problem: str) -> LaunchError:
        return LaunchError(str(self.scope.file), self.at, problem)

    def template(self, s: str, i: int, stop: str) -> tuple[str, int]:
        out = []
        while i < len(s):
            if s.startswith("$(", i):
                value, i = self.substitution(s, i + 2)
                out.append(value)
            elif s[i] in stop:
                break
            else:
                out.append(s[i])
                i += 1
        return "".join(out), i

    def substitution(self, s: str, i: int) -> tuple[str, int]:
        start = i
        while i < len(s) and not s[i].isspace() and s[i] != ")":
            i += 1
        name = s[start:i]
        args: list[str] = []
        while True:
            while i < len(s) and s[i].isspace():
                i += 1
            if i >= len(s):
                raise self.error(f"unterminated substitution {brief('$(' + s[start:])}")
            if s[i] == ")":
                return self.apply(name, args), i + 1
            arg, i = self.argument(s, i)
            args.append(arg)

    def argument(self, s: str, i: int) -> tuple[str, int]:
        out = []
        while i < len(s) and not s[i].isspace() and s[i] != ")":
            if s[i] in "'\"":
                quote = s[i]
                value, i = self.template(s, i + 1, quote)
                if i >= len(s):
                    raise self.error(f"unterminated {quote} quote in substitution")
                out.append(value)
                i += 1
            elif s.startswith("$(", i):
                value, i = self.substitution(s, i + 2)
                out.append(value)
            else:
                out.append(s[i])
                i += 1
        return "".join(out), i

    def apply(self, name: str, args: list[str]) -> str:
        def need(low: int, high: int) -> None:
            if not low <= len(args) <= high:
                raise self.error(f"$({name}) takes {low}..{high} arguments, got {len(args)}")

        if name == "var":
            need(1, 1)
            if args[0] not in self.scope.variables:
                known = ", ".join(sorted(self.scope.variables)) or "none"
                raise self.error(f"$(var {args[0]}): launch argument or variable not defined (defined: {known})")
            return self.scope.variables[args[0]]
        if name in ("env", "optenv"):
            need(1, 2)
            if args[0] in os.environ:
                return os.environ[args[0]]
            if len(args) == 2:
                return args[1]
            if name == "optenv":
                return ""
            raise self.error(f"$(env {args[0]}): environment variable not set and no default given")
        if name == "find-pkg-share":
            need(1, 1)
            if args[0] != PACKAGE:
                raise self.error(f"$(find-pkg-share {args[0]}): only '{PACKAGE}' is known without ROS")
            return str(package_share_dir())
        if name == "index":
            need(1, 1)
            if args[0] not in self.scope.indices:
                known = ", ".join(sorted(self.scope.indices)) or "none"
                raise self.error(f"$(index {args[0]}): not inside a for loop named {brief(args[0])} (in scope: {known})")
            return str(self.scope.indices[args[0]])
        if name == "dirname":
            need(0, 0)
            return str(self.scope.file.parent)
        if name == "filename":
            need(0, 0)
            return str(self.scope.file)
        if name == "eval":
            if len(args) != 1:
                raise self.error("$(eval ...) takes one quoted Python expression: $(eval '1 + 2')")
            return self.evaluate(args[0])
        raise self.error(f"unknown substitution $({name}) (known: var, env, optenv, find-pkg-share, index, "
                         "dirname, filename, eval)")

    def evaluate(self, expression: str) -> str:
        """``$(eval)``: what launch files use it for, bounded (see :mod:`navkit.ros_ws.launch_eval`)."""
        try:
            return str(safe_eval(expression))
        except EvalError as exc:
            raise self.error(f"$(eval {brief(expression)}): {exc}") from None


# ---------------------------------------------------------------- commands


def _entry_point(exe: str, source: str, at: str) -> tuple[str, str]:
    """(module, function) of the ``console_scripts`` entry point named ``exe``."""
    try:
        eps = importlib.metadata.distribution(PACKAGE).entry_points
    except importlib.metadata.PackageNotFoundError:
        raise LaunchError(source, at, f"the '{PACKAGE}' distribution is not installed (pip install -e .)") from None
    scripts = {ep.name: ep for ep in eps if ep.group == "console_scripts"}
    if exe not in scripts:
        raise LaunchError(source, at, f"no {PACKAGE} executable named {brief(exe)} (known: {', '.join(sorted(scripts))})")
    module, _, func = scripts[exe].value.partition(":")
    func = func.split("[")[0].strip()
    if not func or "." in func:
        raise LaunchError(source, at, f"entry point {scripts[exe].value!r} is not 'module:function'")
    return module.strip(), func


def render_param_value(value: Any) -> str:
    """A parameter value in the YAML syntax ``--ros-args -p name:=value`` parses."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        return repr(value)
    if isinstance(value, str):
        try:
            plain = parse_yaml_text(value) == value and value.strip() == value and value != ""
        except YamlProblem:
            plain = False
        return value if plain and "," not in value and "[" not in value else json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(render_param_value(v) for v in value) + "]"
    raise TypeError(f"cannot render parameter value {value!r}")


def node_command(spec: NodeSpec) -> list[str]:
    """The argv that starts ``spec``: the entry point via this Python, then ``--ros-args``."""
    if spec.pkg != PACKAGE:
        raise LaunchError("<node>", spec.label, f"'{spec.pkg}': only {PACKAGE} nodes can run without ros2 launch")
    module, func = _entry_point(spec.exec, "<node>", spec.label)
    argv = [sys.executable, "-c", f"import sys; from {module} import {func}; sys.exit({func}())", *spec.args]
    argv.append("--ros-args")
    if spec.name:
        argv += ["-r", f"__node:={spec.name}"]
    argv += ["-r", f"__ns:={spec.namespace or '/'}"]
    for path in spec.params_files:
        argv += ["--params-file", path]
    for name, value in spec.params.items():
        argv += ["-p", f"{name}:={render_param_value(value)}"]
    for src, dst in spec.remaps:
        argv += ["-r", f"{src}:={dst}"]
    return argv


def _process_spec(item: NodeSpec | ProcessSpec) -> ProcessSpec:
    if isinstance(item, ProcessSpec):
        return item
    return ProcessSpec(item.label, tuple(node_command(item)), item.on_exit_shutdown)


# ---------------------------------------------------------------- supervision


class _Child:
    def __init__(self, spec: ProcessSpec, emit: Callable[[str], None]) -> None:
        self.spec = spec
        self.heartbeat = HeartbeatReader()
        env = dict(os.environ, PYTHONUNBUFFERED="1", **self.heartbeat.child_env())
        # Own process group: a terminal Ctrl-C reaches only the launcher, which then
        # sends exactly one SIGINT per child (and can signal a child's own children).
        # The child ties its life to ours (navkit.ros_ws.supervision): killing the launcher
        # in any way stops every node.
        try:
            self.proc = subprocess.Popen(spec.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                                         stdin=subprocess.DEVNULL, start_new_session=True,
                                         pass_fds=(self.heartbeat.write_fd,))
        finally:
            self.heartbeat.after_spawn()
        self.reader = threading.Thread(target=self._pump, args=(emit,), daemon=True)
        self.reader.start()

    def _pump(self, emit: Callable[[str], None]) -> None:
        assert self.proc.stdout is not None
        for raw in iter(self.proc.stdout.readline, b""):
            emit(f"[{self.spec.name}] {raw.decode(errors='replace').rstrip()}")
        self.proc.stdout.close()

    def signal(self, sig: signal.Signals) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
                if sig != signal.SIGKILL:
                    os.killpg(self.proc.pid, signal.SIGCONT)  # a stopped node must run to handle it
            except (ProcessLookupError, PermissionError):
                pass

    def state(self) -> str:
        """The process state letter from /proc (T = stopped), or '?' where /proc is absent."""
        try:
            stat = Path(f"/proc/{self.proc.pid}/stat").read_text()
        except OSError:
            return "?"
        return stat.rsplit(")", 1)[-1].split()[0]


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def run_launch(nodes: Sequence[NodeSpec | ProcessSpec], *, log: Callable[[str], None] = print,
               stop_timeout_s: float = 5.0, heartbeat_timeout_s: float = DEFAULT_HEARTBEAT_TIMEOUT_S) -> int:
    """Start every process, supervise, and stop them all when one exits or on Ctrl-C.

    Returns 0 when an ``on_exit: shutdown`` process finished with code 0 or when the
    launcher was asked to stop (SIGINT/SIGTERM/SIGHUP); 1 when any process failed, exited
    on its own otherwise, or stopped responding (no heartbeat for ``heartbeat_timeout_s``
    after its first; 0 disables the check). Stopping sends SIGINT, then SIGTERM, then
    SIGKILL, waiting up to ``stop_timeout_s`` after each of the first two.
    """
    specs = [_process_spec(n) for n in nodes]
    lock = threading.Lock()

    def emit(line: str) -> None:
        with lock:
            log(line)

    requested: list[str] = []
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        # SIGHUP (the terminal closed, an ssh session dropped) stops the robot like SIGTERM.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            previous[sig] = signal.signal(sig, lambda signum, _frame: requested.append(signal.Signals(signum).name))
    children: list[_Child] = []
    try:
        for spec in specs:
            emit(f"[launch] starting {spec.name}: {shlex.join(spec.argv)}")
            children.append(_Child(spec, emit))
        code = _supervise(children, requested, emit, heartbeat_timeout_s)
    except OSError as exc:
        emit(f"[launch] could not start a process: {exc}; stopping all nodes")
        code = 1
    finally:
        _stop_all(children, emit, stop_timeout_s)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return code


def _supervise(children: list[_Child], requested: list[str], emit: Callable[[str], None],
               heartbeat_timeout_s: float) -> int:
    while True:
        if requested:
            emit(f"[launch] received {requested[0]}; stopping all nodes")
            return 0
        now = time.monotonic()
        for child in children:
            code = child.proc.poll()
            if code is None:
                child.heartbeat.poll(now)
                silent = child.heartbeat.silent_for(now)
                if heartbeat_timeout_s > 0 and silent > heartbeat_timeout_s:
                    state = " (process stopped)" if child.state() == "T" else ""
                    emit(f"[launch] {child.spec.name} stopped responding: no heartbeat for {silent:.1f} s{state}; "
                         "stopping all nodes")
                    return 1
                continue
            child.reader.join(timeout=1.0)  # its last lines before our verdict
            name = child.spec.name
            if child.spec.on_exit_shutdown and code == 0:
                emit(f"[launch] {name} finished; shutting down")
                return 0
            emit(f"[launch] {name} {_describe_exit(code)}; stopping all nodes")
            return 1
        time.sleep(0.02)


def _stop_all(children: list[_Child], emit: Callable[[str], None], timeout_s: float) -> None:
    for sig, wait_s in ((signal.SIGINT, timeout_s), (signal.SIGTERM, timeout_s), (signal.SIGKILL, 5.0)):
        alive = [c for c in children if c.proc.poll() is None]
        if not alive:
            break
        if sig != signal.SIGINT:
            emit(f"[launch] {', '.join(c.spec.name for c in alive)} still running; sending {sig.name}")
        for child in alive:
            child.signal(sig)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and any(c.proc.poll() is None for c in alive):
            time.sleep(0.02)
    for child in children:
        child.reader.join(timeout=1.0)
        child.heartbeat.close()


# ---------------------------------------------------------------- command line

_EXAMPLE = """\
A launch file is ROS 2's YAML launch format, so `ros2 launch` runs it unchanged:

  launch:
  - arg: {name: robot, default: mujoco, description: "sim backend or driver"}
  - let: {name: params, value: "$(find-pkg-share navkit)/config/demo.params.yaml"}
  - node:
      pkg: navkit
      exec: navkit_safety_filter
      name: safety_filter
      output: screen
      on_exit: shutdown
      param:
      - {from: "$(var params)"}
      - {name: use_sim_time, value: true}
      remap:
      - {from: cmd_vel_in, to: cmd_vel_nav}
  - group:
    - push-ros-namespace: {namespace: robot_0}
    - node:
        pkg: navkit
        exec: navkit_planner
        name: planner
        if: $(eval "'$(var robot)' == 'mujoco'")

Actions: arg, let, node, group (+ push-ros-namespace), include {file, arg: [{name, value}]},
for {len, name, children} (children once per $(index NAME) = 0..len-1; wrap per-robot
namespaces in a group); if/unless on any action. Substitutions: $(var N), $(env N [default]),
$(optenv N [default]), $(find-pkg-share navkit), $(index NAME), $(dirname), $(filename),
$(eval 'python expression').

Example:  navkit launch my_robot.launch.yaml robot:=mujoco --print
"""


class _LauncherParser(argparse.ArgumentParser):
    """A bad option is one line and exit 2, not the usage text."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _seconds(text: str) -> float:
    """argparse type: a finite number of seconds in [0, 3600]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {brief(text)}") from None
    if not (math.isfinite(value) and 0.0 <= value <= 3600.0):
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds in [0, 3600], got {text}")
    return value


def parse_cli_args(items: Sequence[str]) -> dict[str, str]:
    """``name:=value`` words -> a dict; anything else is a :class:`LaunchError`."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition(":=")
        if not sep or not name:
            raise LaunchError("<command line>", item, "expected a launch argument as name:=value")
        out[name] = value
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``navkit launch FILE [name:=value ...] [--print]``."""
    parser = _LauncherParser(prog="navkit launch", description="Run a ROS 2 YAML launch file without ros2 launch.",
                                     epilog=_EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", help="a ROS 2 YAML launch file")
    parser.add_argument("launch_args", nargs="*", metavar="name:=value", help="launch arguments")
    parser.add_argument("--print", action="store_true", help="print the node commands and exit")
    parser.add_argument("--stop-timeout", type=_seconds, default=5.0, help="seconds to wait after SIGINT/SIGTERM")
    parser.add_argument("--heartbeat-timeout", type=_seconds, default=DEFAULT_HEARTBEAT_TIMEOUT_S,
                        help="stop the launch when a node has sent no heartbeat for this many seconds (a stopped "
                             "or hung process); 0 disables (default: %(default)s)")
    ns = parser.parse_intermixed_args(argv)
    try:
        nodes = parse_launch_file(ns.file, parse_cli_args(ns.launch_args))
        if ns.print:
            for spec in nodes:
                print(f"{spec.label}: {shlex.join(node_command(spec))}")
            return 0
    except LaunchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not nodes:
        print("[launch] the launch file starts no nodes", file=sys.stderr)
        return 0
    return run_launch(nodes, stop_timeout_s=ns.stop_timeout, heartbeat_timeout_s=ns.heartbeat_timeout)


if __name__ == "__main__":
    sys.exit(main())
