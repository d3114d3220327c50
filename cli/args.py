"""The ``navkit`` CLI's argument limits; the one-line parser and bounded-number types live in the base
room (:mod:`navkit.common.cli_args`) so every entry point shares them."""
from __future__ import annotations

from navkit.common.cli_args import CliParser, float_in, int_in

__all__ = ["MAX_AGENTS", "MAX_SEEDS", "MAX_TIME_LIMIT_S", "CliParser", "float_in", "int_in"]

MAX_TIME_LIMIT_S = 86_400.0
MAX_SEEDS = 10_000
MAX_AGENTS = 1024
"""As navkit.sim.swarm_scenario.MAX_AGENTS (not imported: the CLI parser loads no simulator)."""
