"""Fuzzing every hand-edited file reader (issue 6): scenario, swarm scenario, parameter, launch and
training files, mutated from the shipped ones. Each either loads or raises a NavkitError that
names the file; never another exception, never more than a bounded time or memory.
"""
from __future__ import annotations

import copy
import resource
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from navkit.common.errors import NavkitError

REPO = Path(__file__).resolve().parents[1]

NASTY: list[Any] = [None, True, -1, 0, 1, 2**63, 10**400, -1e308, 1e308, float("nan"), float("inf"), 1e-320, 5e7,
                    "", "x", "x" * 5000, "$(eval '9**9**9')", "$(var nope)", [], {}, [[]], [1, 2, 3], {"a": 1},
                    [0.0, 0.0], [0, 0, 1e9, 1e9], -0.5, 0.001]


def _load_scenario(path: Path) -> None:
    from navkit.sim.scenario import load_scenario

    load_scenario(path)


def _load_swarm(path: Path) -> None:
    from navkit.sim.swarm_scenario import load_swarm_scenario

    load_swarm_scenario(path).expand(seed=1)


def _load_params(path: Path) -> None:
    from navkit.stack.config import load_stack_config

    load_stack_config(path)


def _load_launch(path: Path) -> None:
    from navkit.ros_ws.launcher import parse_launch_file

    parse_launch_file(path, {})


def _load_training(path: Path) -> None:
    from navkit.learning.online_cbf_training import load_config

    load_config(path)


READERS: dict[str, tuple[Path, Callable[[Path], None]]] = {
    "scenario": (REPO / "scenarios" / "warehouse_demo.yaml", _load_scenario),
    "swarm scenario": (REPO / "scenarios" / "multi" / "cluttered.yaml", _load_swarm),
    "parameter file": (REPO / "ros_ws" / "config" / "navkit.params.yaml", _load_params),
    "launch file": (REPO / "ros_ws" / "launch" / "multi_robot.launch.yaml", _load_launch),
    "training config": (REPO / "learning" / "configs" / "online_cbf.yaml", _load_training),
}


def _mutate(doc: Any, data: st.DataObject) -> Any:
    """One random edit somewhere in the document: replace, delete, add, or repeat."""
    doc = copy.deepcopy(doc)
    node, path = doc, []
    while isinstance(node, (dict, list)) and node and data.draw(st.booleans(), label="descend"):
        key = data.draw(st.sampled_from(sorted(node, key=str)) if isinstance(node, dict)
                        else st.integers(0, len(node) - 1), label="key")
        path.append((node, key))
        node = node[key]
    if not path:
        return data.draw(st.sampled_from(NASTY), label="whole document")
    parent, key = path[-1]
    action = data.draw(st.sampled_from(["replace", "delete", "add", "repeat"]), label="action")
    if action == "replace":
        parent[key] = data.draw(st.sampled_from(NASTY), label="value")
    elif action == "delete":
        del parent[key]
    elif action == "add":
        if isinstance(parent, dict):
            parent[data.draw(st.sampled_from(["extra", "name", "seed", "x.y", 7]), label="new key")] = \
                data.draw(st.sampled_from(NASTY), label="new value")
        else:
            parent.insert(key, data.draw(st.sampled_from(NASTY), label="new item"))
    elif isinstance(parent[key], list) and parent[key]:
        parent[key] = parent[key] * data.draw(st.sampled_from([2, 50, 3000]), label="repeat")
    return doc


def _text_edit(text: str, data: st.DataObject) -> str:
    """A raw-text edit YAML structure cannot express: duplicate keys, aliases, junk, truncation."""
    kind = data.draw(st.sampled_from(["none", "duplicate", "truncate", "junk", "bomb"]), label="text edit")
    lines = text.splitlines()
    if kind == "duplicate" and lines:
        i = data.draw(st.integers(0, len(lines) - 1), label="line")
        lines.insert(i + 1, lines[i])
    elif kind == "truncate":
        return text[: data.draw(st.integers(0, len(text)), label="cut")]
    elif kind == "junk":
        return text + data.draw(st.text(max_size=40), label="junk")
    elif kind == "bomb":
        bomb = ["z0: &z0 [a, a, a, a, a, a, a, a, a, a]"]
        bomb += [f"z{i}: &z{i} [" + ", ".join([f"*z{i - 1}"] * 10) + "]" for i in range(1, 8)]
        return "\n".join(bomb) + "\n" + text
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def rss_before() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


@pytest.mark.parametrize("reader", sorted(READERS))
@settings(max_examples=120, deadline=3000, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow], derandomize=True)
@given(data=st.data())
def test_readers_load_or_name_the_problem(reader: str, data: st.DataObject, tmp_path: Path, rss_before: int) -> None:
    source, load = READERS[reader]
    doc = yaml.safe_load(source.read_text())
    text = _text_edit(yaml.safe_dump(_mutate(doc, data), sort_keys=False, width=10_000), data)
    path = tmp_path / f"fuzz{source.suffix}"
    path.write_text(text)
    try:
        load(path)
    except NavkitError as exc:
        message = str(exc)
        assert str(path) in message, message  # names the file
        assert len(message) - len(str(path)) < 300, message  # one readable line
    # Anything else propagates and fails the example; hypothesis shrinks it to a small case.
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < 1_000_000  # kB
