"""A lidar that is not on the base's axis: offset, turned, upside down. Its scan carries its mount and
every consumer (safety filter, obstacle layer, localiser, learned controller) places points by it."""
from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from navkit.common import VelocityCommand
from navkit.common.geometry import RigidTransform
from navkit.common.interfaces import FilterStatus
from navkit.common.observation import Observation
from navkit.common.sensor_data import LaserScan
from navkit.control.cbf_filter import CbfFilterConfig, CbfSafetyFilter
from navkit.control.learned_controller import sector_ranges
from navkit.runner.in_process import InProcessRunner, RunOptions
from navkit.sim.mujoco_backend import MujocoRobot
from navkit.sim.scenario import LidarConfig, load_scenario
from navkit.stack.config import load_stack_config

SHORT_AISLE = Path(__file__).resolve().parents[2] / "scenarios" / "short_aisle.yaml"
ODD = LidarConfig(x_m=0.15, y_m=-0.1, yaw_deg=135.0, upside_down=True)


def _scan(ranges: list[float], mount: RigidTransform | None, frame: str = "base_scan") -> LaserScan:
    n = len(ranges)
    return LaserScan(stamp=0.0, angle_min=-math.pi, angle_increment=2 * math.pi / n, range_min=0.05, range_max=10.0,
                     ranges=np.asarray(ranges, dtype=np.float32), frame_id=frame, mount=mount)


def test_upside_down_lidar_mirrors_its_scan() -> None:
    mount = LidarConfig(upside_down=True).mount()
    ranges = [np.inf] * 8
    ranges[6] = 2.0  # sensor bearing -pi + 6 * pi/4 = +pi/2: the sensor's +y
    pts = _scan(ranges, mount).points_base()
    np.testing.assert_allclose(pts, [[0.0, -2.0]], atol=1e-9)
    # Without its mount the same scan would claim the obstacle on the other side.
    np.testing.assert_allclose(_scan(ranges, None).points_base(), [[0.0, 2.0]], atol=1e-9)


def test_offset_turned_mount_places_points() -> None:
    mount = LidarConfig(x_m=0.5, yaw_deg=90.0).mount()
    ranges = [np.inf] * 8
    ranges[4] = 1.0  # sensor bearing 0: the sensor's +x, which points along base +y
    np.testing.assert_allclose(_scan(ranges, mount).points_base(), [[0.5, 1.0]], atol=1e-9)


def test_filter_brakes_for_what_a_turned_lidar_sees_ahead() -> None:
    """A wall 0.45 m ahead of the robot, seen by a lidar turned 180°: only with its mount is it ahead."""
    f = CbfSafetyFilter(CbfFilterConfig())
    ranges = [np.inf] * 360
    ranges[0] = 0.45  # sensor bearing -pi: behind the sensor, i.e. ahead of the robot
    turned = LidarConfig(yaw_deg=180.0).mount()
    cmd = VelocityCommand(0.0, 0.8, 0.0)
    with_mount = f.filter(cmd, Observation(0.0, scan=_scan(ranges, turned)), 0.0)
    without = CbfSafetyFilter(CbfFilterConfig()).filter(cmd, Observation(0.0, scan=_scan(ranges, None)), 0.0)
    assert with_mount.command.v < 0.3
    assert without.command.v == pytest.approx(0.8)


def test_filter_refuses_a_scan_it_cannot_place() -> None:
    f = CbfSafetyFilter(CbfFilterConfig())
    cmd = VelocityCommand(0.0, 0.5, 0.0)
    unplaced = f.filter(cmd, Observation(0.0, scan=_scan([5.0] * 36, None, frame="laser_front")), 0.0)
    assert unplaced.status is FilterStatus.INVALID_INPUT and unplaced.command.v == 0.0
    assert "no transform to base_link" in unplaced.detail
    wrong = RigidTransform.planar(0.1, 0.0, 0.0, parent_frame="odom", child_frame="laser_front")
    mismatched = f.filter(cmd, Observation(0.0, scan=_scan([5.0] * 36, wrong, frame="laser_front")), 0.0)
    assert mismatched.status is FilterStatus.INVALID_INPUT
    placed = RigidTransform.planar(0.1, 0.0, 0.0, child_frame="laser_front")
    ok = f.filter(cmd, Observation(0.0, scan=_scan([5.0] * 36, placed, frame="laser_front")), 0.0)
    assert ok.status is FilterStatus.PASS and ok.command.v == pytest.approx(0.5)


def test_learned_controller_pools_by_base_bearing() -> None:
    ranges = [np.inf] * 8
    ranges[4] = 1.0  # sensor +x
    turned = _scan(ranges, LidarConfig(yaw_deg=180.0).mount())
    pooled = sector_ranges(turned, 4, 5.0)
    # Sectors of the base: [-pi,-pi/2), [-pi/2,0), [0,pi/2), [pi/2,pi): the hit is behind the base (bearing pi).
    assert pooled is not None and pooled[0] == pytest.approx(1.0) and pooled[2] == pytest.approx(5.0)


def test_mujoco_scan_carries_mount_and_sees_walls_where_they_are() -> None:
    sc = load_scenario(SHORT_AISLE)
    straight = MujocoRobot(sc)
    odd = MujocoRobot(replace(sc, sensors=replace(sc.sensors, lidar=ODD)))
    try:
        a, b = straight.read_scan(), odd.read_scan()
        assert b.mount == ODD.mount(base_height_m=sc.robot.wheel_radius_m)
        # Same world, two mounts: the nearest wall points in base_link agree to within the sensors' noise
        # and the 0.18 m between the two lidars' vantage points.
        pa, pb = a.points_base(), b.points_base()
        d = np.min(np.linalg.norm(pb[:, None, :] - pa[None, :, :], axis=2), axis=1)
        assert np.median(d) < 0.05
    finally:
        straight.close()
        odd.close()


def test_stack_drives_with_an_odd_lidar() -> None:
    sc = load_scenario(SHORT_AISLE)
    sc = replace(sc, sensors=replace(sc.sensors, lidar=ODD))
    robot = MujocoRobot(sc)
    try:
        metrics = InProcessRunner(sc, load_stack_config(), robot).run(RunOptions()).metrics
    finally:
        robot.close()
    assert metrics["goals_reached"] == metrics["goals_total"] == 2
    assert metrics["collisions"] == 0
