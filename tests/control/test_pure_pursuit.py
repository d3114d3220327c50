"""Pure pursuit in a kinematic unicycle loop."""
from __future__ import annotations

import math

import numpy as np
import pytest

from navkit.common.sensor_data import Pose2D
from navkit.control.pure_pursuit import PurePursuit, PurePursuitConfig


def _distance_to_polyline(point: np.ndarray, corners: np.ndarray) -> float:
    best = math.inf
    for a, b in zip(corners[:-1], corners[1:]):
        seg = b - a
        t = np.clip((point - a) @ seg / (seg @ seg), 0.0, 1.0)
        best = min(best, float(np.linalg.norm(a + t * seg - point)))
    return best


def _follow(path: np.ndarray, pose: Pose2D, seconds: float = 40.0, dt: float = 0.05) -> tuple[Pose2D, float, int]:
    """Integrate until the follower outputs zero; returns final pose, max deviation, steps."""
    follower = PurePursuit(PurePursuitConfig())
    x, y, yaw = pose.x, pose.y, pose.yaw
    max_dev = 0.0
    for step in range(int(seconds / dt)):
        v, omega = follower.track(Pose2D(x, y, yaw), path)
        assert abs(omega) <= follower.config.omega_max + 1e-12
        assert 0.0 <= v <= follower.config.v_max + 1e-12
        if v == 0.0 and omega == 0.0:
            return Pose2D(x, y, yaw), max_dev, step
        x += v * dt * math.cos(yaw + 0.5 * omega * dt)
        y += v * dt * math.sin(yaw + 0.5 * omega * dt)
        yaw += omega * dt
        max_dev = max(max_dev, _distance_to_polyline(np.array([x, y]), path))
    raise AssertionError(f"did not reach the goal; ended at {(x, y, yaw)}")


def test_follows_straight_path() -> None:
    path = np.stack([np.linspace(0.0, 5.0, 51), np.zeros(51)], axis=1)
    final, max_dev, _ = _follow(path, Pose2D(0.0, 0.3, 0.0))
    assert math.hypot(final.x - 5.0, final.y) <= PurePursuitConfig().goal_tolerance_m
    assert max_dev <= 0.31  # converges from the 0.3 m offset, never overshoots far
    assert abs(final.y) < 0.05


def test_follows_sparse_l_shaped_path() -> None:
    path = np.array([[0.0, 0.0], [3.0, 0.0], [3.0, 3.0]])
    final, max_dev, steps = _follow(path, Pose2D(0.0, 0.0, 0.0))
    assert math.hypot(final.x - 3.0, final.y - 3.0) <= PurePursuitConfig().goal_tolerance_m
    assert max_dev < 0.3  # corner cut bounded by the look-ahead
    assert steps * 0.05 < 20.0


def test_turns_in_place_when_path_is_behind() -> None:
    follower = PurePursuit()
    path = np.stack([np.linspace(-1.0, -4.0, 31), np.zeros(31)], axis=1)
    v, omega = follower.track(Pose2D(0.0, 0.0, 0.0), path)
    assert v == 0.0
    assert abs(omega) == pytest.approx(follower.config.omega_max)


def test_zero_at_goal_and_for_empty_path() -> None:
    follower = PurePursuit()
    path = np.array([[0.0, 0.0], [1.0, 0.0]])
    assert follower.track(Pose2D(0.9, 0.05, 0.0), path) == (0.0, 0.0)
    assert follower.track(Pose2D(0.0, 0.0, 0.0), np.zeros((0, 2))) == (0.0, 0.0)
    assert follower.track(Pose2D(math.nan, 0.0, 0.0), path) == (0.0, 0.0)
    with pytest.raises(ValueError, match="path"):
        follower.track(Pose2D(0.0, 0.0, 0.0), np.zeros((3, 3)))


def test_progress_never_jumps_backward_until_reset() -> None:
    # Out along y=0 and back along y=0.3: between the legs, the closest point is on the out
    # leg, but a robot already on the return leg must keep following the return leg.
    out = np.stack([np.linspace(0.0, 2.0, 41), np.zeros(41)], axis=1)
    back = np.stack([np.linspace(2.0, 0.0, 41), np.full(41, 0.3)], axis=1)
    path = np.vstack([out, back])
    between = Pose2D(1.0, 0.1, math.pi)

    follower = PurePursuit()
    follower.track(Pose2D(1.0, 0.3, math.pi), path)  # on the return leg
    v, omega = follower.track(between, path)
    assert v > 0.0 and abs(omega) < 1.0  # still pursuing the return leg ahead

    follower.reset()
    v, _ = follower.track(between, path)
    assert v == 0.0  # fresh progress: the out-leg target is behind -> turn in place


def test_config_validation_names_field() -> None:
    with pytest.raises(ValueError, match="lookahead_m"):
        PurePursuitConfig(lookahead_m=0.0)
    with pytest.raises(ValueError, match="goal_tolerance_m"):
        PurePursuitConfig(goal_tolerance_m=-1.0)


def test_the_controller_protocol_needs_odometry_and_a_path() -> None:
    """As a ``local_controller`` plugin it commands zero when either input is missing."""
    from navkit.common.observation import ControlTarget, Observation
    from navkit.common.sensor_data import Odometry

    follower = PurePursuit()
    path = np.array([[0.0, 0.0], [5.0, 0.0]])
    odom = Odometry(stamp=2.0, pose=Pose2D(0.0, 0.0, 0.0), v=0.0, omega=0.0)
    moving = follower.compute(Observation(2.0, odom=odom), ControlTarget(path=path))
    assert moving.stamp == 2.0 and moving.v > 0.3
    assert follower.compute(Observation(2.0), ControlTarget(path=path)).v == 0.0
    assert follower.compute(Observation(2.0, odom=odom), ControlTarget()).v == 0.0
