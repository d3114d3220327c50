"""navkit.planning: occupancy grids, grid A*, the global planner and the goal sequencer."""
from navkit.planning.astar import astar
from navkit.planning.global_planner import GlobalPlanner, GlobalPlannerConfig, NoPathFound
from navkit.planning.goal_sequencer import GoalSequencer, GoalSequencerConfig
from navkit.planning.occupancy_grid import OccupancyGrid

__all__ = [
    "GlobalPlanner",
    "GlobalPlannerConfig",
    "GoalSequencer",
    "GoalSequencerConfig",
    "NoPathFound",
    "OccupancyGrid",
    "astar",
]
