"""Generated warehouses: deterministic, of the family asked for, solvable; the fast simulator sees what MuJoCo sees."""
from __future__ import annotations

import math

import numpy as np
import pytest

from navkit.sim.vector_agv import VectorAgv
from navkit.sim.warehouse_layouts import HELD_OUT_SEED_BASE, connected, generate, line_of_sight, tour


@pytest.mark.parametrize("family", ["open", "behind_shelves", "mixed"])
def test_layouts_are_deterministic_solvable_and_of_their_family(family: str) -> None:
    hidden = []
    for seed in range(12):
        sc = generate(seed, family)
        again = generate(seed, family)
        assert sc.boxes == again.boxes and sc.start == again.start and sc.goals == again.goals
        start, goal = sc.start[:2], sc.goals[0]
        assert math.dist(start, goal) >= 4.0
        assert connected(sc, start, goal)
        hidden.append(not line_of_sight(sc, start, goal))
        assert sc.sensors.lidar.noise_std_m == 0.0 and sc.sensors.lidar.num_rays == 72
    if family == "open":
        assert not any(hidden)
    elif family == "behind_shelves":
        assert all(hidden)
    else:
        assert 0 < sum(hidden) < len(hidden)
    assert generate(HELD_OUT_SEED_BASE, family).boxes != generate(0, family).boxes


def test_connectivity_check_sees_a_walled_off_goal() -> None:
    from navkit.sim.scenario import parse_scenario

    doc = {"map": {"bounds": [0, 0, 10, 4]}, "robot": {"start": [1, 2, 0]}, "goals": [[9, 2]],
           "shelves": [{"center": [5, 2], "size": [0.4, 4.0]}]}
    sc = parse_scenario(doc)
    assert not connected(sc, (1, 2), (9, 2))
    doc["shelves"][0]["size"] = [0.4, 2.0]
    assert connected(parse_scenario(doc), (1, 2), (9, 2))


def test_a_tour_has_reachable_stops_in_order() -> None:
    sc = tour(HELD_OUT_SEED_BASE + 3, "mixed", goals=3)
    assert len(sc.goals) == 3
    for a, b in zip(sc.goals, sc.goals[1:]):
        assert math.dist(a, b) >= 4.0 and connected(sc, a, b)


def test_ray_cast_matches_mujoco_lidar_for_the_same_pose() -> None:
    from navkit.stack.plugin_catalog import default_registry

    registry = default_registry()
    rng = np.random.default_rng(0)
    for seed in (1, 2, HELD_OUT_SEED_BASE + 5):
        sc = generate(seed, "mixed")
        robot = registry.build(registry.choose("robot_backend", {"robot_backend.plugin": "mujoco"}, "test",
                                               prefix="robot_backend"), scenario=sc, cmd_timeout_s=0.5)
        try:
            robot.reset(0)
            from navkit.common.sensor_data import VelocityCommand

            for _ in range(int(rng.integers(5, 40))):  # drive somewhere else than the start
                robot.apply_command(VelocityCommand(robot.now(), 0.5, float(rng.uniform(-1, 1))))
                robot.advance(0.05)
            scan, pose = robot.read_scan(), robot.true_pose()
            sim = VectorAgv(1, sc.sensors.lidar.num_rays, sc.sensors.lidar.range_max_m, 0.1)
            sim.load(0, sc)
            sim.pose[0] = [pose.x, pose.y, pose.yaw]
            mj = np.where(np.isfinite(scan.ranges), scan.ranges, scan.range_max)
            np.testing.assert_allclose(sim.scan()[0], mj, atol=1e-2)  # mm: the chassis rocks as it accelerates
            assert scan.angle_min == pytest.approx(sim.angles[0])
        finally:
            robot.close()


def test_ray_cast_and_collisions_on_hand_made_geometry() -> None:
    from navkit.sim.scenario import parse_scenario

    sc = parse_scenario({"map": {"bounds": [0, 0, 10, 10]}, "robot": {"start": [5, 5, 0]}, "goals": [[1, 1]],
                         "shelves": [{"center": [8, 5], "size": [1.0, 2.0], "yaw": 0.0}],
                         "obstacles": [{"type": "cylinder", "center": [5, 7], "radius": 0.5}],
                         "sensors": {"lidar": {"num_rays": 4, "range_max_m": 20.0}}})
    sim = VectorAgv(1, 4, 20.0, 0.1)
    sim.load(0, sc)
    # Rays at -pi (west), -pi/2 (south), 0 (east), pi/2 (north).
    np.testing.assert_allclose(sim.scan()[0], [5.0, 5.0, 2.5, 1.5], atol=1e-9)
    assert not sim.colliding()[0]
    sim.pose[0, :2] = [5.0, 6.7]
    assert sim.colliding()[0]
    sim.pose[0, :2] = [9.8, 9.0]
    assert sim.colliding()[0]  # the wall


def test_wheels_follow_commands_with_the_acceleration_limit() -> None:
    from navkit.sim.scenario import parse_scenario

    sc = parse_scenario({"map": {"bounds": [0, 0, 50, 50]}, "robot": {"start": [5, 5, 0]}, "goals": [[40, 40]]})
    sim = VectorAgv(2, 8, 6.0, 0.1, wheel_accel_m_s2=2.6)
    sim.load(0, sc)
    sim.load(1, sc)
    sim.wheel_accel = 2.6
    sim.step(np.array([0.8, 0.8]), np.array([0.0, 0.0]))
    assert sim.twist[0, 0] == pytest.approx(0.26)  # 2.6 m/s² for 0.1 s
    for _ in range(5):
        sim.step(np.array([0.8, 0.8]), np.array([0.0, 0.0]))
    assert sim.twist[0, 0] == pytest.approx(0.8)
    x = sim.pose[0, 0]
    instant = VectorAgv(1, 8, 6.0, 0.1, wheel_accel_m_s2=0.0)
    instant.load(0, sc)
    instant.step(np.array([0.5]), np.array([1.0]))  # an exact arc of radius 0.5 m through 0.1 rad
    np.testing.assert_allclose(instant.pose[0], [5 + 0.5 * math.sin(0.1), 5 + 0.5 * (1 - math.cos(0.1)), 0.1],
                               atol=1e-12)
    assert x > 5.0
