"""Scenario YAML: shipped files load; every bad input is a ScenarioError naming its field."""
from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from navkit.sim.scenario import Box, Cylinder, ScenarioError, load_scenario, parse_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"

BASE: dict[str, Any] = {
    "name": "tiny",
    "seed": 3,
    "map": {"bounds": [0.0, 0.0, 10.0, 6.0], "walls": True},
    "shelves": [{"name": "A", "center": [5.0, 3.0], "size": [4.0, 1.0]}],
    "obstacles": [{"type": "cylinder", "name": "post", "center": [8.0, 1.5], "radius": 0.3}],
    "robot": {"model": "agv_diff_drive", "start": [1.0, 1.0, 0.0]},
    "goals": [[9.0, 5.0], [2.0, 5.0]],
}


def _doc(**changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    for key, value in changes.items():
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = value
    return doc


def _error(doc: Any) -> ScenarioError:
    with pytest.raises(ScenarioError) as err:
        parse_scenario(doc, "bad.yaml")
    assert err.value.source == "bad.yaml"
    assert str(err.value).startswith("bad.yaml: ")
    return err.value


# ------------------------------------------------------------------ valid files


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_scenarios_load(path: Path) -> None:
    sc = load_scenario(path)
    raw = yaml.safe_load(path.read_text())
    assert sc.source == str(path)
    assert sc.name == raw["name"]
    assert sc.goals == tuple(tuple(float(v) for v in g) for g in raw["goals"])
    assert sc.start == tuple(float(v) for v in raw["robot"]["start"])
    assert len(sc.boxes) + len(sc.cylinders) == len(raw.get("shelves", [])) + len(raw.get("obstacles", []))
    # Start and goals have room for the robot.
    pts = np.array([sc.start[:2], *sc.goals])
    assert np.all(sc.obstacle_distance(pts) >= sc.robot.radius_m)


def test_demo_scenario_values() -> None:
    sc = load_scenario(SCENARIOS / "warehouse_demo.yaml")
    assert sc.backend == "mujoco" and sc.seed == 0 and sc.time_limit_s == 180.0
    assert sc.bounds == (0.0, 0.0, 20.0, 12.0)
    pallet = next(b for b in sc.boxes if b.name == "stray_pallet")
    assert pallet.mapped is False and pallet.height == 0.6
    assert [c.name for c in sc.cylinders] == ["pillar"]
    assert sc.sensors.camera.width == 96 and sc.sensors.lidar.num_rays == 180


def test_defaults_and_override() -> None:
    sc = parse_scenario(_doc(), "ok.yaml")
    assert sc.backend == "mujoco" and sc.goal_tolerance_m == 0.25 and sc.time_limit_s == 120.0
    assert sc.with_overrides(seed=11).seed == 11 and sc.seed == 3


# ------------------------------------------------------------------ bad input


def test_missing_goals() -> None:
    assert _error(_doc(goals=None)).field == "goals"
    err = _error(_doc(goals=[]))
    assert err.field == "goals" and "at least one" in err.problem


def test_missing_robot_start() -> None:
    err = _error(_doc(robot={"model": "agv_diff_drive"}))
    assert err.field == "robot.start" and "missing" in err.problem
    assert _error(_doc(robot=None)).field == "robot"


def test_missing_map() -> None:
    assert _error(_doc(map=None)).field == "map"
    assert _error(_doc(map={"walls": True})).field == "map.bounds"


def test_goal_inside_shelf_names_goal_index_and_shelf() -> None:
    err = _error(_doc(goals=[[9.0, 5.0], [5.5, 3.2]]))
    assert err.field == "goals[1]"
    assert "inside" in err.problem and "'A'" in err.problem


def test_goal_inside_rotated_box_is_found() -> None:
    shelves = [{"name": "diag", "center": [5.0, 3.0], "size": [4.0, 0.4], "yaw": math.pi / 4}]
    # (6.2, 4.2) lies on the rotated box's long axis, far outside its axis-aligned footprint in y.
    err = _error(_doc(shelves=shelves, goals=[[6.2, 4.2]]))
    assert err.field == "goals[0]" and "'diag'" in err.problem


def test_goal_inside_cylinder_names_it() -> None:
    err = _error(_doc(goals=[[8.1, 1.5]]))
    assert err.field == "goals[0]" and "'post'" in err.problem and "inside" in err.problem


def test_goal_too_close_to_shelf() -> None:
    # Shelf spans y in [2.5, 3.5]; 0.1 m below it the robot (radius 0.3) does not fit.
    err = _error(_doc(goals=[[5.0, 2.4]]))
    assert err.field == "goals[0]"
    assert "'A'" in err.problem and "does not fit" in err.problem
    # 0.35 m away it fits.
    parse_scenario(_doc(goals=[[5.0, 2.15]]), "ok.yaml")


def test_goal_too_close_to_wall() -> None:
    err = _error(_doc(goals=[[9.0, 5.9]]))
    assert err.field == "goals[0]" and "wall" in err.problem
    # Without walls the same goal is fine.
    parse_scenario(_doc(goals=[[9.0, 5.9]], map={"bounds": [0, 0, 10, 6], "walls": False}), "ok.yaml")


@pytest.mark.parametrize("start", [[-1.0, 1.0, 0.0], [1.0, 6.5, 0.0], [10.0, 3.0, 0.0]])
def test_start_outside_bounds(start: list[float]) -> None:
    err = _error(_doc(robot={"start": start}))
    assert err.field == "robot.start" and "outside" in err.problem


def test_start_inside_shelf() -> None:
    err = _error(_doc(robot={"start": [4.0, 3.0, 0.0]}))
    assert err.field == "robot.start" and "'A'" in err.problem


def test_unknown_robot_model() -> None:
    err = _error(_doc(robot={"model": "tank", "start": [1.0, 1.0, 0.0]}))
    assert err.field == "robot.model" and "'tank'" in err.problem and "agv_diff_drive" in err.problem


def test_unknown_backend() -> None:
    err = _error(_doc(backend="gazebo"))
    assert err.field == "backend" and "'gazebo'" in err.problem and "mujoco" in err.problem


@pytest.mark.parametrize("doc_change, field", [
    ({"colour": "red"}, "colour"),
    ({"map": {"bounds": [0, 0, 10, 6], "wals": False}}, "map.wals"),
    ({"robot": {"start": [1, 1, 0], "speed": 1}}, "robot.speed"),
    ({"sensors": {"lidar": {"num_rays": 90, "rays": 3}}}, "sensors.lidar.rays"),
    ({"sensors": {"radar": {}}}, "sensors.radar"),
    ({"shelves": [{"name": "A", "center": [5, 3], "size": [4, 1], "colour": 1}]}, "shelves[0].colour"),
])
def test_unknown_keys_are_named(doc_change: dict[str, Any], field: str) -> None:
    err = _error(_doc(**doc_change))
    assert err.field == field and "unknown field" in err.problem


@pytest.mark.parametrize("doc_change, field", [
    ({"seed": "zero"}, "seed"),
    ({"seed": 1.5}, "seed"),
    ({"time_limit_s": "long"}, "time_limit_s"),
    ({"time_limit_s": -1.0}, "time_limit_s"),
    ({"goal_tolerance_m": True}, "goal_tolerance_m"),
    ({"map": {"bounds": [0, 0, "ten", 6]}}, "map.bounds[2]"),
    ({"map": {"bounds": [0, 0, 10]}}, "map.bounds"),
    ({"map": {"bounds": [10, 0, 0, 6]}}, "map.bounds"),
    ({"map": {"bounds": [0, 0, 10, 6], "walls": "yes"}}, "map.walls"),
    ({"robot": {"start": [1.0, "1.0", 0.0]}}, "robot.start[1]"),
    ({"goals": [[9.0, 5.0], [2.0, ".5"]]}, "goals[1][1]"),
    ({"goals": [[9.0, 5.0], 3.0]}, "goals[1]"),
    ({"goals": "home"}, "goals"),
    ({"shelves": [{"name": "A", "center": [5, 3], "size": [4, "1"]}]}, "shelves[0].size[1]"),
    ({"shelves": [{"name": "A", "center": [5, 3], "size": [4, 0]}]}, "shelves[0].size"),
    ({"shelves": [{"name": "A", "center": [5, 3], "size": [4, 1], "yaw": "north"}]}, "shelves[0].yaw"),
    ({"shelves": [{"name": "A", "center": [5, 3]}]}, "shelves[0].size"),
    ({"shelves": {"name": "A"}}, "shelves"),
    ({"obstacles": [{"type": "cylinder", "center": [8, 1.5], "radius": "big"}]}, "obstacles[0].radius"),
    ({"obstacles": [{"type": "box", "center": [8, 1.5], "size": [1, 1], "mapped": "no"}]}, "obstacles[0].mapped"),
    ({"sensors": {"lidar": {"num_rays": 90.5}}}, "sensors.lidar.num_rays"),
    ({"sensors": {"lidar": {"range_max_m": "far"}}}, "sensors.lidar.range_max_m"),
    ({"sensors": {"camera": {"enabled": 1}}}, "sensors.camera.enabled"),
    ({"sensors": {"lidar": {"range_min_m": 5.0, "range_max_m": 4.0}}}, "sensors.lidar.range_max_m"),
])
def test_bad_types_and_values_name_the_field(doc_change: dict[str, Any], field: str) -> None:
    assert _error(_doc(**doc_change)).field == field


def test_top_level_not_a_mapping() -> None:
    assert _error([1, 2]).field == ""
    assert _error(None).field == "map"  # an empty file is missing everything, map first


def test_duplicate_obstacle_names() -> None:
    doc = _doc(obstacles=[{"type": "box", "name": "A", "center": [8.0, 1.5], "size": [0.5, 0.5]}])
    err = _error(doc)
    assert err.field == "shelves/obstacles" and "'A'" in err.problem


def test_unknown_and_missing_obstacle_type() -> None:
    err = _error(_doc(obstacles=[{"type": "cone", "center": [8.0, 1.5], "radius": 0.3}]))
    assert err.field == "obstacles[0].type" and "'cone'" in err.problem
    err = _error(_doc(obstacles=[{"center": [8.0, 1.5], "radius": 0.3}]))
    assert err.field == "obstacles[0].type"


# ------------------------------------------------------------------ files


def test_malformed_yaml_names_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nmap: {bounds: [0, 0, 10, 6]\nrobot: {start: [1, 1, 0]}\ngoals: [[2, 2]]\n")
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    assert err.value.source == str(path)
    assert err.value.field.startswith("line ")
    line = int(err.value.field.split()[1].rstrip(","))
    assert 2 <= line <= 3
    assert "malformed YAML" in err.value.problem


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError) as err:
        load_scenario(tmp_path / "ghost.yaml")
    assert err.value.field == "<file>" and "ghost.yaml" in str(err.value)


def test_load_from_file_keeps_source(tmp_path: Path) -> None:
    path = tmp_path / "named.yaml"
    doc = _doc(name=None)
    path.write_text(yaml.safe_dump(doc))
    sc = load_scenario(path)
    assert sc.source == str(path) and sc.name == "named"
    doc["goals"] = [[5.0, 3.0]]
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    assert err.value.source == str(path) and err.value.field == "goals[0]"


# ------------------------------------------------------------------ obstacle_distance


def _segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    ab = b - a
    t = np.clip(np.dot(p - a, ab) / np.dot(ab, ab), 0.0, 1.0)
    return float(np.linalg.norm(p - (a + t * ab)))


def _point_in_polygon(p: np.ndarray, corners: np.ndarray) -> bool:
    # Convex polygon, counter-clockwise corners: inside when left of every edge.
    for i in range(len(corners)):
        a, b = corners[i], corners[(i + 1) % len(corners)]
        cross = (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])
        if cross < 0:
            return False
    return True


def _brute_box(p: np.ndarray, box: Box) -> float:
    c, s = math.cos(box.yaw), math.sin(box.yaw)
    hx, hy = box.size[0] / 2, box.size[1] / 2
    local = np.array([[-hx, -hy], [hx, -hy], [hx, hy], [-hx, hy]])
    corners = local @ np.array([[c, s], [-s, c]]) + np.asarray(box.center)
    if _point_in_polygon(p, corners):
        return 0.0
    return min(_segment_distance(p, corners[i], corners[(i + 1) % 4]) for i in range(4))


def _brute_cylinder(p: np.ndarray, cyl: Cylinder) -> float:
    return max(float(np.linalg.norm(p - np.asarray(cyl.center))) - cyl.radius, 0.0)


def _brute(sc, p: np.ndarray, mapped_only: bool) -> float:
    best = math.inf
    for b in sc.boxes:
        if b.mapped or not mapped_only:
            best = min(best, _brute_box(p, b))
    for c in sc.cylinders:
        if c.mapped or not mapped_only:
            best = min(best, _brute_cylinder(p, c))
    if sc.walls:
        xmin, ymin, xmax, ymax = sc.bounds
        best = min(best, max(min(p[0] - xmin, xmax - p[0], p[1] - ymin, ymax - p[1]), 0.0))
    return best


GEOMETRY: dict[str, Any] = {
    "name": "geometry",
    "map": {"bounds": [-2.0, -1.0, 12.0, 9.0], "walls": True},
    "shelves": [
        {"name": "straight", "center": [2.0, 2.0], "size": [3.0, 0.8]},
        {"name": "rotated", "center": [7.0, 3.0], "size": [2.5, 0.6], "yaw": 0.7},
        {"name": "steep", "center": [3.0, 6.5], "size": [1.0, 2.0], "yaw": -2.3},
    ],
    "obstacles": [
        {"type": "cylinder", "name": "pillar", "center": [9.5, 6.5], "radius": 0.4},
        {"type": "cylinder", "name": "ghost_post", "center": [5.0, 7.0], "radius": 0.6, "mapped": False},
        {"type": "box", "name": "ghost_crate", "center": [6.0, 5.2], "size": [1.0, 0.7], "yaw": 0.3,
         "mapped": False},
    ],
    "robot": {"start": [0.0, 0.0, 0.0]},
    "goals": [[10.5, 1.0]],
}


@pytest.mark.parametrize("walls", [True, False])
@pytest.mark.parametrize("mapped_only", [False, True])
def test_obstacle_distance_matches_brute_force(walls: bool, mapped_only: bool) -> None:
    doc = copy.deepcopy(GEOMETRY)
    doc["map"]["walls"] = walls
    sc = parse_scenario(doc, "geometry.yaml")
    rng = np.random.default_rng(1234)
    # Random points over (and a little beyond) the map, plus points clustered near each obstacle.
    pts = [rng.uniform([-2.5, -1.5], [12.5, 9.5], size=(400, 2))]
    for ob in (*sc.boxes, *sc.cylinders):
        pts.append(np.asarray(ob.center) + rng.normal(0.0, 0.8, size=(60, 2)))
    points = np.concatenate(pts)
    got = sc.obstacle_distance(points, mapped_only=mapped_only)
    want = np.array([_brute(sc, p, mapped_only) for p in points])
    np.testing.assert_allclose(got, want, atol=1e-9)
    # The sample covers inside points, near points and far points.
    assert np.sum(want == 0.0) > 20 and np.sum((want > 0) & (want < 0.3)) > 20 and want.max() > 1.5


def test_obstacle_distance_mapped_only_ignores_unmapped() -> None:
    sc = parse_scenario(copy.deepcopy(GEOMETRY), "geometry.yaml")
    inside_ghost = np.array([[5.0, 7.0], [6.0, 5.2]])
    assert np.all(sc.obstacle_distance(inside_ghost) == 0.0)
    assert np.all(sc.obstacle_distance(inside_ghost, mapped_only=True) > 0.3)


def test_single_shape_distances() -> None:
    box = Box("b", center=(1.0, 2.0), size=(2.0, 1.0), yaw=math.pi / 2)
    # Rotated by 90 degrees: the long side now runs along y.
    np.testing.assert_allclose(box.distance(np.array([[1.0, 3.5], [2.0, 2.0], [1.0, 2.0]])), [0.5, 0.5, 0.0])
    cyl = Cylinder("c", center=(0.0, 0.0), radius=1.0)
    np.testing.assert_allclose(cyl.distance(np.array([[3.0, 4.0], [0.1, 0.0]])), [4.0, 0.0])


# ------------------------------------------------------------------ bounds that protect memory and CPU (issue 6)


@pytest.mark.parametrize(("changes", "field", "problem"), [
    ({"seed": -1}, "seed", ">= 0"),
    ({"seed": 10**400}, "seed", "<= 9,223,372,036,854,775,807"),
    ({"time_limit_s": 0}, "time_limit_s", "> 0"),
    ({"time_limit_s": 10**400}, "time_limit_s", "too large"),
    ({"time_limit_s": 1e9}, "time_limit_s", "<= 86400"),
    ({"goal_tolerance_m": 1e6}, "goal_tolerance_m", "<= 2"),
    ({"map": {"bounds": [0, 0, 900, 6]}}, "map.bounds", "exceeds the 200 m limit"),
    ({"map": {"bounds": [0, 0, 20000, 6]}}, "map.bounds[2]", "<= 1000"),
    ({"sensors": {"lidar": {"num_rays": 50_000_000}}}, "sensors.lidar.num_rays", "<= 10,000"),
    ({"sensors": {"lidar": {"num_rays": 5e7}}}, "sensors.lidar.num_rays", "expected an integer"),
    ({"sensors": {"lidar": {"fov_deg": 0}}}, "sensors.lidar.fov_deg", "> 0"),
    ({"sensors": {"lidar": {"rate_hz": 0}}}, "sensors.lidar.rate_hz", "> 0"),
    ({"sensors": {"camera": {"width": 100_000}}}, "sensors.camera.width", "<= 1,920"),
    ({"sensors": {"odometry": {"rate_hz": 0}}}, "sensors.odometry.rate_hz", ">= 1"),
    ({"shelves": [{"center": [5, 3], "size": [1, 1]}] * 2001}, "shelves/obstacles", "limit of 2000"),
    ({"goals": [[1.1, 1.1]]}, "goals[0]", "reached without moving"),
    ({"goals": [[9.0, 5.0], [9.1, 5.0]]}, "goals[1]", "within goal_tolerance_m"),
    ({"obstacles": [{"type": "cylinder", "center": [8, 1.5], "radius": "x" * 10_000}]}, "obstacles[0].radius",
     "expected a finite number"),
])
def test_out_of_bound_values_are_named_with_their_bound(changes: dict[str, Any], field: str, problem: str) -> None:
    err = _error(_doc(**changes))
    assert err.field == field
    assert problem in err.problem
    assert len(str(err)) < 300


def test_scenario_file_with_duplicate_keys_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text(yaml.safe_dump(BASE, sort_keys=False) + "seed: 4\n")
    with pytest.raises(ScenarioError, match="duplicate key 'seed'"):
        load_scenario(path)
