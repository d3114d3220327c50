"""Typed errors shared by all rooms.

Each error carries the file and field at fault, so the CLI can print one clear line
(and exit non-zero) instead of a traceback.
"""
from __future__ import annotations


class NavkitError(Exception):
    """Base of every error navkit raises on purpose (bad input, not bugs)."""


class FieldError(NavkitError):
    """Bad input located precisely: ``source`` (a file, topic or node) and ``field`` in it."""

    def __init__(self, source: str, field: str, problem: str) -> None:
        self.source = source
        self.field = field
        self.problem = problem
        super().__init__(f"{source}: {field}: {problem}")


class ParameterError(FieldError):
    """A parameter file or a parameter value is malformed; names the file and field."""
