"""Procedural warehouse layouts from a seed: shelves in rows, aisles, unmapped clutter, a start and a goal.

Exploration only matters where the goal is not simply ahead, so every layout belongs to a
*family*:

* ``open``: the goal is in line of sight from the start (a policy can head for it);
* ``behind_shelves``: a shelf hides the goal from the start (the robot must explore
  round a row of racks, the case Yin et al.'s RND claim is about);
* ``mixed``: either, drawn per seed (what training uses).

A layout is an ordinary :class:`~navkit.sim.scenario.Scenario` (built through the same
validating parser as a YAML file), so the vectorised trainer's simulator
(:mod:`navkit.sim.vector_agv`) and the MuJoCo backend run exactly the same geometry. Every
layout is checked solvable: start and goal are connected on a grid inflated by the robot's
radius plus a margin. Seeds from :data:`HELD_OUT_SEED_BASE` on are never used in training.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from navkit.sim.scenario import Scenario, parse_scenario

FAMILIES = ("open", "behind_shelves", "mixed")
HELD_OUT_SEED_BASE = 1_000_000
"""Evaluation layouts use seeds from here up; training draws below it."""
MAX_TRIES = 200


@dataclass(frozen=True)
class LayoutConfig:
    """Size and contents of generated warehouses."""

    width_m: tuple[float, float] = (10.0, 14.0)
    """Range the floor's width is drawn from."""
    height_m: tuple[float, float] = (8.0, 11.0)
    rows: tuple[int, int] = (2, 3)
    """Shelf rows (along x), each broken by cross aisles."""
    shelf_depth_m: float = 0.8
    aisle_min_m: float = 1.6
    """Narrowest aisle between rows (a 0.6 m robot passes with room to turn)."""
    cross_aisle_m: tuple[float, float] = (1.4, 2.2)
    clutter: tuple[int, int] = (0, 3)
    """Unmapped obstacles (pallets, barrels) dropped in the aisles."""
    min_goal_distance_m: float = 4.0
    clearance_m: float = 0.45
    """Free space around start and goal beyond the robot's radius."""
    time_limit_s: float = 40.0
    lidar_rays: int = 72
    lidar_range_m: float = 6.0


def _free(sc: Scenario, pts: np.ndarray, margin: float) -> np.ndarray:
    return sc.obstacle_distance(pts) >= sc.robot.radius_m + margin


def line_of_sight(sc: Scenario, a: tuple[float, float], b: tuple[float, float], step: float = 0.05) -> bool:
    """No shelf or obstacle between ``a`` and ``b`` (sampled every ``step`` m)."""
    n = max(2, int(math.hypot(b[0] - a[0], b[1] - a[1]) / step))
    t = np.linspace(0.0, 1.0, n)[:, None]
    pts = np.asarray(a) * (1 - t) + np.asarray(b) * t
    return bool((sc.obstacle_distance(pts, ignore_walls=True) > 1e-6).all())


def connected(sc: Scenario, a: tuple[float, float], b: tuple[float, float], margin: float = 0.05,
              cell: float = 0.1) -> bool:
    """A path for the robot's disc (radius + ``margin``) exists from ``a`` to ``b`` (4-connected grid BFS)."""
    x0, y0, x1, y1 = sc.bounds
    nx, ny = int(math.ceil((x1 - x0) / cell)), int(math.ceil((y1 - y0) / cell))
    xs, ys = x0 + (np.arange(nx) + 0.5) * cell, y0 + (np.arange(ny) + 0.5) * cell
    gx, gy = np.meshgrid(xs, ys, indexing="ij")
    free = _free(sc, np.stack([gx.ravel(), gy.ravel()], axis=1), margin).reshape(nx, ny)

    def index(p: tuple[float, float]) -> tuple[int, int]:
        return (min(nx - 1, max(0, int((p[0] - x0) / cell))), min(ny - 1, max(0, int((p[1] - y0) / cell))))

    start, goal = index(a), index(b)
    if not free[start] or not free[goal]:
        return False
    seen = np.zeros_like(free)
    seen[start] = True
    queue = deque([start])
    while queue:
        i, j = queue.popleft()
        if (i, j) == goal:
            return True
        for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            u, v = i + di, j + dj
            if 0 <= u < nx and 0 <= v < ny and free[u, v] and not seen[u, v]:
                seen[u, v] = True
                queue.append((u, v))
    return False


def _shelves(rng: np.random.Generator, cfg: LayoutConfig, w: float, h: float) -> list[dict[str, Any]]:
    rows = int(rng.integers(cfg.rows[0], cfg.rows[1] + 1))
    # Row centres spread over the height with at least aisle_min between rows and walls.
    pitch = (h - cfg.shelf_depth_m) / (rows + 1)
    shelves = []
    for r in range(rows):
        y = cfg.shelf_depth_m / 2 + pitch * (r + 1) + rng.uniform(-0.15, 0.15) * pitch
        x = rng.uniform(0.8, 2.0)  # leave an end aisle at the left wall
        k = 0
        while True:
            length = rng.uniform(2.0, 4.5)
            if x + length > w - 0.8:
                break
            shelves.append({"name": f"R{r}S{k}", "center": [round(x + length / 2, 3), round(y, 3)],
                            "size": [round(length, 3), cfg.shelf_depth_m]})
            x += length + rng.uniform(*cfg.cross_aisle_m)
            k += 1
    return shelves


def generate(seed: int, family: str = "mixed", config: LayoutConfig | None = None) -> Scenario:
    """A solvable warehouse for ``seed`` of ``family`` (deterministic: the same seed, the same layout)."""
    if family not in FAMILIES:
        raise ValueError(f"family: expected one of {', '.join(FAMILIES)}, got {family!r}")
    cfg = config or LayoutConfig()
    rng = np.random.default_rng([seed, FAMILIES.index(family)])
    want_hidden = {"open": False, "behind_shelves": True}.get(family, bool(rng.random() < 0.5))
    for _ in range(MAX_TRIES):
        w, h = rng.uniform(*cfg.width_m), rng.uniform(*cfg.height_m)
        doc: dict[str, Any] = {
            "name": f"warehouse_{family}_{seed}", "seed": int(seed) % (2**63), "time_limit_s": cfg.time_limit_s,
            "map": {"bounds": [0.0, 0.0, round(w, 3), round(h, 3)], "walls": True},
            "shelves": _shelves(rng, cfg, w, h), "obstacles": [],
            # Placeholders in the corner (always free: shelves and clutter keep 0.8 m from the walls).
            "robot": {"model": "agv_diff_drive", "start": [0.4, 0.4, 0.0]}, "goals": [[0.4, 0.8]],
            "goal_tolerance_m": 0.3,
            "sensors": {"lidar": {"num_rays": cfg.lidar_rays, "range_max_m": cfg.lidar_range_m, "noise_std_m": 0.0},
                        "camera": {"enabled": False}}}
        base = parse_scenario(doc, f"<layout {family} {seed}>")
        free_pts = rng.uniform([0.5, 0.5], [w - 0.5, h - 0.5], size=(400, 2))
        free_pts = free_pts[_free(base, free_pts, cfg.clearance_m)]
        for k in range(int(rng.integers(cfg.clutter[0], cfg.clutter[1] + 1))):
            c = rng.uniform([1.4, 1.4], [w - 0.8, h - 0.8])  # clear of the placeholder corner
            if base.obstacle_distance(c[None])[0] < 0.5:
                continue
            if rng.random() < 0.5:
                doc["obstacles"].append({"type": "cylinder", "name": f"barrel_{k}", "center": c.round(3).tolist(),
                                         "radius": round(float(rng.uniform(0.2, 0.35)), 3), "mapped": False})
            else:
                doc["obstacles"].append({"type": "box", "name": f"pallet_{k}", "center": c.round(3).tolist(),
                                         "size": [0.8, 0.8], "height": 0.6, "mapped": False})
        base = parse_scenario(doc, f"<layout {family} {seed}>")
        free_pts = free_pts[_free(base, free_pts, cfg.clearance_m)]
        if len(free_pts) < 2:
            continue
        i, j = rng.choice(len(free_pts), size=2, replace=False)
        start, goal = tuple(free_pts[i].round(3)), tuple(free_pts[j].round(3))
        if math.dist(start, goal) < cfg.min_goal_distance_m:
            continue
        if line_of_sight(base, start, goal) == want_hidden:
            continue
        if not connected(base, start, goal):
            continue
        doc["robot"]["start"] = [start[0], start[1], round(float(rng.uniform(-math.pi, math.pi)), 4)]
        doc["goals"] = [list(goal)]
        return parse_scenario(doc, f"<layout {family} {seed}>")
    raise RuntimeError(f"no solvable {family} layout found for seed {seed} in {MAX_TRIES} tries")


def as_yaml_doc(sc: Scenario) -> dict[str, Any]:
    """The layout as a scenario-file mapping (``navkit run`` can replay it after ``yaml.safe_dump``)."""
    return {
        "name": sc.name, "seed": sc.seed, "time_limit_s": sc.time_limit_s,
        "map": {"bounds": list(sc.bounds), "walls": sc.walls},
        "shelves": [{"name": b.name, "center": list(b.center), "size": list(b.size)} for b in sc.boxes if b.mapped],
        "obstacles": ([{"type": "box", "name": b.name, "center": list(b.center), "size": list(b.size),
                        "height": b.height, "mapped": b.mapped} for b in sc.boxes if not b.mapped]
                      + [{"type": "cylinder", "name": c.name, "center": list(c.center), "radius": c.radius,
                          "mapped": c.mapped} for c in sc.cylinders]),
        "robot": {"model": sc.robot_model_name, "start": list(sc.start)},
        "goals": [list(g) for g in sc.goals], "goal_tolerance_m": sc.goal_tolerance_m,
        "sensors": {"lidar": {"num_rays": sc.sensors.lidar.num_rays, "range_max_m": sc.sensors.lidar.range_max_m,
                              "noise_std_m": sc.sensors.lidar.noise_std_m},
                    "camera": {"enabled": sc.sensors.camera.enabled}},
    }


def tour(seed: int, family: str = "mixed", goals: int = 3, config: LayoutConfig | None = None) -> Scenario:
    """A layout with ``goals`` goals visited in order (each ≥ ``min_goal_distance_m`` from the one before and
    reachable from it): the generated warehouse as a multi-stop scenario for ``navkit run``."""
    cfg = config or LayoutConfig()
    sc = generate(seed, family, cfg)
    rng = np.random.default_rng([seed, 7])
    w, h = sc.bounds[2], sc.bounds[3]
    stops = [tuple(sc.goals[0])]
    for _ in range(MAX_TRIES * 5):
        if len(stops) == goals:
            break
        p = tuple(rng.uniform([0.5, 0.5], [w - 0.5, h - 0.5]).round(3))
        if not _free(sc, np.array([p]), cfg.clearance_m)[0] or math.dist(p, stops[-1]) < cfg.min_goal_distance_m:
            continue
        if connected(sc, stops[-1], p):
            stops.append(p)
    doc = as_yaml_doc(sc)
    doc["goals"] = [list(p) for p in stops]
    doc["time_limit_s"] = cfg.time_limit_s * len(stops)
    return parse_scenario(doc, f"<tour {family} {seed}>")
