"""Drive to a goal image with a DINO-WM world model: plugin ``world_model_mpc`` of the ``local_controller`` slot.

After Zhou, Pan, LeCun, Pinto, "DINO-WM: World Models on Pre-trained Visual Features enable Zero-shot
Planning" (ICML 2025, arXiv 2411.04983): the goal is an *image* (e.g. what the front camera sees at a
station), encoded once into the frozen encoder's patch latents; every model step the current camera
frame (+ odometry as proprio) is encoded and appended to a short latent history, a latent planner
(CEM, as in the paper, or MPPI / gradient descent from :mod:`navkit.planning.latent_planners`)
optimises the next ``horizon`` model steps through the learned predictor towards the goal latents,
and the first model step's actions are executed, one per control period, before planning again with
the rest of the plan shifted in as a warm start (receding horizon, as :class:`~navkit.planning.
latent_planners.Mpc` does offline). Nothing but the model is consulted inside the planner.

Like every local controller its output is a *nominal* command: the stack passes it through the CBF
safety filter, which alone may decide that the robot moves (the world model knows nothing of the lidar).
Missing or doubtful inputs never become motion: no goal image, no or stale camera image, no or
non-finite odometry, a non-finite plan all give a zero command and a count of the reason.

This module imports no other algorithm room: what it needs of a trained run is the small
:class:`WorldModelRun` protocol, which :class:`navkit.stack.world_model_loader.LoadedModel` satisfies.
"""
from __future__ import annotations

import math
import statistics
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from navkit.common.errors import brief
from navkit.common.observation import ControlTarget, Observation
from navkit.common.params import check_ranges
from navkit.common.sensor_data import Odometry, VelocityCommand
from navkit.planning.dino_wm import LatentHistory
from navkit.planning.latent_planners import (
    ActionPlanner,
    CemConfig,
    CemPlanner,
    CountingModel,
    GradientPlanner,
    GradientPlannerConfig,
    MppiConfig,
    MppiPlanner,
)

__all__ = ["PLANNERS", "STOP_REASONS", "WmPlanningModel", "WorldModelMpcConfig", "WorldModelMpcController",
           "WorldModelMpcStats", "WorldModelRun", "make_planner", "odometry_proprio"]

PLANNERS = ("cem", "mppi", "gd")
"""``cem``: the paper's planner; ``mppi``: softer weighted averaging; ``gd``: gradient descent (the paper's weak
baseline, cheap on smooth costs)."""
STOP_REASONS = ("no_goal_image", "bad_goal_image", "no_camera", "bad_image", "stale_image", "future_image",
                "no_odometry", "bad_odometry", "bad_stamp", "bad_frame", "bad_plan")
"""Why the controller output zero instead of driving; each has a counter in :attr:`WorldModelMpcStats.stops`."""
MAX_FUTURE_SKEW_S = 0.05
"""An image stamped up to this far ahead of the observation is still used: over ROS 2 an image and the
``/clock`` tick of the same instant arrive on separate topics (a simulated clock at 50 Hz moves in 20 ms steps).
Further ahead, it is refused as future-stamped."""
TIME_EPS_S = 1e-6
"""Slack on time comparisons: ticks at 0.1 s sum to 0.30000000000000004, which is still the third period."""
PLAN_TIMES_KEPT = 1000
"""Recent plan durations kept for the median (a bounded window: the controller runs for days)."""


class WmPlanningModel(Protocol):
    """What the controller plans through: a latent model (as the latent planners see it) that can also map a
    plan from normalised model actions to the env's action units (:class:`~navkit.planning.dino_wm.DinoWmModel`).
    """

    action_dim: int
    """Numbers per model-step action (``frameskip · A``)."""

    def rollout_latents(self, state: Any, actions: Tensor) -> Tensor:
        """Predicted packed frames (N, T, F) for N action sequences (N, T, action_dim) from a history."""

    def latent_cost(self, predicted: Tensor, goal: Tensor) -> Tensor:
        """(N,) cost of the last predicted frame of each sequence (N, T, F) to the goal frame (F,)."""

    def env_actions(self, plan: Tensor) -> np.ndarray:
        """A plan (T, frameskip·A) in normalised units -> (T·frameskip, A) env actions."""

    def model_actions(self, env: np.ndarray) -> Tensor:
        """The inverse of :meth:`env_actions`: (T·frameskip, A) env actions -> (T, frameskip·A) normalised."""


class WorldModelRun(Protocol):
    """What the controller needs of a trained run (:class:`navkit.stack.world_model_loader.LoadedModel`)."""

    @property
    def model(self) -> WmPlanningModel:
        """The latent model planned through."""

    @property
    def history(self) -> int:
        """H: frames the predictor sees; the controller keeps at most this many."""

    @property
    def frameskip(self) -> int:
        """Env actions per model step: the controller replans every ``frameskip`` control periods."""

    @property
    def control_period_s(self) -> float:
        """How long the training env held each action; the controller holds each one as long."""

    @property
    def v_max(self) -> float:
        """Speed (m/s) of env action[0] = 1."""

    @property
    def omega_max(self) -> float:
        """Turn rate (rad/s) of env action[1] = 1."""

    def frame(self, visual: np.ndarray, proprio: np.ndarray | None = None) -> Tensor:
        """An RGB image (H, W, 3) uint8 (+ raw proprio, None: none known) -> one packed frame (F,)."""


@dataclass(frozen=True)
class WorldModelMpcConfig:
    """Plugin ``world_model_mpc`` of the ``local_controller`` slot: DINO-WM MPC towards a goal image."""

    run: str = ""
    """Folder of a ``navkit wm train`` run (it holds the checkpoint); the model's env, command scale, control
    period, frameskip and history all come from it, so switching models is a parameter change. A path that is
    not a folder fails when the configuration is read, naming the parameter file; empty (the default) fails
    when the controller is built: there is no model to drive with."""
    checkpoint: str = "best.pt"
    """Checkpoint file in ``run``: ``best.pt`` is the lowest validation loss, the one to drive with."""
    camera: str = "front"
    """Name of the camera in the observation whose images the model was trained on (the forward camera)."""
    planner: str = "cem"
    """Latent planner: ``cem`` (the paper's), ``mppi`` or ``gd``; they trade plan quality for CPU time."""
    horizon: int = field(default=5, metadata={"range": (1, 1000)})
    """Model steps planned ahead (5 in the paper); planning cost grows linearly with it."""
    samples: int = field(default=64, metadata={"range": (1, 100_000)})
    """Action sequences sampled per iteration (CEM, MPPI; the paper's CEM uses 300): the CPU budget's main knob."""
    elites: int = field(default=8, metadata={"range": (1, 100_000)})
    """CEM: lowest-cost samples the sampling Gaussian is refitted to (top-k; at most ``samples``)."""
    iterations: int = field(default=4, metadata={"range": (1, 100_000)})
    """Refits per plan (CEM, MPPI) or Adam steps per plan (``gd``); a warm start lets a few suffice."""
    seed: int = field(default=0, metadata={"range": (0, 2**31 - 1)})
    """Seed of the planner's own generator, so a run of the robot can be replayed exactly."""
    proprio_weight: float = field(default=0.0, metadata={"range": (0.0, 1e6)})
    """α in cost = MSE(patches) + α·MSE(proprio). 0: a goal image carries no proprio, so only the image counts;
    > 0 also pulls towards the target's goal pose (read as proprio at rest) when the target has one. Keep it 0
    for goal images without a pose: the goal's proprio is then the training mean, so the term would pull the
    robot towards the dataset's mean pose."""
    arrive_cost: float = field(default=0.0, metadata={"range": (0.0, 1e6)})
    """Latent cost of the current frame to the goal at or under which the robot has arrived and stops (until
    another goal image). Its scale depends on the encoder and the scene, so calibrate it on the run (e.g. the
    cost between camera frames one success radius apart); 0 never declares arrival."""
    max_image_age_s: float = field(default=1.0, metadata={"range": (0.001, 60.0)})
    """A camera image older than this stops the robot: planning from a stale view plans from where the robot
    was. Keep it above the camera's period (scenarios render at 2 Hz by default)."""

    def __post_init__(self) -> None:
        for name in ("run", "checkpoint", "camera", "planner"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"{name}: expected a string, got {brief(getattr(self, name))}")
        if self.run and not Path(self.run).is_dir():
            raise ValueError(f"run: no such run folder {brief(self.run)} (navkit wm train writes one)")
        if self.planner not in PLANNERS:
            raise ValueError(f"planner: expected one of {', '.join(PLANNERS)}, got {brief(self.planner)}")
        for name in ("checkpoint", "camera"):
            if not getattr(self, name):
                raise ValueError(f"{name}: must not be empty")
        for name in ("horizon", "samples", "elites", "iterations", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name}: expected an integer, got {brief(value)}")
        for name in ("proprio_weight", "arrive_cost", "max_image_age_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name}: expected a finite number, got {brief(value)}")
        check_ranges(self)
        if self.planner == "cem" and self.elites > self.samples:
            raise ValueError(f"elites: must be <= samples ({self.samples}), got {self.elites}")


def make_planner(config: WorldModelMpcConfig) -> ActionPlanner:
    """The latent planner ``config`` names, with its budget (CEM starts from :meth:`CemConfig.cpu`)."""
    if config.planner == "cem":
        return CemPlanner(CemConfig.cpu(samples=config.samples, elites=config.elites, iterations=config.iterations,
                                        seed=config.seed))
    if config.planner == "mppi":
        return MppiPlanner(MppiConfig(samples=config.samples, iterations=config.iterations, seed=config.seed))
    return GradientPlanner(GradientPlannerConfig(iterations=config.iterations, seed=config.seed))


def odometry_proprio(odom: Odometry) -> np.ndarray:
    """(x, y, cos yaw, sin yaw, v, ω) float32: the proprio the warehouse world-model env records (its odometry)."""
    p = odom.pose
    return np.array([p.x, p.y, math.cos(p.yaw), math.sin(p.yaw), odom.v, odom.omega], dtype=np.float32)


def _is_rgb(image: object) -> bool:
    return (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
            and image.shape[0] > 0 and image.shape[1] > 0)


@dataclass
class WorldModelMpcStats:
    """What the controller did and what planning cost, since construction."""

    ticks: int = 0
    """Calls of :meth:`WorldModelMpcController.compute`."""
    replans: int = 0
    """Plans made (one per model step while driving)."""
    goal_encodings: int = 0
    """Goal images encoded (one per distinct goal image)."""
    sample_steps: int = 0
    """Sampled model steps over all plans (samples x horizon per rollout call): what CPU time scales with."""
    last_plan_s: float = math.nan
    """Wall time of the latest plan."""
    last_cost: float = math.nan
    """Latent cost of the latest encoded camera frame to the goal (what ``arrive_cost`` is compared with)."""
    stops: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STOP_REASONS, 0))
    """Zero commands by reason (see :data:`STOP_REASONS`)."""
    plan_seconds: deque[float] = field(default_factory=lambda: deque(maxlen=PLAN_TIMES_KEPT))
    """Durations of the recent plans (bounded)."""

    @property
    def median_plan_s(self) -> float:
        """Median wall time of the recent plans (NaN before the first)."""
        return statistics.median(self.plan_seconds) if self.plan_seconds else math.nan


class WorldModelMpcController:
    """Implements :class:`~navkit.common.interfaces.LocalController`: camera + odometry + goal image -> (v, ω).

    Time is the observation's: a model step lasts ``frameskip x control_period_s`` of ``observation.stamp``.
    At the first tick of each model step the camera frame is encoded, appended (with the model-step action
    just executed) to the :class:`~navkit.planning.dino_wm.LatentHistory`, and the planner runs; in between,
    each of the step's ``frameskip`` env actions is held for one control period, however often ``compute`` is
    called. Any zero command for missing data breaks the chain of actions the history records, so the
    history restarts from the next good frame (the predictor is trained to predict from one frame up).
    """

    def __init__(self, config: WorldModelMpcConfig, world_model: WorldModelRun,
                 planner: ActionPlanner | None = None) -> None:
        """``planner`` replaces the one ``config`` names (tests, custom planners)."""
        self.config = config
        self.world_model = world_model
        self.planner: ActionPlanner = planner if planner is not None else make_planner(config)
        self.frameskip = int(world_model.frameskip)
        self.history_len = int(world_model.history)
        self.control_period_s = float(world_model.control_period_s)
        self.v_max = float(world_model.v_max)
        self.omega_max = float(world_model.omega_max)
        for name in ("frameskip", "history_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: the world model must give an integer >= 1, got {getattr(self, name)}")
        for name in ("control_period_s", "v_max", "omega_max"):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name}: the world model must give a finite number > 0, got {value}")
        self.model_step_s = self.frameskip * self.control_period_s
        """Observation time one model step spans: the replanning period."""
        self._counted = CountingModel(world_model.model)
        self.action_dim = int(world_model.model.action_dim)
        if self.action_dim != 2 * self.frameskip:  # refused now, not by a bad_plan stop on every model step
            raise ValueError(f"action_dim: the world model must plan (v, ω) per env step ({2 * self.frameskip} numbers "
                             f"per model step at frameskip {self.frameskip}), got {self.action_dim}")
        self.stats = WorldModelMpcStats()
        self.arrived = False
        """True once the goal's latent cost fell to ``arrive_cost``; the robot then stays stopped until another
        goal image or :meth:`reset` (a learned cost is noisy near its minimum: no hunting around the goal)."""
        self._goal_image: np.ndarray | None = None
        self._goal_frame: Tensor | None = None
        self._goal_source: np.ndarray | None = None
        """The caller's goal array last encoded (see :meth:`_same_goal`)."""
        self._forget_motion()

    # ------------------------------------------------------------------ LocalController

    def reset(self) -> None:
        """Forget the history, the warm start, the goal and arrival: the next goal image is encoded afresh."""
        self._goal_image = self._goal_frame = self._goal_source = None
        self.arrived = False
        self._forget_motion()

    def compute(self, observation: Observation, target: ControlTarget) -> VelocityCommand:
        self.stats.ticks += 1
        stamp = observation.stamp
        if not (isinstance(stamp, (int, float)) and math.isfinite(stamp)):
            return self._stop("bad_stamp", stamp)
        goal = target.goal_image
        if goal is None:
            return self._stop("no_goal_image", stamp)
        if not _is_rgb(goal):
            return self._stop("bad_goal_image", stamp)
        image = observation.camera(self.config.camera)
        if image is None:
            return self._stop("no_camera", stamp)
        if not _is_rgb(image.rgb) or not math.isfinite(image.stamp):
            return self._stop("bad_image", stamp)
        age = stamp - image.stamp
        if age < -MAX_FUTURE_SKEW_S:
            return self._stop("future_image", stamp)
        if age > self.config.max_image_age_s:
            return self._stop("stale_image", stamp)
        odom = observation.odom
        if odom is None:
            return self._stop("no_odometry", stamp)
        if not odom.is_finite():
            return self._stop("bad_odometry", stamp)
        if not self._same_goal(goal):
            self._encode_goal(goal, target)
        if self._goal_frame is None:
            return self._stop("bad_goal_image", stamp)
        if self.arrived:
            return VelocityCommand(stamp, 0.0, 0.0)
        if self._step_start is not None:
            elapsed = stamp - self._step_start
            if elapsed < -TIME_EPS_S or elapsed > 2.0 * self.model_step_s:
                self._forget_motion()  # time went back (a reset clock) or a model step was missed: chain broken
        if self._step_start is None or stamp - self._step_start >= self.model_step_s - TIME_EPS_S:
            stopped = self._model_step(stamp, image.rgb, odom)
            if stopped is not None:
                return stopped
        assert self._env_actions is not None
        k = self._period_index(stamp)
        a = np.clip(self._env_actions[k], -1.0, 1.0)
        return VelocityCommand(stamp, float(a[0]) * self.v_max, float(a[1]) * self.omega_max)

    def observe_command(self, command: VelocityCommand) -> None:
        """The safety filter's output for the period just computed (:class:`~navkit.common.interfaces.
        CommandObserver`): the history records what the robot was told, so a braking or steering filter
        does not leave the model believing its own plan was executed. Without it (e.g. over ROS 2, where the
        filter is another node) the planned actions are recorded."""
        if self._sent is None or self._step_start is None:
            return
        if not (math.isfinite(command.stamp) and math.isfinite(command.v) and math.isfinite(command.omega)):
            return
        k = self._period_index(command.stamp)
        if k < 0:
            return
        self._sent[k] = (float(np.clip(command.v / self.v_max, -1.0, 1.0)),
                         float(np.clip(command.omega / self.omega_max, -1.0, 1.0)))

    # ------------------------------------------------------------------ internals

    def _period_index(self, stamp: float) -> int:
        """Which control period of the current model step ``stamp`` falls in (-1 before it starts)."""
        assert self._step_start is not None
        if stamp < self._step_start - TIME_EPS_S:
            return -1
        return min(int((stamp - self._step_start + TIME_EPS_S) / self.control_period_s), self.frameskip - 1)

    def _forget_motion(self) -> None:
        """Drop the latent history, the plan and the model-step clock (the goal stays)."""
        self._history: LatentHistory | None = None
        self._plan: Tensor | None = None
        self._env_actions: np.ndarray | None = None
        self._sent: np.ndarray | None = None
        """(frameskip, 2) env actions actually sent this model step: the plan's, overwritten by the filtered
        commands :meth:`observe_command` reports."""
        self._step_start: float | None = None

    def _stop(self, reason: str, stamp: float) -> VelocityCommand:
        self.stats.stops[reason] += 1
        self._forget_motion()
        return VelocityCommand(stamp, 0.0, 0.0)

    def _same_goal(self, goal: np.ndarray) -> bool:
        known = self._goal_image
        # The stack hands the same frozen array every tick: identity suffices for a read-only array (a writable
        # one may have been changed in place), the pixel compare only otherwise.
        same_frozen = goal is self._goal_source and not goal.flags.writeable
        return known is not None and (same_frozen or np.array_equal(goal, known))

    def _encode_goal(self, goal: np.ndarray, target: ControlTarget) -> None:
        """Encode a new goal image once. Its proprio is the target's goal pose at rest when there is one (it only
        counts with ``proprio_weight`` > 0), else none. A new goal makes the old plan worthless, so the next plan
        starts now, from the current frame."""
        proprio = None
        g = target.goal
        if g is not None and all(math.isfinite(v) for v in (g.x, g.y, g.yaw)):
            proprio = odometry_proprio(Odometry(0.0, g, 0.0, 0.0))  # the goal pose, at rest
        self._goal_image = self._goal_frame = self._goal_source = None  # should encoding fail, nothing of the old goal

        self._forget_motion()
        image = np.array(goal, copy=True)
        frame = self.world_model.frame(image, proprio).detach()
        # A goal that encodes to non-finite numbers is remembered (not re-encoded every tick) but unusable.
        self._goal_image, self._goal_frame = image, (frame if bool(torch.isfinite(frame).all()) else None)
        self._goal_source = goal
        self.stats.goal_encodings += 1
        self.arrived = False  # and, forgotten above, the old plan: the next plan starts now, from the current frame

    def _model_step(self, stamp: float, rgb: np.ndarray, odom: Odometry) -> VelocityCommand | None:
        """Observe, (maybe) arrive, replan; None when there is a plan to execute, else the zero command."""
        assert self._goal_frame is not None
        frame = self.world_model.frame(rgb, odometry_proprio(odom)).detach()
        if not bool(torch.isfinite(frame).all()):  # e.g. absurd odometry: planning on NaN picks an arbitrary plan
            return self._stop("bad_frame", stamp)
        if self._history is None or self._sent is None:
            self._history = LatentHistory.single(frame, self.action_dim)
        else:  # what was executed over the last model step, as the filter let it through
            executed = self.world_model.model.model_actions(self._sent)[0].to(frame.dtype)
            self._history = self._history.append(executed, frame, self.history_len)
        with torch.no_grad():
            cost = float(self.world_model.model.latent_cost(frame[None, None], self._goal_frame)[0])
        self.stats.last_cost = cost
        if not math.isfinite(cost):
            return self._stop("bad_frame", stamp)
        if self.config.arrive_cost > 0 and cost <= self.config.arrive_cost:
            self.arrived = True
            self._forget_motion()
            return VelocityCommand(stamp, 0.0, 0.0)
        horizon = self.config.horizon
        warm = None
        if self._plan is not None:  # receding horizon: the rest of the last plan, the new tail at the box centre
            warm = torch.cat([self._plan[1:], torch.zeros(1, self.action_dim)])[:horizon]
        t0 = time.perf_counter()
        with torch.no_grad():  # gradient descent turns gradients back on for itself
            plan = self.planner.plan(self._counted, self._history, self._goal_frame, horizon, warm_start=warm)
        self.stats.last_plan_s = time.perf_counter() - t0
        self.stats.plan_seconds.append(self.stats.last_plan_s)
        self.stats.replans += 1
        self.stats.sample_steps = self._counted.sample_steps
        plan = plan.detach()
        if tuple(plan.shape) != (horizon, self.action_dim) or not bool(torch.isfinite(plan).all()):
            return self._stop("bad_plan", stamp)
        env = np.asarray(self.world_model.model.env_actions(plan[:1]), dtype=np.float64)
        if env.shape != (self.frameskip, 2) or not np.all(np.isfinite(env)):
            return self._stop("bad_plan", stamp)
        self._plan, self._env_actions, self._step_start = plan, env, stamp
        self._sent = np.clip(env, -1.0, 1.0)
        return None
