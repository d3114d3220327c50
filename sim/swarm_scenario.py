"""Multi-robot scenarios as data: layouts that expand, by seed, into starts, goals, obstacles.

A swarm scenario names a *family* (circle swap, corridor crossing, clutter, moving
obstacles) and a seed; :func:`expand` turns it into concrete arrays. Benchmarks run
50+ seeds of one file, training draws fresh seeds every episode, and ``--agents N``
resizes a layout without editing the file. Obstacles are discs (the multi-agent CBF's
natural shape); walls of a corridor are rows of bollards. Errors name file and field,
as for single-robot scenarios.

Example (``scenarios/multi/circle_swap.yaml``)::

    name: circle_swap
    kind: swarm
    dynamics: single_integrator
    agents: {count: 8, layout: {type: circle, radius_m: 3.0}}
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from navkit.common.errors import brief
from navkit.common.geometry import Pose2D, transform_points, wrap_angle
from navkit.sim.scenario import (MAX_COORDINATE_M, MAX_GOAL_TOLERANCE_M, MAX_MAP_EXTENT_M, MAX_OBSTACLES, MAX_SEED,
                                 ScenarioError, _list, _Reader, read_scenario_yaml)

DYNAMICS = ("single_integrator", "unicycle")
LAYOUTS = ("circle", "swap_lines", "crossing", "explicit")

MAX_AGENTS = 1024
"""Largest team: every step costs O(N²) neighbour distances and N small QPs."""
MAX_MOVING_OBSTACLES = 256
MAX_PLACEMENT_ATTEMPTS = 20_000
"""Random obstacles that do not fit after this many tries are left out (the layout is full)."""
MAX_SWARM_TIME_LIMIT_S = 3600.0
CONTROL_DT_RANGE_S = (0.001, 0.5)
"""Control periods navkit's swarm simulators step honestly (2 Hz .. 1 kHz)."""


@dataclass(frozen=True)
class MovingObstacle:
    """A disc shuttling between ``start`` and ``end`` at constant speed (a person, a forklift)."""

    start: tuple[float, float]
    end: tuple[float, float]
    radius: float
    speed_m_s: float

    def position_velocity(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        a, b = np.asarray(self.start), np.asarray(self.end)
        length = float(np.linalg.norm(b - a))
        if length < 1e-9 or self.speed_m_s <= 0:
            return a.copy(), np.zeros(2)
        period = 2.0 * length / self.speed_m_s
        phase = (t % period) * self.speed_m_s
        direction = (b - a) / length
        if phase <= length:
            return a + direction * phase, direction * self.speed_m_s
        return b - direction * (phase - length), -direction * self.speed_m_s


@dataclass(frozen=True)
class SwarmScenario:
    """A concrete (expanded) multi-robot scenario."""

    name: str
    seed: int
    dynamics: str
    time_limit_s: float
    control_dt_s: float
    bounds: tuple[float, float, float, float]
    agent_radius_m: float
    max_speed_m_s: float
    sensing_radius_m: float
    goal_tolerance_m: float
    starts: np.ndarray
    """(N, 3) x, y, yaw."""
    goals: np.ndarray
    """(N, 2)."""
    static_obstacles: np.ndarray
    """(M, 3) x, y, radius."""
    moving_obstacles: tuple[MovingObstacle, ...]
    source: str = "<memory>"
    priorities: np.ndarray | None = None
    """(N,) per-robot random tokens in [0, 1), drawn from the seed: what a team shares to break ties
    (who yields to whom) without world headings. None: all zero."""

    @property
    def num_agents(self) -> int:
        return int(self.starts.shape[0])

    @property
    def num_obstacles(self) -> int:
        return int(self.static_obstacles.shape[0]) + len(self.moving_obstacles)

    def obstacles_at(self, t: float, sensed: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Obstacle positions (M, 2), radii (M,), velocities (M, 2) at time ``t``: static first.

        Velocities are what a robot can know (``sensed``): the difference of the positions it
        saw one control period apart, so a reversing obstacle reads wrong for a period, as
        from a real tracker; ``sensed=False`` gives the true instantaneous velocity.
        """
        pos = [self.static_obstacles[:, :2]]
        rad = [self.static_obstacles[:, 2]]
        vel = [np.zeros((len(self.static_obstacles), 2))]
        for ob in self.moving_obstacles:
            p, v = ob.position_velocity(t)
            if sensed:
                earlier, _ = ob.position_velocity(t - self.control_dt_s)
                v = (p - earlier) / self.control_dt_s if t >= self.control_dt_s - 1e-9 else np.zeros(2)
            pos.append(p[None])
            rad.append(np.array([ob.radius]))
            vel.append(v[None])
        return np.concatenate(pos).reshape(-1, 2), np.concatenate(rad), np.concatenate(vel).reshape(-1, 2)

    def transformed(self, angle_rad: float, offset: tuple[float, float] = (0.0, 0.0)) -> SwarmScenario:
        """The same scene rotated by ``angle_rad`` about the origin, then shifted by ``offset``.

        Every position, heading, obstacle path and the bounds (their rotated bounding box) move
        together; tokens, radii and limits stay. A controller whose inputs are all relative gives the
        same outcome on the transformed scene (the benchmark's rotation rows check that).
        """
        frame = Pose2D(float(offset[0]), float(offset[1]), angle_rad)

        def move(p: np.ndarray) -> np.ndarray:
            return transform_points(frame, p)

        x0, y0, x1, y1 = self.bounds
        corners = move(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]))
        starts = self.starts.copy()
        starts[:, :2] = move(starts[:, :2])
        starts[:, 2] = wrap_angle(starts[:, 2] + angle_rad)
        statics = self.static_obstacles.copy()
        statics[:, :2] = move(statics[:, :2])
        moving = tuple(MovingObstacle(start=tuple(move(ob.start)[0]), end=tuple(move(ob.end)[0]),  # type: ignore[arg-type]
                                      radius=ob.radius, speed_m_s=ob.speed_m_s) for ob in self.moving_obstacles)
        return replace(self, bounds=(*corners.min(axis=0), *corners.max(axis=0)), starts=starts,  # type: ignore[arg-type]
                       goals=move(self.goals), static_obstacles=statics, moving_obstacles=moving)

    def at_rate(self, rate_hz: float) -> SwarmScenario:
        """The same scene with the team running at ``rate_hz`` (commands held 1/rate_hz s)."""
        dt = 1.0 / float(rate_hz)
        if not CONTROL_DT_RANGE_S[0] <= dt <= CONTROL_DT_RANGE_S[1]:
            raise ValueError(f"rate_hz: must be in [{1 / CONTROL_DT_RANGE_S[1]:g}, {1 / CONTROL_DT_RANGE_S[0]:g}] Hz, "
                             f"got {rate_hz}")
        return replace(self, control_dt_s=dt)


@dataclass(frozen=True)
class SwarmScenarioSpec:
    """The file as written: a layout family; :func:`expand` makes it concrete for a seed."""

    doc: dict[str, Any]
    source: str

    @property
    def name(self) -> str:
        return str(self.doc.get("name", Path(self.source).stem))

    def expand(self, seed: int | None = None, num_agents: int | None = None) -> SwarmScenario:
        return expand(self, seed, num_agents)


_TOP = {"name", "kind", "description", "seed", "dynamics", "time_limit_s", "control_dt_s", "bounds", "agents",
        "sensing_radius_m", "goal_tolerance_m", "obstacles", "random_obstacles", "bollard_walls", "moving_obstacles"}


def load_swarm_scenario(path: str | Path) -> SwarmScenarioSpec:
    """Read a swarm scenario file; validates it by expanding it once (seed from the file)."""
    path = Path(path)
    doc = read_scenario_yaml(path)
    spec = SwarmScenarioSpec(_Reader(str(path)).mapping(doc, "", _TOP), str(path))
    if spec.doc.get("kind", "swarm") != "swarm":
        raise ScenarioError(str(path), "kind", f"expected 'swarm', got {brief(spec.doc.get('kind'))}")
    spec.expand()
    return spec


def is_swarm_scenario(path: str | Path) -> bool:
    """True when a YAML file declares ``kind: swarm`` (so the CLI can pick the runner).

    An unreadable file is a :class:`ScenarioError` here, not "a single-robot scenario":
    guessing would report the wrong file's problems.
    """
    doc = read_scenario_yaml(path)
    return isinstance(doc, dict) and doc.get("kind") == "swarm"


def _circle(n: int, radius: float, rng: np.random.Generator, jitter: float) -> tuple[np.ndarray, np.ndarray]:
    angles = 2.0 * math.pi * np.arange(n) / n + rng.uniform(-1, 1) * math.pi / n
    starts = radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    goals = -starts
    starts = starts + rng.normal(0.0, jitter, starts.shape)
    goals = goals + rng.normal(0.0, jitter, goals.shape)
    return starts, goals


def _swap_lines(n: int, half_length: float, spacing: float, rng: np.random.Generator,
                jitter: float) -> tuple[np.ndarray, np.ndarray]:
    """Two groups in columns at x = -L and x = +L; each group goes to the other's spots."""
    left = n - n // 2
    right = n // 2
    ys_left = (np.arange(left) - (left - 1) / 2.0) * spacing
    ys_right = (np.arange(right) - (right - 1) / 2.0) * spacing
    a = np.stack([np.full(left, -half_length), ys_left], axis=1)
    b = np.stack([np.full(right, half_length), ys_right], axis=1)
    starts = np.concatenate([a, b])
    goals = np.concatenate([a * [-1, 1], b * [-1, 1]])
    perm_a = rng.permutation(left)
    perm_b = rng.permutation(right)
    goals = np.concatenate([goals[:left][perm_a], goals[left:][perm_b]])
    return starts + rng.normal(0, jitter, starts.shape), goals + rng.normal(0, jitter, goals.shape)


def _crossing(n: int, half_length: float, spacing: float, rng: np.random.Generator,
              jitter: float) -> tuple[np.ndarray, np.ndarray]:
    """Half the agents cross left -> right, half bottom -> top, through one central area."""
    h = n - n // 2
    v = n // 2
    ys = (np.arange(h) - (h - 1) / 2.0) * spacing
    xs = (np.arange(v) - (v - 1) / 2.0) * spacing
    starts = np.concatenate([np.stack([np.full(h, -half_length), ys], 1), np.stack([xs, np.full(v, -half_length)], 1)])
    goals = np.concatenate([np.stack([np.full(h, half_length), ys[rng.permutation(h)]], 1),
                            np.stack([xs[rng.permutation(v)], np.full(v, half_length)], 1)])
    return starts + rng.normal(0, jitter, starts.shape), goals + rng.normal(0, jitter, goals.shape)


def expand(spec: SwarmScenarioSpec, seed: int | None = None, num_agents: int | None = None) -> SwarmScenario:
    """Concrete starts, goals and obstacles for one seed (and optionally another agent count)."""
    r = _Reader(spec.source)
    doc = spec.doc
    seed = r.integer(doc.get("seed", 0), "seed", minimum=0, maximum=MAX_SEED) if seed is None else int(seed)
    if not 0 <= seed <= MAX_SEED:
        raise r.fail("seed", f"must be in [0, 2**63 - 1], got {seed}")
    rng = np.random.default_rng(seed)
    dynamics = doc.get("dynamics", "single_integrator")
    if dynamics not in DYNAMICS:
        raise r.fail("dynamics", f"unknown dynamics {brief(dynamics)} (known: {', '.join(DYNAMICS)})")
    bounds = r.vector(r.require(doc, "bounds", ""), "bounds", 4)
    if bounds[2] <= bounds[0] or bounds[3] <= bounds[1]:
        raise r.fail("bounds", "expected [xmin, ymin, xmax, ymax] with xmax > xmin and ymax > ymin")
    extent = max(bounds[2] - bounds[0], bounds[3] - bounds[1])
    if extent > MAX_MAP_EXTENT_M:
        raise r.fail("bounds", f"a side of {extent:g} m exceeds the {MAX_MAP_EXTENT_M:g} m limit")
    agents = r.mapping(r.require(doc, "agents", ""), "agents", {"count", "radius_m", "max_speed_m_s", "layout"})
    n = (r.integer(agents.get("count", 8), "agents.count", minimum=1, maximum=MAX_AGENTS) if num_agents is None
         else int(num_agents))
    if not 1 <= n <= MAX_AGENTS:
        raise r.fail("agents.count", f"must be in [1, {MAX_AGENTS}], got {n}")
    radius = r.number(agents.get("radius_m", 0.2), "agents.radius_m", positive=True, maximum=5.0)
    layout = r.mapping(r.require(agents, "layout", "agents"), "agents.layout",
                       {"type", "radius_m", "half_length_m", "spacing_m", "jitter_m", "starts", "goals"})
    kind = layout.get("type")
    if kind not in LAYOUTS:
        raise r.fail("agents.layout.type", f"unknown layout {brief(kind)} (known: {', '.join(LAYOUTS)})")
    jitter = r.number(layout.get("jitter_m", 0.05), "agents.layout.jitter_m", minimum=0.0, maximum=1.0)
    if kind == "circle":
        circle_r = r.number(layout.get("radius_m", 3.0), "agents.layout.radius_m", positive=True,
                            maximum=MAX_MAP_EXTENT_M)
        if "spacing_m" in layout:  # a resized team keeps its spacing: the circle grows with N
            spacing = r.number(layout["spacing_m"], "agents.layout.spacing_m", positive=True, maximum=MAX_MAP_EXTENT_M)
            circle_r = max(circle_r, n * spacing / (2.0 * math.pi))
        starts, goals = _circle(n, circle_r, rng, jitter)
    elif kind in ("swap_lines", "crossing"):
        half = r.number(layout.get("half_length_m", 3.0), "agents.layout.half_length_m", positive=True,
                        maximum=MAX_MAP_EXTENT_M)
        spacing = r.number(layout.get("spacing_m", 0.7), "agents.layout.spacing_m", positive=True,
                           maximum=MAX_MAP_EXTENT_M)
        make = _swap_lines if kind == "swap_lines" else _crossing
        starts, goals = make(n, half, spacing, rng, jitter)
    else:
        raw_s = _list(r, r.require(layout, "starts", "agents.layout"), "agents.layout.starts")
        raw_g = _list(r, r.require(layout, "goals", "agents.layout"), "agents.layout.goals")
        if len(raw_s) != len(raw_g):
            raise r.fail("agents.layout.goals", f"{len(raw_g)} goals for {len(raw_s)} starts")
        if not 1 <= len(raw_s) <= MAX_AGENTS:
            raise r.fail("agents.layout.starts", f"{len(raw_s)} agents; must be in [1, {MAX_AGENTS}]")
        starts = np.array([r.vector(p, f"agents.layout.starts[{i}]", 2) for i, p in enumerate(raw_s)])
        goals = np.array([r.vector(p, f"agents.layout.goals[{i}]", 2) for i, p in enumerate(raw_g)])
        if num_agents is not None and num_agents != len(starts):
            raise r.fail("agents.layout", "an explicit layout cannot be resized (--agents)")
    if num_agents is not None:  # a resized layout may outgrow the file's bounds: grow them with it
        pts = np.concatenate([starts, goals])
        bounds = (min(bounds[0], float(pts[:, 0].min()) - 1.5), min(bounds[1], float(pts[:, 1].min()) - 1.5),
                  max(bounds[2], float(pts[:, 0].max()) + 1.5), max(bounds[3], float(pts[:, 1].max()) + 1.5))
    yaw = np.arctan2(goals[:, 1] - starts[:, 1], goals[:, 0] - starts[:, 0])
    starts3 = np.concatenate([starts, yaw[:, None]], axis=1)

    statics: list[tuple[float, float, float]] = []

    def room_for(count: int, where: str) -> None:
        if len(statics) + count > MAX_OBSTACLES:
            raise r.fail(where, f"{len(statics) + count} static obstacles exceed the limit of {MAX_OBSTACLES}")

    obstacles_raw = _list(r, doc.get("obstacles"), "obstacles")
    room_for(len(obstacles_raw), "obstacles")
    for i, ob in enumerate(obstacles_raw):
        o = r.mapping(ob, f"obstacles[{i}]", {"center", "radius"})
        c = r.vector(r.require(o, "center", f"obstacles[{i}]"), f"obstacles[{i}].center", 2)
        statics.append((c[0], c[1], r.number(r.require(o, "radius", f"obstacles[{i}]"), f"obstacles[{i}].radius",
                                             positive=True, maximum=MAX_MAP_EXTENT_M)))
    for i, wall in enumerate(_list(r, doc.get("bollard_walls"), "bollard_walls")):
        where = f"bollard_walls[{i}]"
        w = r.mapping(wall, where, {"from", "to", "radius", "spacing_m"})
        a = np.array(r.vector(r.require(w, "from", where), f"{where}.from", 2))
        b = np.array(r.vector(r.require(w, "to", where), f"{where}.to", 2))
        rad = r.number(w.get("radius", 0.2), f"{where}.radius", positive=True, maximum=MAX_MAP_EXTENT_M)
        step = r.number(w.get("spacing_m", 2 * rad), f"{where}.spacing_m", positive=True, maximum=MAX_COORDINATE_M)
        count = max(2, int(math.ceil(np.linalg.norm(b - a) / step)) + 1)
        room_for(count, f"{where}.spacing_m")
        for t in np.linspace(0.0, 1.0, count):
            p = a + t * (b - a)
            statics.append((float(p[0]), float(p[1]), rad))
    rand = doc.get("random_obstacles")
    if rand is not None:
        ro = r.mapping(rand, "random_obstacles", {"count", "radius_m", "region", "clearance_m"})
        count = r.integer(r.require(ro, "count", "random_obstacles"), "random_obstacles.count", minimum=1,
                          maximum=MAX_OBSTACLES)
        room_for(count, "random_obstacles.count")
        rr = r.vector(ro.get("radius_m", [0.15, 0.35]), "random_obstacles.radius_m", 2)
        if not 0.0 < rr[0] <= rr[1]:
            raise r.fail("random_obstacles.radius_m", f"expected [min, max] with 0 < min <= max, got {list(rr)}")
        region = r.vector(r.require(ro, "region", "random_obstacles"), "random_obstacles.region", 4)
        if not (bounds[0] <= region[0] < region[2] <= bounds[2] and bounds[1] <= region[1] < region[3] <= bounds[3]):
            raise r.fail("random_obstacles.region", f"expected [xmin, ymin, xmax, ymax] inside bounds {list(bounds)} "
                                                    f"with xmin < xmax and ymin < ymax, got {list(region)}")
        clearance = r.number(ro.get("clearance_m", 0.5), "random_obstacles.clearance_m", minimum=0.0,
                             maximum=MAX_MAP_EXTENT_M)
        placed = 0
        for _ in range(min(200 * count, MAX_PLACEMENT_ATTEMPTS)):
            if placed == count:
                break
            c = rng.uniform(region[:2], region[2:])
            rad = float(rng.uniform(*rr))
            keep_out = np.concatenate([starts, goals])
            if np.min(np.linalg.norm(keep_out - c, axis=1)) < rad + radius + clearance:
                continue
            if statics and np.min(np.linalg.norm(np.array(statics)[:, :2] - c, axis=1)
                                  - np.array(statics)[:, 2]) < rad + 2 * radius + 0.1:
                continue
            statics.append((float(c[0]), float(c[1]), rad))
            placed += 1
    moving = []
    moving_raw = _list(r, doc.get("moving_obstacles"), "moving_obstacles")
    if len(moving_raw) > MAX_MOVING_OBSTACLES:
        raise r.fail("moving_obstacles",
                     f"{len(moving_raw)} moving obstacles exceed the limit of {MAX_MOVING_OBSTACLES}")
    for i, mo in enumerate(moving_raw):
        where = f"moving_obstacles[{i}]"
        m = r.mapping(mo, where, {"start", "end", "radius", "speed_m_s"})
        moving.append(MovingObstacle(
            start=r.vector(r.require(m, "start", where), f"{where}.start", 2),  # type: ignore[arg-type]
            end=r.vector(r.require(m, "end", where), f"{where}.end", 2),  # type: ignore[arg-type]
            radius=r.number(m.get("radius", 0.3), f"{where}.radius", positive=True, maximum=MAX_MAP_EXTENT_M),
            speed_m_s=r.number(m.get("speed_m_s", 0.5), f"{where}.speed_m_s", minimum=0.0, maximum=20.0)))

    sc = SwarmScenario(
        name=spec.name, seed=seed, dynamics=str(dynamics),
        time_limit_s=r.number(doc.get("time_limit_s", 40.0), "time_limit_s", positive=True,
                              maximum=MAX_SWARM_TIME_LIMIT_S),
        control_dt_s=r.number(doc.get("control_dt_s", 0.05), "control_dt_s", minimum=CONTROL_DT_RANGE_S[0],
                              maximum=CONTROL_DT_RANGE_S[1]),
        bounds=bounds,  # type: ignore[arg-type]
        agent_radius_m=radius,
        max_speed_m_s=r.number(agents.get("max_speed_m_s", 1.0), "agents.max_speed_m_s", positive=True, maximum=20.0),
        sensing_radius_m=r.number(doc.get("sensing_radius_m", 2.0), "sensing_radius_m", positive=True,
                                  maximum=MAX_MAP_EXTENT_M),
        goal_tolerance_m=r.number(doc.get("goal_tolerance_m", 0.15), "goal_tolerance_m", positive=True,
                                  maximum=MAX_GOAL_TOLERANCE_M),
        starts=starts3, goals=goals, static_obstacles=np.array(statics, dtype=float).reshape(-1, 3),
        moving_obstacles=tuple(moving), source=spec.source,
        priorities=rng.random(len(starts)))  # drawn last: earlier draws (the layout) stay as they were
    _check(r, sc)
    return sc


def _check(r: _Reader, sc: SwarmScenario) -> None:
    """Contradictions: agents overlapping at start or goal, a goal inside an obstacle, outside bounds."""
    xmin, ymin, xmax, ymax = sc.bounds
    for name, pts in (("start", sc.starts[:, :2]), ("goal", sc.goals)):
        where = "agents.layout"
        outside = (pts[:, 0] < xmin) | (pts[:, 0] > xmax) | (pts[:, 1] < ymin) | (pts[:, 1] > ymax)
        if outside.any():
            i = int(np.flatnonzero(outside)[0])
            raise r.fail(where, f"agent {i}'s {name} {pts[i].round(2).tolist()} is outside bounds {list(sc.bounds)}")
        d = np.linalg.norm(pts[:, None] - pts[None], axis=2) + np.eye(len(pts)) * 1e9
        if d.min() < 2 * sc.agent_radius_m:
            i, j = np.unravel_index(int(np.argmin(d)), d.shape)
            raise r.fail(where, f"agents {i} and {j} overlap at their {name}s ({d[i, j]:.2f} m apart)")
        if len(sc.static_obstacles):
            centres, radii = sc.static_obstacles[None, :, :2], sc.static_obstacles[None, :, 2]
            gap = np.linalg.norm(pts[:, None] - centres, axis=2) - radii
            if gap.min() < sc.agent_radius_m:
                i, j = np.unravel_index(int(np.argmin(gap)), gap.shape)
                raise r.fail(where, f"agent {i}'s {name} overlaps obstacle {j}")

