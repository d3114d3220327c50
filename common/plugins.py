"""Implementations chosen by name: the plugin registry (Nav2's ``plugin:`` key, pluginlib's role).

Every slot of the stack (robot backend, global planner, local controller, safety filter,
image encoder, world model, ...) is filled by a *plugin*: a name, the dotted path of a
factory, and the dataclass that holds its parameters. A parameter file picks one per slot::

    controller:
      ros__parameters:
        local_controller:
          plugin: pure_pursuit     # the registry name
          lookahead_m: 0.6         # fields of that plugin's config dataclass

Factories are named as ``"package.module:attribute"`` strings and imported only when a
plugin is built, so this base module never imports the rooms above it and a node that
uses one controller never loads the others (nor torch, nor MuJoCo). The registry is a
plain object — :func:`navkit.stack.plugin_catalog.default_registry` fills one with the
built-in plugins and any installed ``navkit.plugins`` entry points — so tests and users
can build their own without touching global state.
"""
from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from navkit.common.errors import ParameterError
from navkit.common.params import config_from_params, known_names


@dataclass(frozen=True)
class Slot:
    """A place in the stack that a plugin fills, and the protocol its plugins implement."""

    name: str
    protocol: str
    """Dotted path of the :class:`typing.Protocol` (documentation and checks; not imported here)."""
    default: str | None = None
    """The plugin used when a parameter file names none."""


@dataclass(frozen=True)
class Plugin:
    """One implementation of a slot."""

    slot: str
    name: str
    factory: str | Callable[..., Any]
    """``"module:attribute"`` (imported lazily) or the callable itself; called as ``factory(config, **context)``."""
    config: str | type | None = None
    """The dataclass of its parameters (``"module:attribute"`` or the class); None = takes no parameters."""
    summary: str = ""


@dataclass(frozen=True)
class PluginChoice:
    """A slot's plugin as a parameter file chose it: the name and its validated config."""

    slot: str
    name: str
    config: Any = None


def resolve(target: str | Any) -> Any:
    """``"package.module:attribute"`` -> the object (other values are returned as they are)."""
    if not isinstance(target, str):
        return target
    module, _, attribute = target.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attribute.split("."):
        obj = getattr(obj, part)
    return obj


class PluginRegistry:
    """Slots and their plugins; builds a configured implementation from a parameter file's choice."""

    def __init__(self, slots: Iterable[Slot] = ()) -> None:
        self._slots: dict[str, Slot] = {}
        self._plugins: dict[str, dict[str, Plugin]] = {}
        for slot in slots:
            self.add_slot(slot)

    # -- registration ------------------------------------------------------

    def add_slot(self, slot: Slot) -> None:
        if slot.name in self._slots:
            raise ValueError(f"slot {slot.name!r} is already defined")
        self._slots[slot.name] = slot
        self._plugins[slot.name] = {}

    def register(self, plugin: Plugin, *, replace: bool = False) -> None:
        """Add ``plugin`` to its slot; a second plugin of the same name is an error unless ``replace``."""
        if plugin.slot not in self._slots:
            raise ValueError(f"unknown slot {plugin.slot!r} (slots: {', '.join(sorted(self._slots))})")
        if plugin.name in self._plugins[plugin.slot] and not replace:
            raise ValueError(f"plugin {plugin.name!r} is already registered for slot {plugin.slot!r}")
        self._plugins[plugin.slot][plugin.name] = plugin

    # -- queries -----------------------------------------------------------

    @property
    def slots(self) -> Mapping[str, Slot]:
        return dict(self._slots)

    def names(self, slot: str) -> list[str]:
        return sorted(self._plugins[slot])

    def plugin(self, slot: str, name: str, source: str = "<code>", field: str | None = None) -> Plugin:
        """The plugin ``name`` of ``slot``; an unknown name is a :class:`ParameterError` naming the known ones."""
        if slot not in self._slots:
            raise ValueError(f"unknown slot {slot!r}")
        found = self._plugins[slot].get(name)
        if found is None:
            known = self.names(slot)
            hint = known_names(name, known) if known else "none registered yet"
            raise ParameterError(source, field or f"{slot}.plugin", f"unknown {slot} plugin {name!r} ({hint})")
        return found

    def config_class(self, plugin: Plugin) -> type | None:
        return resolve(plugin.config) if plugin.config is not None else None

    # -- from parameters ---------------------------------------------------

    def choose(self, slot: str, params: Mapping[str, Any], source: str, prefix: str | None = None) -> PluginChoice:
        """Read ``<prefix>.plugin`` (default: the slot's default) and the plugin's config under ``<prefix>``.

        ``params`` are a node's flat parameters; ``prefix`` defaults to the slot name. Unknown
        plugin names and unknown or ill-typed parameters raise :class:`ParameterError` naming
        ``source`` and the dotted parameter.
        """
        prefix = slot if prefix is None else prefix
        key = f"{prefix}.plugin"
        name = params.get(key, self._slots[slot].default)
        if name is None:
            raise ParameterError(source, key, f"no {slot} plugin chosen ({known_names('', self.names(slot))})")
        if not isinstance(name, str):
            raise ParameterError(source, key, f"expected a plugin name, got {name!r}")
        plugin = self.plugin(slot, name, source, key)
        cls = self.config_class(plugin)
        own = {k: v for k, v in params.items() if k.startswith(f"{prefix}.") and k != key}
        if cls is None:
            if own:
                raise ParameterError(source, sorted(own)[0], f"plugin {name!r} takes no parameters")
            return PluginChoice(slot, name, None)
        return PluginChoice(slot, name, config_from_params(cls, own, source, prefix=prefix))

    def default_choice(self, slot: str) -> PluginChoice:
        """The slot's default plugin with its default config (what an empty parameter file means)."""
        return self.choose(slot, {}, "<defaults>")

    def build(self, choice: PluginChoice, **context: Any) -> Any:
        """Import the chosen plugin's factory and call it with its config and ``context``."""
        plugin = self.plugin(choice.slot, choice.name)
        return resolve(plugin.factory)(choice.config, **context)

    def describe(self) -> list[tuple[str, str, str]]:
        """(slot, plugin, summary) rows for ``navkit plugins``."""
        return [(slot, name, p.summary) for slot in sorted(self._plugins)
                for name, p in sorted(self._plugins[slot].items())]


def config_fields(cls: type) -> list[str]:
    """The parameter names of a plugin config dataclass (for help texts)."""
    return [f.name for f in dataclasses.fields(cls) if f.init]
