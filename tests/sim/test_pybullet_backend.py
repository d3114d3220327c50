"""The PyBullet AGV: the same contract and the same robot as the MuJoCo one, and the stack agrees across both."""
from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import numpy as np
import pybullet
import pytest

from navkit.benchmarks import backend_bench
from navkit.common import VelocityCommand
from navkit.common.errors import SimulationDiverged
from navkit.common.interfaces import RobotBackend, SimulationTruth
from navkit.runner.in_process import InProcessRunner, RunOptions, RunResult
from navkit.sim import pybullet_backend as pb
from navkit.sim.mjcf_builder import PHYSICS_TIMESTEP_S, WALL_THICKNESS_M, build_mjcf, camera_mount
from navkit.sim.mujoco_backend import MujocoRobot
from navkit.sim.pybullet_backend import PybulletRobot, PybulletUnavailable
from navkit.sim.scenario import Box, Cylinder, Scenario, load_scenario
from navkit.stack.config import DEFAULT_PARAMS_FILE, load_stack_config
from navkit.stack.plugin_catalog import default_registry

SHORT_AISLE = Path(__file__).resolve().parents[2] / "scenarios" / "short_aisle.yaml"


@pytest.fixture(scope="module")
def aisle() -> Scenario:
    return load_scenario(SHORT_AISLE)


@pytest.fixture(scope="module")
def room(aisle: Scenario) -> Scenario:
    """A tiny closed room, 6 m x 4 m: a post 1.7 m ahead of the robot, a yawed crate behind-left, walls."""
    post = Cylinder("post", center=(4.0, 2.0), radius=0.3, height=1.2)
    crate = Box("crate", center=(1.0, 3.0), size=(0.8, 0.5), yaw=0.4, height=1.0, mapped=False)
    return aisle.with_overrides(name="room", bounds=(0.0, 0.0, 6.0, 4.0), boxes=(crate,), cylinders=(post,),
                                start=(2.0, 2.0, 0.0), goals=((5.0, 1.0),))


def _drive(robot: PybulletRobot, v: float, omega: float, duration_s: float, dt: float = 0.02) -> list[bool]:
    """Fresh commands every ``dt`` (as the controller sends them); returns in_collision per step."""
    contacts = []
    for _ in range(int(round(duration_s / dt))):
        robot.apply_command(VelocityCommand(robot.now(), v, omega))
        robot.advance(dt)
        contacts.append(robot.in_collision())
    return contacts


def _speed(robot: PybulletRobot) -> float:
    (vx, vy, _), _ = pybullet.getBaseVelocity(robot._robot_id, physicsClientId=robot._cid)
    return math.hypot(vx, vy)


# ------------------------------------------------------------------ analytical ray casting


def _ray_box(p: np.ndarray, d: np.ndarray, center: tuple[float, float], half: tuple[float, float], yaw: float) -> float:
    """Slab test in the box's frame; inf when the ray misses."""
    c, s = math.cos(yaw), math.sin(yaw)
    rot = np.array([[c, s], [-s, c]])
    lp, ld = rot @ (p - np.asarray(center)), rot @ d
    t_near, t_far = -math.inf, math.inf
    for k in range(2):
        if abs(ld[k]) < 1e-12:
            if abs(lp[k]) > half[k]:
                return math.inf
            continue
        t1, t2 = (-half[k] - lp[k]) / ld[k], (half[k] - lp[k]) / ld[k]
        t_near, t_far = max(t_near, min(t1, t2)), min(t_far, max(t1, t2))
    return t_near if 0.0 <= t_near <= t_far else math.inf


def _ray_circle(p: np.ndarray, d: np.ndarray, center: tuple[float, float], r: float) -> float:
    f = p - np.asarray(center)
    b = float(np.dot(f, d))
    disc = b * b - (float(np.dot(f, f)) - r * r)
    if disc < 0:
        return math.inf
    t = -b - math.sqrt(disc)
    return t if t >= 0 else math.inf


def _true_ranges(sc: Scenario, x: float, y: float, world_angles: np.ndarray) -> np.ndarray:
    """Distance along each ray to the boxes, cylinders and inner wall faces of ``sc``."""
    xmin, ymin, xmax, ymax = sc.bounds
    t = WALL_THICKNESS_M / 2
    boxes = [(b.center, (b.size[0] / 2, b.size[1] / 2), b.yaw) for b in sc.boxes]
    boxes += [(((xmin + xmax) / 2, ymin - t), ((xmax - xmin) / 2 + 2 * t, t), 0.0),
              (((xmin + xmax) / 2, ymax + t), ((xmax - xmin) / 2 + 2 * t, t), 0.0),
              ((xmin - t, (ymin + ymax) / 2), (t, (ymax - ymin) / 2), 0.0),
              ((xmax + t, (ymin + ymax) / 2), (t, (ymax - ymin) / 2), 0.0)]
    p = np.array([x, y])
    out = []
    for a in world_angles:
        d = np.array([math.cos(a), math.sin(a)])
        best = min(_ray_box(p, d, *b) for b in boxes)
        for cyl in sc.cylinders:
            best = min(best, _ray_circle(p, d, cyl.center, cyl.radius))
        out.append(best)
    return np.array(out)


# ------------------------------------------------------------------ the contract and the robot


def test_implements_the_robot_interface_and_is_the_registered_plugin(aisle: Scenario) -> None:
    registry = default_registry(entry_points=False)
    choice = registry.choose("robot_backend", {"robot_backend.plugin": "pybullet"}, "test", prefix="robot_backend")
    robot = registry.build(choice, scenario=aisle, cmd_timeout_s=0.3)
    try:
        assert isinstance(robot, PybulletRobot) and robot.cmd_timeout_s == 0.3
        assert isinstance(robot, RobotBackend) and isinstance(robot, SimulationTruth)
        pose = robot.true_pose()
        assert (pose.x, pose.y, pose.yaw) == pytest.approx(aisle.start, abs=1e-9)
        assert robot.now() == 0.0 and robot.watchdog_trips == 0
        robot.advance(0.5)  # standing still on its wheels and casters: it neither sinks nor creeps
        pose = robot.true_pose()
        assert (pose.x, pose.y, pose.yaw) == pytest.approx(aisle.start, abs=1e-4)
        assert robot.now() == pytest.approx(0.5)
    finally:
        robot.close()


def test_robot_matches_the_mujoco_model(aisle: Scenario) -> None:
    """Dimensions, masses and drive limits read back from the MJCF that MujocoRobot builds."""
    root = ET.fromstring(build_mjcf(aisle))

    def floats(text: str | None) -> list[float]:
        assert text is not None
        return [float(v) for v in text.split()]

    rm = aisle.robot
    assert floats(root.find("option").get("timestep")) == [PHYSICS_TIMESTEP_S]  # type: ignore[union-attr]
    chassis = root.find(".//geom[@name='chassis']")
    assert chassis is not None
    assert floats(chassis.get("pos")) == pytest.approx([0, 0, pb.CHASSIS_Z_M])
    assert floats(chassis.get("size")) == pytest.approx([rm.radius_m, pb.CHASSIS_HALF_HEIGHT_M])
    assert floats(chassis.get("mass")) == [rm.mass_kg]
    caster = root.find(".//geom[@name='caster_front']")
    assert caster is not None
    assert floats(caster.get("pos")) == pytest.approx([rm.radius_m * pb.CASTER_X_FRACTION, 0,
                                                       rm.wheel_radius_m / 2 - rm.wheel_radius_m])
    assert floats(caster.get("mass")) == [pb.CASTER_MASS_KG]
    wheel = root.find(".//body[@name='wheel_left']")
    assert wheel is not None
    assert floats(wheel.get("pos")) == pytest.approx([0, rm.wheel_separation_m / 2, 0])
    joint, geom = wheel.find("joint"), wheel.find("geom")
    assert joint is not None and geom is not None
    assert floats(joint.get("damping")) == [pb.WHEEL_DAMPING] and floats(joint.get("armature")) == [pb.WHEEL_ARMATURE]
    assert floats(geom.get("size")) == pytest.approx([rm.wheel_radius_m, pb.WHEEL_HALF_WIDTH_M, rm.wheel_radius_m])
    assert floats(geom.get("mass")) == [pb.WHEEL_MASS_KG] and floats(geom.get("friction"))[0] == pb.WHEEL_FRICTION
    motor = root.find(".//actuator/velocity[@name='left_motor']")
    assert motor is not None and floats(motor.get("forcerange")) == [-pb.MOTOR_TORQUE_LIMIT_NM, pb.MOTOR_TORQUE_LIMIT_NM]
    wall = root.find(".//geom[@name='wall_west']")
    assert wall is not None and floats(wall.get("size"))[2] * 2 == pb.WALL_HEIGHT_M
    camera = root.find(".//camera[@name='front_camera']")
    assert camera is not None and floats(camera.get("pos")) == pytest.approx(camera_mount(aisle))


def test_spin_up_and_cruise_match_mujoco(aisle: Scenario) -> None:
    """Torque-limited start and steady speed of the wheeled base, against MuJoCo's (the reason for a wheeled body)."""
    positions = {}
    for cls in (MujocoRobot, PybulletRobot):
        robot = cls(aisle)
        trace = []
        for _ in range(10):
            robot.apply_command(VelocityCommand(robot.now(), 0.5, 0.6))
            robot.advance(0.1)
            trace.append(robot.true_pose().as_array())
        robot.close()
        positions[cls.__name__] = np.array(trace)
    mj, pyb = positions["MujocoRobot"], positions["PybulletRobot"]
    assert np.linalg.norm(mj[-1, :2] - aisle.start[:2]) > 0.4  # it did drive an arc
    assert np.max(np.linalg.norm(mj[:, :2] - pyb[:, :2], axis=1)) < 0.02
    assert np.max(np.abs(mj[:, 2] - pyb[:, 2])) < 0.03


# ------------------------------------------------------------------ lidar


def test_lidar_matches_the_analytical_geometry(room: Scenario) -> None:
    robot = PybulletRobot(room)
    scan = robot.read_scan()
    robot.close()
    lidar = room.sensors.lidar
    assert len(scan.ranges) == lidar.num_rays and scan.ranges.dtype == np.float32
    assert scan.range_max == lidar.range_max_m and scan.range_min == lidar.range_min_m
    assert scan.angle_increment == pytest.approx(2 * math.pi / lidar.num_rays) and scan.angle_min == -math.pi
    want = _true_ranges(room, 2.0, 2.0, scan.angles)
    assert np.all(np.isfinite(want)) and want.max() < lidar.range_max_m  # closed room, all rays hit
    err = scan.ranges.astype(float) - want
    sigma = lidar.noise_std_m
    assert np.max(np.abs(err)) < 4 * sigma, f"worst ray {np.argmax(np.abs(err))}: {err[np.argmax(np.abs(err))]:.4f} m"
    assert 0.5 * sigma < np.std(err) < 1.5 * sigma and abs(np.mean(err)) < 0.5 * sigma  # real, unbiased noise
    ahead = int(np.argmin(np.abs(scan.angles)))
    behind = int(np.argmin(np.abs(np.abs(scan.angles) - math.pi)))
    left = int(np.argmin(np.abs(scan.angles - math.pi / 2)))
    assert scan.ranges[ahead] == pytest.approx(4.0 - 2.0 - 0.3, abs=3 * sigma)  # the post
    assert scan.ranges[behind] == pytest.approx(2.0, abs=3 * sigma)  # the west wall
    assert scan.ranges[left] == pytest.approx(2.0, abs=3 * sigma)  # the north wall
    # The crate (unmapped, yawed) is seen where the geometry says: some rays end on it, not on the wall.
    on_crate = np.array([_ray_box(np.array([2.0, 2.0]), np.array([math.cos(a), math.sin(a)]), (1.0, 3.0),
                                  (0.4, 0.25), 0.4) for a in scan.angles])
    assert np.sum(np.isfinite(on_crate) & (np.abs(on_crate - want) < 1e-9)) >= 5


def test_lidar_ignores_the_robot_and_reports_nothing_beyond_range_max(room: Scenario) -> None:
    short = replace(room.sensors.lidar, range_max_m=1.9, noise_std_m=0.0)
    sc = room.with_overrides(sensors=replace(room.sensors, lidar=short))
    robot = PybulletRobot(sc)
    scan = robot.read_scan()
    robot.close()
    want = _true_ranges(sc, 2.0, 2.0, scan.angles)
    far, near = want > 1.9, want < 1.9
    assert far.sum() > 50 and near.sum() > 10
    assert np.all(np.isposinf(scan.ranges[far]))
    np.testing.assert_allclose(scan.ranges[near], want[near], atol=2e-3)
    # The chassis (radius 0.3 m) surrounds the lidar: a self-hit would read < 0.3 m.
    assert np.min(scan.ranges) > sc.robot.radius_m + 0.1


@pytest.mark.parametrize("mount", [{}, {"x_m": 0.2, "y_m": -0.1, "yaw_deg": 90.0, "upside_down": True}],
                         ids=["centred", "offset_turned_upside_down"])
def test_lidar_scans_equal_mujocos_ray_for_ray(room: Scenario, mount: dict[str, object]) -> None:
    """Same rays, same order, same frame and mount: the two simulators' scans differ only by ray-test tolerance.

    Boxes and walls agree to float precision; PyBullet's ray test against a cylinder is a convex cast that is
    off by up to ~1 cm on grazing rays (MuJoCo's is analytic), hence the one wider bound."""
    lidar = replace(room.sensors.lidar, noise_std_m=0.0, **mount)
    sc = room.with_overrides(sensors=replace(room.sensors, lidar=lidar))
    mj_robot, pb_robot = MujocoRobot(sc), PybulletRobot(sc)
    mj, pyb = mj_robot.read_scan(), pb_robot.read_scan()
    mj_robot.close()
    pb_robot.close()
    assert (pyb.angle_min, pyb.angle_increment, pyb.frame_id) == (mj.angle_min, mj.angle_increment, mj.frame_id)
    assert pyb.mount == mj.mount and pyb.mount is not None
    assert np.all(np.isfinite(mj.ranges)) and np.all(np.isfinite(pyb.ranges))
    err = np.abs(pyb.ranges.astype(float) - mj.ranges)
    assert np.mean(err < 1e-3) > 0.97 and err.max() < 0.015, err.max()
    np.testing.assert_allclose(pyb.points_base(), mj.points_base(), atol=0.015)


def test_lidar_follows_the_robot_as_it_turns(room: Scenario) -> None:
    robot = PybulletRobot(room)
    _drive(robot, 0.0, 1.0, 1.0)
    pose = robot.true_pose()
    scan = robot.read_scan()
    robot.close()
    assert 0.6 < pose.yaw < 1.2 and math.hypot(pose.x - 2.0, pose.y - 2.0) < 0.02
    want = _true_ranges(room, pose.x, pose.y, scan.angles + pose.yaw)
    assert np.max(np.abs(scan.ranges - want)) < 4 * room.sensors.lidar.noise_std_m


# ------------------------------------------------------------------ odometry, watchdog, bad commands


def test_odometry_follows_the_true_pose_driving_straight(aisle: Scenario) -> None:
    robot = PybulletRobot(aisle)
    _drive(robot, 0.5, 0.0, 4.0)
    true, odom = robot.true_pose(), robot.read_odometry()
    robot.close()
    assert 1.8 < true.x - aisle.start[0] < 2.1  # ~2 m after the wheels spin up
    assert abs(true.y - aisle.start[1]) < 0.05 and abs(true.yaw) < 0.05
    assert math.hypot(odom.pose.x - true.x, odom.pose.y - true.y) < 0.05
    assert odom.v == pytest.approx(0.5, abs=0.05) and abs(odom.omega) < 0.1
    assert odom.stamp == pytest.approx(robot.now())


def test_odometry_drifts_a_little_but_not_zero(aisle: Scenario) -> None:
    robot = PybulletRobot(aisle)
    _drive(robot, 0.5, 0.6, 6.0)  # a turning loop accumulates heading error
    true, odom = robot.true_pose(), robot.read_odometry()
    robot.close()
    assert math.hypot(true.x - aisle.start[0], true.y - aisle.start[1]) > 0.5  # it did move
    drift = math.hypot(odom.pose.x - true.x, odom.pose.y - true.y)
    assert 1e-4 < drift < 0.15, drift


def test_stale_command_is_zeroed_by_the_watchdog(aisle: Scenario) -> None:
    robot = PybulletRobot(aisle, cmd_timeout_s=0.5)
    robot.apply_command(VelocityCommand(robot.now(), 0.5, 0.0))
    robot.advance(0.4)
    assert _speed(robot) > 0.2 and robot.watchdog_trips == 0  # still fresh: moving
    robot.advance(1.1)  # now 1.0 s past the timeout
    x_stopped = robot.true_pose().x
    assert _speed(robot) < 0.02 and robot.watchdog_trips > 0
    assert robot._wheel_targets == (0.0, 0.0)
    robot.advance(0.5)
    assert robot.true_pose().x == pytest.approx(x_stopped, abs=0.01)
    assert robot.true_pose().x - aisle.start[0] < 0.6  # it did not keep driving for 2 s
    robot.close()


def test_fresh_commands_never_trip_the_watchdog(aisle: Scenario) -> None:
    robot = PybulletRobot(aisle, cmd_timeout_s=0.5)
    _drive(robot, 0.4, 0.0, 1.5)
    assert robot.watchdog_trips == 0 and _speed(robot) > 0.3
    robot.close()


def test_non_finite_commands_stop_the_robot(aisle: Scenario) -> None:
    for bad in [(math.nan, 0.0), (0.3, math.inf), (-math.inf, math.nan)]:
        robot = PybulletRobot(aisle, cmd_timeout_s=100.0)  # so the watchdog cannot be what stops it
        _drive(robot, 0.5, 0.0, 1.0)
        assert _speed(robot) > 0.3
        robot.apply_command(VelocityCommand(robot.now(), *bad))
        robot.advance(1.0)
        assert _speed(robot) < 0.02, bad
        assert robot._wheel_targets == (0.0, 0.0)
        assert robot.true_pose().is_finite() and robot.read_odometry().is_finite()
        assert robot.watchdog_trips == 0
        robot.close()


# ------------------------------------------------------------------ collisions, camera, overhead view


def test_in_collision_false_in_free_space_true_against_a_wall(aisle: Scenario) -> None:
    sc = aisle.with_overrides(start=(1.0, 1.0, math.pi))  # facing the west wall, chassis 0.7 m from it
    robot = PybulletRobot(sc)
    robot.advance(0.2)
    assert robot.in_collision() is False
    assert not any(_drive(robot, 0.5, 0.0, 1.0))  # 0.5 m travelled: not there yet
    contacts = _drive(robot, 0.5, 0.0, 2.0)
    assert any(contacts) and contacts[-1]
    assert robot.true_pose().x == pytest.approx(sc.robot.radius_m, abs=0.02)  # pressed against x = 0
    assert not _drive(robot, -0.3, 0.0, 1.0)[-1]  # backing away clears the contact
    robot.close()


def test_in_collision_against_an_unmapped_post(room: Scenario) -> None:
    robot = PybulletRobot(room)
    contacts = _drive(robot, 0.4, 0.0, 5.0)  # the post is 1.7 m ahead, 1.4 m from the chassis
    assert any(contacts) and contacts[-1]
    assert robot.true_pose().x == pytest.approx(4.0 - 0.3 - room.robot.radius_m, abs=0.03)
    robot.close()


def test_camera_image_and_depth(aisle: Scenario) -> None:
    robot = PybulletRobot(aisle)
    image = robot.read_camera()
    robot.close()
    cam = aisle.sensors.camera
    assert image is not None and image.stamp == 0.0
    assert image.rgb.shape == (cam.height, cam.width, 3) and image.rgb.dtype == np.uint8
    assert image.rgb.std() > 1.0  # a scene, not a blank frame
    assert image.depth is not None and image.depth.shape == (cam.height, cam.width)
    assert image.depth.dtype == np.float32 and np.all(np.isfinite(image.depth))
    # Straight ahead (+x from (1, 1)) the east wall: 7 m minus the camera's 0.27 m offset.
    centre = float(image.depth[cam.height // 2, cam.width // 2])
    assert centre == pytest.approx(7.0 - camera_mount(aisle)[0], abs=0.15)
    assert image.intrinsics == robot.camera_intrinsics and image.extrinsics is not None
    assert image.extrinsics.translation == camera_mount(aisle)


def test_camera_depth_pixels_land_where_the_lidar_sees_and_the_image_is_upright(aisle: Scenario) -> None:
    """The centre depth pixel, unprojected with the intrinsics and moved by the extrinsics, is the obstacle the
    forward lidar ray hits; and the floor fills the bottom rows (the image is not upside down)."""
    robot = PybulletRobot(aisle.with_overrides(start=(1.0, 2.0, 0.0)))  # facing the shelf's end, 1.5 m ahead
    image, scan = robot.read_camera(), robot.read_scan()
    robot.close()
    assert image is not None and image.depth is not None and image.intrinsics is not None
    assert image.extrinsics is not None
    k = image.intrinsics
    row, col = (k.height - 1) // 2, (k.width - 1) // 2
    z = float(image.depth[row, col])
    point_base = image.extrinsics.apply(np.array([[(col - k.cx) * z / k.fx, (row - k.cy) * z / k.fy, z]]))[0]
    ahead = float(scan.ranges[int(np.argmin(np.abs(scan.angles)))])
    assert 1.0 < ahead < 2.0
    assert point_base[0] == pytest.approx(ahead, abs=0.05) and abs(point_base[1]) < 0.05
    assert float(image.depth[-1, col]) < 1.0 < z  # the floor just ahead, at the bottom of the frame


def test_camera_disabled_returns_none_and_depth_optional(aisle: Scenario) -> None:
    off = aisle.with_overrides(sensors=replace(aisle.sensors, camera=replace(aisle.sensors.camera, enabled=False)))
    robot = PybulletRobot(off)
    assert robot.read_camera() is None
    robot.close()
    no_depth = aisle.with_overrides(sensors=replace(aisle.sensors, camera=replace(aisle.sensors.camera, depth=False)))
    robot = PybulletRobot(no_depth)
    image = robot.read_camera()
    robot.close()
    assert image is not None and image.depth is None and image.rgb.shape[2] == 3


def test_render_topdown_shows_the_robot_where_it_is(aisle: Scenario) -> None:
    robot = PybulletRobot(aisle)
    frame = robot.render_topdown(320, 176)
    robot.close()
    assert frame.shape == (176, 320, 3) and frame.dtype == np.uint8
    # Centred on the map, its height plus 0.6 m each side, north up: the start (1, 1) is near the bottom left.
    xmin, ymin, xmax, ymax = aisle.bounds
    scale = 176 / (ymax - ymin + 1.2)
    col = int(round(160 + (1.0 - (xmin + xmax) / 2) * scale))
    row = int(round(88 - (1.0 - (ymin + ymax) / 2) * scale))
    r, g, b = frame[row - 2:row + 3, col - 2:col + 3].reshape(-1, 3).mean(axis=0)
    assert r > 150 and g > 100 and b < 90, (r, g, b)  # the yellow chassis
    r, g, b = frame[88, 160].astype(float)  # the map centre: the blue shelf
    assert b > r + 40, (r, g, b)


# ------------------------------------------------------------------ instances, seeds, resets, divergence


def test_two_instances_coexist_and_close_independently(aisle: Scenario, room: Scenario) -> None:
    a, b = PybulletRobot(aisle), PybulletRobot(room)
    assert a._cid != b._cid
    _drive(a, 0.5, 0.0, 1.0)
    assert b.true_pose().x == pytest.approx(room.start[0], abs=1e-6)  # b's world did not move
    _drive(b, 0.0, 1.0, 0.5)
    assert b.true_pose().yaw > 0.3 and a.true_pose().yaw == pytest.approx(0.0, abs=1e-3)
    assert len(a.read_scan().ranges) == len(b.read_scan().ranges)
    a.close()
    a.close()  # idempotent
    with pytest.raises(PybulletUnavailable, match="closed"):
        a.read_scan()
    _drive(b, 0.3, 0.0, 0.2)  # the other world lives on
    assert b.read_camera() is not None
    b.close()
    assert not pybullet.isConnected(physicsClientId=a._cid) and not pybullet.isConnected(physicsClientId=b._cid)


def _episode(robot: PybulletRobot) -> tuple[list[np.ndarray], tuple[float, float, float], tuple[float, float]]:
    scans = []
    for i in range(20):
        robot.apply_command(VelocityCommand(robot.now(), 0.4, 0.3 * math.sin(i / 3)))
        robot.advance(0.1)
        scans.append(robot.read_scan().ranges)
    odom, true = robot.read_odometry().pose, robot.true_pose()
    return scans, (odom.x, odom.y, odom.yaw), (true.x, true.y)


def test_same_seed_gives_identical_runs_and_reset_restores_the_start(aisle: Scenario) -> None:
    first, second = PybulletRobot(aisle), PybulletRobot(aisle)
    scans_a, odom_a, true_a = _episode(first)
    scans_b, odom_b, true_b = _episode(second)
    assert all(np.array_equal(x, y) for x, y in zip(scans_a, scans_b)) and odom_a == odom_b and true_a == true_b
    first.reset()
    assert first.now() == 0.0 and first.watchdog_trips == 0
    assert (first.true_pose().x, first.true_pose().y) == pytest.approx(aisle.start[:2], abs=1e-9)
    odom = first.read_odometry().pose
    assert (odom.x, odom.y, odom.yaw) == pytest.approx(aisle.start)
    scans_c, odom_c, true_c = _episode(first)  # after a reset, exactly a fresh instance's run
    assert all(np.array_equal(x, y) for x, y in zip(scans_a, scans_c)) and odom_a == odom_c and true_a == true_c
    first.reset(aisle.seed + 1)
    scans_d, odom_d, true_d = _episode(first)
    assert not np.array_equal(scans_a[0], scans_d[0]) and odom_a != odom_d  # the seed drives the noise
    assert true_d == pytest.approx(true_a, abs=1e-9)  # and only the noise: physics is the same
    first.close()
    second.close()


def test_non_finite_state_raises_simulation_diverged(aisle: Scenario) -> None:
    robot = PybulletRobot(aisle)
    _drive(robot, 0.3, 0.0, 0.2)
    pybullet.resetBaseVelocity(robot._robot_id, [math.nan, 0.0, 0.0], physicsClientId=robot._cid)
    with pytest.raises(SimulationDiverged, match="diverged") as err:
        robot.advance(0.1)
    assert str(SHORT_AISLE) in str(err.value)
    robot.reset()  # a reset brings back a healthy world
    robot.advance(0.1)
    assert robot.now() == pytest.approx(0.1) and robot.true_pose().is_finite()
    robot.close()


# ------------------------------------------------------------------ across simulators


def test_trajectory_difference_measures_what_it_says() -> None:
    t = np.arange(0.0, 10.0, 0.02)
    path = np.stack([t, np.zeros_like(t)], axis=1)
    same = backend_bench.trajectory_difference(t, path, t, path)
    assert all(v == 0.0 for v in same.values())
    shifted = backend_bench.trajectory_difference(t, path, t, path + [0.0, 0.1])
    assert shifted["time_mean"] == pytest.approx(0.1) and shifted["arc_max"] == pytest.approx(0.1)
    slow_t = np.arange(0.0, 20.0, 0.02)  # the same straight line at half speed, longer run
    slow = backend_bench.trajectory_difference(t, path, slow_t, np.stack([slow_t / 2, 0 * slow_t], axis=1))
    assert slow["arc_max"] < 0.05 and slow["final"] < 0.05  # same path...
    assert slow["time_max"] > 4.0  # ...driven at another speed


def _run(backend: str, sc: Scenario) -> RunResult:
    stack = load_stack_config(DEFAULT_PARAMS_FILE)
    robot = backend_bench.make_robot(backend, sc, stack)
    try:
        return InProcessRunner(sc, stack, robot).run(RunOptions())
    finally:
        robot.close()


def test_the_stack_drives_the_same_way_in_mujoco_and_pybullet(aisle: Scenario) -> None:
    """Same scenario, parameters and seed through the in-process runner: the same goals, no collision, and
    true paths within a few centimetres (measured: ~2 cm mean, 6 cm max at equal times; 1.5 cm by arc length)."""
    mj, pyb = _run("mujoco", aisle), _run("pybullet", aisle)
    for r in (mj, pyb):
        assert r.error is None and r.metrics["success"] and r.metrics["collisions"] == 0
        assert r.metrics["goals_reached"] == len(aisle.goals) and r.metrics["watchdog_trips"] == 0
        assert r.metrics["path_length_m"] > 5.0  # a real drive, so the bound below means something
    assert mj.metrics["goal_times_s"] == pytest.approx(pyb.metrics["goal_times_s"], abs=0.5)
    diff = backend_bench.trajectory_difference(mj.times, mj.true_xy, pyb.times, pyb.true_xy)
    assert diff["time_mean"] < 0.06 and diff["time_max"] < 0.15, diff
    assert diff["arc_mean"] < 0.03 and diff["arc_max"] < 0.06, diff
    assert diff["final"] < 0.1, diff


def test_backend_bench_reports_both_simulators(aisle: Scenario) -> None:
    r = backend_bench.run(SHORT_AISLE, seeds=1, physics_s=0.2, sensor_calls=2)
    assert set(r["backends"]) == {"mujoco", "pybullet"}
    for b in r["backends"].values():
        assert b["goals_reached"] == b["goals_total"] == len(aisle.goals) and b["collisions"] == 0
        assert b["physics_steps_per_s"] > 0 and b["lidar_ms"] > 0 and b["camera_ms"] > 0
        assert b["real_time_factor_median"] > 1.0
    assert len(r["trajectory_difference_m"]["per_seed"]) == 1
    table = backend_bench.format_table(r)
    assert "pybullet" in table and "real-time factor" in table and "same arc length" in table
