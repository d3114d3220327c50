"""The learned local controller: the training envs' encoding, no motion on missing or bad input, file errors."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from navkit.common.geometry import Pose2D
from navkit.common.observation import ControlTarget, Observation
from navkit.common.sensor_data import LaserScan, Odometry
from navkit.control.learned_controller import (AgvPolicy, LearnedController, LearnedControllerConfig, ObservationSpec,
                                               PolicyFileError, encode_observation, load_agv_policy, save_agv_policy)


def _policy_file(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    policy = AgvPolicy(29)
    with torch.no_grad():
        policy.net[-1].bias.copy_(torch.tensor([0.5, -0.25]))
    return save_agv_policy(policy, ObservationSpec(), tmp_path / "p.pt", {"algo": "test"})


def _obs(stamp: float = 1.0, ranges: list[float] | None = None, odom: Odometry | None = None) -> Observation:
    scan = LaserScan(stamp=stamp, angle_min=-math.pi, angle_increment=2 * math.pi / 24, range_min=0.1,
                     range_max=6.0, ranges=np.array(ranges if ranges is not None else [3.0] * 24))
    odom = odom or Odometry(stamp=stamp, pose=Pose2D(1.0, 2.0, 0.3), v=0.2, omega=0.1)
    return Observation(stamp=stamp, odom=odom, scan=scan)


def test_the_controller_feeds_the_policy_what_the_training_env_feeds_it(tmp_path: Path) -> None:
    ctrl = LearnedController(LearnedControllerConfig(path=str(_policy_file(tmp_path))), tmp_path / "unused.pt")
    obs = _obs()
    cmd = ctrl.compute(obs, ControlTarget(goal=Pose2D(5.0, 2.0, 0.0)))
    expected = encode_observation(np.full((1, 24), 3.0), 6.0, np.array([[1.0, 2.0, 0.3]]), np.array([[5.0, 2.0]]),
                                  np.array([[0.2, 0.1]]), 0.8, 1.5)
    a = ctrl.policy.act(expected)[0]
    assert cmd.v == pytest.approx(a[0] * 0.8) and cmd.omega == pytest.approx(a[1] * 1.5)
    assert abs(cmd.v) > 0.05  # the test would be vacuous for a zero command
    assert ctrl.meta == {"algo": "test"}


@pytest.mark.parametrize("case", ["no goal", "no scan", "nan odom", "empty scan", "nan goal", "270 degree lidar",
                                  "nan policy"])
def test_missing_or_bad_input_never_becomes_motion(tmp_path: Path, case: str) -> None:
    ctrl = LearnedController(LearnedControllerConfig(path=str(_policy_file(tmp_path))), tmp_path / "unused.pt")
    obs, target = _obs(), ControlTarget(goal=Pose2D(5.0, 2.0, 0.0))
    assert abs(ctrl.compute(obs, target).v) > 0.05  # the unchanged input moves the robot
    if case == "nan policy":
        with torch.no_grad():
            ctrl.policy.net[-1].bias.fill_(float("nan"))
    elif case == "no goal":
        target = ControlTarget()
    elif case == "no scan":
        obs = Observation(stamp=1.0, odom=obs.odom, scan=None)
    elif case == "nan odom":
        obs = _obs(odom=Odometry(stamp=1.0, pose=Pose2D(float("nan"), 2.0, 0.0), v=0.0, omega=0.0))
    elif case == "empty scan":
        obs = _obs(ranges=[])
    elif case == "270 degree lidar":  # a quarter of the policy's view would be blind, not free
        scan = LaserScan(stamp=1.0, angle_min=-0.75 * math.pi, angle_increment=1.5 * math.pi / 18, range_min=0.1,
                         range_max=6.0, ranges=np.full(18, 3.0))
        obs = Observation(stamp=1.0, odom=obs.odom, scan=scan)
    else:
        target = ControlTarget(goal=Pose2D(float("nan"), 2.0, 0.0))
    cmd = ctrl.compute(obs, target)
    assert cmd.v == 0.0 and cmd.omega == 0.0


def test_sectors_follow_ray_angles_and_too_close_is_an_obstacle() -> None:
    from navkit.control.learned_controller import sector_ranges

    rng = np.random.default_rng(0)
    ranges = rng.uniform(0.5, 5.0, 72)
    from_minus_pi = LaserScan(0.0, -math.pi, 2 * math.pi / 72, 0.1, 6.0, ranges)
    # The same sweep from a lidar whose first ray points forward (angle 0): rays rolled by half a turn.
    from_zero = LaserScan(0.0, 0.0, 2 * math.pi / 72, 0.1, 6.0, np.roll(ranges, -36))
    a, b = sector_ranges(from_minus_pi, 24, 6.0), sector_ranges(from_zero, 24, 6.0)
    assert a is not None and b is not None
    np.testing.assert_array_equal(a, ranges.reshape(24, 3).min(axis=1))  # the training env's pooling
    np.testing.assert_array_equal(a, b)
    ranges[7] = -np.inf  # REP-117: too close to measure
    c = sector_ranges(LaserScan(0.0, -math.pi, 2 * math.pi / 72, 0.1, 6.0, ranges), 24, 6.0)
    assert c is not None and c[2] == 0.0


def test_policy_file_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyFileError, match="missing.pt"):
        load_agv_policy(tmp_path / "missing.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(PolicyFileError, match="not a zip"):
        load_agv_policy(tmp_path / "text.pt")
    torch.save({"format": "something else"}, tmp_path / "other.pt")
    with pytest.raises(PolicyFileError, match="other.pt: format"):
        load_agv_policy(tmp_path / "other.pt")
    blob = torch.load(_policy_file(tmp_path), weights_only=True)
    blob["observation"]["num_rays"] = 32  # a 37-input network does not fit these weights
    torch.save(blob, tmp_path / "wrong.pt")
    with pytest.raises(PolicyFileError, match="wrong.pt: state_dict"):
        load_agv_policy(tmp_path / "wrong.pt")
    blob["observation"]["range_max_m"] = 0.0  # would divide every range by zero
    torch.save(blob, tmp_path / "zero.pt")
    with pytest.raises(PolicyFileError, match="zero.pt: observation.*range_max_m"):
        load_agv_policy(tmp_path / "zero.pt")


def test_the_plugin_is_chosen_by_the_parameter_file(tmp_path: Path) -> None:
    from navkit.stack.plugin_catalog import default_registry

    registry = default_registry()
    path = _policy_file(tmp_path)
    ctrl = registry.build(registry.choose("local_controller", {"local_controller.plugin": "rl_policy",
                                                               "local_controller.path": str(path)}, "test",
                                          prefix="local_controller"))
    assert isinstance(ctrl, LearnedController)
    with pytest.raises(ValueError, match="speed_scale"):
        LearnedControllerConfig(speed_scale=2.0)
