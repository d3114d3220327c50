"""The in-process runner: the whole stack drives the simulated AGV to its goals, reproducibly."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from navkit.runner.bag_recorder import CMD_VEL_TOPIC, IMAGE_TOPIC, ODOM_TOPIC, SCAN_TOPIC, read_bag
from navkit.learning.navigation_episode import STAGES
from navkit.runner.in_process import InProcessRunner, RunOptions, RunResult
from navkit.stack.config import load_stack_config
from navkit.sim.mujoco_backend import MujocoRobot
from navkit.sim.scenario import Scenario, load_scenario

SHORT_AISLE = Path(__file__).resolve().parents[2] / "scenarios" / "short_aisle.yaml"
WALL_CLOCK_FIELDS = {"wall_time_s", "real_time_factor", "stage_ms"}

# A corridor split lengthwise by a mapped divider. A pallet that is not on the map closes
# the lower corridor 6 m from the start: beyond the planner's observe range (4 m), so the
# first plan runs straight into it and the robot must see it and go round by the upper one.
BLOCKED_CORRIDOR = """\
name: blocked_corridor
seed: 2
time_limit_s: 60.0
map: {bounds: [0.0, 0.0, 11.0, 5.0], walls: true}
shelves:
  - {name: divider, center: [5.5, 2.5], size: [7.0, 0.6]}
obstacles:
  - {type: box, name: dropped_pallet, center: [7.0, 1.1], size: [0.6, 2.2], height: 0.6, mapped: false}
robot: {model: agv_diff_drive, start: [1.0, 1.2, 0.0]}
goals: [[10.0, 1.2]]
sensors:
  camera: {enabled: false}
"""


def _run(sc: Scenario, options: RunOptions | None = None) -> RunResult:
    robot = MujocoRobot(sc, cmd_timeout_s=load_stack_config().bridge.cmd_timeout_s)
    try:
        return InProcessRunner(sc, load_stack_config(), robot).run(options)
    finally:
        robot.close()


def _deterministic(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if k not in WALL_CLOCK_FIELDS}


@pytest.fixture(scope="module")
def aisle() -> Scenario:
    return load_scenario(SHORT_AISLE)


@pytest.fixture(scope="module")
def aisle_run(aisle: Scenario) -> RunResult:
    return _run(aisle)


def test_short_aisle_reaches_all_goals_without_collision(aisle: Scenario, aisle_run: RunResult) -> None:
    m = aisle_run.metrics
    assert m["success"] is True
    assert m["goals_reached"] == m["goals_total"] == len(aisle.goals)
    assert m["collisions"] == 0 and m["collision_time_s"] == 0.0
    assert m["min_clearance_m"] > 0.0
    assert m["sim_time_s"] < aisle.time_limit_s
    assert len(m["goal_times_s"]) == 2 and m["goal_times_s"] == sorted(m["goal_times_s"])
    # The truth trace ends near the last goal (odometry decides arrival, so allow its drift).
    end = aisle_run.true_xy[-1]
    assert math.dist(end, aisle.goals[-1]) < 0.6
    # Roughly the straight-line distance between waypoints (goals count within tolerance).
    straight = math.dist(aisle.start[:2], aisle.goals[0]) + math.dist(aisle.goals[0], aisle.goals[1])
    assert 0.8 * straight < m["path_length_m"] < 1.5 * straight
    # Truth clearance recomputed from the trace agrees with the reported minimum.
    clearance = aisle.obstacle_distance(aisle_run.true_xy) - aisle.robot.radius_m
    assert float(clearance.min()) == pytest.approx(m["min_clearance_m"], abs=1e-3)


def test_traces_and_stage_timings_are_consistent(aisle_run: RunResult) -> None:
    m = aisle_run.metrics
    n = m["control_ticks"]
    assert aisle_run.times.shape == (n,) and aisle_run.true_xy.shape == (n, 2) and aisle_run.odom_xy.shape == (n, 2)
    assert np.all(np.diff(aisle_run.times) > 0)
    assert aisle_run.times[-1] == pytest.approx(m["sim_time_s"], abs=1e-3)
    assert n == pytest.approx(m["sim_time_s"] * 50.0, abs=2)  # 50 Hz control
    assert set(m["stage_ms"]) == set(STAGES)
    assert all(t["calls"] >= n - 1 and t["mean"] >= 0 for t in m["stage_ms"].values())
    assert m["wall_time_s"] > 0 and m["real_time_factor"] > 1.0
    assert len(aisle_run.plans) == m["replans"] >= 2  # one plan per goal at least
    assert aisle_run.frames == []  # no video asked for


def test_filter_counters_appear_in_metrics(aisle_run: RunResult) -> None:
    m = aisle_run.metrics
    for key in ("filter_interventions", "filter_infeasible", "filter_invalid_input", "filter_stale_input",
                "watchdog_trips", "replans", "plan_failures"):
        assert isinstance(m[key], int) and m[key] >= 0, key
    counts = m["filter_status_counts"]
    assert sum(counts.values()) == m["control_ticks"]
    assert counts.get("MODIFIED", 0) == m["filter_interventions"]
    assert counts.get("INFEASIBLE_BRAKE", 0) == m["filter_infeasible"]
    assert counts.get("INVALID_INPUT", 0) == m["filter_invalid_input"] == 0
    assert counts.get("STALE_INPUT", 0) == m["filter_stale_input"] == 0
    assert counts.get("PASS", 0) > 0
    assert m["watchdog_trips"] == 0  # the stack commands every tick
    assert len(aisle_run.intervention_xy) == m["filter_interventions"]


def test_same_seed_gives_identical_metrics(aisle: Scenario, aisle_run: RunResult) -> None:
    again = _run(aisle)
    assert _deterministic(again.metrics) == _deterministic(aisle_run.metrics)
    np.testing.assert_array_equal(again.true_xy, aisle_run.true_xy)
    np.testing.assert_array_equal(again.odom_xy, aisle_run.odom_xy)


def test_different_seed_changes_the_run(aisle: Scenario, aisle_run: RunResult) -> None:
    other = _run(aisle.with_overrides(seed=aisle.seed + 7))
    assert other.metrics["seed"] == aisle.seed + 7
    assert other.metrics["success"] is True and other.metrics["collisions"] == 0
    assert not np.array_equal(other.odom_xy, aisle_run.odom_xy)


def test_time_limit_override_ends_the_run_unfinished(aisle: Scenario) -> None:
    m = _run(aisle, RunOptions(time_limit_s=2.0)).metrics
    assert m["success"] is False and m["goals_reached"] == 0
    assert m["sim_time_s"] == pytest.approx(2.0, abs=0.03)


def test_unmapped_obstacle_on_the_route_forces_a_replan(tmp_path: Path) -> None:
    path = tmp_path / "blocked_corridor.yaml"
    path.write_text(BLOCKED_CORRIDOR)
    sc = load_scenario(path)
    pallet = next(b for b in sc.boxes if not b.mapped)
    result = _run(sc)
    m = result.metrics
    assert m["success"] is True and m["goals_reached"] == 1
    assert m["collisions"] == 0 and m["min_clearance_m"] > 0.0
    assert m["replans"] > 1 and len(result.plans) == m["replans"]
    # The first plan (from the map alone) goes straight through the pallet ...
    assert float(pallet.distance(result.plans[0]).min()) == 0.0
    # ... the last one goes round it, through the upper corridor.
    assert float(pallet.distance(result.plans[-1]).min()) > sc.robot.radius_m
    assert float(result.plans[-1][:, 1].max()) > 2.8
    # And so did the robot: it passed the pallet's x on the far side of the divider.
    passing = np.abs(result.true_xy[:, 0] - pallet.center[0]) < 0.3
    assert passing.any() and np.all(result.true_xy[passing, 1] > 2.8)
    assert float(pallet.distance(result.true_xy).min()) > sc.robot.radius_m


def test_record_path_writes_a_readable_bag(aisle: Scenario, tmp_path: Path) -> None:
    requested = tmp_path / "run.mcap"
    result = _run(aisle, RunOptions(record_path=requested))
    m = result.metrics
    assert (tmp_path / "run" / "metadata.yaml").is_file() and (tmp_path / "run" / "run.mcap").is_file()
    bag = read_bag(requested)
    assert set(bag) == {ODOM_TOPIC, SCAN_TOPIC, CMD_VEL_TOPIC, IMAGE_TOPIC}
    sim = m["sim_time_s"]
    n_odom = len(bag[ODOM_TOPIC])
    assert n_odom == m["control_ticks"]
    assert n_odom == pytest.approx(50.0 * sim, rel=0.02)  # 50 Hz odometry
    assert len(bag[CMD_VEL_TOPIC]) == n_odom
    assert len(bag[SCAN_TOPIC]) == pytest.approx(aisle.sensors.lidar.rate_hz * sim, abs=2)
    assert len(bag[IMAGE_TOPIC]) == pytest.approx(aisle.sensors.camera.rate_hz * sim, abs=2)

    def stamps(topic: str) -> np.ndarray:
        return np.array([msg.header.stamp.sec + 1e-9 * msg.header.stamp.nanosec for msg in bag[topic]])

    for topic in bag:
        t = stamps(topic)
        assert t[0] == 0.0 and np.all(np.diff(t) > 0), topic
        assert t[-1] <= sim + 1e-6
    np.testing.assert_allclose(stamps(ODOM_TOPIC), result.times, atol=1e-6)
    # Odometry in the bag is the odometry trace of the run.
    xy = np.array([[msg.pose.pose.position.x, msg.pose.pose.position.y] for msg in bag[ODOM_TOPIC]])
    np.testing.assert_allclose(xy, result.odom_xy, atol=1e-9)
    scan = bag[SCAN_TOPIC][0]
    assert len(scan.ranges) == aisle.sensors.lidar.num_rays and scan.range_max == aisle.sensors.lidar.range_max_m
    image = bag[IMAGE_TOPIC][0]
    cam = aisle.sensors.camera
    assert (image.height, image.width, image.encoding) == (cam.height, cam.width, "rgb8")
    assert len(image.data) == cam.height * cam.width * 3
    # Commands in the bag actually drove the robot forward at some point.
    assert max(msg.twist.linear.x for msg in bag[CMD_VEL_TOPIC]) > 0.3
    # Recording does not change the run.
    assert m["goals_reached"] == 2 and m["collisions"] == 0


def test_a_map_file_gives_the_same_run_as_the_scenario_it_was_exported_from(tmp_path: Path) -> None:
    """Issue 7: the planner's map comes from a map source. map_server files written from a
    scenario must plan exactly as the scenario source does."""
    from navkit.common.map_file import write_map_file
    from navkit.sim.scenario_map import scenario_grid
    from navkit.stack.config import DEFAULT_PARAMS_FILE

    sc = load_scenario(SHORT_AISLE)
    map_yaml = write_map_file(scenario_grid(sc, 0.05), tmp_path / "map.yaml")
    params = tmp_path / "params.yaml"
    params.write_text(DEFAULT_PARAMS_FILE.read_text().replace("plugin: scenario", f"plugin: map_file\n      file: {map_yaml}"))
    runs = []
    for config in (load_stack_config(), load_stack_config(params)):
        robot = MujocoRobot(sc)
        try:
            runs.append(InProcessRunner(sc, config, robot).run(RunOptions(time_limit_s=10.0)).metrics)
        finally:
            robot.close()
    assert load_stack_config(params).map_source.name == "map_file"
    for key in ("goals_reached", "collisions", "path_length_m", "sim_time_s", "min_clearance_m", "replans"):
        assert runs[0][key] == runs[1][key], key
    assert runs[0]["goals_reached"] >= 1
