"""A map that arrives at run time (``nav_msgs/OccupancyGrid`` on ``/map``), as map_server or a SLAM node serves it.

The planner node subscribes to the topic itself (the message is a ROS type; this room has no
ROS), converts the grid and hands it to :class:`GivenMapSource`; everything downstream (the
localiser, the planner plugin) is the same as for a map file. In-process runs have no ROS
graph, so they refuse this source with a line saying which sources they can use.
"""
from __future__ import annotations

from dataclasses import dataclass

from navkit.common.occupancy_grid import OccupancyGrid


@dataclass(frozen=True)
class MapTopicConfig:
    """Plugin ``map_topic`` of the ``map_source`` slot (parameter prefix ``map_source``)."""

    topic: str = "/map"
    """The nav_msgs/OccupancyGrid topic (latched: transient local, as map_server publishes it)."""
    unknown_is_occupied: bool = True
    """Plan unknown cells (-1) as occupied (safe) or as free."""
    occupied_threshold: int = 65
    """Cells with occupancy >= this (0..100) are obstacles; map_server's default occupied_thresh is 0.65."""

    def __post_init__(self) -> None:
        if not self.topic:
            raise ValueError("topic: must not be empty")
        if not 1 <= self.occupied_threshold <= 100:
            raise ValueError(f"occupied_threshold: must be in [1, 100], got {self.occupied_threshold}")


class GivenMapSource:
    """A :class:`~navkit.common.interfaces.MapSource` over a grid someone already has."""

    def __init__(self, grid: OccupancyGrid) -> None:
        self.grid = grid

    def load(self) -> OccupancyGrid:
        return self.grid
