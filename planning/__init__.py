"""navkit.planning: global planners (grid A*) and the goal sequencer.

Planners implement :class:`navkit.common.interfaces.GlobalPlanner` and are chosen by name
(``global_planner.plugin``); the map they plan on comes from a map source, never a simulator.
"""
from navkit.planning.astar import astar
from navkit.planning.global_planner import GlobalPlannerConfig, GridAstarPlanner, NoPathFound
from navkit.planning.goal_sequencer import GoalSequencer, GoalSequencerConfig

__all__ = [
    "GlobalPlannerConfig",
    "GoalSequencer",
    "GoalSequencerConfig",
    "GridAstarPlanner",
    "NoPathFound",
    "astar",
]
