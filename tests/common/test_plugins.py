"""The plugin registry: choices from parameters, unknown names, config validation, lazy factories."""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from navkit.common.errors import ParameterError
from navkit.common.plugins import Plugin, PluginRegistry, Slot, resolve
from navkit.stack.plugin_catalog import SLOTS, default_registry


@dataclass(frozen=True)
class _Cfg:
    gain: float = 1.0

    def __post_init__(self) -> None:
        if self.gain <= 0:
            raise ValueError(f"gain: must be > 0, got {self.gain}")


def _registry() -> PluginRegistry:
    reg = PluginRegistry([Slot("thing", "x:Thing", default="a")])
    reg.register(Plugin("thing", "a", lambda config, **ctx: ("a", config, ctx), _Cfg))
    reg.register(Plugin("thing", "bare", lambda config: ("bare", config)))
    return reg


def test_choose_reads_plugin_and_its_config_under_the_slot_prefix() -> None:
    reg = _registry()
    choice = reg.choose("thing", {"thing.plugin": "a", "thing.gain": 2.5, "other.gain": 9.0}, "f.yaml")
    assert (choice.name, choice.config.gain) == ("a", 2.5)
    assert reg.build(choice, extra=1) == ("a", _Cfg(2.5), {"extra": 1})
    assert reg.choose("thing", {}, "f.yaml").name == "a"  # the slot default


@pytest.mark.parametrize(("params", "field", "problem"), [
    ({"thing.plugin": "ab"}, "thing.plugin", "did you mean a"),
    ({"thing.plugin": "zzz"}, "thing.plugin", "known: a, bare"),
    ({"thing.plugin": 3}, "thing.plugin", "expected a plugin name"),
    ({"thing.plugin": "a", "thing.gian": 1.0}, "thing.gian", "did you mean gain"),
    ({"thing.plugin": "a", "thing.gain": -1.0}, "thing", "gain: must be > 0"),
    ({"thing.plugin": "bare", "thing.gain": 1.0}, "thing.gain", "takes no parameters"),
])
def test_bad_choices_name_file_and_parameter(params: dict[str, object], field: str, problem: str) -> None:
    with pytest.raises(ParameterError) as err:
        _registry().choose("thing", params, "f.yaml")
    assert err.value.source == "f.yaml" and err.value.field == field and problem in err.value.problem


def test_registration_mistakes_are_programming_errors() -> None:
    reg = _registry()
    with pytest.raises(ValueError, match="already registered"):
        reg.register(Plugin("thing", "a", print))
    with pytest.raises(ValueError, match="unknown slot"):
        reg.register(Plugin("nope", "a", print))
    reg.register(Plugin("thing", "a", print), replace=True)


def test_default_registry_has_every_slot_and_resolves_every_builtin_lazily() -> None:
    reg = default_registry()
    assert set(reg.slots) == {s.name for s in SLOTS}
    for slot, name, _ in reg.describe():
        plugin = reg.plugin(slot, name)
        assert callable(resolve(plugin.factory))
        if plugin.config is not None:
            cls = reg.config_class(plugin)
            cls()  # every built-in config has working defaults
        protocol = resolve(reg.slots[slot].protocol)
        assert protocol.__name__ == reg.slots[slot].protocol.split(":")[1]
    assert reg.names("image_encoder") == ["dinov2"] and reg.names("world_model") == []
