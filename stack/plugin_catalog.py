"""The built-in plugins: which name fills which slot, with which parameters.

This is the one place that knows every implementation (it is in the composition room, so
it may); the rooms below only implement protocols. Factories import their module when a
plugin is built, so choosing ``pure_pursuit`` never loads torch and ``kinematic`` never
loads MuJoCo. Third-party packages add plugins through the ``navkit.plugins`` entry-point
group: each entry point names a function ``register(registry)``.

To add your own (see docs/ARCHITECTURE.md): write a class implementing the slot's protocol
and a config dataclass, then ``registry.register(Plugin(slot, name, factory, config))``.
"""
from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from typing import Any

from navkit.common.plugins import Plugin, PluginRegistry, Slot

SLOTS = (
    Slot("robot_backend", "navkit.common.interfaces:RobotBackend", default="mujoco"),
    Slot("swarm_backend", "navkit.common.interfaces:SwarmBackend", default="mujoco"),
    Slot("map_source", "navkit.common.interfaces:MapSource", default="scenario"),
    Slot("global_planner", "navkit.common.interfaces:GlobalPlanner", default="grid_astar"),
    Slot("local_controller", "navkit.common.interfaces:LocalController", default="pure_pursuit"),
    Slot("safety_filter", "navkit.common.interfaces:SafetyFilter", default="cbf_lidar"),
    Slot("cbf_policy", "navkit.common.interfaces:CbfParameterPolicy", default="online_cbf_gnn"),
    Slot("image_encoder", "navkit.common.interfaces:ImageEncoder"),
    Slot("world_model", "navkit.common.interfaces:WorldModel"),
)
ENTRY_POINT_GROUP = "navkit.plugins"


# ------------------------------------------------------------------------------------- factories
# Small adapters from (config, context) to each implementation's constructor.


def _mujoco_robot(config: None, *, scenario: Any, cmd_timeout_s: float) -> Any:
    from navkit.sim.mujoco_backend import MujocoRobot

    return MujocoRobot(scenario, cmd_timeout_s=cmd_timeout_s)


def _pybullet_robot(config: None, *, scenario: Any, cmd_timeout_s: float) -> Any:
    from navkit.sim.pybullet_backend import PybulletRobot

    return PybulletRobot(scenario, cmd_timeout_s=cmd_timeout_s)


def _serial_base(config: Any, *, scenario: Any = None, cmd_timeout_s: float) -> Any:
    """A real base: the scenario (if any) is ignored; the bridge's watchdog time wins over the section's."""
    from dataclasses import replace

    from navkit.hardware.serial_base import SerialBase, SerialBaseConfig

    return SerialBase(replace(config or SerialBaseConfig(), cmd_timeout_s=cmd_timeout_s))


def _mujoco_swarm(config: None, *, scenario: Any) -> Any:
    from navkit.sim.mujoco_swarm import MujocoSwarm

    return MujocoSwarm(scenario)


def _kinematic_swarm(config: None, *, scenario: Any) -> Any:
    from navkit.sim.kinematic_swarm import KinematicSwarm

    return KinematicSwarm([scenario])


def _scenario_map(config: Any, *, resolution_m: float, scenario: Any = None) -> Any:
    from navkit.sim.scenario_map import ScenarioMapSource

    if config is not None and config.file:
        return ScenarioMapSource.from_file(config.file, resolution_m)
    if scenario is None:
        from navkit.common.errors import ParameterError

        raise ParameterError("map_source", "file", "the scenario map source needs a scenario (map_source.file)")
    return ScenarioMapSource(scenario, resolution_m)


def _map_file(config: Any, *, resolution_m: float, scenario: Any = None) -> Any:
    from navkit.common.map_file import MapFileSource

    return MapFileSource(config)


def _map_topic(config: Any, *, resolution_m: float, scenario: Any = None, grid: Any = None) -> Any:
    from navkit.common.map_topic import GivenMapSource

    if grid is None:
        from navkit.common.errors import ParameterError

        raise ParameterError("map_source", "plugin", "map_topic takes its map from a ROS 2 topic (the planner node); "
                             "in-process runs use map_source.plugin: scenario or map_file")
    return GivenMapSource(grid)


def _grid_astar(config: Any, *, grid: Any) -> Any:
    from dataclasses import replace

    from navkit.planning.global_planner import GridAstarPlanner

    # The map fixes the resolution: a planner config cannot disagree with the grid it plans on.
    return GridAstarPlanner(replace(config, resolution_m=grid.resolution), grid)


def _pure_pursuit(config: Any) -> Any:
    from navkit.control.pure_pursuit import PurePursuit

    return PurePursuit(config)


def _rl_policy(config: Any) -> Any:
    from navkit.control.learned_controller import LearnedController
    from navkit.control.shipped import SHIPPED_AGV_POLICY

    return LearnedController(config, SHIPPED_AGV_POLICY)


def _world_model_mpc(config: Any) -> Any:
    """Load the run the parameter file names and drive with it. The config already refused a run path that is
    not a folder (naming the file); an empty run or a missing or foreign checkpoint is one line naming
    ``local_controller.*``."""
    from navkit.common.errors import ParameterError
    from navkit.planning.wm_controller import WorldModelMpcController
    from navkit.stack import world_model_loader

    if not config.run:
        raise ParameterError("world_model_mpc", "local_controller.run",
                             "empty: name the folder of a navkit wm train run")
    try:
        loaded = world_model_loader.load_model(config.run, config.checkpoint, config.proprio_weight)
        return WorldModelMpcController(config, loaded)
    except world_model_loader.WorldModelLoadError as exc:
        if exc.field not in ("run", "checkpoint"):  # a field inside the checkpoint: named as the loader named it
            raise
        raise world_model_loader.WorldModelLoadError(exc.source, f"local_controller.{exc.field}",
                                                     exc.problem) from None


def _cbf_lidar(config: Any) -> Any:
    from navkit.control.cbf_filter import CbfSafetyFilter

    return CbfSafetyFilter(config)


@dataclass(frozen=True)
class FixedAlphaConfig:
    """Plugin ``fixed`` of the ``cbf_policy`` slot: every robot uses the same gain."""

    alpha: float = 1.0
    """Class-K gain of every robot's CBF-QP."""

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha <= 1000.0:
            raise ValueError(f"alpha: must be in (0, 1000], got {self.alpha}")


@dataclass(frozen=True)
class PolicyFileConfig:
    """Plugin ``online_cbf_gnn`` of the ``cbf_policy`` slot: a trained policy checkpoint."""

    path: str = ""
    """Checkpoint file (``torch.load(weights_only=True)``); empty: the policy shipped with navkit."""


def _fixed_alpha(config: FixedAlphaConfig) -> Any:
    from navkit.control.swarm_controller import FixedAlpha

    return FixedAlpha(config.alpha)


def _priority_rule(config: Any) -> Any:
    return config  # PriorityRule is its own config: the dataclass holds the rule's parameters


def _online_cbf_gnn(config: PolicyFileConfig) -> Any:
    from navkit.control.online_cbf_policy import OnlineCbfPolicy
    from navkit.control.shipped import SHIPPED_ONLINE_CBF_POLICY

    return OnlineCbfPolicy.load(config.path or SHIPPED_ONLINE_CBF_POLICY)


BUILTIN_PLUGINS = (
    Plugin("robot_backend", "mujoco", _mujoco_robot, None, "diff-drive AGV in MuJoCo (lidar, camera, wheel odometry)"),
    Plugin("robot_backend", "pybullet", _pybullet_robot, None,
           "the same AGV and world in PyBullet (second simulator, for cross-checking MuJoCo)"),
    Plugin("robot_backend", "serial_base", _serial_base, "navkit.hardware.serial_base:SerialBaseConfig",
           "a differential base on a RoboClaw motor controller over a serial line (packet serial, CRC16)"),
    Plugin("swarm_backend", "mujoco", _mujoco_swarm, None, "robot team as MuJoCo discs, moving obstacles as mocaps"),
    Plugin("swarm_backend", "kinematic", _kinematic_swarm, None, "vectorised single-integrator/unicycle kinematics"),
    Plugin("map_source", "scenario", _scenario_map, "navkit.sim.scenario_map:ScenarioMapConfig",
           "the mapped obstacles of a scenario file (simulation)"),
    Plugin("map_source", "map_file", _map_file, "navkit.common.map_file:MapFileConfig",
           "a map_server YAML + PGM map (a robot's saved map)"),
    Plugin("map_source", "map_topic", _map_topic, "navkit.common.map_topic:MapTopicConfig",
           "nav_msgs/OccupancyGrid from /map (map_server, SLAM); ROS 2 planner node only"),
    Plugin("image_encoder", "dinov2", "navkit.perception.image_encoder:DinoEncoder",
           "navkit.perception.image_encoder:DinoEncoderConfig",
           "DINOv2 ViT (Oquab et al. 2023): patch tokens + normalised CLS; strict loading of the released .pth"),
    Plugin("global_planner", "grid_astar", _grid_astar, "navkit.planning.global_planner:GlobalPlannerConfig",
           "A* on the occupancy grid with a clearance cost; replans when lidar blocks the path"),
    Plugin("local_controller", "pure_pursuit", _pure_pursuit, "navkit.control.pure_pursuit:PurePursuitConfig",
           "pure pursuit along the global path"),
    Plugin("local_controller", "rl_policy", _rl_policy, "navkit.control.learned_controller:LearnedControllerConfig",
           "a learned policy from lidar, odometry and the goal (navkit train rnd-agv)"),
    Plugin("local_controller", "world_model_mpc", _world_model_mpc, "navkit.planning.wm_controller:WorldModelMpcConfig",
           "DINO-WM MPC towards a goal image from the front camera (a navkit wm train run; Zhou et al. 2025)"),
    Plugin("safety_filter", "cbf_lidar", _cbf_lidar, "navkit.control.cbf_filter:CbfFilterConfig",
           "CBF-QP on lidar points (exact 2-D QP), brakes when infeasible"),
    Plugin("cbf_policy", "fixed", _fixed_alpha, FixedAlphaConfig, "one fixed class-K gain for every robot"),
    Plugin("cbf_policy", "priority_rule", _priority_rule, "navkit.control.right_of_way:PriorityRule",
           "hand-written right of way: the highest token nearby goes, the others yield"),
    Plugin("cbf_policy", "online_cbf_gnn", _online_cbf_gnn, PolicyFileConfig,
           "GNN that picks each robot's gain from what it senses (Gao, Yang & Prorok 2023)"),
)


def default_registry(*, entry_points: bool = True) -> PluginRegistry:
    """A registry with every slot, the built-in plugins and (optionally) installed entry-point plugins."""
    registry = PluginRegistry(SLOTS)
    for plugin in BUILTIN_PLUGINS:
        registry.register(plugin)
    if entry_points:
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            ep.load()(registry)
    return registry
