"""The in-process runner: one episode of the whole stack, with no middleware, plus what people look at.

It is a loop over :class:`~navkit.learning.navigation_episode.NavigationEpisode` (which
owns the order of sensing, planning, control, filtering, actuation and judging, so a
run is deterministic for a seed) that adds a progress bar, an overhead video, a
ROS 2 bag and metrics that survive an early end. The demo, ``navkit run`` and the
closed-loop benchmark use it; the ROS 2 nodes wrap the very same components. Metrics
use simulator truth (true pose, contacts); the algorithms only see what a real robot would.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from collections.abc import Callable

import numpy as np

from navkit.common.errors import NavkitError
from navkit.common.interfaces import RobotBackend
from navkit.common.timing import FrameSchedule, sim_time_bar
from navkit.learning.navigation_episode import FRONT_CAMERA, NavigationEpisode, modified
from navkit.sim.scenario import Scenario
from navkit.stack.config import StackConfig
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
    """Runs one :class:`NavigationEpisode` of a simulated robot to its end."""

    def __init__(self, scenario: Scenario, config: StackConfig, robot: RobotBackend) -> None:
        self.scenario = scenario
        self.config = config
        self.robot = robot
        self.episode = NavigationEpisode(scenario, config, robot)
        self.stack = self.episode.stack

    def run(self, options: RunOptions | None = None, on_tick: Callable[[float], None] | None = None) -> RunResult:
        opts = options or RunOptions()
        sc, episode = self.scenario, self.episode
        recorder = None
        recording_error: str | None = None
        if opts.record_path is not None:
            from navkit.runner.bag_recorder import BagRecorder

            recorder = BagRecorder(opts.record_path)
        episode.cameras = recorder is not None and sc.sensors.camera.enabled
        episode.time_limit_s = opts.time_limit_s or sc.time_limit_s
        episode.reset()
        bar = sim_time_bar(episode.time_limit_s, sc.name, opts.progress)
        frames: list[np.ndarray] = []
        frame_schedule = FrameSchedule(opts.video_fps)
        video_width = 0
        if opts.video_fps > 0:
            from navkit.sim.mjcf_builder import topdown_aspect

            video_width = int(round(opts.video_height * topdown_aspect(sc) / 2.0)) * 2
        truth: Any = self.robot
        intervention_xy: list[tuple[float, float]] = []
        recorded_image = None
        error: BaseException | None = None
        task = episode.task
        try:
            while True:
                step = episode.step()
                task = episode.task
                now = step.observation.stamp
                if modified(step):
                    pose = truth.true_pose()
                    intervention_xy.append((pose.x, pose.y))
                if recorder is not None:
                    try:
                        obs = step.observation
                        assert obs.odom is not None
                        recorder.write_odom(obs.odom)
                        recorder.write_cmd_vel(step.result.command)
                        if step.new_scan and obs.scan is not None:
                            recorder.write_scan(obs.scan)
                        image = obs.camera(FRONT_CAMERA)
                        if image is not None and image is not recorded_image:
                            recorder.write_image(image)
                            recorded_image = image
                    except OSError as exc:
                        # A full disk ends the recording, not the run; the partial bag is removed
                        # so that it cannot block the next attempt at that path.
                        recording_error = f"{recorder.path}: recording stopped at {now:.1f} s ({exc.strerror or exc}); " \
                                          "the incomplete bag was removed"
                        recorder.abandon()
                        recorder = None
                        episode.cameras = False
                if frame_schedule.due(now):
                    frames.append(truth.render_topdown(video_width, opts.video_height))
                if step.terminated or step.truncated:
                    break
                bar.update(episode.dt)
                if len(task.times) % 50 == 0:
                    bar.set_postfix_str(f"goals {len(task.goals.reached)}/{len(sc.goals)}", refresh=False)
                if on_tick is not None:
                    on_tick(now)
        except (NavkitError, KeyboardInterrupt) as exc:
            error = exc  # what was measured so far is still written, marked as aborted
        finally:
            bar.set_postfix_str(f"goals {len(episode.task.goals.reached)}/{len(sc.goals)}")
            bar.close()
            if recorder is not None:
                try:
                    recorder.close()
                except OSError as exc:
                    recording_error = f"{recorder.path}: could not finish the bag ({exc.strerror or exc}); removed"
        metrics = episode.summary()
        if recording_error is not None:
            metrics["recording_error"] = recording_error
        if error is not None:
            metrics["aborted"] = True
            metrics["abort_reason"] = "interrupted (Ctrl-C)" if isinstance(error, KeyboardInterrupt) else str(error)
        task = episode.task
        return RunResult(metrics=metrics, times=np.asarray(task.times), true_xy=np.asarray(task.true_xy),
                         odom_xy=np.asarray(task.odom_xy), plans=self.stack.planning.plans,
                         intervention_xy=np.asarray(intervention_xy).reshape(-1, 2), frames=frames, error=error)
