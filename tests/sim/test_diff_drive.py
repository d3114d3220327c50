"""The simulators' shared motor driver: the watchdog refuses stale and future-stamped commands alike."""
from __future__ import annotations

from pathlib import Path

import pytest

from navkit.common.geometry import Pose2D
from navkit.common.sensor_data import VelocityCommand
from navkit.sim.diff_drive import DiffDriveDriver
from navkit.sim.scenario import OdometryConfig, load_scenario

ROBOT = load_scenario(Path(__file__).resolve().parents[2] / "scenarios" / "short_aisle.yaml").robot


@pytest.mark.parametrize("age_s, moves", [(0.0, True), (0.4, True), (0.6, False), (-0.6, False), (-1000.0, False)])
def test_watchdog_uses_the_stamp_distance_both_ways(age_s: float, moves: bool) -> None:
    driver = DiffDriveDriver(ROBOT, OdometryConfig(), cmd_timeout_s=0.5)
    driver.reset(Pose2D(0.0, 0.0, 0.0))
    now = 10.0
    driver.apply_command(VelocityCommand(now - age_s, 0.5, 0.0), now)
    left, right = driver.wheel_targets(now)
    assert (left != 0.0 and right != 0.0) is moves
    assert driver.watchdog_trips == (0 if moves else 1)


def test_odometry_periods_cover_the_duration() -> None:
    driver = DiffDriveDriver(ROBOT, OdometryConfig(), cmd_timeout_s=0.5)
    steps = list(driver.odometry_periods(0.05, 0.002))
    assert sum(steps) == 25 and max(steps) == round(1.0 / OdometryConfig().rate_hz / 0.002)
