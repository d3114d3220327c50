"""Deploy unchanged: the same node code and parameter file drive every robot; only ``robot:=`` differs.

The launch-level checks parse the real launch file; the ROS checks run the stack against a fake
vendor driver (``robot:=external``), navkit's serial driver against its RoboClaw emulator
(``robot:=serial_base``), and check the managed nodes' run-time parameters and diagnostics.
"""
from __future__ import annotations

import math
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ros_helpers import (DEMO_LAUNCH, PARAMS, SCENARIO, Proc, RosClient, domain_id, node_argv, ros_env)
from navkit.ros_ws.launcher import parse_launch_file

ROBOTS = ("mujoco", "pybullet", "serial_base", "external")
NAV_NODES = ("planner", "controller", "safety_filter", "lifecycle_manager")


def _specs(robot: str) -> dict[str, Any]:
    return {spec.name: spec for spec in parse_launch_file(DEMO_LAUNCH, {"robot": robot})}


# ------------------------------------------------------------------ the launch file


def test_only_the_robot_argument_differs_between_backends() -> None:
    """Navigation nodes: same executable, same parameter file, same parameters, except use_sim_time,
    which follows the robot (true for simulators, false on a robot), and the default scenario (the
    demo warehouse in simulation; none on a robot, whose map and goals come from elsewhere). The
    bridge: only ``backend`` (and that default scenario)."""
    specs = {robot: _specs(robot) for robot in ROBOTS}
    base = specs["mujoco"]
    for robot, nodes in specs.items():
        for name in NAV_NODES:
            a, b = base[name], nodes[name]
            assert (a.exec, a.params_files, a.remaps) == (b.exec, b.params_files, b.remaps), (robot, name)
            varies = ("use_sim_time", "scenario")
            assert {k: v for k, v in a.params.items() if k not in varies} == \
                   {k: v for k, v in b.params.items() if k not in varies}, (robot, name)
            simulated = robot in ("mujoco", "pybullet")
            assert b.params["use_sim_time"] is simulated, (robot, name)
            if "scenario" in b.params:
                assert bool(b.params["scenario"]) is simulated, (robot, name, b.params["scenario"])
        if robot == "external":
            assert "robot_bridge" not in nodes  # the vendor's driver is the robot
        else:
            bridge = nodes["robot_bridge"]
            assert bridge.params["backend"] == robot
            assert {k: v for k, v in bridge.params.items() if k not in ("backend", "scenario")} == \
                   {k: v for k, v in base["robot_bridge"].params.items() if k not in ("backend", "scenario")}
            assert bridge.params_files == base["robot_bridge"].params_files
    assert base["lifecycle_manager"].params["node_names"] == ["planner", "controller", "safety_filter"]


def test_an_unknown_robot_is_refused_by_the_launch_file() -> None:
    from navkit.ros_ws.launcher import LaunchError

    with pytest.raises(LaunchError, match="gazebo"):
        parse_launch_file(DEMO_LAUNCH, {"robot": "gazebo"})


def test_driver_topics_and_twist_type_are_launch_arguments() -> None:
    specs = {s.name: s for s in parse_launch_file(DEMO_LAUNCH, {
        "robot": "external", "odom_topic": "/diff_drive_controller/odom", "scan_topic": "/front/scan",
        "camera_topic": "/oak/rgb/image_raw", "cmd_vel_topic": "/diff_drive_controller/cmd_vel", "cmd_vel_stamped": "false"})}
    assert ("odom", "/diff_drive_controller/odom") in specs["planner"].remaps
    assert ("scan", "/front/scan") in specs["safety_filter"].remaps
    assert ("camera/image_raw", "/oak/rgb/image_raw") in specs["controller"].remaps
    assert ("cmd_vel", "/diff_drive_controller/cmd_vel") in specs["safety_filter"].remaps
    assert specs["safety_filter"].params["cmd_vel_stamped"] is False


def test_the_shipped_parameter_file_configures_every_backend() -> None:
    """One file: the bridge reads it for any backend (the serial section is checked in simulation too)."""
    from navkit.common.params import load_node_params
    from navkit.stack.config import bridge_from_params
    from navkit.stack.plugin_catalog import default_registry

    registry = default_registry()
    params = load_node_params(PARAMS, "robot_bridge")
    for robot in ("mujoco", "pybullet", "serial_base"):
        cfg, choice = bridge_from_params({**params, "backend": robot}, str(PARAMS), registry)
        assert choice.name == robot
    from navkit.common.errors import ParameterError

    with pytest.raises(ParameterError, match="serial_base.prot"):
        bridge_from_params({**params, "serial_base.prot": "/dev/ttyUSB0"}, str(PARAMS), registry)


# ------------------------------------------------------------------ robot:=external


def _scan_publisher(client: RosClient, frame: str = "laser") -> Callable[[], None]:
    """A lidar driver that sees nothing (all +inf), best effort like real ones, mounted on /tf_static."""
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import LaserScan

    from navkit.common.geometry import RigidTransform
    from navkit.ros_ws.navkit_nodes.tf_tree import StaticTfBroadcaster, transform_msg

    pub = client.node.create_publisher(LaserScan, "scan", qos_profile_sensor_data)
    static = StaticTfBroadcaster(client.node)
    static.send(transform_msg("base_link", frame, 0.0, RigidTransform((0.1, 0.0, 0.2), (0.0, 0.0, 0.0, 1.0))))

    def publish() -> None:
        msg = LaserScan()
        msg.header.stamp = client.now().to_msg()
        msg.header.frame_id = frame
        msg.angle_min, msg.angle_increment = -math.pi, 2 * math.pi / 180
        msg.angle_max = msg.angle_min + 179 * msg.angle_increment
        msg.range_min, msg.range_max = 0.1, 8.0
        msg.ranges = [math.inf] * 180
        pub.publish(msg)

    return publish


def _initial_pose(client: RosClient, x: float, y: float) -> None:
    from geometry_msgs.msg import PoseWithCovarianceStamped

    pub = client.node.create_publisher(PoseWithCovarianceStamped, "initialpose", 10)
    msg = PoseWithCovarianceStamped()
    msg.header.frame_id = "map"
    msg.header.stamp = client.now().to_msg()
    msg.pose.pose.position.x, msg.pose.pose.position.y = x, y
    msg.pose.pose.orientation.w = 1.0
    client.spin_until(lambda: pub.get_subscription_count() > 0, 10.0)
    pub.publish(msg)


@pytest.mark.ros
@pytest.mark.parametrize("stamped", [True, False])
def test_external_driver_is_driven_to_the_goal(stamped: bool, spawn: Callable[..., Proc],
                                               ros_client: Callable[[int], RosClient], tmp_path: Path) -> None:
    """No bridge: a fake diff_drive_controller (best-effort odometry, /tf, 0.5 s cmd_vel timeout, stale
    stamps dropped) is the robot. The planner reads the scenario's map, is told the start on
    ``initialpose`` and drives the first goal; killing the stack stops the driver by its timeout."""
    from nav_msgs.msg import Odometry
    from rclpy.qos import qos_profile_sensor_data

    domain = domain_id()
    env = ros_env(domain)
    flag = "true" if stamped else "false"
    driver = spawn(node_argv("fake_diff_drive_node") + ["--ros-args", "-p", f"use_stamped_vel:={flag}"], env,
                   "driver")
    launch = spawn([sys.executable, "-m", "navkit.cli.main", "launch", str(DEMO_LAUNCH), "robot:=external",
                    f"scenario:={SCENARIO}", f"cmd_vel_stamped:={flag}"], env, "launch")
    client = ros_client(domain)
    odom: list[tuple[float, float, float]] = []

    def on_odom(m: Odometry) -> None:
        odom.append((time.monotonic(), m.pose.pose.position.x, m.pose.pose.position.y))

    client.node.create_subscription(Odometry, "odom", on_odom, qos_profile_sensor_data)
    scan = _scan_publisher(client)
    up = client.spin_until(lambda: "managed nodes are active" in launch.output() and bool(odom), 40.0)
    assert up, launch.output()[-3000:] + driver.output()[-2000:]
    # Where the robot is on the map (short_aisle's start; the driver's odometry starts at (0, 0)), given
    # before any scan: until the filter has a scan the robot cannot move, so odom = (0, 0, 0) here.
    # The planner takes it once it has odometry (best effort from the driver): resend until it says so.
    deadline = time.monotonic() + 15.0
    while time.monotonic() < deadline and "initial pose set" not in launch.output():
        _initial_pose(client, 1.0, 1.0)
        client.spin_until(lambda: "initial pose set" in launch.output(), 1.0)
    assert "initial pose set" in launch.output(), launch.output()[-3000:]
    goal_odom = (6.8 - 1.0, 1.0 - 1.0)
    deadline = time.monotonic() + 60.0
    while time.monotonic() < deadline:
        scan()
        client.spin_for(0.1)
        if odom and math.hypot(odom[-1][1] - goal_odom[0], odom[-1][2] - goal_odom[1]) < 0.3:
            break
    assert odom and math.hypot(odom[-1][1] - goal_odom[0], odom[-1][2] - goal_odom[1]) < 0.3, \
        (odom[-1:], launch.output()[-3000:])
    assert "Traceback" not in launch.output()
    # Stop the stack mid-motion: the driver's own timeout stops the base within 0.5 s (+ its period).
    launch.proc.send_signal(signal.SIGINT)
    assert launch.proc.wait(timeout=20.0) == 0, launch.output()[-3000:]
    stopped_at = time.monotonic()
    client.spin_for(1.5)
    late = [(x, y) for t, x, y in odom if t > stopped_at + 0.6]
    assert late and max(math.dist(late[0], p) for p in late) < 0.005, late[:5]
    assert driver.proc.poll() is None, driver.output()


# ------------------------------------------------------------------ robot:=serial_base


@pytest.mark.ros
def test_serial_base_bridge_drives_the_emulated_roboclaw(spawn: Callable[..., Proc],
                                                        ros_client: Callable[[int], RosClient]) -> None:
    """The bridge with ``backend: serial_base`` on a pty: odometry out, cmd_vel to the wheels, e-stop
    holds them, no /clock (a robot runs on wall time), diagnostics report the link."""
    from diagnostic_msgs.msg import DiagnosticArray
    from geometry_msgs.msg import TwistStamped
    from nav_msgs.msg import Odometry
    from rclpy.qos import qos_profile_sensor_data
    from std_msgs.msg import Bool

    from navkit.hardware.roboclaw_emulator import EmulatorConfig, RoboClawEmulator
    from ros_helpers import twist_msg

    with RoboClawEmulator(EmulatorConfig()) as emulator:
        domain = domain_id()
        bridge = spawn(node_argv("robot_bridge_node") + [
            "--ros-args", "--params-file", str(PARAMS), "-p", "backend:=serial_base",
            "-p", f"serial_base.port:={emulator.port}"], ros_env(domain), "bridge")
        client = ros_client(domain)
        odom: list[Any] = []
        diags: list[Any] = []
        client.node.create_subscription(Odometry, "odom", odom.append, qos_profile_sensor_data)
        client.node.create_subscription(DiagnosticArray, "/diagnostics", diags.append, 10)
        cmd = client.node.create_publisher(TwistStamped, "cmd_vel", 10)
        estop = client.node.create_publisher(Bool, "e_stop", 10)  # default QoS, as `ros2 topic pub` sends
        assert client.spin_until(lambda: len(odom) > 5 and cmd.get_subscription_count() > 0, 30.0), bridge.output()
        assert client.node.count_publishers("/clock") == 0
        x0 = odom[-1].pose.pose.position.x
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            cmd.publish(twist_msg(client, 0.3, 0.0))
            client.spin_for(0.05)
        assert odom[-1].pose.pose.position.x - x0 > 0.15, bridge.output()
        assert odom[-1].pose.covariance[0] > 0.0  # filled, not "perfectly known"
        assert client.spin_until(lambda: estop.get_subscription_count() > 0, 5.0)
        estop.publish(Bool(data=True))
        client.spin_for(0.3)
        x1 = odom[-1].pose.pose.position.x
        for _ in range(20):
            cmd.publish(twist_msg(client, 0.3, 0.0))
            client.spin_for(0.05)
        assert abs(odom[-1].pose.pose.position.x - x1) < 0.05  # held by the e-stop, commands or not
        assert client.spin_until(lambda: any(s.name == "robot_bridge: robot" and "e-stop" in s.message
                                             for a in diags for s in a.status), 3.0), [a.status for a in diags[-2:]]
        bridge.proc.send_signal(signal.SIGINT)
        assert bridge.proc.wait(timeout=10.0) == 0, bridge.output()
        assert emulator.model.stats.bad_crc == 0


# ------------------------------------------------------------------ managed nodes


@pytest.mark.ros
def test_run_time_parameters_are_validated_and_applied(spawn: Callable[..., Proc],
                                                       ros_client: Callable[[int], RosClient]) -> None:
    """``ros2 param set /safety_filter safety_filter.alpha -5.0`` is refused with the reason; 2.0 is applied;
    the descriptor tells the range and what the parameter means."""
    from rcl_interfaces.msg import Parameter as ParameterMsg
    from rcl_interfaces.msg import ParameterType, ParameterValue
    from rcl_interfaces.srv import DescribeParameters, GetParameters, SetParameters

    domain = domain_id()
    node = spawn(node_argv("safety_filter_node") + ["--ros-args", "--params-file", str(PARAMS),
                                                    "-p", "use_sim_time:=false", "-p", "autostart:=true"],
                 ros_env(domain), "filter")
    client = ros_client(domain)
    set_client = client.node.create_client(SetParameters, "/safety_filter/set_parameters")
    get_client = client.node.create_client(GetParameters, "/safety_filter/get_parameters")
    describe = client.node.create_client(DescribeParameters, "/safety_filter/describe_parameters")
    assert client.spin_until(lambda: set_client.service_is_ready() and describe.service_is_ready(), 30.0), node.output()

    def call(cli: Any, request: Any) -> Any:
        future = cli.call_async(request)
        assert client.spin_until(future.done, 10.0)
        return future.result()

    def set_alpha(value: float) -> Any:
        request = SetParameters.Request()
        request.parameters = [ParameterMsg(name="safety_filter.alpha", value=ParameterValue(
            type=ParameterType.PARAMETER_DOUBLE, double_value=value))]
        return call(set_client, request).results[0]

    def get_alpha() -> float:
        return call(get_client, GetParameters.Request(names=["safety_filter.alpha"])).values[0].double_value

    refused = set_alpha(-5.0)
    assert not refused.successful and "alpha" in refused.reason, refused
    print("refused:", refused.reason)
    zero = set_alpha(0.0)  # inside the descriptor's inclusive range, refused by the config (alpha must be > 0)
    assert not zero.successful and "alpha: must be > 0" in zero.reason, zero
    assert get_alpha() == pytest.approx(1.0)
    accepted = set_alpha(2.0)
    assert accepted.successful, accepted
    assert get_alpha() == pytest.approx(2.0)
    d = call(describe, DescribeParameters.Request(names=["safety_filter.alpha", "safety_filter.plugin"])).descriptors
    assert "Class-K gain" in d[0].description and d[0].type == ParameterType.PARAMETER_DOUBLE
    assert (d[0].floating_point_range[0].from_value, d[0].floating_point_range[0].to_value) == (0.0, 100.0)
    assert d[1].read_only
    assert node.proc.poll() is None
    node.proc.send_signal(signal.SIGINT)
    assert node.proc.wait(timeout=10.0) == 0
    assert "parameters changed and applied" in node.output()


@pytest.mark.ros
def test_every_node_reports_diagnostics_and_the_stack_records(spawn: Callable[..., Proc],
                                                              ros_client: Callable[[int], RosClient],
                                                              tmp_path: Path) -> None:
    """During a simulated launch: /diagnostics from the bridge and the three managed nodes, /tf with
    odom -> base_link and map -> odom, /tf_static with the lidar mount; ``navkit record`` writes them
    with each topic's offered QoS."""
    from diagnostic_msgs.msg import DiagnosticArray

    from navkit.runner.bag_recorder import read_bag

    domain = domain_id()
    env = ros_env(domain)
    launch = spawn([sys.executable, "-m", "navkit.cli.main", "launch", str(DEMO_LAUNCH), f"scenario:={SCENARIO}",
                    "real_time_factor:=1.0", f"output_dir:={tmp_path / 'out'}"], env, "launch")
    bag = tmp_path / "live.mcap"
    recorder = spawn([sys.executable, "-m", "navkit.cli.main", "record", str(bag), "--topic", "/tf",
                      "--topic", "/tf_static", "--topic", "/scan", "--topic", "/diagnostics", "--topic", "/cmd_vel"],
                     env, "record")
    client = ros_client(domain)
    seen: set[str] = set()
    client.node.create_subscription(DiagnosticArray, "/diagnostics",
                                    lambda a: seen.update(s.name.split(":")[0] for s in a.status), 10)
    want = {"robot_bridge", "planner", "controller", "safety_filter"}
    assert client.spin_until(lambda: want <= seen, 40.0), (seen, launch.output()[-3000:])
    client.spin_for(3.0)
    recorder.proc.send_signal(signal.SIGINT)
    assert recorder.proc.wait(timeout=20.0) == 0, recorder.output()
    launch.proc.send_signal(signal.SIGINT)
    launch.proc.wait(timeout=20.0)
    messages = read_bag(bag)
    edges = {(t.header.frame_id, t.child_frame_id) for m in messages["/tf"] for t in m.transforms}
    assert {("odom", "base_link"), ("map", "odom")} <= edges, edges
    statics = {(t.header.frame_id, t.child_frame_id) for m in messages["/tf_static"] for t in m.transforms}
    assert ("base_link", "base_scan") in statics
    assert messages["/scan"] and messages["/cmd_vel"] and messages["/diagnostics"]
    metadata = (tmp_path / "live" / "metadata.yaml").read_text()
    assert "best_effort" in metadata and "ros_distro: kilted" in metadata


@pytest.mark.ros
def test_the_filter_node_places_a_turned_lidar_by_its_tf_mount(spawn: Callable[..., Proc],
                                                              ros_client: Callable[[int], RosClient]) -> None:
    """One wall 0.45 m in front of the robot, seen by two lidars: one mounted straight, one turned 180°
    (so the wall lies behind *its* x axis). Placed by /tf_static the filter brakes for both; a scan in a
    frame TF does not know is not used at all (zero), never read as if it sat on the axis."""
    from geometry_msgs.msg import TwistStamped
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import LaserScan

    from navkit.common.geometry import RigidTransform
    from navkit.ros_ws.navkit_nodes.tf_tree import StaticTfBroadcaster, transform_msg
    from ros_helpers import twist_msg

    domain = domain_id()
    node = spawn(node_argv("safety_filter_node") + ["--ros-args", "--params-file", str(PARAMS),
                                                    "-p", "use_sim_time:=false", "-p", "autostart:=true"],
                 ros_env(domain), "filter")
    client = ros_client(domain)
    out: list[float] = []
    client.node.create_subscription(TwistStamped, "cmd_vel", lambda m: out.append(m.twist.linear.x), 50)
    cmd = client.node.create_publisher(TwistStamped, "cmd_vel_nav", 10)
    scans = client.node.create_publisher(LaserScan, "scan", qos_profile_sensor_data)
    static = StaticTfBroadcaster(client.node)
    static.send([transform_msg("base_link", "laser_straight", 0.0, RigidTransform((0.0, 0.0, 0.2))),
                 transform_msg("base_link", "laser_turned", 0.0, RigidTransform.planar(0.0, 0.0, math.pi, z=0.2))])
    assert client.spin_until(lambda: cmd.get_subscription_count() > 0 and scans.get_subscription_count() > 0,
                             30.0), node.output()

    def scan(frame: str, bearing: float) -> LaserScan:
        msg = LaserScan()
        msg.header.stamp = client.now().to_msg()
        msg.header.frame_id = frame
        msg.angle_min, msg.angle_increment = -math.pi, 2 * math.pi / 360
        msg.angle_max = msg.angle_min + 359 * msg.angle_increment
        msg.range_min, msg.range_max = 0.05, 8.0
        ranges = [math.inf] * 360
        for k in range(-8, 9):  # a wall segment around the bearing
            ranges[(int(round((bearing + math.pi) / msg.angle_increment)) + k) % 360] = 0.45 / math.cos(
                k * msg.angle_increment)
        msg.ranges = ranges
        return msg

    def drive_with(frame: str, bearing: float, until: float | None = None) -> float:
        """The filtered speed for 0.5 m/s with this scan: the last of 3 tries (or the first equal to ``until``,
        for the warm-up while discovery and /tf_static complete: scans are best effort)."""
        v = math.nan
        for _ in range(100 if until is not None else 3):
            start = len(out)
            scans.publish(scan(frame, bearing))
            client.spin_for(0.05)
            cmd.publish(twist_msg(client, 0.5, 0.0))
            client.spin_until(lambda: len(out) > start, 1.0)
            client.spin_for(0.05)
            v = out[-1] if len(out) > start else math.nan
            if until is not None and v == pytest.approx(until):
                break
        return v

    free = drive_with("laser_straight", math.pi, until=0.5)  # the wall behind the robot: nothing ahead
    assert free == pytest.approx(0.5), node.output()[-2000:]
    assert drive_with("laser_straight", 0.0) < 0.3  # ahead, straight lidar
    assert drive_with("laser_turned", math.pi) < 0.3  # ahead, seen behind the turned lidar: braked
    assert drive_with("laser_turned", 0.0) == pytest.approx(0.5)  # behind the robot: free
    unknown = drive_with("laser_unknown", math.pi)
    assert unknown == 0.0 and "scan not used: " in node.output(), node.output()[-2000:]


@pytest.mark.ros
def test_a_rate_change_takes_effect(spawn: Callable[..., Proc], ros_client: Callable[[int], RosClient]) -> None:
    """``ros2 param set /controller rate_hz 5.0`` must change how often it commands, not just the stored value."""
    from geometry_msgs.msg import TwistStamped
    from rcl_interfaces.msg import Parameter as ParameterMsg
    from rcl_interfaces.msg import ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters

    domain = domain_id()
    node = spawn(node_argv("controller_node") + ["--ros-args", "--params-file", str(PARAMS),
                                                 "-p", "use_sim_time:=false", "-p", "autostart:=true"],
                 ros_env(domain), "controller")
    client = ros_client(domain)
    stamps: list[float] = []
    client.node.create_subscription(TwistStamped, "cmd_vel_nav", lambda m: stamps.append(time.monotonic()), 100)
    setter = client.node.create_client(SetParameters, "/controller/set_parameters")
    assert client.spin_until(lambda: setter.service_is_ready() and len(stamps) > 10, 30.0), node.output()

    def rate_over(seconds: float) -> float:
        start = len(stamps)
        client.spin_for(seconds)
        return (len(stamps) - start) / seconds

    assert rate_over(1.0) > 30.0  # 50 Hz from the parameter file
    request = SetParameters.Request(parameters=[ParameterMsg(name="rate_hz", value=ParameterValue(
        type=ParameterType.PARAMETER_DOUBLE, double_value=5.0))])
    future = setter.call_async(request)
    assert client.spin_until(future.done, 10.0) and future.result().results[0].successful
    client.spin_for(0.3)
    assert 2.0 < rate_over(2.0) < 8.0, node.output()
