"""The in-process runner: the whole stack wired directly, with no middleware.

It steps the robot (a simulator here) and calls perception -> planning -> control ->
safety filter at their configured rates, in a fixed order, so a run is deterministic
for a seed. The demo, ``navkit run``, the benchmarks and training use it; the ROS 2
nodes wrap the very same components. Metrics use simulator truth (true pose, contacts);
the algorithms only ever see what a real robot would (odometry, scan).
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from navkit.common.errors import NavkitError
from navkit.common.sensor_data import LaserScan
from navkit.control.cbf_filter import FilterStatus
from navkit.runner.episode_monitor import EpisodeMonitor
from navkit.runner.navigation_stack import NavigationStack
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
    error: BaseException | None = None
    """What ended the run early (metrics then carry ``aborted`` and ``abort_reason``); None if it ran out."""


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
        monitor = EpisodeMonitor(sc, dt)
        recorder = None
        recording_error: str | None = None
        if opts.record_path is not None:
            from navkit.runner.bag_recorder import BagRecorder

            recorder = BagRecorder(opts.record_path)
        bar = None
        if opts.progress:
            from tqdm import tqdm

            bar = tqdm(total=round(limit, 1), unit="sim s", desc=sc.name,
                       bar_format="{l_bar}{bar}| {n:.1f}/{total:.0f} sim s [{elapsed}<{remaining}{postfix}]")
        video_width = 0
        if opts.video_fps > 0:
            from navkit.sim.mjcf_builder import topdown_aspect

            video_width = int(round(opts.video_height * topdown_aspect(sc) / 2.0)) * 2
        intervention_xy: list[tuple[float, float]] = []
        frames: list[np.ndarray] = []
        statuses: Counter[str] = Counter()
        scan: LaserScan | None = None
        next_scan = next_cam = next_frame = 0.0
        error: BaseException | None = None
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
                stack.timed("sensing", t)

                result = stack.tick(now, odom, scan, new_scan)
                robot.apply_command(result.command)
                statuses[result.status.name] += 1
                pose = robot.true_pose()
                monitor.update(now, odom, pose, robot.in_collision())
                if result.status == FilterStatus.MODIFIED:
                    intervention_xy.append((pose.x, pose.y))

                if recorder is not None:
                    try:
                        recorder.write_odom(odom)
                        recorder.write_cmd_vel(result.command)
                        if new_scan and scan is not None:
                            recorder.write_scan(scan)
                        if sc.sensors.camera.enabled and now >= next_cam - 1e-9:
                            image = robot.read_camera()
                            if image is not None:
                                recorder.write_image(image)
                            next_cam += cam_dt
                    except OSError as exc:
                        # A full disk ends the recording, not the run; the partial bag is removed
                        # so that it cannot block the next attempt at that path.
                        recording_error = f"{recorder.path}: recording stopped at {now:.1f} s ({exc.strerror or exc}); " \
                                          "the incomplete bag was removed"
                        recorder.abandon()
                        recorder = None
                if opts.video_fps > 0 and now >= next_frame - 1e-9:
                    frames.append(robot.render_topdown(video_width, opts.video_height))
                    next_frame += 1.0 / opts.video_fps

                if monitor.done or now >= limit:
                    break
                t = time.perf_counter()
                robot.advance(dt)
                stack.timed("physics", t)
                if bar is not None:
                    bar.update(dt)
                    if len(monitor.times) % 50 == 0:
                        bar.set_postfix_str(f"goals {len(monitor.goals.reached)}/{len(sc.goals)}", refresh=False)
                if on_tick is not None:
                    on_tick(now)
        except (NavkitError, KeyboardInterrupt) as exc:
            error = exc  # what was measured so far is still written, marked as aborted
        finally:
            if bar is not None:
                bar.set_postfix_str(f"goals {len(monitor.goals.reached)}/{len(sc.goals)}")
                bar.close()
            if recorder is not None:
                try:
                    recorder.close()
                except OSError as exc:
                    recording_error = f"{recorder.path}: could not finish the bag ({exc.strerror or exc}); removed"
        wall = time.perf_counter() - wall_start
        fstats = stack.filter.stats
        metrics = monitor.summary()
        metrics.update({
            "filter_interventions": int(fstats.interventions),
            "filter_infeasible": int(fstats.infeasible),
            "filter_invalid_input": int(fstats.invalid_input),
            "filter_stale_input": int(fstats.stale_input),
            "filter_status_counts": dict(statuses),
            "watchdog_trips": int(getattr(robot, "watchdog_trips", 0)),
            "replans": stack.planning.replans,
            "plan_failures": stack.planning.plan_failures,
            "wall_time_s": round(wall, 3),
            "real_time_factor": round(metrics["sim_time_s"] / wall, 2) if wall > 0 else None,
            "control_ticks": len(monitor.times),
            "stage_ms": {
                s: {"mean": round(1e3 * float(np.mean(v)), 4), "p99": round(1e3 * float(np.percentile(v, 99)), 4),
                    "calls": len(v)}
                for s in STAGES if (v := stack.stage_time.get(s))
            },
        })
        if recording_error is not None:
            metrics["recording_error"] = recording_error
        if error is not None:
            metrics["aborted"] = True
            metrics["abort_reason"] = "interrupted (Ctrl-C)" if isinstance(error, KeyboardInterrupt) else str(error)
        return RunResult(metrics=metrics, times=np.asarray(monitor.times), true_xy=np.asarray(monitor.true_xy),
                         odom_xy=np.asarray(monitor.odom_xy), plans=stack.planning.plans,
                         intervention_xy=np.asarray(intervention_xy).reshape(-1, 2), frames=frames, error=error)
