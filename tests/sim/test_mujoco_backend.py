"""The MuJoCo AGV: sensors agree with the true geometry, commands are guarded, bad physics is caught."""
from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from navkit.common import VelocityCommand
from navkit.sim.mujoco_backend import MujocoRobot
from navkit.common.errors import SimulationDiverged
from navkit.common.interfaces import RobotBackend, SimulationTruth
from navkit.sim.scenario import Box, Cylinder, Scenario, load_scenario

SHORT_AISLE = Path(__file__).resolve().parents[2] / "scenarios" / "short_aisle.yaml"


@pytest.fixture(scope="module")
def aisle() -> Scenario:
    return load_scenario(SHORT_AISLE)


def _drive(robot: MujocoRobot, v: float, omega: float, duration_s: float, dt: float = 0.02) -> list[bool]:
    """Fresh commands every ``dt`` (as the controller sends them); returns in_collision per step."""
    contacts = []
    for _ in range(int(round(duration_s / dt))):
        robot.apply_command(VelocityCommand(robot.now(), v, omega))
        robot.advance(dt)
        contacts.append(robot.in_collision())
    return contacts


def _speed(robot: MujocoRobot) -> float:
    return float(np.linalg.norm(robot.data.qvel[:2]))


# ------------------------------------------------------------------ analytical ray casting


def _ray_box(p: np.ndarray, d: np.ndarray, center: tuple[float, float], half: tuple[float, float], yaw: float) -> float:
    c, s = math.cos(yaw), math.sin(yaw)
    rot = np.array([[c, s], [-s, c]])  # world -> box frame
    lp, ld = rot @ (p - np.asarray(center)), rot @ d
    t_near, t_far = -math.inf, math.inf
    for k in range(2):
        if abs(ld[k]) < 1e-12:
            if abs(lp[k]) > half[k]:
                return math.inf
            continue
        t1, t2 = (-half[k] - lp[k]) / ld[k], (half[k] - lp[k]) / ld[k]
        t_near, t_far = max(t_near, min(t1, t2)), min(t_far, max(t1, t2))
    return t_near if t_near <= t_far and t_near >= 0.0 else math.inf


def _ray_circle(p: np.ndarray, d: np.ndarray, center: tuple[float, float], r: float) -> float:
    f = p - np.asarray(center)
    b = float(np.dot(f, d))
    disc = b * b - (float(np.dot(f, f)) - r * r)
    if disc < 0:
        return math.inf
    t = -b - math.sqrt(disc)
    return t if t >= 0 else math.inf


def _true_ranges(sc: Scenario, x: float, y: float, world_angles: np.ndarray) -> np.ndarray:
    """Distance along each ray to shelves, boxes, cylinders and the inner wall faces."""
    xmin, ymin, xmax, ymax = sc.bounds
    t = 0.1  # half wall thickness; only the inner face matters
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


@pytest.fixture(scope="module")
def placed(aisle: Scenario) -> Scenario:
    """short_aisle with the robot facing the shelf and an unmapped barrel to its right."""
    barrel = Cylinder("barrel", center=(6.5, 0.9), radius=0.25, height=0.8, mapped=False)
    crate = Box("crate", center=(2.0, 0.6), size=(0.6, 0.4), yaw=0.5, height=0.5, mapped=False)
    return aisle.with_overrides(start=(4.0, 0.9, math.pi / 2), cylinders=(barrel,), boxes=(*aisle.boxes, crate))


def test_implements_the_robot_interface(aisle: Scenario) -> None:
    robot = MujocoRobot(aisle)
    assert isinstance(robot, RobotBackend) and isinstance(robot, SimulationTruth)
    pose = robot.true_pose()
    assert (pose.x, pose.y, pose.yaw) == pytest.approx(aisle.start, abs=1e-9)


def test_lidar_matches_the_analytical_geometry(placed: Scenario) -> None:
    robot = MujocoRobot(placed)
    scan = robot.read_scan()
    lidar = placed.sensors.lidar
    assert len(scan.ranges) == lidar.num_rays
    assert scan.range_max == lidar.range_max_m and scan.range_min == lidar.range_min_m
    assert scan.angle_increment == pytest.approx(2 * math.pi / lidar.num_rays)
    pose = robot.true_pose()
    want = _true_ranges(placed, pose.x, pose.y, scan.angles + pose.yaw)
    assert np.all(np.isfinite(want)) and want.max() < lidar.range_max_m  # closed room, all rays hit
    err = scan.ranges.astype(float) - want
    sigma = lidar.noise_std_m
    # Every ray within 4 sigma; the noise is real noise (not zero) and unbiased.
    assert np.max(np.abs(err)) < 4 * sigma, f"worst ray {np.argmax(np.abs(err))}: {err[np.argmax(np.abs(err))]:.4f} m"
    assert np.mean(np.abs(err) < 3 * sigma) > 0.97
    assert 0.5 * sigma < np.std(err) < 1.5 * sigma
    assert abs(np.mean(err)) < 0.5 * sigma
    # Specific rays: straight ahead the shelf (0.7 m), behind the wall (0.9 m), to the right the barrel.
    ahead = int(np.argmin(np.abs(scan.angles - 0.0)))
    behind = int(np.argmin(np.abs(np.abs(scan.angles) - math.pi)))
    right = int(np.argmin(np.abs(scan.angles + math.pi / 2)))
    assert scan.ranges[ahead] == pytest.approx(0.7, abs=3 * sigma)
    assert scan.ranges[behind] == pytest.approx(0.9, abs=3 * sigma)
    assert scan.ranges[right] == pytest.approx(6.5 - 4.0 - 0.25, abs=3 * sigma)


def test_lidar_never_sees_the_robot_itself(placed: Scenario) -> None:
    robot = MujocoRobot(placed)
    scan = robot.read_scan()
    # The chassis (radius 0.3 m) surrounds the lidar: a self-hit would read < 0.3 m.
    assert np.min(scan.ranges) > placed.robot.radius_m + 0.1
    hit = robot._ray_geomid[robot._ray_geomid >= 0]
    assert not np.any(robot._is_robot_geom[hit])
    assert np.all(robot._is_obstacle_geom[hit])


def test_lidar_no_return_beyond_range_max(placed: Scenario) -> None:
    short = replace(placed.sensors.lidar, range_max_m=1.5)
    sc = placed.with_overrides(sensors=replace(placed.sensors, lidar=short))
    robot = MujocoRobot(sc)
    scan = robot.read_scan()
    pose = robot.true_pose()
    want = _true_ranges(sc, pose.x, pose.y, scan.angles + pose.yaw)
    far = want > 1.5 + 4 * short.noise_std_m
    near = want < 1.5 - 4 * short.noise_std_m
    assert far.sum() > 50 and near.sum() > 20
    assert np.all(np.isposinf(scan.ranges[far]))
    assert np.all(np.isfinite(scan.ranges[near]))
    np.testing.assert_allclose(scan.ranges[near], want[near], atol=4 * short.noise_std_m)
    assert len(scan.points_xy()) == int(np.isfinite(scan.ranges).sum())


def test_odometry_follows_the_true_pose_driving_straight(aisle: Scenario) -> None:
    robot = MujocoRobot(aisle)
    _drive(robot, 0.5, 0.0, 4.0)
    true, odom = robot.true_pose(), robot.read_odometry()
    travelled = true.x - aisle.start[0]
    assert 1.7 < travelled < 2.1, travelled  # ~2 m after the wheels spin up
    assert abs(true.y - aisle.start[1]) < 0.05 and abs(true.yaw) < 0.05
    assert math.hypot(odom.pose.x - true.x, odom.pose.y - true.y) < 0.05
    assert abs(math.remainder(odom.pose.yaw - true.yaw, 2 * math.pi)) < 0.05
    assert odom.v == pytest.approx(0.5, abs=0.05) and abs(odom.omega) < 0.1
    assert odom.stamp == pytest.approx(robot.now())
    assert robot.watchdog_trips == 0


def test_odometry_drifts_a_little_but_not_zero(aisle: Scenario) -> None:
    robot = MujocoRobot(aisle)
    _drive(robot, 0.5, 0.6, 6.0)  # a turning loop accumulates heading error
    true, odom = robot.true_pose(), robot.read_odometry()
    drift = math.hypot(odom.pose.x - true.x, odom.pose.y - true.y)
    assert 1e-5 < drift < 0.15, drift


def test_stale_command_is_zeroed_by_the_watchdog(aisle: Scenario) -> None:
    robot = MujocoRobot(aisle, cmd_timeout_s=0.5)
    robot.apply_command(VelocityCommand(robot.now(), 0.5, 0.0))
    robot.advance(0.4)
    assert _speed(robot) > 0.2 and robot.watchdog_trips == 0  # still fresh: moving
    robot.advance(1.1)  # now 1.0 s past the timeout
    x_stopped = robot.true_pose().x
    assert _speed(robot) < 0.02
    assert robot.watchdog_trips > 0
    assert np.all(robot.data.ctrl == 0.0)
    robot.advance(0.5)
    assert robot.true_pose().x == pytest.approx(x_stopped, abs=0.01)
    assert robot.true_pose().x - aisle.start[0] < 0.6  # it did not keep driving for 2 s


def test_fresh_commands_never_trip_the_watchdog(aisle: Scenario) -> None:
    robot = MujocoRobot(aisle, cmd_timeout_s=0.5)
    _drive(robot, 0.4, 0.0, 1.5)
    assert robot.watchdog_trips == 0 and _speed(robot) > 0.3


@pytest.mark.parametrize("bad", [(math.nan, 0.0), (0.3, math.inf), (-math.inf, math.nan)])
def test_non_finite_command_stops_the_robot(aisle: Scenario, bad: tuple[float, float]) -> None:
    robot = MujocoRobot(aisle, cmd_timeout_s=100.0)  # so the watchdog cannot be what stops it
    _drive(robot, 0.5, 0.0, 1.0)
    assert _speed(robot) > 0.3
    robot.apply_command(VelocityCommand(robot.now(), *bad))
    robot.advance(1.0)
    assert _speed(robot) < 0.02
    assert np.all(np.isfinite(robot.data.ctrl)) and np.all(robot.data.ctrl == 0.0)
    assert np.all(np.isfinite(robot.data.qpos)) and robot.read_odometry().is_finite()
    assert robot.watchdog_trips == 0


def test_in_collision_false_in_free_space_true_against_a_wall(aisle: Scenario) -> None:
    # Facing the west wall, 1 m away (0.7 m between chassis and wall).
    sc = aisle.with_overrides(start=(1.0, 1.0, math.pi))
    robot = MujocoRobot(sc)
    robot.advance(0.2)
    assert robot.in_collision() is False
    contacts = _drive(robot, 0.5, 0.0, 1.0)
    assert not any(contacts)  # 0.5 m travelled: not there yet
    contacts = _drive(robot, 0.5, 0.0, 2.0)
    assert any(contacts) and contacts[-1]
    assert robot.true_pose().x == pytest.approx(sc.robot.radius_m, abs=0.05)  # pressed against x = 0
    # Backing away clears the contact.
    contacts = _drive(robot, -0.3, 0.0, 1.0)
    assert not contacts[-1]


def test_camera_image_and_depth(aisle: Scenario) -> None:
    robot = MujocoRobot(aisle)
    try:
        image = robot.read_camera()
        cam = aisle.sensors.camera
        assert image is not None
        assert image.rgb.shape == (cam.height, cam.width, 3) and image.rgb.dtype == np.uint8
        assert image.rgb.std() > 1.0  # a scene, not a blank frame
        assert image.depth is not None and image.depth.shape == (cam.height, cam.width)
        assert image.depth.dtype == np.float32 and np.all(np.isfinite(image.depth))
        # Straight ahead (+x from (1, 1)) the east wall: 7 m minus the camera's 0.27 m offset.
        centre = float(image.depth[cam.height // 2, cam.width // 2])
        assert centre == pytest.approx(7.0 - 0.9 * aisle.robot.radius_m, abs=0.15)
        assert image.stamp == robot.now()
    finally:
        robot.close()


def test_camera_disabled_returns_none_and_depth_optional(aisle: Scenario) -> None:
    off = aisle.with_overrides(sensors=replace(aisle.sensors, camera=replace(aisle.sensors.camera, enabled=False)))
    assert MujocoRobot(off).read_camera() is None
    no_depth = aisle.with_overrides(sensors=replace(aisle.sensors, camera=replace(aisle.sensors.camera, depth=False)))
    robot = MujocoRobot(no_depth)
    try:
        image = robot.read_camera()
        assert image is not None and image.depth is None and image.rgb.shape[2] == 3
    finally:
        robot.close()


def _episode(sc: Scenario, seed: int | None = None) -> tuple[list[np.ndarray], tuple[float, float, float]]:
    robot = MujocoRobot(sc)
    if seed is not None:
        robot.reset(seed)
    scans = []
    for i in range(20):
        robot.apply_command(VelocityCommand(robot.now(), 0.4, 0.3 * math.sin(i / 3)))
        robot.advance(0.1)
        scans.append(robot.read_scan().ranges)
    odom = robot.read_odometry().pose
    return scans, (odom.x, odom.y, odom.yaw)


def test_same_seed_gives_identical_scans_and_odometry(aisle: Scenario) -> None:
    scans_a, odom_a = _episode(aisle)
    scans_b, odom_b = _episode(aisle)
    assert all(np.array_equal(a, b) for a, b in zip(scans_a, scans_b))
    assert odom_a == odom_b
    scans_c, odom_c = _episode(aisle, seed=aisle.seed + 1)
    assert not np.array_equal(scans_a[0], scans_c[0])  # the seed drives the noise
    assert odom_a != odom_c


def test_reset_restores_start_and_clock(aisle: Scenario) -> None:
    robot = MujocoRobot(aisle)
    first = robot.read_scan().ranges
    _drive(robot, 0.5, 0.2, 1.0)
    robot.reset()
    assert robot.now() == 0.0 and robot.watchdog_trips == 0
    assert (robot.true_pose().x, robot.true_pose().y) == pytest.approx(aisle.start[:2], abs=1e-9)
    odom = robot.read_odometry().pose
    assert (odom.x, odom.y, odom.yaw) == pytest.approx(aisle.start)
    np.testing.assert_array_equal(robot.read_scan().ranges, first)


def test_non_finite_state_raises_simulation_diverged(aisle: Scenario, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # MuJoCo logs the warning to ./MUJOCO_LOG.TXT
    robot = MujocoRobot(aisle)
    _drive(robot, 0.3, 0.0, 0.2)
    robot.data.qvel[:] = np.nan
    with pytest.raises(SimulationDiverged) as err:
        robot.advance(0.1)
    assert str(SHORT_AISLE) in str(err.value)
    assert "diverged" in str(err.value)
    # MuJoCo's auto-reset must not be mistaken for a healthy state on later calls either.
    robot.reset()
    robot.advance(0.1)
    assert robot.now() == pytest.approx(0.1)


def test_camera_intrinsics_and_extrinsics_put_depth_pixels_where_the_lidar_sees(aisle: Scenario) -> None:
    """A depth pixel, unprojected with the image's intrinsics and moved by its extrinsics, lands
    on the obstacle the lidar ray in the same direction hits (camera and lidar share a height)."""
    robot = MujocoRobot(aisle.with_overrides(start=(1.0, 2.0, 0.0)))  # facing the shelf's end, 1.5 m ahead
    try:
        image = robot.read_camera()
        scan = robot.read_scan()
    finally:
        robot.close()
    assert image is not None and image.depth is not None and image.intrinsics is not None
    assert image.extrinsics is not None and image.extrinsics.child_frame == image.frame_id == "camera_optical_frame"
    k = image.intrinsics
    row, col = (k.height - 1) // 2, (k.width - 1) // 2
    z = float(image.depth[row, col])
    point_optical = np.array([[(col - k.cx) * z / k.fx, (row - k.cy) * z / k.fy, z]])
    point_base = image.extrinsics.apply(point_optical)[0]
    ahead = float(scan.ranges[int(np.argmin(np.abs(scan.angles)))])
    assert 1.0 < ahead < 2.0
    assert point_base[0] == pytest.approx(ahead, abs=0.05)  # straight ahead, at the lidar's range
    assert abs(point_base[1]) < 0.05 and point_base[2] == pytest.approx(0.3, abs=0.05)
    # And back: the base-frame point projects onto the centre pixel.
    u, v = k.project(np.linalg.solve(image.extrinsics.matrix, point_base - np.array(image.extrinsics.translation)))[0]
    assert (u, v) == pytest.approx((col, row), abs=0.5)
