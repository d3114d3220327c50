"""One robot's episode, stepped one control period at a time (dm_control's Environment role).

:class:`NavigationEpisode` composes a robot backend (physics), the navigation stack (or
an external command, for a learning agent) and the :class:`NavigationTask` (reward,
termination, metrics). ``reset()`` then ``step()`` until ``terminated`` or ``truncated``:
the in-process runner, the gymnasium env and the benchmarks all loop over it, so the
episode logic — sensor rates, order of sensing, control, actuation and judging — exists
once. A step at time t reads the sensors due at t, computes and applies the command,
judges the state at t, and returns; the next step first advances the robot by one
control period. That order keeps a run deterministic for a seed.
"""
from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from navkit.common.interfaces import FilterResult, FilterStatus, RobotBackend, SimulationTruth
from navkit.common.observation import FRONT_CAMERA, Observation
from navkit.common.sensor_data import CameraImage, LaserScan, VelocityCommand
from navkit.learning.navigation_task import NavigationTask
from navkit.sim.scenario import Scenario
from navkit.stack.config import StackConfig
from navkit.stack.navigation_stack import STAGES as STACK_STAGES
from navkit.stack.navigation_stack import NavigationStack

STAGES = ("physics", "sensing", *STACK_STAGES)
"""Timed per control period, in order."""
"""The name the robot's forward camera has in :attr:`Observation.cameras`."""


@dataclass(frozen=True)
class EpisodeStep:
    """What one control period produced."""

    observation: Observation
    result: FilterResult
    """The safety filter's verdict; ``result.command`` went to the robot."""
    reward: float
    terminated: bool
    """Every goal reached (and the robot settled)."""
    truncated: bool
    """The time limit was reached first."""
    new_scan: bool
    """A lidar scan was taken this period."""


class NavigationEpisode:
    """Backend + stack + task for one robot; see the module docstring for the step order."""

    def __init__(self, scenario: Scenario, config: StackConfig, backend: RobotBackend, *,
                 time_limit_s: float | None = None, cameras: bool = False,
                 stack: NavigationStack | None = None) -> None:
        """``cameras``: read the camera at its rate into the observation (rendering costs time).
        ``stack``: a prebuilt stack (default: built from ``config``)."""
        if not isinstance(backend, SimulationTruth):
            raise TypeError("an episode judges on simulation truth: the backend must implement SimulationTruth")
        self.scenario = scenario
        self.config = config
        self.backend = backend
        self.truth: SimulationTruth = backend
        self.dt = 1.0 / config.bridge.control_rate_hz
        self.time_limit_s = time_limit_s or scenario.time_limit_s
        self.cameras = cameras and scenario.sensors.camera.enabled
        self.stack = stack if stack is not None else NavigationStack(
            config, goals=scenario.goals, goal_tolerance_m=scenario.goal_tolerance_m, scenario=scenario)
        self.task = NavigationTask(scenario, self.dt)
        self.statuses: Counter[str] = Counter()
        self._scan: LaserScan | None = None
        self._image: CameraImage | None = None
        self._next_scan = self._next_image = 0.0
        self._started = False
        self._wall_start = time.perf_counter()

    @property
    def timer(self) -> Any:
        return self.stack.timer

    def reset(self, seed: int | None = None) -> None:
        """The robot at its start; a fresh task. (A fresh stack needs a new episode.)"""
        self.backend.reset(self.scenario.seed if seed is None else seed)
        self.task = NavigationTask(self.scenario, self.dt)
        self.statuses.clear()
        self._scan = self._image = None
        self._next_scan = self._next_image = 0.0
        self._started = False
        self._wall_start = time.perf_counter()

    def _sense(self) -> tuple[Observation, bool]:
        t = time.perf_counter()
        now = self.backend.now()
        odom = self.backend.read_odometry()
        new_scan = now >= self._next_scan - 1e-9
        if new_scan:
            self._scan = self.backend.read_scan()
            self._next_scan += 1.0 / self.scenario.sensors.lidar.rate_hz
        if self.cameras and now >= self._next_image - 1e-9:
            self._image = self.backend.read_camera()
            self._next_image += 1.0 / self.scenario.sensors.camera.rate_hz
        cameras = {FRONT_CAMERA: self._image} if self._image is not None else {}
        self.timer.lap("sensing", t)
        return Observation(stamp=now, odom=odom, scan=self._scan, cameras=cameras), new_scan

    def step(self, command: VelocityCommand | None = None, *, filtered: bool = True) -> EpisodeStep:
        """One control period; ``command`` replaces the stack's planner and controller, e.g. a learning
        agent's action. The safety filter still has the last word unless ``filtered`` is False (a
        training choice for simulation only: the robot always runs behind its filter)."""
        if self._started:
            t = time.perf_counter()
            self.backend.advance(self.dt)
            self.timer.lap("physics", t)
        self._started = True
        observation, new_scan = self._sense()
        now = observation.stamp
        if command is None:
            result = self.stack.tick(observation)
        elif filtered:
            t = time.perf_counter()
            result = self.stack.filter.filter(command, observation, now)
            self.timer.lap("safety_filter", t)
        else:
            result = FilterResult(command, FilterStatus.PASS, 0, math.inf, 0.0, "unfiltered (training)")
        self.backend.apply_command(result.command)
        self.statuses[result.status.name] += 1
        assert observation.odom is not None
        self.task.update(now, observation.odom, self.truth.true_pose(), self.truth.in_collision())
        return EpisodeStep(observation, result, self.task.last_reward, terminated=self.task.done,
                           truncated=not self.task.done and now >= self.time_limit_s, new_scan=new_scan)

    def summary(self) -> dict[str, Any]:
        """The task's metrics plus what the stack and the robot did (filter, planner, watchdog, timing)."""
        wall = time.perf_counter() - self._wall_start
        fstats = self.stack.filter.stats
        planning = self.stack.planning
        metrics = self.task.summary()
        metrics.update({
            "filter_interventions": int(fstats.interventions),
            "filter_infeasible": int(fstats.infeasible),
            "filter_invalid_input": int(fstats.invalid_input),
            "filter_stale_input": int(fstats.stale_input),
            "filter_status_counts": dict(self.statuses),
            "watchdog_trips": int(self.backend.watchdog_trips),
            "replans": planning.replans,
            "plan_failures": planning.plan_failures,
            "wall_time_s": round(wall, 3),
            "real_time_factor": round(metrics["sim_time_s"] / wall, 2) if wall > 0 else None,
            "control_ticks": len(self.task.times),
            "stage_ms": self.timer.summary(STAGES),
        })
        return metrics


def modified(step: EpisodeStep) -> bool:
    """The safety filter changed this step's command (for plots of where it stepped in)."""
    return step.result.status is FilterStatus.MODIFIED
