"""World-model goal-image scenarios (``kind: world_model``): which trained run, which env, which episodes.

A file of this kind asks ``navkit run`` to drive to *goal images* with a DINO-WM world model (Zhou et al.,
arXiv 2411.04983) trained by ``navkit wm train``, instead of to goal coordinates. The env decides how:

* ``pointmaze`` / ``wall``: budgeted MPC episodes on the world-model envs, exactly as ``navkit wm eval``
  runs them (held-out start/goal pairs, a fixed budget of model steps, the env's own success test);
  ``planning`` chooses the planner and its budget.
* ``warehouse``: the full navigation stack in MuJoCo, in the warehouse the run was trained in, with the
  ``world_model_mpc`` local controller chosen by the parameter file ``params`` and every command passing
  the CBF safety filter; the goal image is the front camera's view from a pose ``goal_ahead_m`` metres
  straight ahead of the start along a free aisle, with the start's heading.

Example (``scenarios/wm/warehouse_goal_image.yaml``)::

    name: wm_warehouse_goal_image
    kind: world_model
    env: warehouse
    run: control/policies/wm_warehouse     # a navkit wm train run folder (holds best.pt)
    episodes: 10
    seed: 0
    goal_ahead_m: [2.0, 6.0]
    params: world_model_mpc.params.yaml
    time_limit_s: 60.0
    success_radius_m: 0.5

Relative paths (``run``, ``params``) are taken from the scenario's folder first; a ``run`` not found there
is taken from navkit's package root (the checkout), so shipped scenarios can name ``control/policies/...``.
Every mistake is a :class:`~navkit.sim.scenario.ScenarioError` naming the file and the field.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from navkit.common.errors import brief
from navkit.sim.scenario import _Reader, read_scenario_yaml

KIND = "world_model"
ENVS = ("pointmaze", "wall", "warehouse")
PACKAGE_ROOT = Path(__file__).resolve().parents[1]
"""navkit's root (the checkout, or the installed ``navkit`` package): the second place a relative ``run`` is
looked for."""
DEFAULT_PARAMS = PACKAGE_ROOT / "scenarios" / "wm" / "world_model_mpc.params.yaml"
"""The warehouse's parameter file when a scenario names none (``world_model_mpc`` + the ``cbf_lidar`` filter)."""
MAX_EPISODES = 10_000
MAX_SEED = 2**31 - 1
"""Pair seeds feed numpy's SeedSequence alongside the evaluation stream's tag (as ``navkit wm eval --seed``)."""
MAX_TIME_LIMIT_S = 3600.0
MAX_SUCCESS_RADIUS_M = 2.0
GOAL_AHEAD_RANGE_M = (0.5, 50.0)

_COMMON = {"name", "kind", "description", "env", "run", "checkpoint", "episodes", "seed"}
_SMALL_ENV_ONLY = {"planning"}
_WAREHOUSE_ONLY = {"goal_ahead_m", "params", "time_limit_s", "success_radius_m"}
_PLANNING = ("planner", "step_budget", "horizon", "samples", "elites", "iterations", "proprio_weight")


@dataclass(frozen=True)
class PlanningSettings:
    """pointmaze / wall: the planner and its budget (the fields of ``navkit wm eval``; defaults: its defaults)."""

    planner: str = "mpc_cem"
    """One of ``navkit wm eval``'s planners: mpc_cem (the paper's MPC), mppi, open_cem, gd, mpc_gd."""
    step_budget: int = 0
    """Model steps executed per episode (x the run's frameskip env steps); 0: the env's default, sized so a
    planner with a perfect model can reach the goals (``navkit.learning.wm_eval.DEFAULT_BUDGETS``)."""
    horizon: int = 5
    samples: int = 64
    elites: int = 8
    iterations: int = 4
    proprio_weight: float = 0.1


@dataclass(frozen=True)
class WarehouseSettings:
    """warehouse: where goals are, the stack's parameter file, time limit and what counts as arrived."""

    goal_ahead_m: tuple[float, float] = (2.0, 6.0)
    """The goal pose lies this far (drawn uniformly) straight ahead of the start, same heading, along a free
    aisle (the whole segment clear of the layout's obstacles, unmapped ones included)."""
    params: str = str(DEFAULT_PARAMS)
    """Absolute path of the stack's parameter file (its local controller must be ``world_model_mpc``)."""
    time_limit_s: float = 60.0
    success_radius_m: float = 0.5
    """Success: the robot's true position within this distance of the goal pose."""


@dataclass(frozen=True)
class WorldModelScenario:
    """A validated ``kind: world_model`` file."""

    name: str
    env: str
    run: str
    """Absolute path of the run folder."""
    checkpoint: str = "best.pt"
    episodes: int = 10
    seed: int = 0
    """Seed of the held-out start/goal stream (and of the robot's sensor noise in the warehouse)."""
    source: str = "<memory>"
    description: str = ""
    planning: PlanningSettings = field(default_factory=PlanningSettings)
    """Used by pointmaze / wall only."""
    warehouse: WarehouseSettings = field(default_factory=WarehouseSettings)
    """Used by warehouse only."""


def is_world_model_scenario(path: str | Path) -> bool:
    """True when a YAML file declares ``kind: world_model`` (an unreadable file is a ScenarioError)."""
    doc = read_scenario_yaml(path)
    return isinstance(doc, dict) and doc.get("kind") == KIND


def resolve_run(raw: str, source: str) -> Path | None:
    """A run folder named in a scenario: absolute, else from the scenario's folder, else from the package root."""
    path = Path(raw)
    candidates = [path] if path.is_absolute() else []
    if not path.is_absolute():
        if source and not source.startswith("<"):
            candidates.append(Path(source).parent / path)
        candidates.append(PACKAGE_ROOT / path)
    for candidate in candidates:
        try:
            if candidate.is_dir():
                return candidate.resolve()
        except (OSError, ValueError):
            continue
    return None


def _string(r: _Reader, value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise r.fail(where, f"expected a non-empty string, got {brief(value)}")
    return value


def parse_world_model_scenario(doc: Any, source: str = "<memory>") -> WorldModelScenario:
    """Validate a ``kind: world_model`` mapping; raises :class:`ScenarioError` naming the field."""
    r = _Reader(source)
    top = r.mapping(doc, "", _COMMON | _SMALL_ENV_ONLY | _WAREHOUSE_ONLY)
    kind = top.get("kind")
    if kind != KIND:
        raise r.fail("kind", f"expected {KIND!r}, got {brief(kind)}")
    env = r.require(top, "env", "")
    if env not in ENVS:
        raise r.fail("env", f"expected one of {', '.join(ENVS)}, got {brief(env)}")
    name = top.get("name", Path(source).stem if not source.startswith("<") else "world_model")
    name = _string(r, name, "name")
    description = top.get("description") or ""
    if not isinstance(description, str):
        raise r.fail("description", f"expected a string, got {brief(description)}")
    raw_run = _string(r, r.require(top, "run", ""), "run")
    run = resolve_run(raw_run, source)
    if run is None:
        raise r.fail("run", f"no such run folder {brief(raw_run)} (relative paths are from the scenario's folder, "
                            "then navkit's root; navkit wm train writes run folders)")
    checkpoint = _string(r, top.get("checkpoint", "best.pt"), "checkpoint")
    if Path(checkpoint).name != checkpoint:
        raise r.fail("checkpoint", f"expected a file name inside the run folder, got {brief(checkpoint)}")
    try:
        found = (run / checkpoint).is_file()
    except (OSError, ValueError):  # a name too long for the file system: no such file
        found = False
    if not found:
        raise r.fail("checkpoint", f"{brief(checkpoint)} not found in {run} (train the run first: navkit wm train)")
    episodes = r.integer(top.get("episodes", 10), "episodes", minimum=1, maximum=MAX_EPISODES)
    seed = r.integer(top.get("seed", 0), "seed", minimum=0, maximum=MAX_SEED)
    for key in sorted(_SMALL_ENV_ONLY if env == "warehouse" else _WAREHOUSE_ONLY):
        if key in top:
            only = "env: warehouse" if key in _WAREHOUSE_ONLY else "env: pointmaze or wall"
            why = "" if env != "warehouse" else " (the warehouse's controller is configured by its params file)"
            raise r.fail(key, f"only for {only}, not env: {env}{why}")
    planning = _planning(r, top.get("planning")) if env != "warehouse" else PlanningSettings()
    warehouse = _warehouse(r, top, source) if env == "warehouse" else WarehouseSettings()
    return WorldModelScenario(name=name, env=env, run=str(run), checkpoint=checkpoint, episodes=episodes, seed=seed,
                              source=source, description=description, planning=planning, warehouse=warehouse)


def _planning(r: _Reader, value: Any) -> PlanningSettings:
    from navkit.learning.wm_eval import PLANNERS

    doc = r.mapping(value, "planning", set(_PLANNING))
    d = PlanningSettings()
    planner = doc.get("planner", d.planner)
    if planner not in PLANNERS:
        raise r.fail("planning.planner", f"expected one of {', '.join(PLANNERS)}, got {brief(planner)}")
    ints = {"step_budget": 10_000, "horizon": 1000, "samples": 100_000, "elites": 100_000, "iterations": 1000}
    values = {k: r.integer(doc.get(k, getattr(d, k)), f"planning.{k}", minimum=0 if k == "step_budget" else 1,
                           maximum=high) for k, high in ints.items()}
    if values["elites"] > values["samples"]:
        raise r.fail("planning.elites", f"must be <= planning.samples ({values['samples']}), got {values['elites']}")
    weight = r.number(doc.get("proprio_weight", d.proprio_weight), "planning.proprio_weight", minimum=0.0,
                      maximum=1e6)
    return PlanningSettings(planner=planner, proprio_weight=weight, **values)


def _warehouse(r: _Reader, top: dict[str, Any], source: str) -> WarehouseSettings:
    d = WarehouseSettings()
    ahead = top.get("goal_ahead_m", list(d.goal_ahead_m))
    low, high = r.vector(ahead, "goal_ahead_m", 2)
    lo_ok, hi_ok = GOAL_AHEAD_RANGE_M
    if not lo_ok <= low <= high <= hi_ok:
        raise r.fail("goal_ahead_m", f"expected [min, max] with {lo_ok:g} <= min <= max <= {hi_ok:g}, got "
                                     f"{[low, high]}")
    params = d.params
    if top.get("params") is not None:
        raw = _string(r, top["params"], "params")
        base = Path(source).parent if source and not source.startswith("<") else Path.cwd()
        resolved = Path(raw) if Path(raw).is_absolute() else base / raw
        try:
            found = resolved.is_file()
        except (OSError, ValueError):
            found = False
        if not found:
            raise r.fail("params", f"parameter file {brief(raw)} not found (relative paths are from the scenario's "
                                   "folder)")
        params = str(resolved.resolve())
    time_limit = r.number(top.get("time_limit_s", d.time_limit_s), "time_limit_s", positive=True,
                          maximum=MAX_TIME_LIMIT_S)
    radius = r.number(top.get("success_radius_m", d.success_radius_m), "success_radius_m", positive=True,
                      maximum=MAX_SUCCESS_RADIUS_M)
    return WarehouseSettings(goal_ahead_m=(low, high), params=params, time_limit_s=time_limit,
                             success_radius_m=radius)


def load_world_model_scenario(path: str | Path) -> WorldModelScenario:
    """Read and validate a ``kind: world_model`` file; raises :class:`ScenarioError` naming file and field."""
    return parse_world_model_scenario(read_scenario_yaml(path), str(path))
