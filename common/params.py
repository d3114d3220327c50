"""ROS 2 parameter files (``node: {ros__parameters: {...}}``) -> typed dataclass configs.

One file format configures both wirings: the ROS 2 nodes receive it through
``--ros-args --params-file`` and the in-process runner reads it here. Keys nest as in
ROS 2 (``cbf: {alpha: 1.0}`` is the parameter ``cbf.alpha``). Unknown keys are errors,
not silently ignored: a typo in a safety parameter must not fall back to a default.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from navkit.common.errors import ParameterError, brief
from navkit.common.yaml_file import read_yaml_file

T = TypeVar("T")

MAX_PARAM_INT = 2**63 - 1
"""ROS 2 integer parameters are int64: anything larger cannot reach a node."""

ROS_RESERVED_PARAMS = frozenset({"use_sim_time", "start_type_description_service"})
"""Parameters every rclpy node owns; a parameter file may set them for any node."""


def check_ranges(config: Any) -> None:
    """Raise ValueError for a field outside its ``metadata={"range": (low, high)}`` (inclusive; None = open).

    The same bounds go into the ROS 2 parameter descriptors, so a tool, ``ros2 param set`` and a
    parameter file read in-process all meet one rule.
    """
    for f in dataclasses.fields(config):
        bounds = f.metadata.get("range")
        if bounds is None:
            continue
        low, high = bounds
        value = getattr(config, f.name)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and (
                (low is not None and value < low) or (high is not None and value > high)):
            raise ValueError(f"{f.name}: must be in [{low:g}, {high:g}], got {value}")


def known_names(name: str, known: set[str] | list[str]) -> str:
    """``did you mean ...`` for a misspelt name, or the list of known names when it is short."""
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.6)
    if close:
        return f"did you mean {' or '.join(close)}?"
    names = sorted(known)
    if len(names) <= 12:
        return f"known: {', '.join(names)}"
    return f"known: {', '.join(names[:12])}, ... ({len(names)} in all)"


def flatten_params(tree: dict[str, Any], prefix: str = "", source: str = "<parameters>") -> dict[str, Any]:
    """Nested dicts -> dotted keys, the way ROS 2 names nested parameters.

    ``cbf.alpha: 2.0`` next to ``cbf: {alpha: 3.0}`` names one parameter twice; that is a
    :class:`ParameterError` (naming ``source``), never "one of them wins".
    """
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        items = flatten_params(value, name, source) if isinstance(value, dict) else {name: value}
        for flat_key, flat_value in items.items():
            if flat_key in flat:
                raise ParameterError(source, flat_key, "given twice (as a dotted key and nested)")
            flat[flat_key] = flat_value
    return flat


def load_node_params(path: str | Path, node_name: str) -> dict[str, Any]:
    """The flattened ``ros__parameters`` of one node, wildcard sections (``/**``) first.

    ``node_name`` may carry a namespace (``/robot_0/planner``); sections are matched by
    the full name, then by the bare name, as ROS 2 does for a parameter file.
    """
    path = Path(path)
    doc = read_yaml_file(path, ParameterError, "parameter file")
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ParameterError(str(path), "<top level>", "expected a mapping of node names")
    bare = node_name.rsplit("/", 1)[-1]
    full = node_name if node_name.startswith("/") else f"/{node_name}"
    merged: dict[str, Any] = {}
    for key in ("/**", "**", bare, full.lstrip("/"), full):
        section = doc.get(key)
        if section is None:
            continue
        if not isinstance(section, dict) or "ros__parameters" not in section:
            raise ParameterError(str(path), key, "expected a 'ros__parameters' mapping")
        params = section["ros__parameters"] or {}
        if not isinstance(params, dict):
            raise ParameterError(str(path), f"{key}.ros__parameters", "expected a mapping")
        merged.update(flatten_params(params, source=str(path)))
    return merged


def _coerce(value: Any, hint: Any, source: str, name: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _coerce(value, args[0], source, name)
    if hint is bool:
        if not isinstance(value, bool):
            raise ParameterError(source, name, f"expected true/false, got {brief(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParameterError(source, name, f"expected an integer, got {brief(value)}")
        if abs(value) > MAX_PARAM_INT:
            raise ParameterError(source, name, f"integer out of range (|value| <= 2**63 - 1), got {brief(value)}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParameterError(source, name, f"expected a number, got {brief(value)}")
        try:
            number = float(value)
        except OverflowError:
            raise ParameterError(source, name, f"number too large, got {brief(value)}") from None
        if not math.isfinite(number):
            raise ParameterError(source, name, f"expected a finite number, got {brief(value)}")
        return number
    if hint is str:
        if not isinstance(value, str):
            raise ParameterError(source, name, f"expected a string, got {brief(value)}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ParameterError(source, name, f"expected a list, got {brief(value)}")
        (item,) = typing.get_args(hint)[:1] or (Any,)
        items = [value[i] if item is Any else _coerce(value[i], item, source, f"{name}[{i}]")
                 for i in range(len(value))]
        return tuple(items) if origin is tuple else items
    return value


def check_groups(params: dict[str, Any], groups: set[str] | list[str], source: str) -> None:
    """Every dotted parameter must belong to one of a node's ``groups`` (its slots and sub-configs).

    :func:`config_from_params` with the empty prefix leaves dotted keys to the sub-configs;
    this catches the ones no sub-config claims (``cbf.alpha`` in a file written for another
    layout), which would otherwise be silently ignored.
    """
    for key in params:
        if "." not in key or key.startswith("qos_overrides."):
            continue
        group = key.split(".", 1)[0]
        if group not in groups:
            raise ParameterError(source, key, f"unknown parameter group {group!r} ({known_names(group, list(groups))})")


def config_from_params(cls: type[T], params: dict[str, Any], source: str, prefix: str = "") -> T:
    """Build dataclass ``cls`` from flat parameters under ``prefix``; unknown keys raise.

    Missing keys keep the dataclass default, so a parameter file only lists what it changes.
    Keys under ``prefix`` that name no field raise :class:`ParameterError` naming the key.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    hints = typing.get_type_hints(cls)
    head = f"{prefix}." if prefix else ""
    fields = {f.name for f in dataclasses.fields(cls) if f.init}
    kwargs: dict[str, Any] = {}
    for key, value in params.items():
        if not key.startswith(head):
            continue
        name = key[len(head):]
        if key in ROS_RESERVED_PARAMS:
            if not isinstance(value, bool):
                raise ParameterError(source, key, f"expected true/false, got {brief(value)}")
            continue
        if key.startswith("qos_overrides."):
            continue
        if "." in name and prefix == "":
            continue  # belongs to a sub-config with its own prefix
        if name not in fields:
            raise ParameterError(source, key, f"unknown parameter for {cls.__name__} ({known_names(name, fields)})")
        kwargs[name] = _coerce(value, hints[name], source, key)
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        raise ParameterError(source, prefix or cls.__name__, str(exc)) from None

