"""Scenarios as data: a YAML file names the map, obstacles, robot, goals, sensors and seed.

Validation happens once, at load time, and every error names the file and the field
(``goals[1]: inside shelf 'A2'``) so a user fixes the file instead of reading a
traceback. Geometry is planar: boxes (full sizes, yaw) and cylinders standing on the
floor; ``mapped: false`` obstacles exist in the world but not in the planner's map
(the pallet someone left in an aisle), so the robot must see them with its lidar.

Example (``scenarios/warehouse_demo.yaml`` is a complete one)::

    name: tiny
    seed: 0
    map: {bounds: [0, 0, 10, 6]}
    shelves:
      - {name: A, center: [5, 3], size: [4, 1]}
    robot: {model: agv_diff_drive, start: [1, 1, 0]}
    goals: [[9, 5]]
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from navkit.common.errors import FieldError, brief
from navkit.common.geometry import RigidTransform
from navkit.common.yaml_file import read_yaml_file

KNOWN_BACKENDS = ("mujoco", "pybullet")
"""Simulator backends a scenario may name (``backend:``); ``navkit run --robot`` overrides it."""

# Bounds that protect memory and CPU: a typo must be an error naming the bound, not an
# hour of ray casting or a 30 GB occupancy grid.
MAX_COORDINATE_M = 1000.0
"""Largest |coordinate| in a scenario file."""
MAX_MAP_EXTENT_M = 200.0
"""Largest map side: the planner's 5 cm grid of 200 m x 200 m is 16 M cells."""
MAX_OBSTACLES = 2000
"""Most shelves + obstacles in one scenario (every lidar ray is tested against each)."""
MAX_TIME_LIMIT_S = 86400.0
"""Longest episode a scenario may ask for (one simulated day)."""
MAX_GOAL_TOLERANCE_M = 2.0
"""Largest goal tolerance: beyond a couple of metres 'arrived' stops meaning anything."""
MAX_SEED = 2**63 - 1


class ScenarioError(FieldError):
    """A scenario file is missing, malformed or contradictory; names file and field."""


@dataclass(frozen=True)
class RobotModel:
    """Geometry and limits of a robot model the backends know how to build."""

    radius_m: float
    wheel_radius_m: float
    wheel_separation_m: float
    max_wheel_speed_rad_s: float
    mass_kg: float


ROBOT_MODELS: dict[str, RobotModel] = {
    # A compact warehouse AGV: round footprint so the collision disk is exact.
    "agv_diff_drive": RobotModel(radius_m=0.3, wheel_radius_m=0.08, wheel_separation_m=0.5,
                                 max_wheel_speed_rad_s=15.0, mass_kg=20.0),
}


@dataclass(frozen=True)
class Box:
    """An axis-aligned-then-rotated box standing on the floor (shelf, wall, crate)."""

    name: str
    center: tuple[float, float]
    size: tuple[float, float]
    yaw: float = 0.0
    height: float = 2.0
    mapped: bool = True

    def distance(self, points: np.ndarray) -> np.ndarray:
        """Planar distance from points (N, 2) to the box (0 inside)."""
        p = np.atleast_2d(points) - np.asarray(self.center)
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        local = np.stack([c * p[:, 0] + s * p[:, 1], -s * p[:, 0] + c * p[:, 1]], axis=1)
        q = np.abs(local) - np.asarray(self.size) / 2.0
        return np.linalg.norm(np.maximum(q, 0.0), axis=1)


@dataclass(frozen=True)
class Cylinder:
    """A round obstacle (pillar, barrel, person-sized post)."""

    name: str
    center: tuple[float, float]
    radius: float
    height: float = 1.2
    mapped: bool = True

    def distance(self, points: np.ndarray) -> np.ndarray:
        d = np.linalg.norm(np.atleast_2d(points) - np.asarray(self.center), axis=1) - self.radius
        return np.maximum(d, 0.0)


@dataclass(frozen=True)
class LidarConfig:
    """A planar lidar; by default a 360° one on the robot's vertical axis.

    ``x_m``/``y_m``/``yaw_deg``/``upside_down`` place it elsewhere on base_link, as real
    robots mount them (at a front corner, turned, hung under a deck); the scan then carries
    that mount and every consumer places its points by it.
    """

    num_rays: int = 180
    fov_deg: float = 360.0
    range_min_m: float = 0.12
    range_max_m: float = 8.0
    rate_hz: float = 10.0
    noise_std_m: float = 0.01
    height_m: float = 0.3
    x_m: float = 0.0
    y_m: float = 0.0
    yaw_deg: float = 0.0
    upside_down: bool = False
    """Mounted with its top facing the floor (roll = 180°): its scan turns the other way."""

    def mount(self, frame_id: str = "base_scan", base_height_m: float = 0.0) -> RigidTransform:
        """``base_link <- frame_id``: the lidar's pose on the robot. ``height_m`` is above the floor;
        ``base_height_m`` is base_link's own height (the wheel axle's, REP-105's diff-drive convention)."""
        yaw = math.radians(self.yaw_deg)
        q_yaw = (0.0, 0.0, math.sin(yaw / 2.0), math.cos(yaw / 2.0))
        # Roll by pi about x after the yaw: q = q_yaw * q_roll with q_roll = (1, 0, 0, 0).
        q = (q_yaw[3], q_yaw[2], 0.0, 0.0) if self.upside_down else q_yaw
        return RigidTransform((self.x_m, self.y_m, self.height_m - base_height_m), q, "base_link", frame_id)

    BOUNDS: ClassVar[dict[str, tuple[float, float, bool]]] = {
        "num_rays": (1, 10_000, False), "fov_deg": (0.0, 360.0, True), "range_min_m": (0.0, 10.0, False),
        "range_max_m": (0.0, 200.0, True), "rate_hz": (0.0, 100.0, True), "noise_std_m": (0.0, 1.0, False),
        "height_m": (0.0, 5.0, True), "x_m": (-5.0, 5.0, False), "y_m": (-5.0, 5.0, False),
        "yaw_deg": (-360.0, 360.0, False)}
    """(low, high, low exclusive) per field, checked when a scenario is read."""


@dataclass(frozen=True)
class CameraConfig:
    """Forward RGB(+depth) camera; low resolution keeps CPU rendering cheap."""

    enabled: bool = True
    width: int = 96
    height: int = 72
    fov_deg: float = 70.0
    rate_hz: float = 2.0
    depth: bool = True

    BOUNDS: ClassVar[dict[str, tuple[float, float, bool]]] = {
        "width": (8, 1920, False), "height": (8, 1080, False), "fov_deg": (1.0, 170.0, False),
        "rate_hz": (0.0, 60.0, True)}


@dataclass(frozen=True)
class OdometryConfig:
    """Wheel odometry: encoder speeds with multiplicative noise, integrated at ``rate_hz``."""

    rate_hz: float = 50.0
    wheel_noise_std: float = 0.01

    BOUNDS: ClassVar[dict[str, tuple[float, float, bool]]] = {
        "rate_hz": (1.0, 1000.0, False), "wheel_noise_std": (0.0, 0.5, False)}


@dataclass(frozen=True)
class SensorConfig:
    lidar: LidarConfig = field(default_factory=LidarConfig)
    camera: CameraConfig = field(default_factory=CameraConfig)
    odometry: OdometryConfig = field(default_factory=OdometryConfig)


@dataclass(frozen=True)
class Scenario:
    """A validated scenario; ``source`` is the file it came from (for messages)."""

    name: str
    seed: int
    backend: str
    time_limit_s: float
    bounds: tuple[float, float, float, float]
    walls: bool
    boxes: tuple[Box, ...]
    cylinders: tuple[Cylinder, ...]
    robot_model_name: str
    robot: RobotModel
    start: tuple[float, float, float]
    goals: tuple[tuple[float, float], ...]
    goal_tolerance_m: float
    sensors: SensorConfig
    source: str = "<memory>"
    params: str = ""
    """Stack parameter file this scenario is meant to run with (absolute; "" = navkit's default), e.g.
    one that selects a learned controller; ``navkit run --params`` overrides it."""

    @cached_property
    def _obstacle_arrays(self) -> dict[str, np.ndarray]:
        """Obstacles as arrays, so distance queries run once per call instead of once per obstacle."""
        boxes = self.boxes
        return {
            "box_c": np.array([b.center for b in boxes], dtype=float).reshape(-1, 2),
            "box_half": np.array([b.size for b in boxes], dtype=float).reshape(-1, 2) / 2.0,
            "box_cos": np.cos([b.yaw for b in boxes]),
            "box_sin": np.sin([b.yaw for b in boxes]),
            "box_mapped": np.array([b.mapped for b in boxes], dtype=bool),
            "cyl_c": np.array([c.center for c in self.cylinders], dtype=float).reshape(-1, 2),
            "cyl_r": np.array([c.radius for c in self.cylinders], dtype=float),
            "cyl_mapped": np.array([c.mapped for c in self.cylinders], dtype=bool),
        }

    def obstacle_distance(self, points: np.ndarray, *, mapped_only: bool = False,
                          ignore_walls: bool = False) -> np.ndarray:
        """Planar distance from points (N, 2) to the nearest obstacle or wall (0 inside)."""
        pts = np.atleast_2d(np.asarray(points, dtype=float))
        a = self._obstacle_arrays
        best = np.full(len(pts), np.inf)
        if len(a["box_c"]):
            d = pts[:, None, :] - a["box_c"][None]  # (N, B, 2)
            lx = a["box_cos"] * d[..., 0] + a["box_sin"] * d[..., 1]
            ly = -a["box_sin"] * d[..., 0] + a["box_cos"] * d[..., 1]
            qx = np.maximum(np.abs(lx) - a["box_half"][:, 0], 0.0)
            qy = np.maximum(np.abs(ly) - a["box_half"][:, 1], 0.0)
            dist = np.hypot(qx, qy)
            if mapped_only:
                dist = np.where(a["box_mapped"], dist, np.inf)
            best = np.minimum(best, dist.min(axis=1))
        if len(a["cyl_c"]):
            dist = np.maximum(np.linalg.norm(pts[:, None, :] - a["cyl_c"][None], axis=2) - a["cyl_r"], 0.0)
            if mapped_only:
                dist = np.where(a["cyl_mapped"], dist, np.inf)
            best = np.minimum(best, dist.min(axis=1))
        if self.walls and not ignore_walls:
            xmin, ymin, xmax, ymax = self.bounds
            wall = np.minimum(np.minimum(pts[:, 0] - xmin, xmax - pts[:, 0]),
                              np.minimum(pts[:, 1] - ymin, ymax - pts[:, 1]))
            best = np.minimum(best, np.maximum(wall, 0.0))
        return best

    def with_overrides(self, **changes: Any) -> Scenario:
        """A copy with some fields replaced (CLI overrides such as --seed)."""
        return replace(self, **changes)


# ---------------------------------------------------------------- parsing helpers


class _Reader:
    """Walks a YAML mapping, recording the dotted field path for error messages."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, field_name: str, problem: str) -> ScenarioError:
        return ScenarioError(self.source, field_name, problem)

    def mapping(self, value: Any, where: str, allowed: set[str]) -> dict[str, Any]:
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise self.fail(where, f"expected a mapping, got {type(value).__name__}")
        unknown = sorted(set(map(str, value)) - allowed)
        if unknown:
            prefix = f"{where}." if where else ""
            raise self.fail(f"{prefix}{unknown[0]}", f"unknown field (allowed: {', '.join(sorted(allowed))})")
        return value

    def number(self, value: Any, where: str, *, positive: bool = False, minimum: float | None = None,
               maximum: float | None = None) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(where, f"expected a finite number, got {brief(value)}")
        try:
            number = float(value)
        except OverflowError:
            raise self.fail(where, f"number too large, got {brief(value)}") from None
        if not math.isfinite(number):
            raise self.fail(where, f"expected a finite number, got {brief(value)}")
        if positive and number <= 0:
            raise self.fail(where, f"must be > 0, got {number:g}")
        if minimum is not None and number < minimum:
            raise self.fail(where, f"must be >= {minimum:g}, got {number:g}")
        if maximum is not None and number > maximum:
            raise self.fail(where, f"must be <= {maximum:g}, got {number:g}")
        return number

    def integer(self, value: Any, where: str, *, positive: bool = False, minimum: int | None = None,
                maximum: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(where, f"expected an integer, got {brief(value)}")
        if positive and value <= 0:
            raise self.fail(where, f"must be > 0, got {brief(value)}")
        if minimum is not None and value < minimum:
            raise self.fail(where, f"must be >= {minimum}, got {brief(value)}")
        if maximum is not None and value > maximum:
            raise self.fail(where, f"must be <= {maximum:,}, got {brief(value)}")
        return int(value)

    def vector(self, value: Any, where: str, n: int, *, limit: float = MAX_COORDINATE_M) -> tuple[float, ...]:
        """``n`` finite numbers, each within ±``limit`` (coordinates: a map is at most a few hundred metres)."""
        if not isinstance(value, (list, tuple)) or len(value) != n:
            raise self.fail(where, f"expected a list of {n} numbers, got {brief(value)}")
        return tuple(self.number(v, f"{where}[{i}]", minimum=-limit, maximum=limit) for i, v in enumerate(value))

    def boolean(self, value: Any, where: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(where, f"expected true/false, got {brief(value)}")
        return value

    def require(self, doc: dict[str, Any], key: str, where: str) -> Any:
        if key not in doc or doc[key] is None:
            prefix = f"{where}." if where else ""
            raise self.fail(f"{prefix}{key}", "missing required field")
        return doc[key]


def _dataclass_section(r: _Reader, cls: type, value: Any, where: str) -> Any:
    """Fill a flat sensor dataclass from a mapping, type-checking each field."""
    import dataclasses

    defaults = cls()
    names = {f.name for f in dataclasses.fields(cls)}
    bounds: dict[str, tuple[float, float, bool]] = getattr(cls, "BOUNDS", {})
    doc = r.mapping(value, where, names)
    kwargs: dict[str, Any] = {}
    for key, raw in doc.items():
        default = getattr(defaults, key)
        at = f"{where}.{key}"
        lo, hi, open_low = bounds.get(key, (0.0, math.inf, False))
        if isinstance(default, bool):
            kwargs[key] = r.boolean(raw, at)
        elif isinstance(default, int):
            kwargs[key] = r.integer(raw, at, minimum=int(lo) + int(open_low), maximum=int(hi))
        else:
            kwargs[key] = r.number(raw, at, positive=open_low and lo == 0.0, minimum=None if open_low else lo,
                                   maximum=hi)
            if open_low and lo != 0.0 and kwargs[key] <= lo:
                raise r.fail(at, f"must be > {lo:g}, got {kwargs[key]:g}")
    return cls(**kwargs)


def _parse_box(r: _Reader, raw: Any, where: str, default_name: str, default_height: float) -> Box:
    doc = r.mapping(raw, where, {"name", "center", "size", "yaw", "height", "mapped"})
    size = r.vector(r.require(doc, "size", where), f"{where}.size", 2)
    if min(size) <= 0:
        raise r.fail(f"{where}.size", "sizes must be > 0")
    return Box(
        name=str(doc.get("name", default_name)),
        center=r.vector(r.require(doc, "center", where), f"{where}.center", 2),  # type: ignore[arg-type]
        size=size,  # type: ignore[arg-type]
        yaw=r.number(doc.get("yaw", 0.0), f"{where}.yaw", minimum=-100.0, maximum=100.0),
        height=r.number(doc.get("height", default_height), f"{where}.height", positive=True, maximum=100.0),
        mapped=r.boolean(doc.get("mapped", True), f"{where}.mapped"),
    )


def _parse_cylinder(r: _Reader, raw: Any, where: str, default_name: str) -> Cylinder:
    doc = r.mapping(raw, where, {"name", "center", "radius", "height", "mapped"})
    return Cylinder(
        name=str(doc.get("name", default_name)),
        center=r.vector(r.require(doc, "center", where), f"{where}.center", 2),  # type: ignore[arg-type]
        radius=r.number(r.require(doc, "radius", where), f"{where}.radius", positive=True, maximum=MAX_MAP_EXTENT_M),
        height=r.number(doc.get("height", 1.2), f"{where}.height", positive=True, maximum=100.0),
        mapped=r.boolean(doc.get("mapped", True), f"{where}.mapped"),
    )


def _list(r: _Reader, value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise r.fail(where, f"expected a list, got {type(value).__name__}")
    return value


def parse_scenario(doc: Any, source: str = "<memory>") -> Scenario:
    """Validate a scenario mapping (already loaded from YAML) and build a :class:`Scenario`."""
    r = _Reader(source)
    top = r.mapping(doc, "", {"name", "seed", "backend", "time_limit_s", "map", "shelves", "obstacles",
                               "robot", "goals", "goal_tolerance_m", "sensors", "description", "params"})
    params = ""
    if top.get("params") is not None:
        raw = top["params"]
        if not isinstance(raw, str) or not raw:
            raise r.fail("params", f"expected a parameter file path, got {brief(raw)}")
        base = Path(source).parent if source and not source.startswith("<") else Path.cwd()
        resolved = (base / raw) if not Path(raw).is_absolute() else Path(raw)
        try:
            found = resolved.is_file()
        except (OSError, ValueError):  # a name too long for the file system, a NUL byte: no such file
            found = False
        if not found:
            raise r.fail("params", f"parameter file {brief(raw)} not found (relative paths are from the scenario's "
                                   "folder)")
        params = str(resolved.resolve())
    map_doc = r.mapping(r.require(top, "map", ""), "map", {"bounds", "walls"})
    bounds = r.vector(r.require(map_doc, "bounds", "map"), "map.bounds", 4)
    if bounds[2] <= bounds[0] or bounds[3] <= bounds[1]:
        raise r.fail("map.bounds", "expected [xmin, ymin, xmax, ymax] with xmax > xmin and ymax > ymin")
    extent = max(bounds[2] - bounds[0], bounds[3] - bounds[1])
    if extent > MAX_MAP_EXTENT_M:
        raise r.fail("map.bounds", f"a side of {extent:g} m exceeds the {MAX_MAP_EXTENT_M:g} m limit")
    walls = r.boolean(map_doc.get("walls", True), "map.walls")

    shelves_raw = _list(r, top.get("shelves"), "shelves")
    obstacles_raw = _list(r, top.get("obstacles"), "obstacles")
    if len(shelves_raw) + len(obstacles_raw) > MAX_OBSTACLES:
        raise r.fail("shelves/obstacles", f"{len(shelves_raw) + len(obstacles_raw)} shapes exceed the limit of "
                                          f"{MAX_OBSTACLES}")
    boxes = [_parse_box(r, b, f"shelves[{i}]", f"shelf_{i}", 2.0) for i, b in enumerate(shelves_raw)]
    cylinders: list[Cylinder] = []
    for i, ob in enumerate(obstacles_raw):
        where = f"obstacles[{i}]"
        if not isinstance(ob, dict) or "type" not in ob:
            raise r.fail(f"{where}.type", "missing required field (box or cylinder)")
        body = {k: v for k, v in ob.items() if k != "type"}
        if ob["type"] == "box":
            boxes.append(_parse_box(r, body, where, f"box_{i}", 1.0))
        elif ob["type"] == "cylinder":
            cylinders.append(_parse_cylinder(r, body, where, f"cylinder_{i}"))
        else:
            raise r.fail(f"{where}.type", f"unknown obstacle type {brief(ob['type'])} (known: box, cylinder)")
    names = [o.name for o in (*boxes, *cylinders)]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise r.fail("shelves/obstacles", f"duplicate obstacle name {brief(dupes[0])}")

    robot_doc = r.mapping(r.require(top, "robot", ""), "robot", {"model", "start"})
    model_name = robot_doc.get("model", "agv_diff_drive")
    if not isinstance(model_name, str) or model_name not in ROBOT_MODELS:
        raise r.fail("robot.model", f"unknown robot model {brief(model_name)} (known: {', '.join(ROBOT_MODELS)})")
    model = ROBOT_MODELS[model_name]
    start = r.vector(r.require(robot_doc, "start", "robot"), "robot.start", 3)

    backend = top.get("backend", "mujoco")
    if not isinstance(backend, str) or backend not in KNOWN_BACKENDS:
        raise r.fail("backend", f"unknown backend {brief(backend)} (known: {', '.join(KNOWN_BACKENDS)})")

    goals_raw = _list(r, r.require(top, "goals", ""), "goals")
    if not goals_raw:
        raise r.fail("goals", "at least one goal is required")
    if len(goals_raw) > MAX_OBSTACLES:
        raise r.fail("goals", f"{len(goals_raw)} goals exceed the limit of {MAX_OBSTACLES}")
    goals = tuple(r.vector(g, f"goals[{i}]", 2) for i, g in enumerate(goals_raw))

    sensors_doc = r.mapping(top.get("sensors"), "sensors", {"lidar", "camera", "odometry"})
    sensors = SensorConfig(
        lidar=_dataclass_section(r, LidarConfig, sensors_doc.get("lidar"), "sensors.lidar"),
        camera=_dataclass_section(r, CameraConfig, sensors_doc.get("camera"), "sensors.camera"),
        odometry=_dataclass_section(r, OdometryConfig, sensors_doc.get("odometry"), "sensors.odometry"),
    )
    if sensors.lidar.range_max_m <= sensors.lidar.range_min_m:
        raise r.fail("sensors.lidar.range_max_m", "must exceed range_min_m")

    scenario = Scenario(
        name=str(top.get("name", Path(source).stem)),
        seed=r.integer(top.get("seed", 0), "seed", minimum=0, maximum=MAX_SEED),
        backend=str(backend),
        time_limit_s=r.number(top.get("time_limit_s", 120.0), "time_limit_s", positive=True,
                              maximum=MAX_TIME_LIMIT_S),
        bounds=bounds,  # type: ignore[arg-type]
        walls=walls,
        boxes=tuple(boxes),
        cylinders=tuple(cylinders),
        robot_model_name=str(model_name),
        robot=model,
        start=start,  # type: ignore[arg-type]
        goals=goals,  # type: ignore[arg-type]
        goal_tolerance_m=r.number(top.get("goal_tolerance_m", 0.25), "goal_tolerance_m", positive=True,
                                  maximum=MAX_GOAL_TOLERANCE_M),
        sensors=sensors,
        source=source,
        params=params,
    )
    _check_geometry(r, scenario)
    return scenario


def _check_geometry(r: _Reader, sc: Scenario) -> None:
    """Contradictions a user can make: a goal inside a shelf, a start outside the map."""
    xmin, ymin, xmax, ymax = sc.bounds
    obstacles = (*sc.boxes, *sc.cylinders)
    points = np.array([sc.start[:2], *sc.goals], dtype=float)
    # One vectorised distance query for every point; the per-obstacle loop below runs only to
    # name the culprit of a point that does not fit (thousands of goals x obstacles stay fast).
    crowded = sc.obstacle_distance(points, ignore_walls=True) < sc.robot.radius_m

    def check_point(index: int, xy: tuple[float, float], where: str, what: str) -> None:
        if not (xmin < xy[0] < xmax and ymin < xy[1] < ymax):
            raise r.fail(where, f"{what} {list(xy)} is outside map.bounds {list(sc.bounds)}")
        for ob in obstacles if crowded[index] else ():
            d = float(ob.distance(np.asarray([xy]))[0])
            if d == 0.0:
                kind = "shelf" if isinstance(ob, Box) else "obstacle"
                raise r.fail(where, f"{what} {list(xy)} is inside {kind} {brief(ob.name)}")
            if d < sc.robot.radius_m:
                raise r.fail(where, f"{what} {list(xy)} is {d:.2f} m from {brief(ob.name)}; the robot "
                                    f"(radius {sc.robot.radius_m} m) does not fit")
        if sc.walls:
            wall = min(xy[0] - xmin, xmax - xy[0], xy[1] - ymin, ymax - xy[1])
            if wall < sc.robot.radius_m:
                raise r.fail(where, f"{what} {list(xy)} is {wall:.2f} m from the wall; the robot does not fit")

    check_point(0, sc.start[:2], "robot.start", "start")
    previous, what = sc.start[:2], "the start"
    for i, g in enumerate(sc.goals):
        check_point(i + 1, g, f"goals[{i}]", "goal")
        if math.dist(previous, g) <= sc.goal_tolerance_m:
            raise r.fail(f"goals[{i}]", f"goal {list(g)} is within goal_tolerance_m ({sc.goal_tolerance_m:g} m) of "
                                        f"{what}: it would count as reached without moving")
        previous, what = g, f"goals[{i}]"


def read_scenario_yaml(path: str | Path) -> Any:
    """The parsed YAML of a scenario file; a missing file or bad YAML is a :class:`ScenarioError`
    naming the file (and line/column)."""
    return read_yaml_file(path, ScenarioError, "scenario file")


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario YAML file; raises :class:`ScenarioError` on any problem."""
    return parse_scenario(read_scenario_yaml(path), str(path))
