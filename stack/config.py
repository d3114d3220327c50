"""The navigation stack's configuration, read from one ROS 2 parameter file.

Both wirings call :func:`load_stack_config` (the in-process runner) or the per-node
``*_from_params`` functions below (the ROS 2 nodes, on the parameters rclpy received),
so a parameter flows the same way everywhere:

    launch file -> ``ros_ws/config/navkit.params.yaml`` -> these dataclasses and the
    plugin choices (``<slot>.plugin`` + that plugin's config dataclass) -> components.

Each node section holds the node's own settings plus one sub-mapping per slot it fills
(``global_planner``, ``map_source``, ``local_controller``, ``safety_filter``), each naming
its implementation with ``plugin`` as in Nav2. Unknown keys and unknown plugin names are
errors naming the file and the dotted parameter.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from navkit.common.params import check_groups, check_ranges, config_from_params, load_node_params
from navkit.common.plugins import PluginChoice, PluginRegistry
from navkit.perception.scan_localizer import ScanLocalizerConfig
from navkit.stack.plugin_catalog import default_registry

DEFAULT_PARAMS_FILE = Path(__file__).resolve().parents[1] / "ros_ws" / "config" / "navkit.params.yaml"
"""The parameter file shipped with navkit (also what the launch files load)."""


@dataclass(frozen=True)
class BridgeConfig:
    """The robot bridge: which backend, how fast it is stepped and watched."""

    scenario: str = ""
    """Scenario YAML the simulator builds its world from (empty on a real robot)."""
    backend: str = "mujoco"
    """Robot backend, a ``robot_backend`` plugin name: a simulator or a hardware driver (launch argument ``robot``)."""
    control_rate_hz: float = field(default=50.0, metadata={"range": (1.0, 1000.0)})
    """Rate at which commands are applied and odometry is published."""
    cmd_timeout_s: float = field(default=0.5, metadata={"range": (0.01, 10.0)})
    """Driver watchdog: a cmd_vel older than this stops the wheels."""
    real_time_factor: float = field(default=1.0, metadata={"range": (0.01, 100.0)})
    """ROS 2 wiring only: simulated seconds per wall second (sim time goes out on /clock)."""
    output_dir: str = ""
    """ROS 2 wiring only: where the bridge writes metrics.json when the run ends (empty: nowhere)."""
    publish_camera: bool = True
    """Publish camera/image_raw at the scenario's camera rate."""
    cmd_vel_stamped: bool = True
    """Take ``cmd_vel`` as geometry_msgs/TwistStamped (true) or plain Twist (false): the same launch
    argument sets the safety filter's output, so the two always agree."""
    pose_covariance_diagonal: tuple[float, ...] = (1e-3, 1e-3, 1e6, 1e6, 1e6, 1e-2)
    """Odometry pose covariance diagonal (x, y, z, roll, pitch, yaw), as diff_drive_controller's
    parameter of that name: a planar base knows nothing of z/roll/pitch (1e6: "unknown"), and an
    EKF fusing this odometry weighs it by these numbers, so zeros ("perfect") would be a lie."""
    twist_covariance_diagonal: tuple[float, ...] = (1e-3, 1e-3, 1e6, 1e6, 1e6, 1e-2)
    """Odometry twist covariance diagonal (vx, vy, vz, wx, wy, wz)."""

    def __post_init__(self) -> None:
        check_ranges(self)
        for name, low, high in (("control_rate_hz", 1.0, 1000.0), ("cmd_timeout_s", 0.01, 10.0),
                                ("real_time_factor", 0.01, 100.0)):
            if not low <= getattr(self, name) <= high:
                raise ValueError(f"{name}: must be in [{low:g}, {high:g}], got {getattr(self, name)}")
        for name in ("pose_covariance_diagonal", "twist_covariance_diagonal"):
            diagonal = getattr(self, name)
            if len(diagonal) != 6 or not all(math.isfinite(v) and v > 0.0 for v in diagonal):
                raise ValueError(f"{name}: must be 6 finite numbers > 0, got {list(diagonal)}")


@dataclass(frozen=True)
class PlannerNodeConfig:
    """How often the global planner checks its path against what the lidar shows."""

    rate_hz: float = field(default=1.0, metadata={"range": (0.0, 100.0)})
    """Replanning checks per second (a new goal or a blocked path replans at once)."""
    scenario: str = ""
    """ROS 2 wiring, simulation: the scenario file the goal list (and, with ``map_source.plugin:
    scenario``, the map) come from. Empty on a robot: goals arrive on ``goal_pose``."""
    observe_range_m: float = field(default=4.0, metadata={"range": (0.0, 100.0)})
    """Lidar hits farther than this are not written into the planner's obstacle layer."""
    localize: bool = True
    """Correct odometry drift by matching scans to the map (map -> odom, REP-105). Without
    it the robot's belief drifts ~1 % of distance and lidar hits land in the wrong cells."""

    def __post_init__(self) -> None:
        check_ranges(self)
        if not 0 < self.rate_hz <= 100.0:
            raise ValueError(f"rate_hz: must be in (0, 100], got {self.rate_hz}")
        if not 0 < self.observe_range_m <= 100.0:
            raise ValueError(f"observe_range_m: must be in (0, 100], got {self.observe_range_m}")


@dataclass(frozen=True)
class ControllerNodeConfig:
    rate_hz: float = field(default=50.0, metadata={"range": (0.0, 1000.0)})
    """Path-tracking rate; the safety filter runs on every command it produces."""

    def __post_init__(self) -> None:
        check_ranges(self)
        if not 0 < self.rate_hz <= 1000.0:
            raise ValueError(f"rate_hz: must be in (0, 1000], got {self.rate_hz}")


@dataclass(frozen=True)
class SafetyFilterNodeConfig:
    filter_on_scan: bool = True
    """Re-filter the last nominal command as soon as a new scan arrives (lowest latency)."""
    cmd_vel_stamped: bool = True
    """Publish ``cmd_vel`` as geometry_msgs/TwistStamped (true) or plain Twist (false), whichever the
    robot's driver takes (launch argument ``cmd_vel_stamped``)."""


@dataclass(frozen=True)
class StackConfig:
    """Everything the in-process runner needs, one section per ROS 2 node, slots as plugin choices."""

    bridge: BridgeConfig
    planner: PlannerNodeConfig
    map_source: PluginChoice
    global_planner: PluginChoice
    localizer: ScanLocalizerConfig
    controller: ControllerNodeConfig
    local_controller: PluginChoice
    safety_filter_node: SafetyFilterNodeConfig
    safety_filter: PluginChoice
    source: str = "<defaults>"


NODE_NAMES = {"bridge": "robot_bridge", "planner": "planner", "controller": "controller",
              "safety_filter": "safety_filter"}
"""Node names: the parameter file's sections and the launch file's ``name`` fields."""


def bridge_from_params(params: dict[str, Any], source: str,
                       registry: PluginRegistry) -> tuple[BridgeConfig, PluginChoice]:
    """The bridge's settings and its robot backend, configured from the section named after it.

    One parameter file serves every robot: each ``robot_backend`` plugin with parameters reads
    a section of its own name (``serial_base: {port: /dev/ttyACM0}``), and ``backend`` (the
    launch argument ``robot:=``) picks which one is built. Every section present is checked,
    so a typo in the serial settings fails in simulation too, not first on the robot.
    """
    backends = registry.names("robot_backend")
    check_groups(params, set(backends), source)
    cfg = config_from_params(BridgeConfig, params, source)
    registry.plugin("robot_backend", cfg.backend, source, "backend")  # an unknown robot is an error now
    chosen: PluginChoice | None = None
    for name in backends:
        section = {k: v for k, v in params.items() if k.startswith(f"{name}.")}
        choice = registry.choose("robot_backend", {**section, f"{name}.plugin": name}, source, prefix=name)
        if name == cfg.backend:
            chosen = choice
    assert chosen is not None
    return cfg, chosen


def planner_from_params(params: dict[str, Any], source: str, registry: PluginRegistry
                        ) -> tuple[PlannerNodeConfig, PluginChoice, PluginChoice, ScanLocalizerConfig]:
    check_groups(params, {"map_source", "global_planner", "localizer"}, source)
    return (config_from_params(PlannerNodeConfig, params, source),
            registry.choose("map_source", params, source),
            registry.choose("global_planner", params, source),
            config_from_params(ScanLocalizerConfig, params, source, prefix="localizer"))


def controller_from_params(params: dict[str, Any], source: str,
                           registry: PluginRegistry) -> tuple[ControllerNodeConfig, PluginChoice]:
    check_groups(params, {"local_controller"}, source)
    return (config_from_params(ControllerNodeConfig, params, source),
            registry.choose("local_controller", params, source))


def safety_filter_from_params(params: dict[str, Any], source: str,
                              registry: PluginRegistry) -> tuple[SafetyFilterNodeConfig, PluginChoice]:
    check_groups(params, {"safety_filter"}, source)
    return (config_from_params(SafetyFilterNodeConfig, params, source),
            registry.choose("safety_filter", params, source))


def load_stack_config(path: str | Path = DEFAULT_PARAMS_FILE, namespace: str = "",
                      registry: PluginRegistry | None = None) -> StackConfig:
    """Read every node's section of a parameter file (namespaced names match too)."""
    path = Path(path)
    src = str(path)
    registry = registry or default_registry()

    def section(key: str) -> dict[str, Any]:
        name = NODE_NAMES[key]
        return load_node_params(path, f"{namespace.rstrip('/')}/{name}" if namespace else name)

    planner, map_source, global_planner, localizer = planner_from_params(section("planner"), src, registry)
    controller, local_controller = controller_from_params(section("controller"), src, registry)
    safety_filter_node, safety_filter = safety_filter_from_params(section("safety_filter"), src, registry)
    return StackConfig(bridge=bridge_from_params(section("bridge"), src, registry)[0], planner=planner,
                       map_source=map_source, global_planner=global_planner, localizer=localizer,
                       controller=controller, local_controller=local_controller,
                       safety_filter_node=safety_filter_node, safety_filter=safety_filter, source=src)
