"""Scenario families for training multi-robot policies: which layouts, how many robots, what rate.

A policy trained on one layout at one size and one control rate learns that layout (the
first online-CBF policy did: 0 % on swaps of 12+ robots). Training instead draws every
episode from a *distribution*: a family (a swarm scenario file) with a team size drawn from
its range, a fresh seed and a control rate drawn from ``rates_hz``. Families are written
``"FILE"`` (the file's own team size) or ``"FILE MIN-MAX"``, e.g.
``"scenarios/multi/circle_swap.yaml 2-32"``; a layout that cannot hold a drawn size (an
explicit start list) keeps its own.

Both trainers (evolution strategies and PPO) and their model selection draw from here, so
"what the policy saw" is one list in the training config.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from navkit.common.errors import brief
from navkit.sim.scenario import ScenarioError
from navkit.sim.swarm_scenario import MAX_AGENTS, SwarmScenario, SwarmScenarioSpec, load_swarm_scenario

REPO_ROOT = Path(__file__).resolve().parents[1]
EVAL_SEED_BASE = 1_000_000
"""Model-selection seeds start here; training seeds are drawn below it (held out by seed as well as by family)."""


class FamilyError(ValueError):
    """A family entry that cannot be read; the message names the entry."""


def resolve(path: str) -> Path:
    """A scenario path as written: absolute, relative to the working folder, else to the repository."""
    p = Path(path)
    try:
        return p if p.is_absolute() or p.exists() else REPO_ROOT / p
    except OSError:  # e.g. a name longer than the file system allows: not a file anyone has
        return p


@dataclass(frozen=True)
class Family:
    """One scenario file and the team sizes drawn for it."""

    spec: SwarmScenarioSpec
    agents: tuple[int, int] | None
    """Inclusive range of team sizes; None: the file's own count."""
    entry: str
    """The entry as written (for logs)."""

    @property
    def name(self) -> str:
        return self.spec.name

    def draw_size(self, rng: np.random.Generator) -> int | None:
        """A team size from the family's range (None: the file's own count)."""
        return None if self.agents is None else int(rng.integers(self.agents[0], self.agents[1] + 1))

    def scene(self, seed: int, num_agents: int | None, rate_hz: float | None = None) -> SwarmScenario:
        """The family with ``num_agents`` robots (the file's own team when its layout cannot be resized,
        e.g. an explicit one), ``seed`` and ``rate_hz``."""
        try:
            sc = self.spec.expand(seed=seed, num_agents=num_agents)
        except ScenarioError:
            sc = self.spec.expand(seed=seed)
        return sc.at_rate(rate_hz) if rate_hz else sc

    def draw(self, seed: int, rng: np.random.Generator, rate_hz: float | None = None) -> SwarmScenario:
        """A concrete scene: the family at a drawn size (when resizable), ``seed``, and ``rate_hz``."""
        return self.scene(seed, self.draw_size(rng), rate_hz)


def parse_family(entry: str) -> Family:
    """``"FILE"`` or ``"FILE MIN-MAX"`` -> :class:`Family` (the file is read and checked here)."""
    parts = str(entry).split()
    shown = brief(str(entry))
    if not 1 <= len(parts) <= 2:
        raise FamilyError(f"{shown}: expected 'FILE' or 'FILE MIN-MAX'")
    path = resolve(parts[0])
    try:
        found = path.is_file()
    except OSError:
        found = False
    if not found:
        raise FamilyError(f"{shown}: scenario file {brief(parts[0])} not found")
    agents = None
    if len(parts) == 2:
        lo, sep, hi = parts[1].partition("-")
        if not sep or not lo.isdigit() or not hi.isdigit():
            raise FamilyError(f"{shown}: team sizes must read MIN-MAX, e.g. 4-16")
        agents = (int(lo), int(hi))
        if not 1 <= agents[0] <= agents[1] <= MAX_AGENTS:
            raise FamilyError(f"{shown}: team sizes must satisfy 1 <= MIN <= MAX <= {MAX_AGENTS}")
    return Family(spec=load_swarm_scenario(path), agents=agents, entry=str(entry))


def draw_groups(families: Sequence[Family], scenes_per_family: int, rates_hz: Sequence[float],
                rng: np.random.Generator, seed_base: int = 0, seed_span: int = EVAL_SEED_BASE,
                episode_time_s: float = 0.0) -> list[list[SwarmScenario]]:
    """Scenes from every family, grouped so that each group can be stepped as one batch.

    Every scene gets its own seed in ``[seed_base, seed_base + seed_span)``, size and rate;
    scenes of a group share team size, dynamics and rate (what
    :class:`~navkit.sim.kinematic_swarm.KinematicSwarm` batches). ``episode_time_s`` > 0 caps
    the episodes (deadlocks stop costing compute early).
    """
    groups: dict[tuple, list[SwarmScenario]] = {}
    for k, fam in enumerate(families):
        for _ in range(scenes_per_family):
            rate = float(rng.choice(np.asarray(rates_hz, dtype=float))) if len(rates_hz) else None
            sc = fam.draw(seed_base + int(rng.integers(0, seed_span)), rng, rate)
            if episode_time_s > 0:
                sc = replace(sc, time_limit_s=min(sc.time_limit_s, episode_time_s))
            groups.setdefault((k, sc.num_agents, sc.dynamics, sc.control_dt_s), []).append(sc)
    return list(groups.values())
