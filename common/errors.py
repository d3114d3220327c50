"""Typed errors shared by all rooms.

Each error carries the file and field at fault, so the CLI can print one clear line
(and exit non-zero) instead of a traceback.
"""
from __future__ import annotations

from typing import Any


def brief(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters: an error message stays one readable line
    even when the offending value is a 10 MB string or a 400-digit integer."""
    try:
        text = repr(value)
    except ValueError:  # ints beyond sys.get_int_max_str_digits() refuse repr()
        text = f"<integer of about {value.bit_length() * 0.30103:.0f} digits>" if isinstance(value, int) else "<value>"
    return text if len(text) <= limit else f"{text[:limit - 3]}..."


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


class SimulationDiverged(NavkitError):
    """Physics produced NaN/Inf or exploded; the episode cannot continue honestly."""


class PlanningFailed(NavkitError):
    """A planner found no route (recoverable: Nav2's NoValidPath); the robot must not move on it."""
