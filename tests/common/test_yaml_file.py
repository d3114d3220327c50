"""The one YAML reader: duplicate keys, alias bombs, nesting, encodings and sizes are clear errors."""
from __future__ import annotations

import codecs
import resource
import time
from pathlib import Path

import pytest

from navkit.common.errors import FieldError, brief
from navkit.common.yaml_file import MAX_YAML_BYTES, MAX_YAML_NODES, parse_yaml_text, read_yaml_file


class _Err(FieldError):
    pass


def _read(path: Path) -> object:
    return read_yaml_file(path, _Err, "test file")


def _fails(tmp_path: Path, content: bytes | str, field_part: str, problem_part: str) -> _Err:
    path = tmp_path / "f.yaml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(_Err) as info:
        _read(path)
    assert info.value.source == str(path)
    assert field_part in info.value.field
    assert problem_part in info.value.problem
    assert len(str(info.value)) < 300  # one readable line, whatever the input
    return info.value


def test_duplicate_keys_name_both_lines(tmp_path: Path) -> None:
    """Issue 6 (5): last-wins duplicates turned cbf.alpha 1.0 into 50.0 silently."""
    text = "safety_filter:\n  ros__parameters:\n    cbf:\n      alpha: 1.0\n      margin_m: 0.05\n      alpha: 50.0\n"
    err = _fails(tmp_path, text, "line 6", "duplicate key 'alpha'")
    assert "first at line 4" in err.problem


def test_duplicate_keys_at_top_level_and_in_lists(tmp_path: Path) -> None:
    _fails(tmp_path, "a: 1\nb: 2\na: 3\n", "line 3", "duplicate key 'a'")
    _fails(tmp_path, "goals:\n- {x: 1, x: 2}\n", "line 2", "duplicate key 'x'")


def test_merge_keys_may_be_overridden(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("base: &b {x: 1, y: 2}\nd:\n  <<: *b\n  x: 5\n")
    assert _read(path) == {"base": {"x": 1, "y": 2}, "d": {"x": 5, "y": 2}}


def _bomb(levels: int) -> str:
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n"


def test_billion_laughs_is_refused_before_it_expands(tmp_path: Path) -> None:
    """Issue 7 (7): a 1 kB file must not become gigabytes."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    _fails(tmp_path, _bomb(9), "line", "expands to more than")
    assert time.perf_counter() - start < 5.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # kB: far below the 3-5 GB of old


def test_small_alias_use_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(_bomb(3))  # 1,000 expanded leaves
    doc = _read(path)
    assert isinstance(doc, dict) and len(doc["l2"]) == 10


def test_deep_nesting_is_refused(tmp_path: Path) -> None:
    _fails(tmp_path, "[" * 100_000, "", "nested")
    _fails(tmp_path, "[" * 70 + "]" * 70, "line 1", "nested deeper than")
    _fails(tmp_path, "&a [*a]", "line 1", "nested deeper than")  # a recursive alias


@pytest.mark.parametrize(("encoding", "name"), [("utf-16", "UTF-16"), ("utf-32", "UTF-32")])
def test_utf16_and_utf32_files_are_named(tmp_path: Path, encoding: str, name: str) -> None:
    _fails(tmp_path, "a: 1\n".encode(encoding), "<file>", f"is {name} encoded")


def test_non_utf8_bytes_are_located(tmp_path: Path) -> None:
    _fails(tmp_path, b"name: caf\xe9\n", "byte 9", "not UTF-8")


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes(codecs.BOM_UTF8 + b"a: 1\n")
    assert _read(path) == {"a": 1}


def test_missing_directory_and_oversized_files(tmp_path: Path) -> None:
    with pytest.raises(_Err, match="not found"):
        _read(tmp_path / "nope.yaml")
    with pytest.raises(_Err, match="is a directory"):
        _read(tmp_path)
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (MAX_YAML_BYTES + 1))
    with pytest.raises(_Err, match="too big"):
        _read(big)


@pytest.mark.parametrize("text", ["a: " + "9" * 5000, "a: 2020-13-45", "a: !!python/object:os.system {}",
                                  "a: [1, 2", "\t- a"])
def test_unreadable_values_and_bad_syntax_are_field_errors(tmp_path: Path, text: str) -> None:
    path = tmp_path / "v.yaml"
    path.write_text(text)
    with pytest.raises(_Err) as info:
        _read(path)
    assert len(str(info.value)) < 300


def test_the_node_limit_counts_expanded_aliases() -> None:
    ok = "a: &a [" + ", ".join(["1"] * 1000) + "]\nb: [" + ", ".join(["*a"] * (MAX_YAML_NODES // 1000 - 2)) + "]\n"
    assert len(parse_yaml_text(ok)["b"]) == MAX_YAML_NODES // 1000 - 2


def test_brief_keeps_messages_short() -> None:
    assert len(brief("x" * 10_000)) == 60
    assert "digits" in brief(10**5000)
    assert brief(1.5) == "1.5"
