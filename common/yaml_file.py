"""Reading a user's YAML file so that every failure names the file and the line.

Parameter files, scenarios, launch files and training configs are all hand-edited; each
loader raises its own :class:`~navkit.common.errors.FieldError` subclass, but the
failure modes of reading YAML are the same everywhere, so they live here:

* missing file, a directory, a file too big to be a configuration (``MAX_YAML_BYTES``);
* not UTF-8 (UTF-16/32 files are named as such: ROS 2 tools read UTF-8 only);
* malformed YAML (line and column);
* **duplicate keys** — PyYAML keeps the last silently, which can turn ``cbf.alpha: 1.0``
  into ``50.0`` three screens further down; here it is an error naming both lines;
* **alias bombs** ("billion laughs") — a few hundred bytes of ``&a [*b, *b, ...]``
  expand to gigabytes. The node graph is composed first (aliases are shared nodes, so
  that is cheap) and its *expanded* size and depth are measured before any Python
  object is built; beyond ``MAX_YAML_NODES`` or ``MAX_YAML_DEPTH`` it is refused.
"""
from __future__ import annotations

import codecs
import re
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from navkit.common.errors import FieldError, brief

MAX_YAML_BYTES = 4 * 1024 * 1024
"""Largest YAML file navkit reads: configurations are kilobytes; a bigger file is a mistake."""
MAX_YAML_NODES = 200_000
"""Largest number of scalars + collections a document may expand to (aliases counted as expanded)."""
MAX_YAML_DEPTH = 64
"""Deepest nesting of collections accepted; real files nest a handful of levels."""

_UTF16_32_BOMS = ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
                  (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16"))


class YamlProblem(Exception):
    """Raised inside the loader; converted to the caller's :class:`FieldError` with file and line."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(problem)
        self.where = where
        self.problem = problem


def _at(mark: Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "<yaml>"


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (merge keys ``<<`` may still be overridden)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # unhashable key: SafeLoader reports it below
                continue
            if first is not None:
                raise YamlProblem(_at(key_node.start_mark),
                                  f"duplicate key {brief(key)} (first at {_at(first)}): every key may appear once")
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def _check_expansion(root: yaml.Node) -> None:
    """Expanded size and depth of the composed graph, without building it (aliases are shared nodes)."""
    size: dict[int, int] = {}
    # Iterative post-order walk; a node reached twice (an alias) is counted from the memo.
    stack: list[tuple[yaml.Node, int, bool]] = [(root, 1, False)]
    while stack:
        node, depth, expanded = stack.pop()
        if depth > MAX_YAML_DEPTH:
            raise YamlProblem(_at(node.start_mark), f"nested deeper than {MAX_YAML_DEPTH} levels")
        if id(node) in size and not expanded:
            continue
        if isinstance(node, yaml.ScalarNode):
            size[id(node)] = 1
            continue
        children = ([c for pair in node.value for c in pair] if isinstance(node, yaml.MappingNode)
                    else list(node.value))
        if not expanded:
            stack.append((node, depth, True))
            stack.extend((c, depth + 1, False) for c in children if id(c) not in size)
            continue
        total = 1 + sum(size.get(id(c), 1) for c in children)
        if total > MAX_YAML_NODES:
            raise YamlProblem(_at(node.start_mark), f"expands to more than {MAX_YAML_NODES:,} values "
                                                    "(aliases repeated inside aliases?)")
        size[id(node)] = total


_QUOTED_OR_COMMENT = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\']|\'\')*\'|(?:^|\s)#[^\n]*')


def _check_flow_depth(text: str) -> None:
    """Refuse ``[``/``{`` nesting deeper than ``MAX_YAML_DEPTH`` (outside quotes and comments) from the raw text.

    PyYAML's scanner is quadratic in flow nesting (10,000 ``[`` take seconds before its
    recursion fails), so this is counted cheaply before parsing.
    """
    if "[" not in text and "{" not in text:
        return
    blanked = _QUOTED_OR_COMMENT.sub(lambda m: re.sub(r"[^\n]", " ", m.group()), text)
    codes = np.frombuffer(blanked.encode("utf-32-le"), dtype=np.uint32)
    delta = np.isin(codes, (ord("["), ord("{"))).astype(np.int32) - np.isin(codes, (ord("]"), ord("}")))
    too_deep = np.flatnonzero(np.cumsum(delta) > MAX_YAML_DEPTH)
    if too_deep.size:
        at = int(too_deep[0])
        line = text.count("\n", 0, at) + 1
        column = at - (text.rfind("\n", 0, at) + 1) + 1
        raise YamlProblem(f"line {line}, column {column}", f"nested deeper than {MAX_YAML_DEPTH} levels")


def parse_yaml_text(text: str) -> Any:
    """Parse one YAML document strictly (duplicate keys, alias bombs, depth); raises :class:`YamlProblem`."""
    _check_flow_depth(text)
    loader = None
    try:
        loader = _StrictLoader(text)  # its reader already rejects unprintable characters
        try:
            root = loader.get_single_node()
        except RecursionError:
            raise YamlProblem("<yaml>", "nested too deeply to parse") from None
        if root is None:
            return None
        _check_expansion(root)
        return loader.construct_document(root)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or getattr(exc, "reason", None) or exc
        if mark is None and isinstance(exc, yaml.reader.ReaderError):
            return _raise_reader_error(text, exc)
        raise YamlProblem(_at(mark), f"malformed YAML ({brief(str(problem), 120)})") from None
    except (ValueError, OverflowError) as exc:  # a scalar its constructor rejects: 5000-digit int, bad date
        raise YamlProblem("<yaml>", f"unreadable value ({brief(str(exc), 120)})") from None
    finally:
        if loader is not None:
            loader.dispose()


def _raise_reader_error(text: str, exc: yaml.reader.ReaderError) -> Any:
    """A character YAML does not allow (control characters): name its line and column."""
    at = exc.position
    line = text.count("\n", 0, at) + 1
    column = at - (text.rfind("\n", 0, at) + 1) + 1
    raise YamlProblem(f"line {line}, column {column}", f"character U+{exc.character:04X} is not allowed in YAML")


def read_text_file(path: str | Path, error: type[FieldError], what: str, source: str | None = None,
                   max_bytes: int = MAX_YAML_BYTES) -> str:
    """The UTF-8 text of ``path``; missing, oversized, unreadable or non-UTF-8 files raise ``error``."""
    path = Path(path)
    src = str(path) if source is None else source
    if path.is_dir():
        raise error(src, "<file>", f"is a directory, not a {what}")
    if not path.is_file():
        raise error(src, "<file>", f"{what} not found")
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise error(src, "<file>", f"{size / 1e6:.1f} MB is too big for a {what} (limit {max_bytes / 1e6:.0f} MB)")
        raw = path.read_bytes()
    except OSError as exc:
        raise error(src, "<file>", f"cannot read the {what} ({exc.strerror or exc})") from None
    for bom, name in _UTF16_32_BOMS:
        if raw.startswith(bom):
            raise error(src, "<file>", f"is {name} encoded; save it as UTF-8")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(src, f"byte {exc.start}", f"not UTF-8 text (byte 0x{raw[exc.start]:02x}); save the {what} "
                                              "as UTF-8") from None


def read_yaml_file(path: str | Path, error: type[FieldError], what: str, source: str | None = None) -> Any:
    """Parsed YAML of ``path``; raises ``error(source, field, problem)`` on any reading problem.

    ``what`` names the kind of file in the message ("scenario file not found"); ``source``
    overrides how the file is named (defaults to the path).
    """
    src = str(path) if source is None else source
    text = read_text_file(path, error, what, source=src)
    try:
        return parse_yaml_text(text)
    except YamlProblem as exc:
        raise error(src, exc.where, exc.problem) from None
