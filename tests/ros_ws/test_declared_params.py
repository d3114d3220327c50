"""Declared, described and guarded parameters (navkit.ros_ws.navkit_nodes.declared_params).

Nodes here do not talk to each other (one test, marked ``ros``, goes through the parameter
services); each test still gets its own rclpy context on its own domain, loopback only.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

rclpy = pytest.importorskip("rclpy")

from rcl_interfaces.msg import ParameterType  # noqa: E402
from rclpy.lifecycle import LifecycleNode  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.signals import SignalHandlerOptions  # noqa: E402

from navkit.common.errors import ParameterError  # noqa: E402
from navkit.common.params import config_from_params  # noqa: E402
from navkit.ros_ws.navkit_nodes.declared_params import (  # noqa: E402
    ParameterGuard, ParamField, attribute_docs, declare_from_configs, declared_values, param_fields,
    parameter_overrides, plugin_fields)
from navkit.stack.config import SafetyFilterNodeConfig, safety_filter_from_params  # noqa: E402
from navkit.stack.plugin_catalog import default_registry  # noqa: E402
from ros_helpers import domain_id  # noqa: E402


@dataclass(frozen=True)
class GainConfig:
    """A small config like the real ones: a docstring per field, one range, a refusing __post_init__."""

    alpha: float = field(default=1.0, metadata={"range": (0.0, 10.0)})
    """Class-K gain; must be > 0 (the range above is inclusive, so 0 is the config's to refuse)."""
    sectors: int = field(default=24, metadata={"range": (1, 360)})
    """Angular sectors."""
    frame: str = "base_scan"
    """The frame scans must be in."""
    enabled: bool = True
    weights: tuple[float, ...] = (1.0, 0.5)
    """Per-axis weights."""
    names: list[str] = field(default_factory=list)
    """Empty by default (rclpy would read [] as a byte array)."""

    def __post_init__(self) -> None:
        if not self.alpha > 0.0:
            raise ValueError(f"alpha: must be > 0, got {self.alpha}")


SOURCE = "test node"


def rebuild_gain(params: dict[str, Any]) -> GainConfig:
    return config_from_params(GainConfig, params, SOURCE, prefix="gain")


@pytest.fixture()
def make_node(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Node]]:
    """``make_node(name, args=None, cls=Node, **kwargs)``: a node in a fresh context (its own domain)."""
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    made: list[tuple[Node, Any]] = []

    def make(name: str, args: list[str] | None = None, cls: type[Node] = Node, **kwargs: Any) -> Node:
        context = rclpy.Context()
        rclpy.init(args=args, context=context, domain_id=domain_id(), signal_handler_options=SignalHandlerOptions.NO)
        node = cls(name, context=context, **kwargs)
        made.append((node, context))
        return node

    yield make
    for node, context in made:
        node.destroy_node()
        rclpy.try_shutdown(context=context)


def gain_node(make_node: Callable[..., Node], overrides: list[Parameter[Any]] | None = None,
              cls: type[Node] = Node) -> tuple[Node, ParameterGuard, list[GainConfig]]:
    """A node whose ``gain.*`` parameters are declared from GainConfig and guarded; applied configs are recorded."""
    node = make_node("gain_node", cls=cls, parameter_overrides=overrides or [])
    given = parameter_overrides(node)
    cfg = rebuild_gain(given)
    declare_from_configs(node, given, param_fields(GainConfig, "gain", cfg))
    applied: list[GainConfig] = []
    return node, ParameterGuard(node, rebuild_gain, applied.append), applied


# ------------------------------------------------------------------ fields


def test_fields_carry_type_description_range_and_read_only() -> None:
    fields = {f.name: f for f in param_fields(GainConfig, "gain", structural={"gain.frame"})}
    assert fields["gain.alpha"] == ParamField(
        "gain.alpha", 1.0, Parameter.Type.DOUBLE,
        "Class-K gain; must be > 0 (the range above is inclusive, so 0 is the config's to refuse).",
        False, (0.0, 10.0), fields["gain.alpha"].constraints)
    assert fields["gain.sectors"].type is Parameter.Type.INTEGER and fields["gain.sectors"].range == (1, 360)
    assert fields["gain.frame"].read_only and fields["gain.frame"].type is Parameter.Type.STRING
    assert fields["gain.enabled"].description == "" and fields["gain.enabled"].type is Parameter.Type.BOOL
    assert fields["gain.weights"].type is Parameter.Type.DOUBLE_ARRAY and fields["gain.weights"].value == [1.0, 0.5]
    assert fields["gain.names"].type is Parameter.Type.STRING_ARRAY and fields["gain.names"].value == []
    assert attribute_docs(GainConfig)["frame"] == "The frame scans must be in."


def test_unsupported_field_type_is_a_type_error() -> None:
    @dataclass
    class Bad:
        table: dict[str, float] = field(default_factory=dict)

    with pytest.raises(TypeError, match="Bad.table"):
        param_fields(Bad)


# ------------------------------------------------------------------ overrides and declaring


def test_overrides_from_command_line_arrive_without_auto_declaration(make_node: Callable[..., Node]) -> None:
    node = make_node("cli_node", args=["--ros-args", "-p", "x:=1.0", "-p", "gain.sectors:=12"])
    assert parameter_overrides(node) == {"x": 1.0, "gain.sectors": 12}
    assert not node.has_parameter("x")  # known, not declared


def test_overrides_reach_a_lifecycle_node(make_node: Callable[..., Node]) -> None:
    node = make_node("lc_node", cls=LifecycleNode, parameter_overrides=[Parameter("gain.weights", value=[2.0, 3.0])])
    assert parameter_overrides(node) == {"gain.weights": [2.0, 3.0]}


def test_declared_parameters_are_described(make_node: Callable[..., Node]) -> None:
    node, _, _ = gain_node(make_node, [Parameter("gain.alpha", value=2)], cls=LifecycleNode)
    d = node.describe_parameter("gain.alpha")
    assert d.type == ParameterType.PARAMETER_DOUBLE and not d.dynamic_typing and not d.read_only
    assert d.description.startswith("Class-K gain")
    assert (d.floating_point_range[0].from_value, d.floating_point_range[0].to_value) == (0.0, 10.0)
    assert d.floating_point_range[0].step == 0.0
    assert node.get_parameter("gain.alpha").value == 2.0  # the int override became a float
    i = node.describe_parameter("gain.sectors")
    assert i.type == ParameterType.PARAMETER_INTEGER and (i.integer_range[0].from_value, i.integer_range[0].to_value) == (1, 360)
    assert node.describe_parameter("gain.names").type == ParameterType.PARAMETER_STRING_ARRAY
    assert node.get_parameter("gain.names").value == []
    assert set(declared_values(node)) == {f"gain.{n}" for n in ("alpha", "sectors", "frame", "enabled", "weights", "names")}


def test_override_outside_the_range_is_one_line_parameter_error(make_node: Callable[..., Node]) -> None:
    node = make_node("range_node", parameter_overrides=[Parameter("gain.alpha", value=50.0)])
    given = parameter_overrides(node)
    cfg = rebuild_gain(given)  # the config itself allows 50; the declared range does not
    with pytest.raises(ParameterError) as err:
        declare_from_configs(node, given, param_fields(GainConfig, "gain", cfg))
    assert "gain.alpha" in str(err.value) and "out of range [0, 10]" in str(err.value) and "\n" not in str(err.value)
    assert not node.has_parameter("gain.sectors")  # checked first, nothing declared


def test_override_of_the_wrong_type_is_one_line_parameter_error(make_node: Callable[..., Node]) -> None:
    node = make_node("type_node", parameter_overrides=[Parameter("gain.frame", value=3)])
    with pytest.raises(ParameterError, match=r"gain\.frame: expected a string, got 3"):
        declare_from_configs(node, parameter_overrides(node), param_fields(GainConfig, "gain"))


def test_unknown_override_key_is_one_line_error(make_node: Callable[..., Node]) -> None:
    node = make_node("typo_node", parameter_overrides=[Parameter("gain.alpah", value=2.0)])
    with pytest.raises(ParameterError) as err:  # through the rebuild function the node passes
        rebuild_gain(parameter_overrides(node))
    assert "gain.alpah" in str(err.value) and "did you mean alpha" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ParameterError, match=r"gain\.alpah: not a parameter of this node \(did you mean gain\.alpha"):
        declare_from_configs(node, parameter_overrides(node), param_fields(GainConfig, "gain"))


def test_second_declaration_keeps_the_current_value(make_node: Callable[..., Node]) -> None:
    node, _, _ = gain_node(make_node)
    node.set_parameters([Parameter("gain.alpha", value=4.0)])
    declare_from_configs(node, {}, param_fields(GainConfig, "gain"))  # a lifecycle re-configure
    assert node.get_parameter("gain.alpha").value == 4.0


# ------------------------------------------------------------------ guarding changes


def test_invalid_set_is_refused_with_the_reason_and_changes_nothing(make_node: Callable[..., Node]) -> None:
    node, guard, applied = gain_node(make_node)
    result = node.set_parameters([Parameter("gain.alpha", value=-5.0)])[0]
    assert not result.successful
    assert "out of range" in result.reason  # rclpy's own range check comes first
    result = node.set_parameters([Parameter("gain.alpha", value=0.0)])[0]  # inside the inclusive range...
    assert not result.successful and "alpha: must be > 0, got 0.0" in result.reason  # ...the config says no
    assert "\n" not in result.reason
    assert node.get_parameter("gain.alpha").value == 1.0 and applied == [] and guard.values["gain.alpha"] == 1.0


def test_valid_set_is_applied_exactly_once(make_node: Callable[..., Node]) -> None:
    node, guard, applied = gain_node(make_node)
    assert node.set_parameters([Parameter("gain.alpha", value=2.5)])[0].successful
    assert applied == [GainConfig(alpha=2.5)] and guard.values["gain.alpha"] == 2.5
    both = node.set_parameters_atomically([Parameter("gain.sectors", value=8), Parameter("gain.frame", value="laser")])
    assert both.successful and len(applied) == 2 and applied[-1] == GainConfig(alpha=2.5, sectors=8, frame="laser")


def test_integer_for_a_float_parameter_is_accepted(make_node: Callable[..., Node]) -> None:
    node, _, applied = gain_node(make_node)  # what `ros2 param set /n gain.alpha 2` sends
    assert node.set_parameters([Parameter("gain.alpha", value=2)])[0].successful
    assert node.get_parameter("gain.alpha").value == 2.0 and applied[-1].alpha == 2.0


def test_wrong_type_is_refused_by_rclpy(make_node: Callable[..., Node]) -> None:
    node, _, applied = gain_node(make_node)
    result = node.set_parameters([Parameter("gain.frame", value=1.5)])[0]
    assert not result.successful and "Wrong parameter type" in result.reason and applied == []


def test_read_only_plugin_is_refused(make_node: Callable[..., Node]) -> None:
    node = make_node("plugin_node")
    registry = default_registry()
    _, choice = safety_filter_from_params({}, SOURCE, registry)
    declare_from_configs(node, {}, plugin_fields(choice))
    applied: list[Any] = []
    ParameterGuard(node, lambda p: safety_filter_from_params(p, SOURCE, registry), applied.append)
    assert node.describe_parameter("safety_filter.plugin").read_only
    result = node.set_parameters([Parameter("safety_filter.plugin", value="other")])[0]
    assert not result.successful and "read-only" in result.reason
    assert node.get_parameter("safety_filter.plugin").value == "cbf_lidar" and applied == []


def test_use_sim_time_passes_through_untouched(make_node: Callable[..., Node]) -> None:
    calls: list[dict[str, Any]] = []
    node, _, applied = gain_node(make_node)
    ParameterGuard(node, lambda p: calls.append(p), lambda _: None)  # guards gain.* too: must not see use_sim_time
    calls.clear()
    assert node.set_parameters([Parameter("use_sim_time", value=True)])[0].successful
    assert node.get_parameter("use_sim_time").value is True and calls == [] and applied == []


def test_rebuild_bug_refuses_the_change(make_node: Callable[..., Node]) -> None:
    node, _, _ = gain_node(make_node)

    def broken(params: dict[str, Any]) -> None:
        raise KeyError("oops")

    ParameterGuard(node, broken, lambda _: None)
    result = node.set_parameters([Parameter("gain.alpha", value=2.0)])[0]
    assert not result.successful and "internal error" in result.reason and "KeyError" in result.reason


def test_closed_guard_no_longer_checks(make_node: Callable[..., Node]) -> None:
    node, guard, applied = gain_node(make_node)
    guard.close()
    assert node.set_parameters([Parameter("gain.alpha", value=0.0)])[0].successful and applied == []


# ------------------------------------------------------------------ the real safety filter


def _refused_as_negative(reason: str) -> bool:
    """CbfFilterConfig's own words, or rclpy's once the config gives alpha a metadata range."""
    return "must be > 0" in reason or "out of range" in reason


def _safety_filter_node(make_node: Callable[..., Node], overrides: list[Parameter[Any]]
                        ) -> tuple[Node, list[Any]]:
    node = make_node("safety_filter", cls=LifecycleNode, parameter_overrides=overrides)
    registry = default_registry()
    source = f"parameters of node {node.get_fully_qualified_name()}"
    rebuild = lambda p: safety_filter_from_params(p, source, registry)
    given = parameter_overrides(node)
    node_cfg, choice = rebuild(given)
    declare_from_configs(node, given, param_fields(SafetyFilterNodeConfig, "", node_cfg) + plugin_fields(choice))
    applied: list[Any] = []
    ParameterGuard(node, rebuild, applied.append)
    return node, applied


def test_safety_filter_parameters_declare_and_refuse_a_negative_alpha(make_node: Callable[..., Node]) -> None:
    node, applied = _safety_filter_node(make_node, [Parameter("use_sim_time", value=True),
                                                    Parameter("filter_on_scan", value=False),
                                                    Parameter("safety_filter.plugin", value="cbf_lidar"),
                                                    Parameter("safety_filter.alpha", value=1.5)])
    assert node.get_parameter("safety_filter.alpha").value == 1.5 and node.get_parameter("filter_on_scan").value is False
    assert "Class-K gain" in node.describe_parameter("safety_filter.alpha").description
    assert node.describe_parameter("safety_filter.max_constraints").type == ParameterType.PARAMETER_INTEGER
    assert node.describe_parameter("safety_filter.plugin").read_only
    result = node.set_parameters([Parameter("safety_filter.alpha", value=-5.0)])[0]
    assert not result.successful and "alpha" in result.reason and _refused_as_negative(result.reason)
    assert node.get_parameter("safety_filter.alpha").value == 1.5 and applied == []
    assert node.set_parameters([Parameter("safety_filter.alpha", value=0.7)])[0].successful
    (node_cfg, choice), = applied
    assert choice.name == "cbf_lidar" and choice.config.alpha == 0.7 and node_cfg.filter_on_scan is False


def test_safety_filter_typo_is_one_line(make_node: Callable[..., Node]) -> None:
    node = make_node("safety_filter", parameter_overrides=[Parameter("safety_filter.alpah", value=1.5)])
    with pytest.raises(ParameterError) as err:
        safety_filter_from_params(parameter_overrides(node), "params", default_registry())
    assert "safety_filter.alpah" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.ros
def test_refusal_reaches_a_parameter_client(make_node: Callable[..., Node]) -> None:
    """What ``ros2 param set /safety_filter safety_filter.alpha -5.0`` sees, over the parameter services."""
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter_client import AsyncParameterClient

    node, applied = _safety_filter_node(make_node, [])
    client_node = Node("param_client", context=node.context)
    executor = SingleThreadedExecutor(context=node.context)
    executor.add_node(node)
    executor.add_node(client_node)
    try:
        client = AsyncParameterClient(client_node, "/safety_filter")
        deadline = time.monotonic() + 10.0
        while not client.services_are_ready() and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        assert client.services_are_ready()

        def set_remote(value: Any) -> Any:
            future = client.set_parameters([Parameter("safety_filter.alpha", value=value)])
            executor.spin_until_future_complete(future, timeout_sec=10.0)
            response = future.result()
            assert response is not None
            return response.results[0]

        refused = set_remote(-5.0)
        assert not refused.successful and "alpha" in refused.reason and _refused_as_negative(refused.reason)
        assert applied == []
        accepted = set_remote(2)  # an integer, as `ros2 param set ... 2` sends it
        assert accepted.successful and len(applied) == 1 and math.isclose(applied[0][1].config.alpha, 2.0)
        assert node.get_parameter("safety_filter.alpha").value == 2.0
    finally:
        executor.remove_node(client_node)
        executor.remove_node(node)
        client_node.destroy_node()
        executor.shutdown()


class _LifecycleFilter(LifecycleNode):
    """The wiring the lead's lifecycle nodes follow (declared_params + diagnostics), in miniature."""

    def __init__(self, name: str, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self.applied: list[Any] = []
        self.guard: ParameterGuard | None = None

    def on_configure(self, state: Any) -> Any:
        from rclpy.lifecycle import TransitionCallbackReturn

        from navkit.common.errors import NavkitError
        from navkit.ros_ws.navkit_nodes.declared_params import params_source
        from navkit.ros_ws.navkit_nodes.diagnostics import NodeDiagnostics, TopicWatch

        registry, source = default_registry(), params_source(self)
        rebuild = lambda p: safety_filter_from_params(p, source, registry)
        given = parameter_overrides(self) | declared_values(self)  # current values win on a re-configure
        try:
            self.node_cfg, choice = rebuild(given)
            declare_from_configs(self, given, param_fields(SafetyFilterNodeConfig, "", self.node_cfg) + plugin_fields(choice))
        except NavkitError as exc:
            self.get_logger().error(str(exc))
            return TransitionCallbackReturn.FAILURE
        self.guard = ParameterGuard(self, rebuild, self.applied.append)
        self.scan_watch = TopicWatch("/scan", node=self)
        self.diag = NodeDiagnostics(self)
        self.diag.add_check("scan", lambda: self.scan_watch.status(0.5))
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: Any) -> Any:
        self.scan_watch.reset()
        self.diag.start()
        return super().on_activate(state)

    def on_deactivate(self, state: Any) -> Any:
        self.diag.stop()
        return super().on_deactivate(state)

    def on_cleanup(self, state: Any) -> Any:
        from rclpy.lifecycle import TransitionCallbackReturn

        assert self.guard is not None
        self.guard.close()
        self.diag.destroy()
        return TransitionCallbackReturn.SUCCESS


def test_lifecycle_wiring(make_node: Callable[..., Node]) -> None:
    from rclpy.lifecycle import TransitionCallbackReturn

    node = make_node("safety_filter", cls=_LifecycleFilter, parameter_overrides=[Parameter("safety_filter.alpha", value=2.0)])
    assert isinstance(node, _LifecycleFilter)
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS and node.diag.active
    assert node.diag.collect().status[0].message == "no message on /scan yet: no publisher on /scan"
    assert node.set_parameters([Parameter("safety_filter.alpha", value=3.0)])[0].successful and len(node.applied) == 1
    assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS and not node.diag.active
    assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS  # parameters stay declared, values kept
    assert node.node_cfg == SafetyFilterNodeConfig() and node.get_parameter("safety_filter.alpha").value == 3.0
    assert not node.set_parameters([Parameter("safety_filter.alpha", value=-5.0)])[0].successful
    assert len(node.applied) == 1  # the closed guard of the first configure applies nothing any more


def test_lifecycle_configure_fails_on_a_typo(make_node: Callable[..., Node]) -> None:
    from rclpy.lifecycle import TransitionCallbackReturn

    node = make_node("safety_filter", cls=_LifecycleFilter, parameter_overrides=[Parameter("safety_filter.alpah", value=2.0)])
    assert isinstance(node, _LifecycleFilter)
    assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
    assert not node.has_parameter("safety_filter.alpha")
