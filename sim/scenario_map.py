"""A scenario as a map source: the static map a robot would have been given for this world.

Only obstacles marked ``mapped`` are drawn (the rest the robot must see with its lidar).
Walls are drawn as boxes inside a slightly larger grid: the planner keeps out of them
either way, and the scan localiser needs them in the map to match against. On a robot
the same role is played by a map_server file (:mod:`navkit.common.map_file`).
"""
from __future__ import annotations

from dataclasses import dataclass

from navkit.common.errors import ParameterError
from navkit.common.occupancy_grid import OccupancyGrid
from navkit.sim.scenario import Scenario, load_scenario

WALL_BORDER_M = 0.3
"""Map margin outside the walls, so walls are mapped shapes the localiser can match."""
MAX_GRID_CELLS = 25_000_000
"""Largest planning grid (a few float layers of it must fit in memory and A* must finish)."""


def scenario_grid(scenario: Scenario, resolution_m: float) -> OccupancyGrid:
    """The robot's static map of ``scenario`` at ``resolution_m`` (mapped obstacles and walls only)."""
    boxes = [(*b.center, *b.size, b.yaw) for b in scenario.boxes if b.mapped]
    circles = [(*c.center, c.radius) for c in scenario.cylinders if c.mapped]
    bounds = scenario.bounds
    if scenario.walls:
        xmin, ymin, xmax, ymax = bounds
        t, cx, cy = WALL_BORDER_M, (xmin + xmax) / 2.0, (ymin + ymax) / 2.0
        w, h = xmax - xmin + 2 * t, ymax - ymin + 2 * t
        boxes += [(cx, ymin - t / 2, w, t, 0.0), (cx, ymax + t / 2, w, t, 0.0),
                  (xmin - t / 2, cy, t, h, 0.0), (xmax + t / 2, cy, t, h, 0.0)]
        bounds = (xmin - t, ymin - t, xmax + t, ymax + t)
    xmin, ymin, xmax, ymax = bounds
    cells = ((xmax - xmin) / resolution_m + 1) * ((ymax - ymin) / resolution_m + 1)
    if cells > MAX_GRID_CELLS:
        raise ParameterError("global_planner", "resolution_m",
                             f"{resolution_m:g} m cells over the {xmax - xmin:g} x {ymax - ymin:g} m map of "
                             f"{scenario.source} make {cells:,.0f} cells (limit {MAX_GRID_CELLS:,}): choose a "
                             "coarser resolution")
    return OccupancyGrid.from_shapes(bounds, boxes, circles, resolution_m)


@dataclass(frozen=True)
class ScenarioMapConfig:
    """Plugin ``scenario`` of the ``map_source`` slot (parameter prefix ``map_source``)."""

    file: str = ""
    """Scenario YAML whose mapped obstacles form the map; empty: the scenario the node was given."""


class ScenarioMapSource:
    """:class:`~navkit.common.interfaces.MapSource` drawing a scenario's mapped obstacles."""

    def __init__(self, scenario: Scenario, resolution_m: float) -> None:
        self.scenario = scenario
        self.resolution_m = resolution_m

    @classmethod
    def from_file(cls, path: str, resolution_m: float) -> ScenarioMapSource:
        return cls(load_scenario(path), resolution_m)

    def load(self) -> OccupancyGrid:
        return scenario_grid(self.scenario, self.resolution_m)
