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
from typing import Any

import numpy as np

from navkit.common.errors import FieldError
from navkit.common.yaml_file import read_yaml_file

KNOWN_BACKENDS = ("mujoco",)
"""Simulator backends this build can run (PyBullet comes with its own issue)."""


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
    """A planar 360° lidar on the robot's vertical axis."""

    num_rays: int = 180
    fov_deg: float = 360.0
    range_min_m: float = 0.12
    range_max_m: float = 8.0
    rate_hz: float = 10.0
    noise_std_m: float = 0.01
    height_m: float = 0.3


@dataclass(frozen=True)
class CameraConfig:
    """Forward RGB(+depth) camera; low resolution keeps CPU rendering cheap."""

    enabled: bool = True
    width: int = 96
    height: int = 72
    fov_deg: float = 70.0
    rate_hz: float = 2.0
    depth: bool = True


@dataclass(frozen=True)
class OdometryConfig:
    """Wheel odometry: encoder speeds with multiplicative noise, integrated at ``rate_hz``."""

    rate_hz: float = 50.0
    wheel_noise_std: float = 0.01


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

    def obstacle_distance(self, points: np.ndarray, *, mapped_only: bool = False) -> np.ndarray:
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
        if self.walls:
            xmin, ymin, xmax, ymax = self.bounds
            wall = np.minimum(np.minimum(pts[:, 0] - xmin, xmax - pts[:, 0]), np.minimum(pts[:, 1] - ymin, ymax - pts[:, 1]))
            best = np.minimum(best, np.maximum(wall, 0.0))
        return best

    def with_overrides(self, **changes: Any) -> "Scenario":
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

    def number(self, value: Any, where: str, *, positive: bool = False, minimum: float | None = None) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.fail(where, f"expected a finite number, got {value!r}")
        if positive and value <= 0:
            raise self.fail(where, f"must be > 0, got {value}")
        if minimum is not None and value < minimum:
            raise self.fail(where, f"must be >= {minimum}, got {value}")
        return float(value)

    def integer(self, value: Any, where: str, *, positive: bool = False) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(where, f"expected an integer, got {value!r}")
        if positive and value <= 0:
            raise self.fail(where, f"must be > 0, got {value}")
        return int(value)

    def vector(self, value: Any, where: str, n: int) -> tuple[float, ...]:
        if not isinstance(value, (list, tuple)) or len(value) != n:
            raise self.fail(where, f"expected a list of {n} numbers, got {value!r}")
        return tuple(self.number(v, f"{where}[{i}]") for i, v in enumerate(value))

    def boolean(self, value: Any, where: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(where, f"expected true/false, got {value!r}")
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
    doc = r.mapping(value, where, names)
    kwargs: dict[str, Any] = {}
    for key, raw in doc.items():
        default = getattr(defaults, key)
        at = f"{where}.{key}"
        if isinstance(default, bool):
            kwargs[key] = r.boolean(raw, at)
        elif isinstance(default, int):
            kwargs[key] = r.integer(raw, at, positive=True)
        else:
            kwargs[key] = r.number(raw, at, minimum=0.0)
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
        yaw=r.number(doc.get("yaw", 0.0), f"{where}.yaw"),
        height=r.number(doc.get("height", default_height), f"{where}.height", positive=True),
        mapped=r.boolean(doc.get("mapped", True), f"{where}.mapped"),
    )


def _parse_cylinder(r: _Reader, raw: Any, where: str, default_name: str) -> Cylinder:
    doc = r.mapping(raw, where, {"name", "center", "radius", "height", "mapped"})
    return Cylinder(
        name=str(doc.get("name", default_name)),
        center=r.vector(r.require(doc, "center", where), f"{where}.center", 2),  # type: ignore[arg-type]
        radius=r.number(r.require(doc, "radius", where), f"{where}.radius", positive=True),
        height=r.number(doc.get("height", 1.2), f"{where}.height", positive=True),
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
                               "robot", "goals", "goal_tolerance_m", "sensors", "description"})
    map_doc = r.mapping(r.require(top, "map", ""), "map", {"bounds", "walls"})
    bounds = r.vector(r.require(map_doc, "bounds", "map"), "map.bounds", 4)
    if bounds[2] <= bounds[0] or bounds[3] <= bounds[1]:
        raise r.fail("map.bounds", "expected [xmin, ymin, xmax, ymax] with xmax > xmin and ymax > ymin")
    walls = r.boolean(map_doc.get("walls", True), "map.walls")

    boxes = [_parse_box(r, b, f"shelves[{i}]", f"shelf_{i}", 2.0) for i, b in enumerate(_list(r, top.get("shelves"), "shelves"))]
    cylinders: list[Cylinder] = []
    for i, ob in enumerate(_list(r, top.get("obstacles"), "obstacles")):
        where = f"obstacles[{i}]"
        if not isinstance(ob, dict) or "type" not in ob:
            raise r.fail(f"{where}.type", "missing required field (box or cylinder)")
        body = {k: v for k, v in ob.items() if k != "type"}
        if ob["type"] == "box":
            boxes.append(_parse_box(r, body, where, f"box_{i}", 1.0))
        elif ob["type"] == "cylinder":
            cylinders.append(_parse_cylinder(r, body, where, f"cylinder_{i}"))
        else:
            raise r.fail(f"{where}.type", f"unknown obstacle type {ob['type']!r} (known: box, cylinder)")
    names = [o.name for o in (*boxes, *cylinders)]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise r.fail("shelves/obstacles", f"duplicate obstacle name {dupes[0]!r}")

    robot_doc = r.mapping(r.require(top, "robot", ""), "robot", {"model", "start"})
    model_name = robot_doc.get("model", "agv_diff_drive")
    if model_name not in ROBOT_MODELS:
        raise r.fail("robot.model", f"unknown robot model {model_name!r} (known: {', '.join(ROBOT_MODELS)})")
    model = ROBOT_MODELS[model_name]
    start = r.vector(r.require(robot_doc, "start", "robot"), "robot.start", 3)

    backend = top.get("backend", "mujoco")
    if backend not in KNOWN_BACKENDS:
        raise r.fail("backend", f"unknown backend {backend!r} (known: {', '.join(KNOWN_BACKENDS)})")

    goals_raw = _list(r, r.require(top, "goals", ""), "goals")
    if not goals_raw:
        raise r.fail("goals", "at least one goal is required")
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
        seed=r.integer(top.get("seed", 0), "seed"),
        backend=str(backend),
        time_limit_s=r.number(top.get("time_limit_s", 120.0), "time_limit_s", positive=True),
        bounds=bounds,  # type: ignore[arg-type]
        walls=walls,
        boxes=tuple(boxes),
        cylinders=tuple(cylinders),
        robot_model_name=str(model_name),
        robot=model,
        start=start,  # type: ignore[arg-type]
        goals=goals,  # type: ignore[arg-type]
        goal_tolerance_m=r.number(top.get("goal_tolerance_m", 0.25), "goal_tolerance_m", positive=True),
        sensors=sensors,
        source=source,
    )
    _check_geometry(r, scenario)
    return scenario


def _check_geometry(r: _Reader, sc: Scenario) -> None:
    """Contradictions a user can make: a goal inside a shelf, a start outside the map."""
    xmin, ymin, xmax, ymax = sc.bounds
    obstacles = (*sc.boxes, *sc.cylinders)

    def check_point(xy: tuple[float, float], where: str, what: str) -> None:
        if not (xmin < xy[0] < xmax and ymin < xy[1] < ymax):
            raise r.fail(where, f"{what} {list(xy)} is outside map.bounds {list(sc.bounds)}")
        for ob in obstacles:
            d = float(ob.distance(np.asarray([xy]))[0])
            if d == 0.0:
                kind = "shelf" if isinstance(ob, Box) else "obstacle"
                raise r.fail(where, f"{what} {list(xy)} is inside {kind} {ob.name!r}")
            if d < sc.robot.radius_m:
                raise r.fail(where, f"{what} {list(xy)} is {d:.2f} m from {ob.name!r}; the robot (radius {sc.robot.radius_m} m) does not fit")
        if sc.walls:
            wall = min(xy[0] - xmin, xmax - xy[0], xy[1] - ymin, ymax - xy[1])
            if wall < sc.robot.radius_m:
                raise r.fail(where, f"{what} {list(xy)} is {wall:.2f} m from the wall; the robot does not fit")

    check_point(sc.start[:2], "robot.start", "start")
    for i, g in enumerate(sc.goals):
        check_point(g, f"goals[{i}]", "goal")


def read_scenario_yaml(path: str | Path) -> Any:
    """The parsed YAML of a scenario file; a missing file or bad YAML is a :class:`ScenarioError`
    naming the file (and line/column)."""
    return read_yaml_file(path, ScenarioError, "scenario file")


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario YAML file; raises :class:`ScenarioError` on any problem."""
    return parse_scenario(read_scenario_yaml(path), str(path))
