"""Reading a user's YAML file so that every failure names the file and the line.

Parameter files, scenarios, launch files and training configs are all hand-edited; each
loader raises its own :class:`~navkit.common.errors.FieldError` subclass, but the
missing-file and malformed-YAML cases are the same everywhere, so they live here.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from navkit.common.errors import FieldError


def read_yaml_file(path: str | Path, error: type[FieldError], what: str, source: str | None = None) -> Any:
    """Parsed YAML of ``path``; raises ``error(source, field, problem)`` if it is missing or malformed.

    ``what`` names the kind of file in the message ("scenario file not found"); ``source``
    overrides how the file is named (defaults to the path).
    """
    path = Path(path)
    src = str(path) if source is None else source
    if not path.is_file():
        raise error(src, "<file>", f"{what} not found")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "<yaml>"
        raise error(src, where, f"malformed YAML ({getattr(exc, 'problem', None) or exc})") from None
