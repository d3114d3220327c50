"""The in-process runner: the whole stack wired directly, with no middleware.

It steps the robot (a simulator here) and calls perception -> planning -> control ->
safety filter at their configured rates, in a fixed order, so a run is deterministic
for a seed. The demo, ``navkit run``, the benchmarks and training use it; the ROS 2
nodes wrap the very same components. Metrics use simulator truth (true pose, contacts);
the algorithms only ever see what a real robot would (odometry, scan).
"""
from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from navkit.common.sensor_data import LaserScan, Odometry, VelocityCommand
from navkit.control.cbf_filter import CbfSafetyFilter, FilterStatus
from navkit.control.pure_pursuit import PurePursuit
from navkit.perception.scan_obstacles import scan_to_world_points
from navkit.planning.goal_sequencer import GoalSequencer, GoalSequencerConfig
from navkit.planning.global_planner import GlobalPlanner, NoPathFound
from navkit.planning.occupancy_grid import OccupancyGrid
from navkit.runner.stack_config import StackConfig
from navkit.sim.scenario import Scenario

STAGES = ("physics", "sensing", "perception", "planning", "control", "safety_filter")


@dataclass
class RunOptions:
    """What a run produces besides its metrics."""

    video_fps: float = 0.0
    """Overhead frames per simulated second (0: no video)."""
    video_height: int = 288
    record_path: Path | None = None
    """Write a ROS 2 bag (odom, scan, cmd_vel, camera) here."""
    progress: bool = False
    """Show a progress bar over simulated time."""
    time_limit_s: float | None = None
    """Override the scenario's time limit."""


@dataclass
class RunResult:
    """Metrics plus the traces the plot and video are made from."""

    metrics: dict[str, Any]
    times: np.ndarray
    true_xy: np.ndarray
    odom_xy: np.ndarray
    plans: list[np.ndarray]
    intervention_xy: np.ndarray
    frames: list[np.ndarray] = field(default_factory=list)


def planner_grid(scenario: Scenario, resolution_m: float) -> OccupancyGrid:
    """The planner's static map: only obstacles marked ``mapped`` (the rest it must see)."""
    boxes = [(*b.center, *b.size, b.yaw) for b in scenario.boxes if b.mapped]
    circles = [(*c.center, c.radius) for c in scenario.cylinders if c.mapped]
    return OccupancyGrid.from_shapes(scenario.bounds, boxes, circles, resolution_m)


class NavigationStack:
    """Perception, planning, control and the safety filter for one robot, robot-agnostic.

    ``tick`` is one control period: it takes what the robot sensed and returns the
    command to apply. Nothing here knows whether the robot is simulated.
    """

    def __init__(self, scenario: Scenario, config: StackConfig) -> None:
        self.config = config
        self.scenario = scenario
        self.planner = GlobalPlanner(config.global_planner, planner_grid(scenario, config.global_planner.resolution_m))
        self.goals = GoalSequencer(scenario.goals, GoalSequencerConfig(goal_tolerance_m=scenario.goal_tolerance_m))
        self.tracker = PurePursuit(config.pure_pursuit)
        self.filter = CbfSafetyFilter(config.cbf)
        self.path: np.ndarray | None = None
        self.plans: list[np.ndarray] = []
        self.replans = 0
        self.plan_failures = 0
        self._next_plan_check = 0.0
        self.stage_time: dict[str, list[float]] = defaultdict(list)

    def _timed(self, stage: str, t0: float) -> float:
        t1 = time.perf_counter()
        self.stage_time[stage].append(t1 - t0)
        return t1

    def _replan(self, odom: Odometry) -> None:
        goal = self.goals.current()
        if goal is None:
            self.path = None
            return
        try:
            self.path = self.planner.plan(odom.pose, goal)
            self.plans.append(self.path)
            self.tracker.reset()
            self.replans += 1
        except NoPathFound:
            # Something seen by the lidar may have closed every route; forget the
            # dynamic layer once (obstacles move) before giving up for this period.
            self.planner.grid.clear_dynamic()
            self.plan_failures += 1
            self.path = None

    def tick(self, now: float, odom: Odometry, scan: LaserScan | None, new_scan: bool) -> tuple[VelocityCommand, Any]:
        """One control period; returns the command for the robot and the filter result."""
        t = time.perf_counter()
        if new_scan and scan is not None and odom.is_finite():
            points = scan_to_world_points(scan, odom.pose, max_range_m=self.config.planner.observe_range_m)
            self.planner.observe(points)
        t = self._timed("perception", t)

        if self.goals.update((odom.pose.x, odom.pose.y)):
            self.path = None
        if self.goals.done:
            self.path = None
        elif self.path is None or now >= self._next_plan_check:
            blocked = self.path is not None and self.planner.path_blocked(self.path, (odom.pose.x, odom.pose.y))
            if self.path is None or blocked:
                self._replan(odom)
            self._next_plan_check = now + 1.0 / self.config.planner.rate_hz
        t = self._timed("planning", t)

        if self.path is None:
            v, w = 0.0, 0.0
        else:
            v, w = self.tracker.compute(odom.pose, self.path)
        t = self._timed("control", t)

        result = self.filter.filter(VelocityCommand(now, v, w), scan, now)
        self._timed("safety_filter", t)
        return result.command, result


class InProcessRunner:
    """Steps a simulated robot and the :class:`NavigationStack` together."""

    def __init__(self, scenario: Scenario, config: StackConfig, robot: Any) -> None:
        self.scenario = scenario
        self.config = config
        self.robot = robot
        self.stack = NavigationStack(scenario, config)

    def run(self, options: RunOptions | None = None, on_tick: Callable[[float], None] | None = None) -> RunResult:
        opts = options or RunOptions()
        sc, robot, stack = self.scenario, self.robot, self.stack
        dt = 1.0 / self.config.bridge.control_rate_hz
        scan_dt = 1.0 / sc.sensors.lidar.rate_hz
        cam_dt = 1.0 / sc.sensors.camera.rate_hz
        limit = opts.time_limit_s or sc.time_limit_s
        recorder = None
        if opts.record_path is not None:
            from navkit.runner.bag_recorder import BagRecorder

            recorder = BagRecorder(opts.record_path)
        bar = None
        if opts.progress:
            from tqdm import tqdm

            bar = tqdm(total=round(limit, 1), unit="sim s", desc=sc.name, leave=True,
                       bar_format="{l_bar}{bar}| {n:.1f}/{total:.0f} sim s [{elapsed}<{remaining}{postfix}]")

        times: list[float] = []
        true_xy: list[tuple[float, float]] = []
        odom_xy: list[tuple[float, float]] = []
        intervention_xy: list[tuple[float, float]] = []
        frames: list[np.ndarray] = []
        min_clearance = math.inf
        collisions = 0
        collision_ticks = 0
        was_colliding = False
        path_length = 0.0
        statuses: dict[str, int] = defaultdict(int)
        goal_times: list[float] = []
        scan: LaserScan | None = None
        next_scan = next_cam = next_frame = 0.0
        video_width = 0
        if opts.video_fps > 0:
            from navkit.sim.mjcf_builder import topdown_aspect

            video_width = int(round(opts.video_height * topdown_aspect(sc) / 2.0)) * 2
        radius = sc.robot.radius_m
        wall_start = time.perf_counter()
        try:
            while True:
                now = robot.now()
                t = time.perf_counter()
                odom = robot.read_odometry()
                new_scan = now >= next_scan - 1e-9
                if new_scan:
                    scan = robot.read_scan()
                    next_scan += scan_dt
                t = stack._timed("sensing", t)

                reached_before = len(stack.goals.reached)
                cmd, result = stack.tick(now, odom, scan, new_scan)
                if len(stack.goals.reached) > reached_before:
                    goal_times.append(now)
                statuses[result.status.name] += 1
                t = time.perf_counter()
                robot.apply_command(cmd)

                pose = robot.true_pose()
                if times:
                    path_length += math.hypot(pose.x - true_xy[-1][0], pose.y - true_xy[-1][1])
                times.append(now)
                true_xy.append((pose.x, pose.y))
                odom_xy.append((odom.pose.x, odom.pose.y))
                if result.status == FilterStatus.MODIFIED:
                    intervention_xy.append((pose.x, pose.y))
                clearance = float(sc.obstacle_distance(np.array([[pose.x, pose.y]]))[0]) - radius
                min_clearance = min(min_clearance, clearance)
                colliding = robot.in_collision()
                collision_ticks += colliding
                collisions += colliding and not was_colliding
                was_colliding = colliding

                if recorder is not None:
                    recorder.write_odom(odom)
                    recorder.write_cmd_vel(cmd)
                    if new_scan and scan is not None:
                        recorder.write_scan(scan)
                    if sc.sensors.camera.enabled and now >= next_cam - 1e-9:
                        image = robot.read_camera()
                        if image is not None:
                            recorder.write_image(image)
                        next_cam += cam_dt
                if opts.video_fps > 0 and now >= next_frame - 1e-9:
                    frames.append(robot.render_topdown(video_width, opts.video_height))
                    next_frame += 1.0 / opts.video_fps

                if stack.goals.done or now >= limit:
                    break
                t = time.perf_counter()
                robot.advance(dt)
                stack._timed("physics", t)
                if bar is not None:
                    bar.update(dt)
                    if len(times) % 50 == 0:
                        bar.set_postfix_str(f"goals {len(stack.goals.reached)}/{len(sc.goals)}", refresh=False)
                if on_tick is not None:
                    on_tick(now)
        finally:
            if bar is not None:
                bar.set_postfix_str(f"goals {len(stack.goals.reached)}/{len(sc.goals)}")
                bar.close()
            if recorder is not None:
                recorder.close()
        wall = time.perf_counter() - wall_start
        sim_time = robot.now()
        fstats = stack.filter.stats
        metrics: dict[str, Any] = {
            "scenario": sc.name,
            "seed": sc.seed,
            "goals_total": len(sc.goals),
            "goals_reached": len(stack.goals.reached),
            "success": bool(stack.goals.done),
            "goal_times_s": [round(g, 3) for g in goal_times],
            "collisions": int(collisions),
            "collision_time_s": round(collision_ticks * dt, 3),
            "min_clearance_m": round(min_clearance, 4),
            "path_length_m": round(path_length, 3),
            "filter_interventions": int(fstats.interventions),
            "filter_infeasible": int(fstats.infeasible),
            "filter_invalid_input": int(fstats.invalid_input),
            "filter_stale_input": int(fstats.stale_input),
            "filter_status_counts": dict(statuses),
            "watchdog_trips": int(getattr(robot, "watchdog_trips", 0)),
            "replans": stack.replans,
            "plan_failures": stack.plan_failures,
            "sim_time_s": round(sim_time, 3),
            "wall_time_s": round(wall, 3),
            "real_time_factor": round(sim_time / wall, 2) if wall > 0 else None,
            "control_ticks": len(times),
            "stage_ms": {
                s: {"mean": round(1e3 * float(np.mean(v)), 4), "p99": round(1e3 * float(np.percentile(v, 99)), 4),
                    "calls": len(v)}
                for s in STAGES if (v := stack.stage_time.get(s))
            },
        }
        return RunResult(metrics=metrics, times=np.asarray(times), true_xy=np.asarray(true_xy),
                         odom_xy=np.asarray(odom_xy), plans=stack.plans,
                         intervention_xy=np.asarray(intervention_xy).reshape(-1, 2), frames=frames)
