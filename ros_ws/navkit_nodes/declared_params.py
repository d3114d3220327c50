"""Declared, described and guarded node parameters, built from navkit's config dataclasses.

Why: with ``automatically_declare_parameters_from_overrides`` every parameter is declared
untyped and unguarded, so ``ros2 param set /safety_filter safety_filter.alpha -5.0``
"succeeds" and changes nothing, and ``ros2 param describe`` says nothing. Here a node

1. reads what it was given (:func:`parameter_overrides`) and builds its configs with its
   ``navkit.stack.config.*_from_params`` function, so an unknown key or a bad value is one
   :class:`~navkit.common.errors.ParameterError` line before anything is declared;
2. declares exactly the config fields (:func:`param_fields`, :func:`plugin_fields`,
   :func:`declare_from_configs`), each with its type, the field's attribute docstring as
   description, an advisory range and ``read_only`` for structural choices (``*.plugin``);
3. guards later changes (:class:`ParameterGuard`): a set is accepted only when the node's own
   ``*_from_params`` accepts the whole candidate parameter set, so the dataclass
   ``__post_init__`` stays the one authority on what is valid, and the node applies the new
   config once the set has been stored.

Ranges: ROS 2 ranges are inclusive and many navkit bounds are exclusive (``alpha > 0``), so a
descriptor's range is advice for tools and UIs; rclpy enforces it too, but the config class
decides. Ranges come from dataclass field metadata: ``field(default=1.0, metadata={"range": (0.0, 10.0)})``
(either bound may be None: open on that side).
"""
from __future__ import annotations

import array
import ast
import dataclasses
import functools
import inspect
import math
import textwrap
import types
import typing
from collections import abc
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.exceptions import (InvalidParameterException, InvalidParameterTypeException,
                              InvalidParameterValueException, ParameterAlreadyDeclaredException)
from rclpy.node import Node
from rclpy.parameter import Parameter

from navkit.common.errors import NavkitError, ParameterError, brief
from navkit.common.params import MAX_PARAM_INT, ROS_RESERVED_PARAMS, known_names
from navkit.common.plugins import PluginChoice
from navkit.ros_ws.navkit_nodes.node_main import params_source

_T = Parameter.Type

_SCALARS: dict[Any, Parameter.Type] = {bool: _T.BOOL, int: _T.INTEGER, float: _T.DOUBLE, str: _T.STRING}
_ARRAYS: dict[Any, Parameter.Type] = {bool: _T.BOOL_ARRAY, int: _T.INTEGER_ARRAY, float: _T.DOUBLE_ARRAY,
                                      str: _T.STRING_ARRAY}
_TYPE_WORDS: dict[Parameter.Type, str] = {
    _T.BOOL: "true/false", _T.INTEGER: "an integer", _T.DOUBLE: "a number", _T.STRING: "a string",
    _T.BOOL_ARRAY: "a list of true/false", _T.INTEGER_ARRAY: "a list of integers",
    _T.DOUBLE_ARRAY: "a list of numbers", _T.STRING_ARRAY: "a list of strings"}


def is_ros_owned(name: str) -> bool:
    """Parameters rclpy itself declares and reacts to (``use_sim_time``, ``qos_overrides.*``):
    navkit never declares, validates or rebuilds anything for them."""
    return name in ROS_RESERVED_PARAMS or name.startswith("qos_overrides.")


def one_line(exc: BaseException) -> str:
    """An exception as one line (a SetParametersResult reason and a log line must not wrap)."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def plain_value(value: Any) -> Any:
    """A parameter value as navkit's config readers expect it: ``array.array`` (what rclpy hands
    over for arrays that came through a service) becomes a list, so a list check passes."""
    if isinstance(value, (array.array, tuple)):
        return list(value)
    return value


# ------------------------------------------------------------------ what the node was given


def parameter_overrides(node: Node) -> dict[str, Any]:
    """Every parameter the node was given (``--params-file``, ``-p``, ``parameter_overrides=``), as plain values.

    Read from rclpy's overrides, so it works for a Node and a LifecycleNode created *without*
    ``automatically_declare_parameters_from_overrides``: those keys are known but not declared,
    and the node's ``*_from_params`` can reject an unknown one before anything is declared.
    rclpy keeps no public accessor for them, hence ``_parameter_overrides``.
    """
    overrides: Mapping[str, Parameter[Any]] = getattr(node, "_parameter_overrides", {})
    return {name: plain_value(p.value) for name, p in overrides.items()}


def declared_values(node: Node) -> dict[str, Any]:
    """The node's declared parameters now (rclpy-owned ones excluded), as plain values.

    On a second ``configure`` of a lifecycle node its parameters are still declared (rclpy cannot
    undeclare a read-only one) and may have been changed at run time: build the config from
    ``parameter_overrides(node) | declared_values(node)`` so the current values win.
    """
    return {name: plain_value(p.value) for name, p in node.get_parameters_by_prefix("").items()
            if not is_ros_owned(name)}


# ------------------------------------------------------------------ fields of a config dataclass


Range = tuple[float | None, float | None]


@dataclass(frozen=True)
class ParamField:
    """One parameter to declare: what ``ros2 param describe`` will show for it."""

    name: str
    """Dotted ROS 2 name (``safety_filter.alpha``)."""
    value: Any
    """Its value from the built config (already coerced: floats are floats, tuples are lists)."""
    type: Parameter.Type
    """ROS 2 type; the parameter is statically typed (``dynamic_typing=False``)."""
    description: str = ""
    """The config field's attribute docstring, on one line."""
    read_only: bool = False
    """Structural choices (``*.plugin``, a backend): fixed for the node's life."""
    range: Range | None = None
    """Inclusive (low, high) for tools and rclpy; None bounds are open. Advisory: the config decides."""
    constraints: str = ""
    """Plain-English ``additional_constraints`` of the descriptor (who has the last word)."""


def _ros_type(hint: Any, where: str) -> Parameter.Type:
    """The ROS 2 type of a config field's annotation; anything else cannot be a parameter."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return _ros_type(args[0], where)
    elif origin is typing.Literal:
        kinds = {type(a) for a in typing.get_args(hint)}
        if len(kinds) == 1:
            return _ros_type(kinds.pop(), where)
    elif origin in (list, tuple, abc.Sequence):
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        if args and all(a == args[0] for a in args) and args[0] in _ARRAYS:
            return _ARRAYS[args[0]]
    elif hint in _SCALARS:
        return _SCALARS[hint]
    raise TypeError(f"{where}: type {hint!r} cannot be a ROS 2 parameter (bool, int, float, str or a list of one)")


@functools.cache
def attribute_docs(cls: type) -> dict[str, str]:
    """Field name -> attribute docstring (the string right after ``name: type = value``), over the MRO.

    Python keeps no such docstrings at run time, so the class source is parsed; a class without
    source (built at run time, a frozen app) simply has no descriptions.
    """
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if klass is object:
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = next((n.body for n in tree.body if isinstance(n, ast.ClassDef)), [])
        for stmt, after in zip(body, body[1:]):
            if (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
                    and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                    and isinstance(after.value.value, str)):
                docs[stmt.target.id] = " ".join(after.value.value.split())
    return docs


def _check_range(raw: Any, ptype: Parameter.Type, where: str) -> Range:
    if not (isinstance(raw, (tuple, list)) and len(raw) == 2):
        raise TypeError(f"{where}: metadata range must be (low, high), got {raw!r}")
    if ptype not in (_T.DOUBLE, _T.INTEGER):
        raise TypeError(f"{where}: a range needs an int or float field")
    for bound in raw:
        if bound is not None and (isinstance(bound, bool) or not isinstance(bound, (int, float))):
            raise TypeError(f"{where}: range bounds must be numbers or None, got {raw!r}")
        if ptype is _T.INTEGER and bound is not None and not float(bound).is_integer():
            raise TypeError(f"{where}: an integer field needs integer range bounds, got {raw!r}")
    low, high = raw
    if low is not None and high is not None and low > high:
        raise TypeError(f"{where}: range low > high: {raw!r}")
    return (low, high)


def param_fields(cls: type, prefix: str = "", values: Any = None, *,
                 structural: Collection[str] = ()) -> list[ParamField]:
    """One :class:`ParamField` per init field of dataclass ``cls``, named ``<prefix>.<field>``.

    ``values`` is the config the node built (its values are what gets declared), a mapping of
    field name -> value, or None for the class defaults. ``structural`` lists dotted names to
    declare read-only (names ending in ``.plugin`` always are). A field type that ROS 2 cannot
    carry is a TypeError: a programming error in the config, not bad input.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    hints = typing.get_type_hints(cls, include_extras=False)
    docs = attribute_docs(cls)
    head = f"{prefix}." if prefix else ""
    out: list[ParamField] = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        where = f"{cls.__name__}.{f.name}"
        if isinstance(values, Mapping) and f.name in values:
            value = values[f.name]
        elif values is not None and not isinstance(values, Mapping):
            value = getattr(values, f.name)
        elif f.default is not dataclasses.MISSING:
            value = f.default
        elif f.default_factory is not dataclasses.MISSING:
            value = f.default_factory()
        else:
            value = dataclasses.MISSING
        if value is dataclasses.MISSING:
            raise TypeError(f"{where}: no value given and no default")
        ptype = _ros_type(hints[f.name], where)
        raw_range = f.metadata.get("range")
        name = head + f.name
        out.append(ParamField(
            name=name, value=_as_type(plain_value(value), ptype), type=ptype, description=docs.get(f.name, ""),
            read_only=name.endswith(".plugin") or name in structural,
            range=None if raw_range is None else _check_range(raw_range, ptype, where),
            constraints=f"checked by {cls.__name__} on every change; a refused value leaves the parameter as it was"))
    return out


def plugin_fields(choice: PluginChoice, prefix: str | None = None, *,
                  structural: Collection[str] = ()) -> list[ParamField]:
    """The ``<prefix>.plugin`` choice (read-only: a new implementation needs a new node) and
    the chosen plugin's config fields under ``<prefix>`` (default: the slot name)."""
    prefix = choice.slot if prefix is None else prefix
    fields = [ParamField(f"{prefix}.plugin", choice.name, _T.STRING,
                         description=f"Implementation of the {choice.slot} slot, a plugin registry name; "
                                     "fixed for the node's life.", read_only=True)]
    if choice.config is not None:
        fields += param_fields(type(choice.config), prefix, choice.config, structural=structural)
    return fields


# ------------------------------------------------------------------ declaring


def _as_type(value: Any, ptype: Parameter.Type) -> Any:
    """``value`` converted where ROS 2 is stricter than navkit's readers (an int for a float:
    ``-p alpha:=1`` or ``alpha: 1`` in YAML); otherwise returned unchanged for the check."""
    if ptype is _T.DOUBLE and isinstance(value, int) and not isinstance(value, bool) and abs(value) <= 2**53:
        return float(value)
    if ptype is _T.DOUBLE_ARRAY and isinstance(value, list):
        return [float(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
    return value


def _type_ok(value: Any, ptype: Parameter.Type) -> bool:
    if isinstance(value, list) and not value:
        return ptype in _ARRAYS.values()
    try:
        return Parameter.Type.from_parameter_value(value) is ptype
    except TypeError:
        return False


def _range_problem(value: Any, rng: Range | None) -> str | None:
    if rng is None:
        return None
    low, high = rng
    if (low is not None and value < low) or (high is not None and value > high):
        return (f"out of range [{'-inf' if low is None else f'{low:g}'}, {'inf' if high is None else f'{high:g}'}], "
                f"got {brief(value)}")
    return None


def descriptor_for(f: ParamField) -> ParameterDescriptor:
    """The rcl_interfaces descriptor: static type, description, read-only, range (step 0: any value)."""
    d = ParameterDescriptor(name=f.name, type=f.type.value, description=f.description, read_only=f.read_only,
                            dynamic_typing=False, additional_constraints=f.constraints)
    if f.range is not None:
        low, high = f.range
        if f.type is _T.DOUBLE:
            d.floating_point_range = [FloatingPointRange(
                from_value=-math.inf if low is None else float(low), to_value=math.inf if high is None else float(high),
                step=0.0)]
        else:
            d.integer_range = [IntegerRange(
                from_value=-MAX_PARAM_INT - 1 if low is None else int(low),
                to_value=MAX_PARAM_INT if high is None else int(high), step=0)]
    return d


def declare_from_configs(node: Node, params: Mapping[str, Any], fields: list[ParamField], *,
                         strict: bool = True) -> None:
    """Declare ``fields`` on ``node``; a value the node was given in ``params`` wins over the field's.

    Everything is checked before anything is declared, and every failure is one
    :class:`ParameterError` line naming the parameter (never rclpy's traceback): a value of the
    wrong type, outside the field's range (rclpy would raise at declare time), or, with
    ``strict``, a key in ``params`` that no field declares (it would silently do nothing).
    A parameter that is already declared with the same type (a lifecycle node configured a
    second time) keeps its current value.
    """
    source = params_source(node)
    by_name = {f.name: f for f in fields}
    if strict:
        for key in params:
            if key not in by_name and not is_ros_owned(key):
                raise ParameterError(source, key, f"not a parameter of this node ({known_names(key, list(by_name))})")
    todo: list[tuple[ParamField, Any]] = []
    for f in fields:
        if node.has_parameter(f.name):
            declared = node.describe_parameter(f.name).type
            if declared != f.type.value:
                raise ParameterError(source, f.name, f"already declared as {_T(declared).name}, not {f.type.name}")
            continue
        value = _as_type(plain_value(params[f.name]), f.type) if f.name in params else f.value
        if value is not None and not _type_ok(value, f.type):
            raise ParameterError(source, f.name, f"expected {_TYPE_WORDS.get(f.type, f.type.name)}, got {brief(value)}")
        problem = _range_problem(value, f.range) if f.type in (_T.DOUBLE, _T.INTEGER) and value is not None else None
        if problem:
            raise ParameterError(source, f.name, problem)
        todo.append((f, value))
    for f, value in todo:
        try:
            _declare(node, f, value)
        except (InvalidParameterException, InvalidParameterValueException, InvalidParameterTypeException,
                ParameterAlreadyDeclaredException, TypeError, ValueError) as exc:
            raise ParameterError(source, f.name, one_line(exc)) from None


def _declare(node: Node, f: ParamField, value: Any) -> None:
    """One declaration. rclpy infers a static type from the value, and ``[]`` reads as a byte
    array; an empty list (and None, an unset Optional) is therefore declared by type first."""
    descriptor = descriptor_for(f)
    if value is not None and not (isinstance(value, list) and not value):
        node.declare_parameter(f.name, value, descriptor, ignore_override=True)
        return
    read_only = descriptor.read_only
    descriptor.read_only = False  # the empty value is set just below; read-only would refuse it
    node.declare_parameter(f.name, f.type, descriptor, ignore_override=True)
    if value is not None:
        result = node.set_parameters([Parameter(f.name, f.type, value)])[0]
        if not result.successful:
            raise ValueError(result.reason)
    descriptor.read_only = read_only  # rclpy keeps this very descriptor object


# ------------------------------------------------------------------ guarding changes


class ParameterGuard:
    """Accept a parameter change only if the node's config builder accepts the result; then apply it.

    ``rebuild(candidate)`` gets the guarded parameters as they would be after the change (a flat
    dict, like ``parameter_overrides``) and returns whatever the node needs (its configs); it may
    raise :class:`NavkitError`, ValueError or TypeError, which refuse the change with the error's
    one line as the reason ``ros2 param set`` prints. Once rclpy has stored the change,
    ``apply(result)`` runs (rclpy's post-set callback), so the applied config and the parameters
    never disagree. ``apply`` should only swap objects in: if it raises, the error is logged and
    the parameters already show the new values.

    Guarded are ``names`` (default: everything declared now except rclpy's own ``use_sim_time``,
    ``qos_overrides.*``): a change to anything else passes through untouched. Read-only and
    wrongly typed values are refused by rclpy before the guard sees them. With ``coerce_ints``,
    an integer set on a float parameter is turned into a float first (``ros2 param set ... alpha 2``
    sends an integer, which a statically typed double parameter would refuse).

    Threading: rclpy serialises nothing around parameters. Its parameter services run in the
    node's default (mutually exclusive) callback group, so a set never overlaps another set nor
    a subscription or timer callback of that group, and ``apply`` needs no lock as long as the
    node's callbacks stay in the default group. ``set_parameters`` called from another thread is
    not covered.
    """

    def __init__(self, node: Node, rebuild: Callable[[dict[str, Any]], Any], apply: Callable[[Any], None], *,
                 names: Collection[str] | None = None, coerce_ints: bool = True) -> None:
        self._node = node
        self._rebuild = rebuild
        self._apply = apply
        current = declared_values(node)
        self._names = set(current if names is None else names)
        self.values: dict[str, Any] = {n: current[n] for n in self._names if n in current}
        """The guarded parameters as last accepted (what ``rebuild`` saw last time it succeeded)."""
        self._pending: tuple[list[Parameter[Any]], dict[str, Any], Any] | None = None
        self._has_post_set = hasattr(node, "add_post_set_parameters_callback")
        self._coerce = coerce_ints and hasattr(node, "add_pre_set_parameters_callback")
        if self._coerce:
            node.add_pre_set_parameters_callback(self._coerce_ints)
        node.add_on_set_parameters_callback(self._validate)
        if self._has_post_set:
            node.add_post_set_parameters_callback(self._commit)

    def close(self) -> None:
        """Unregister (lifecycle cleanup/shutdown): later changes are no longer checked or applied."""
        if self._coerce:
            self._node.remove_pre_set_parameters_callback(self._coerce_ints)
        self._node.remove_on_set_parameters_callback(self._validate)
        if self._has_post_set:
            self._node.remove_post_set_parameters_callback(self._commit)
        self._pending = None

    def _coerce_ints(self, params: list[Parameter[Any]]) -> list[Parameter[Any]]:
        """Pre-set hook: an INTEGER for a guarded DOUBLE parameter becomes a DOUBLE.

        rclpy concatenates what every pre-set callback returns, each given the original list:
        a second pre-set callback on the same node would duplicate the parameters.
        """
        out = []
        for p in params:
            if (p.name in self._names and p.type_ is _T.INTEGER and self._node.has_parameter(p.name)
                    and self._node.describe_parameter(p.name).type == _T.DOUBLE.value):
                p = Parameter(p.name, _T.DOUBLE, float(p.value))
            out.append(p)
        return out

    def _validate(self, params: list[Parameter[Any]]) -> SetParametersResult:
        mine = [p for p in params if p.name in self._names]
        if not mine:
            return SetParametersResult(successful=True)
        candidate = dict(self.values)
        candidate.update({p.name: plain_value(p.value) for p in mine})
        try:
            result = self._rebuild(candidate)
        except (NavkitError, ValueError, TypeError) as exc:
            return SetParametersResult(successful=False, reason=one_line(exc))
        except Exception as exc:  # a bug in rebuild must refuse the change, not kill the node's executor
            self._node.get_logger().error(f"checking a parameter change failed: {type(exc).__name__}: {one_line(exc)}")
            return SetParametersResult(successful=False,
                                       reason=f"internal error while checking: {type(exc).__name__}: {one_line(exc)}")
        if self._has_post_set:
            self._pending = (params, candidate, result)
        else:
            self._store(candidate, result)
        return SetParametersResult(successful=True)

    def _commit(self, params: list[Parameter[Any]]) -> None:
        """Post-set hook: only the very list this guard accepted is applied (another on-set
        callback may have refused a change the guard had accepted; that one leaves no trace)."""
        pending, self._pending = self._pending, None
        if pending is not None and pending[0] is params:
            self._store(pending[1], pending[2])

    def _store(self, candidate: dict[str, Any], result: Any) -> None:
        self.values = candidate
        try:
            self._apply(result)
        except Exception as exc:
            self._node.get_logger().error(f"applying the new parameters failed: {type(exc).__name__}: {one_line(exc)}")
