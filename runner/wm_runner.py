"""``navkit run`` on a ``kind: world_model`` file: drive to goal *images* with a trained DINO-WM run.

After Zhou, Pan, LeCun, Pinto, "DINO-WM" (ICML 2025, arXiv 2411.04983). Two wirings, one per kind of env:

* **pointmaze / wall**: the world-model envs with budgeted MPC, through ``navkit wm eval``'s own episode
  (:func:`navkit.learning.wm_eval.run_episode`: held-out start/goal pairs, the planner sees only the model,
  the env's own success test at the end of the budget). The video shows, every env step, the goal image
  beside the current view.
* **warehouse**: the whole navigation stack in MuJoCo, in the very warehouse the run was trained in (the
  scenario is rebuilt from the run's recorded env config exactly as :func:`navkit.sim.wm_warehouse.wm_scenario`
  builds it, unmapped clutter included, front camera at the run's image size), the ``world_model_mpc``
  controller from the parameter file, and the CBF safety filter as the last stage: the robot only ever gets
  the filter's command. The controller gets the goal *image* only (no goal pose, no path: the stack has no
  goals); the episode is judged on simulator truth: success when the true position comes within
  ``success_radius_m`` of the goal pose, failure on a collision, on the time limit, or when the controller
  declares arrival short of the goal. The same episode drives A* + pure pursuit to the goal's *pose* for
  ``navkit bench wm``'s baseline (:func:`run_goal_episode`).

A warehouse goal pose is drawn ``goal_ahead_m`` straight ahead of a random free start, same heading, with
the whole segment clear of every obstacle of the layout (so the goal view shows the aisle the robot looks
down at the start, nearer), from a seed stream of its own (data collection draws from another).
"""
from __future__ import annotations

import dataclasses
import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from navkit.common.errors import NavkitError, ParameterError, brief
from navkit.common.geometry import Pose2D
from navkit.common.timing import FrameSchedule
from navkit.learning.navigation_episode import FRONT_CAMERA, NavigationEpisode
from navkit.learning.wm_eval import LoadedModel, WmEvalConfig, load_model, run_episode, sample_pairs, wilson_interval
from navkit.runner.wm_scenario import WarehouseSettings, WorldModelScenario
from navkit.sim.scenario import Scenario, ScenarioError
from navkit.sim.wm_envs import WmEnv, make_wm_env
from navkit.stack.config import StackConfig, load_stack_config
from navkit.stack.navigation_stack import NavigationStack
from navkit.stack.plugin_catalog import default_registry

__all__ = ["CAPTION_PX", "GAP_PX", "LABEL_PX", "METHODS", "TILE_PX", "GoalEpisode", "GoalPair", "WarehouseGoalWorld",
           "WmRunOptions", "WmRunResult", "WorldModelRunner", "compose_frame", "format_wm_metrics_table",
           "overhead_width", "run_goal_episode", "sample_goal_pairs", "small_env", "summarise_goal_episodes",
           "upscale_nearest", "world_model_stack_config"]

TILE_PX = 192
"""Height of every video panel; camera images are upscaled (nearest neighbour) to TILE_PX x TILE_PX."""
GAP_PX = 4
"""Dark gap between panels."""
LABEL_PX = 14
"""Band above the panels with each panel's label."""
CAPTION_PX = 14
"""Band below the panels with the episode, time and distance."""
SMALL_ENV_FPS = 8.0
"""GIF frame rate of the pointmaze / wall videos (one frame per env step)."""
PLANNER_TOLERANCE_SHARE = 0.75
"""A* + pure pursuit aims at this share of ``success_radius_m`` (on its own localised estimate), so that a few
centimetres of localisation error cannot turn its arrival into a miss of the truth-judged radius."""
AISLE_CLEARANCE_M = 0.15
"""Gap beyond the robot's radius that the straight segment from start to goal keeps to every obstacle."""
MAX_PAIR_TRIES = 20_000
WAREHOUSE_PAIR_TAG = 0x60A1_1AA6
"""Mixed into every warehouse pair's seed ([tag, seed, episode]); data collection seeds with [seed, 0|1]."""
METHODS = ("world_model_mpc", "astar_pure_pursuit")
"""The warehouse wirings: the world model driving to the goal image, A* + pure pursuit driving to its pose."""


# ------------------------------------------------------------------------------------------ video frames


def upscale_nearest(image: np.ndarray, height: int) -> np.ndarray:
    """Nearest-neighbour resize to ``height`` rows, width in proportion (pixels stay crisp)."""
    h, w = image.shape[:2]
    width = max(1, int(round(w * height / h)))
    rows = np.minimum((np.arange(height) * h) // height, h - 1)
    cols = np.minimum((np.arange(width) * w) // width, w - 1)
    return np.ascontiguousarray(image[rows][:, cols])


def compose_frame(panels: Sequence[tuple[str, np.ndarray]], caption: str) -> np.ndarray:
    """Panels side by side, each ``TILE_PX`` high with its label above, ``GAP_PX`` apart, a caption below."""
    from PIL import Image, ImageDraw

    tiles = [upscale_nearest(np.asarray(img, dtype=np.uint8), TILE_PX) for _, img in panels]
    width = sum(t.shape[1] for t in tiles) + GAP_PX * (len(tiles) - 1)
    frame = np.full((LABEL_PX + TILE_PX + CAPTION_PX, width, 3), 24, dtype=np.uint8)
    x = 0
    for tile in tiles:
        frame[LABEL_PX:LABEL_PX + TILE_PX, x:x + tile.shape[1]] = tile[..., :3]
        x += tile.shape[1] + GAP_PX
    canvas = Image.fromarray(frame)
    draw = ImageDraw.Draw(canvas)
    x = 0
    for (label, _), tile in zip(panels, tiles):
        draw.text((x + 3, 1), label, fill=(235, 235, 235))
        x += tile.shape[1] + GAP_PX
    draw.text((3, LABEL_PX + TILE_PX + 1), caption, fill=(235, 235, 235))
    return np.asarray(canvas)


def overhead_width(scenario: Scenario) -> int:
    """Width of the overhead panel (``TILE_PX`` high, the map's aspect, even)."""
    from navkit.sim.mjcf_builder import topdown_aspect

    return int(round(TILE_PX * topdown_aspect(scenario) / 2.0)) * 2


def _overhead(robot: Any, scenario: Scenario, goal: Pose2D, start: Pose2D, radius: float) -> np.ndarray:
    """The overhead camera with the goal (green ring of the success radius) and the start (white ring) drawn."""
    from PIL import Image, ImageDraw

    from navkit.sim.mjcf_builder import topdown_view_height

    width = overhead_width(scenario)
    frame = Image.fromarray(robot.render_topdown(width, TILE_PX))
    ppm = TILE_PX / topdown_view_height(scenario)
    xmin, ymin, xmax, ymax = scenario.bounds
    cx, cy = (xmin + xmax) / 2.0, (ymin + ymax) / 2.0

    def pixel(x: float, y: float) -> tuple[float, float]:
        return width / 2.0 + (x - cx) * ppm, TILE_PX / 2.0 - (y - cy) * ppm

    draw = ImageDraw.Draw(frame)
    for pose, r, colour in ((start, 0.15, (255, 255, 255)), (goal, radius, (40, 220, 60))):
        u, v = pixel(pose.x, pose.y)
        rp = max(2.0, r * ppm)
        draw.ellipse((u - rp, v - rp, u + rp, v + rp), outline=colour, width=2)
    return np.asarray(frame)


# ------------------------------------------------------------------------------------------ runs and envs


def _config_fields(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: (tuple(v) if isinstance(v, list) else v) for k, v in values.items() if k in names}


def small_env(loaded: LoadedModel) -> WmEnv:
    """The run's pointmaze / wall env at the run's image size, configured as the dataset's was recorded."""
    size = loaded.image_size or (64, 64)
    config: Any = None
    if loaded.env == "wall" and loaded.env_config:
        from navkit.sim.wm_wall import WallConfig

        config = WallConfig(**_config_fields(WallConfig, loaded.env_config))
    elif loaded.env == "pointmaze" and loaded.env_config:
        from navkit.sim.wm_pointmaze import PointMazeConfig

        config = PointMazeConfig(**_config_fields(PointMazeConfig, loaded.env_config))
    return make_wm_env(loaded.env, int(size[0]), config)


class _RecordingEnv:
    """A :class:`WmEnv` that keeps every image it shows (``set_state`` and ``step``): run_episode's first
    ``set_state`` is the goal's, the second the start's, then one per env step."""

    def __init__(self, env: WmEnv) -> None:
        self._env = env
        self.images: list[np.ndarray] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._env, name)

    def set_state(self, state: np.ndarray) -> Any:
        obs = self._env.set_state(state)
        self.images.append(obs.visual)
        return obs

    def step(self, action: np.ndarray) -> Any:
        obs = self._env.step(action)
        self.images.append(obs.visual)
        return obs


def world_model_stack_config(params: str | Path, run: str | Path, checkpoint: str) -> StackConfig:
    """The stack of ``params`` with its ``world_model_mpc`` controller pointed at ``run`` / ``checkpoint``
    (the scenario names the model; the parameter file the controller's settings and the filter)."""
    config = load_stack_config(params)
    choice = config.local_controller
    if choice.name != "world_model_mpc":
        raise ParameterError(str(params), "controller.local_controller.plugin",
                             f"a world-model scenario drives with world_model_mpc, got {brief(choice.name)}")
    try:
        chosen = dataclasses.replace(choice.config, run=str(run), checkpoint=checkpoint)
    except ValueError as exc:
        raise ParameterError(str(params), "controller.local_controller", str(exc)) from None
    return dataclasses.replace(config, local_controller=dataclasses.replace(choice, config=chosen))


@dataclass(frozen=True)
class GoalPair:
    """A warehouse episode's start and goal poses (the goal: straight ahead of the start, same heading)."""

    start: Pose2D
    goal: Pose2D

    @property
    def distance_m(self) -> float:
        return math.hypot(self.goal.x - self.start.x, self.goal.y - self.start.y)


class WarehouseGoalWorld:
    """The warehouse a run was trained in, its held-out start/goal pairs and the goal views rendered there."""

    def __init__(self, loaded: LoadedModel, *, episodes: int, seed: int, goal_ahead_m: tuple[float, float],
                 source: str = "world_model") -> None:
        from navkit.sim.wm_warehouse import WarehouseWmConfig, wm_scenario

        self.source = source
        try:
            self.config = WarehouseWmConfig(**_config_fields(WarehouseWmConfig, loaded.env_config))
        except (TypeError, ValueError, NavkitError) as exc:
            raise ScenarioError(str(loaded.path), "env_config", f"not a warehouse run's env config ({exc})") from None
        size = loaded.image_size
        if size is None or size[0] != size[1]:
            raise ScenarioError(str(loaded.path), "image_size", f"expected a square image size, got {size}")
        self.image_size = int(size[0])
        self.control_period_s = loaded.control_period_s
        base = wm_scenario(self.config, self.image_size)
        camera = dataclasses.replace(base.sensors.camera, rate_hz=min(60.0, 1.0 / self.control_period_s))
        # The camera renders every control period of the dataset (what the model saw between its actions).
        self.scenario = base.with_overrides(sensors=dataclasses.replace(base.sensors, camera=camera))
        self.pairs = sample_goal_pairs(self.scenario, episodes, seed, goal_ahead_m, self.config.start_clearance_m,
                                       source)
        self.goal_views = self._render_goal_views()

    def _render_goal_views(self) -> list[np.ndarray]:
        """The front camera at each goal pose, rendered by the dataset's own env (same scene, goal markers
        hidden), so a goal image is exactly what the robot sees there."""
        from navkit.sim.wm_warehouse import WarehouseWmEnv

        env = WarehouseWmEnv(self.config, image_size=self.image_size)
        try:
            model = env.robot.model
            base_q = int(model.joint("base").qposadr[0])
            views = []
            for pair in self.pairs:
                g = pair.goal
                qpos = np.array(model.qpos0, dtype=np.float64)
                qpos[base_q:base_q + 2] = (g.x, g.y)
                qpos[base_q + 3:base_q + 7] = (math.cos(g.yaw / 2), 0.0, 0.0, math.sin(g.yaw / 2))
                state = np.concatenate([qpos, np.zeros(model.nv), [g.x, g.y, g.yaw, 0.0, 0.0]])
                views.append(np.array(env.set_state(state).visual, copy=True))
        finally:
            env.close()
        return views


def sample_goal_pairs(scenario: Scenario, n: int, seed: int, goal_ahead_m: tuple[float, float],
                      endpoint_clearance_m: float, source: str = "world_model") -> list[GoalPair]:
    """``n`` (start, goal) pairs: a random free start and heading, the goal ``goal_ahead_m`` straight ahead
    with the same heading; the segment between keeps ``AISLE_CLEARANCE_M`` beyond the robot's radius to every
    obstacle (mapped or not) and the walls, both ends ``endpoint_clearance_m``."""
    xmin, ymin, xmax, ymax = scenario.bounds
    radius = scenario.robot.radius_m
    low, high = goal_ahead_m
    pairs = []
    for i in range(n):
        rng = np.random.default_rng([WAREHOUSE_PAIR_TAG, seed, i])
        for _ in range(MAX_PAIR_TRIES):
            x, y = rng.uniform([xmin, ymin], [xmax, ymax])
            yaw = float(rng.uniform(-math.pi, math.pi))
            d = float(rng.uniform(low, high))
            gx, gy = x + d * math.cos(yaw), y + d * math.sin(yaw)
            ends = scenario.obstacle_distance(np.array([[x, y], [gx, gy]]))
            if ends.min() < radius + endpoint_clearance_m:
                continue
            t = np.linspace(0.0, 1.0, max(2, int(math.ceil(d / 0.05)) + 1))[:, None]
            segment = np.array([x, y]) + t * np.array([gx - x, gy - y])
            if scenario.obstacle_distance(segment).min() >= radius + AISLE_CLEARANCE_M:
                pairs.append(GoalPair(Pose2D(float(x), float(y), yaw), Pose2D(float(gx), float(gy), yaw)))
                break
        else:
            raise ScenarioError(source, "goal_ahead_m", f"episode {i}: no free straight aisle of {low:g}-{high:g} m "
                                                       f"found in {MAX_PAIR_TRIES} tries in this warehouse")
    return pairs


# ------------------------------------------------------------------------------------------ warehouse episodes


@dataclass
class GoalEpisode:
    """One warehouse episode: its row of metrics, the plan durations (world model) and its video frames."""

    row: dict[str, Any]
    plan_seconds: list[float] = field(default_factory=list)
    frames: list[np.ndarray] = field(default_factory=list)
    error: BaseException | None = None


def _percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else math.nan


def run_goal_episode(world: WarehouseGoalWorld, index: int, method: str, stack_config: StackConfig, *,
                     success_radius_m: float, time_limit_s: float, seed: int, video_fps: float = 0.0,
                     caption: str = "") -> GoalEpisode:
    """One episode of ``method`` (see :data:`METHODS`) on ``world.pairs[index]``; never raises for what the
    simulation does (a diverged physics or Ctrl-C ends it, recorded in ``error``)."""
    if method not in METHODS:
        raise ValueError(f"method: expected one of {', '.join(METHODS)}, got {method!r}")
    pair, goal_view = world.pairs[index], world.goal_views[index]
    wm = method == "world_model_mpc"
    s, g = pair.start, pair.goal
    sc = world.scenario.with_overrides(name=f"{world.scenario.name}_goal_image_{index}", seed=seed,
                                       start=(s.x, s.y, s.yaw), goals=((g.x, g.y),),
                                       goal_tolerance_m=PLANNER_TOLERANCE_SHARE * success_radius_m,
                                       time_limit_s=time_limit_s)
    registry = default_registry()
    robot = registry.build(registry.choose("robot_backend", {"robot_backend.plugin": "mujoco"}, sc.source,
                                           prefix="robot_backend"), scenario=sc,
                           cmd_timeout_s=stack_config.bridge.cmd_timeout_s)
    model = robot.model
    for i in range(model.nsite):  # as in the dataset's images: no goal marker for the camera to home in on
        if model.site(i).name.startswith("goal_"):
            model.site_rgba[i, 3] = 0.0
    frames: list[np.ndarray] = []
    error: BaseException | None = None
    try:
        # The world model gets the goal image only: a stack without goals plans no path and has no goal pose.
        stack = NavigationStack(stack_config, goals=() if wm else sc.goals, goal_tolerance_m=sc.goal_tolerance_m,
                                scenario=sc, registry=registry)
        if wm:
            stack.set_goal_image(goal_view)
        episode = NavigationEpisode(sc, stack_config, robot, time_limit_s=time_limit_s,
                                    cameras=wm or video_fps > 0, stack=stack)
        episode.reset()
        schedule = FrameSchedule(video_fps)
        controller = stack.controller
        outcome, time_to_goal, now = "time_limit", math.nan, 0.0
        distance = min_distance = pair.distance_m
        wall0 = time.perf_counter()
        try:
            while True:
                step = episode.step()
                now = step.observation.stamp
                pose = robot.true_pose()
                distance = math.hypot(pose.x - g.x, pose.y - g.y)
                min_distance = min(min_distance, distance)
                if schedule.due(now):
                    image = step.observation.camera(FRONT_CAMERA)
                    view = image.rgb if image is not None else np.zeros_like(goal_view)
                    frames.append(compose_frame(
                        [("goal image", goal_view), ("robot camera", view),
                         ("overhead", _overhead(robot, sc, g, s, success_radius_m))],
                        f"{caption}t {now:5.1f} s  distance {distance:5.2f} m  cmd v {step.result.command.v:+.2f} "
                        f"w {step.result.command.omega:+.2f}  {step.result.status.name.lower()}"))
                if episode.task.collisions > 0:
                    outcome = "collision"
                    break
                if distance <= success_radius_m:
                    outcome, time_to_goal = "success", now
                    break
                if wm and getattr(controller, "arrived", False):
                    outcome = "arrived_short"  # the model believes it is there; the truth says it is not
                    break
                if now >= time_limit_s - 1e-9:
                    break
        except (NavkitError, KeyboardInterrupt) as exc:
            error, outcome = exc, "aborted"
        wall = time.perf_counter() - wall0
        fstats = stack.filter.stats
        task = episode.task
        row: dict[str, Any] = {
            "episode": index, "method": method, "start": [s.x, s.y, s.yaw], "goal": [g.x, g.y, g.yaw],
            "start_distance_m": pair.distance_m, "success": outcome == "success", "outcome": outcome,
            "collisions": int(task.collisions), "time_to_goal_s": time_to_goal, "final_distance_m": distance,
            "min_distance_m": min_distance, "sim_time_s": now, "wall_time_s": wall,
            "path_length_m": task.path_length, "min_clearance_m": task.min_clearance,
            "filter_interventions": int(fstats.interventions), "filter_infeasible": int(fstats.infeasible),
            "filter_invalid_input": int(fstats.invalid_input), "filter_stale_input": int(fstats.stale_input),
            "filter_status_counts": dict(episode.statuses), "control_ticks": len(task.times),
        }
        plan_seconds: list[float] = []
        stats = getattr(controller, "stats", None)
        if wm and stats is not None:
            plan_seconds = [float(t) for t in stats.plan_seconds]
            row.update({"replans": int(stats.replans), "median_plan_s": _percentile(plan_seconds, 50),
                        "p90_plan_s": _percentile(plan_seconds, 90), "sample_steps": int(stats.sample_steps),
                        "goal_encodings": int(stats.goal_encodings), "stops": dict(stats.stops),
                        "arrived": bool(getattr(controller, "arrived", False)), "last_latent_cost": stats.last_cost})
        else:
            row.update({"replans": int(stack.planning.replans), "plan_failures": int(stack.planning.plan_failures)})
        if error is not None:
            row["abort_reason"] = "interrupted (Ctrl-C)" if isinstance(error, KeyboardInterrupt) else str(error)
    finally:
        robot.close()
    return GoalEpisode(row, plan_seconds, frames, error)


def summarise_goal_episodes(rows: Sequence[dict[str, Any]], plan_seconds: Sequence[float]) -> dict[str, Any]:
    """Success with its Wilson 95 % interval, collisions, time to goal, filter and planning numbers over rows."""
    n = len(rows)
    k = sum(bool(r["success"]) for r in rows)
    times = [r["time_to_goal_s"] for r in rows if r["success"]]
    stops: dict[str, int] = {}
    for r in rows:
        for reason, count in r.get("stops", {}).items():
            stops[reason] = stops.get(reason, 0) + int(count)
    return {
        "episodes": n, "successes": k, "success_rate": k / n if n else math.nan, "success_ci95": wilson_interval(k, n),
        "collisions": sum(int(r["collisions"]) for r in rows),
        "episodes_with_collision": sum(int(r["collisions"]) > 0 for r in rows),
        "outcomes": {o: sum(r["outcome"] == o for r in rows) for o in sorted({r["outcome"] for r in rows})},
        "time_to_goal_s_mean": float(np.mean(times)) if times else math.nan,
        "time_to_goal_s_median": float(np.median(times)) if times else math.nan,
        "filter_interventions": sum(int(r["filter_interventions"]) for r in rows),
        "filter_interventions_per_episode": float(np.mean([r["filter_interventions"] for r in rows])) if n else math.nan,
        "filter_infeasible": sum(int(r["filter_infeasible"]) for r in rows),
        "replans": sum(int(r.get("replans", 0)) for r in rows),
        "plans_timed": len(plan_seconds),
        "median_plan_s": _percentile(plan_seconds, 50), "p90_plan_s": _percentile(plan_seconds, 90),
        "stops": stops,
        "sim_time_s": float(sum(r["sim_time_s"] for r in rows)),
        "wall_time_s": float(sum(r["wall_time_s"] for r in rows)),
    }


# ------------------------------------------------------------------------------------------ the runner


@dataclass
class WmRunOptions:
    """What ``navkit run`` asks of a world-model run besides the scenario."""

    video: bool = True
    video_fps: float = 4.0
    """warehouse: frames per simulated second (pointmaze / wall: one per env step)."""
    progress: bool = False
    params: Path | None = None
    """warehouse: override the scenario's parameter file."""
    time_limit_s: float | None = None
    """warehouse: override the scenario's time limit."""


@dataclass
class WmRunResult:
    """Metrics, the video frames and their frame rate, and what ended the run early (if anything)."""

    metrics: dict[str, Any]
    frames: list[np.ndarray] = field(default_factory=list)
    fps: float = SMALL_ENV_FPS
    error: BaseException | None = None


class WorldModelRunner:
    """Checks everything a run needs when constructed (model, env, parameter file, goals), then runs it."""

    def __init__(self, scenario: WorldModelScenario, options: WmRunOptions | None = None) -> None:
        self.scenario = scenario
        self.options = options or WmRunOptions()
        sc = scenario
        self.loaded = load_model(sc.run, sc.checkpoint, sc.planning.proprio_weight)
        if self.loaded.env != sc.env:
            raise ScenarioError(sc.source, "env", f"the run {sc.run} was trained on {self.loaded.env or 'unknown'!r} "
                                                  f"data, not {sc.env!r}")
        self.world: WarehouseGoalWorld | None = None
        if sc.env == "warehouse":
            self.params = Path(self.options.params or sc.warehouse.params)
            self.stack_config = world_model_stack_config(self.params, sc.run, sc.checkpoint)
            self.time_limit_s = float(self.options.time_limit_s or sc.warehouse.time_limit_s)
            self.world = WarehouseGoalWorld(self.loaded, episodes=sc.episodes, seed=sc.seed,
                                            goal_ahead_m=sc.warehouse.goal_ahead_m, source=sc.source)
        else:
            p = sc.planning
            self.eval_config = WmEvalConfig(run=sc.run, checkpoint=sc.checkpoint, env=sc.env, pairs=sc.episodes,
                                            planners=(p.planner,), seed=sc.seed, step_budget=p.step_budget,
                                            horizon=p.horizon, proprio_weight=p.proprio_weight,
                                            cem_samples=p.samples, cem_elites=p.elites, cem_iterations=p.iterations)

    def run(self) -> WmRunResult:
        from tqdm import tqdm

        sc = self.scenario
        bar = tqdm(total=sc.episodes, desc=f"{sc.name} ({sc.env})", unit="episode", disable=not self.options.progress)
        try:
            if self.world is not None:
                return self._run_warehouse(self.world, bar)
            return self._run_small(bar)
        finally:
            bar.close()

    def _base_metrics(self) -> dict[str, Any]:
        sc = self.scenario
        return {"scenario": sc.name, "kind": "world_model", "env": sc.env, "run": sc.run, "checkpoint": sc.checkpoint,
                "seed": sc.seed, "episodes_requested": sc.episodes,
                "train_config": {k: self.loaded.checkpoint.get("train_config", {}).get(k)
                                 for k in ("encoder", "weights", "feature", "history", "frameskip")}}

    def _run_small(self, bar: Any) -> WmRunResult:
        import torch

        sc, cfg = self.scenario, self.eval_config
        torch.set_num_threads(cfg.torch_threads)
        wall0 = time.perf_counter()
        env = small_env(self.loaded)
        rows: list[dict[str, Any]] = []
        plan_times: list[float] = []
        frames: list[np.ndarray] = []
        error: BaseException | None = None
        try:
            pairs = sample_pairs(env, cfg.pairs, cfg.seed)
            recorder = _RecordingEnv(env)
            for i, (start, goal) in enumerate(pairs):
                recorder.images.clear()
                result = run_episode(self.loaded, recorder, start, goal, cfg.planners[0], cfg, i)
                row = {k: v for k, v in dataclasses.asdict(result).items() if k != "plan_times"}
                row["median_plan_s"] = statistics.median(result.plan_times) if result.plan_times else math.nan
                rows.append(row)
                plan_times.extend(result.plan_times)
                if self.options.video and len(recorder.images) >= 2:
                    goal_image, views = recorder.images[0], recorder.images[1:]
                    for k, view in enumerate(views):
                        frames.append(compose_frame(
                            [("goal image", goal_image), ("current view", view)],
                            f"episode {i + 1}/{len(pairs)}  step {k}/{len(views) - 1}"
                            + (f"  {'success' if result.success else 'failed'}" if k == len(views) - 1 else "")))
                bar.update(1)
                bar.set_postfix_str(f"success {sum(r['success'] for r in rows)}/{len(rows)}")
        except (NavkitError, KeyboardInterrupt) as exc:
            error = exc
        finally:
            env.close()
        n, k = len(rows), sum(bool(r["success"]) for r in rows)
        ok_steps = [r["sample_steps"] for r in rows if r["success"]]
        metrics = self._base_metrics()
        metrics.update({
            "planner": cfg.planners[0], "step_budget": cfg.step_budget, "horizon": cfg.horizon,
            "cem": {"samples": cfg.cem_samples, "elites": cfg.cem_elites, "iterations": cfg.cem_iterations},
            "proprio_weight": cfg.proprio_weight, "env_steps_per_episode": cfg.step_budget * self.loaded.frameskip,
            "episodes": n, "per_episode": rows, "successes": k, "success_rate": k / n if n else math.nan,
            "success_ci95": wilson_interval(k, n), "success": n == sc.episodes and k == n, "collisions": 0,
            "median_plan_s": statistics.median(plan_times) if plan_times else math.nan,
            "sample_steps_per_success": float(np.mean(ok_steps)) if ok_steps else math.nan,
            "wall_time_s": time.perf_counter() - wall0,
        })
        _mark_aborted(metrics, error)
        return WmRunResult(metrics, frames, SMALL_ENV_FPS, error)

    def _run_warehouse(self, world: WarehouseGoalWorld, bar: Any) -> WmRunResult:
        sc, settings = self.scenario, self.scenario.warehouse
        fps = self.options.video_fps if self.options.video else 0.0
        rows: list[dict[str, Any]] = []
        plan_times: list[float] = []
        frames: list[np.ndarray] = []
        error: BaseException | None = None
        for i in range(len(world.pairs)):
            try:
                ep = run_goal_episode(world, i, "world_model_mpc", self.stack_config,
                                      success_radius_m=settings.success_radius_m, time_limit_s=self.time_limit_s,
                                      seed=(sc.seed + i) % 2**63, video_fps=fps,
                                      caption=f"episode {i + 1}/{len(world.pairs)}  ")
            except (NavkitError, KeyboardInterrupt) as exc:  # while building the episode: keep what was measured
                error = exc
                break
            rows.append(ep.row)
            plan_times.extend(ep.plan_seconds)
            frames.extend(ep.frames)
            bar.update(1)
            bar.set_postfix_str(f"success {sum(r['success'] for r in rows)}/{len(rows)}")
            if ep.error is not None:
                error = ep.error
                break
        metrics = self._base_metrics()
        metrics.update(_warehouse_settings(settings, self.params, self.time_limit_s, world))
        metrics.update({"controller": dataclasses.asdict(self.stack_config.local_controller.config),
                        "per_episode": rows})
        summary = summarise_goal_episodes(rows, plan_times)
        metrics.update(summary)
        metrics["success"] = len(rows) == sc.episodes and summary["successes"] == len(rows)
        _mark_aborted(metrics, error)
        return WmRunResult(metrics, frames, 2.0 * self.options.video_fps, error)


def _warehouse_settings(settings: WarehouseSettings, params: Path, time_limit_s: float,
                        world: WarehouseGoalWorld) -> dict[str, Any]:
    return {"params": str(params), "time_limit_s": time_limit_s, "success_radius_m": settings.success_radius_m,
            "goal_ahead_m": list(settings.goal_ahead_m), "warehouse": world.scenario.name,
            "image_size": world.image_size, "camera_rate_hz": world.scenario.sensors.camera.rate_hz}


def _mark_aborted(metrics: dict[str, Any], error: BaseException | None) -> None:
    if error is not None:
        metrics["aborted"] = True
        metrics["abort_reason"] = "interrupted (Ctrl-C)" if isinstance(error, KeyboardInterrupt) else str(error)


def format_wm_metrics_table(metrics: dict[str, Any]) -> str:
    """The headline numbers of a world-model run as an aligned two-column table (plus one line per episode)."""
    ci = metrics.get("success_ci95") or (math.nan, math.nan)

    def num(value: Any, fmt: str = ".2f") -> str:
        return "-" if value is None or (isinstance(value, float) and not math.isfinite(value)) else format(value, fmt)

    rows: list[tuple[str, Any]] = [
        ("scenario", f"{metrics['scenario']} ({metrics['env']})"),
        ("run", metrics["run"]),
        ("success", f"{metrics['successes']}/{metrics['episodes']} = {num(metrics['success_rate'])} "
                    f"(95% CI {num(ci[0])}-{num(ci[1])})"),
    ]
    if metrics["env"] == "warehouse":
        rows += [
            ("collisions", metrics["collisions"]),
            ("time to goal, mean (s)", num(metrics["time_to_goal_s_mean"], ".1f")),
            ("filter interventions", metrics["filter_interventions"]),
            ("filter infeasible (braked)", metrics["filter_infeasible"]),
            ("controller replans", metrics["replans"]),
            ("plan time median / p90 (s)", f"{num(metrics['median_plan_s'], '.3f')} / {num(metrics['p90_plan_s'], '.3f')}"),
            ("controller stops", ", ".join(f"{k} {v}" for k, v in metrics["stops"].items() if v) or "none"),
        ]
    else:
        rows += [
            ("planner", f"{metrics['planner']} (budget {metrics['step_budget']} model steps, horizon "
                        f"{metrics['horizon']})"),
            ("plan time median (s)", num(metrics["median_plan_s"], ".3f")),
            ("model sample-steps per success", num(metrics["sample_steps_per_success"], ".0f")),
        ]
    rows.append(("wall time (s)", num(metrics["wall_time_s"], ".1f")))
    width = max(len(k) for k, _ in rows)
    lines = [f"{k:<{width}}  {v}" for k, v in rows]
    for r in metrics["per_episode"]:
        if metrics["env"] == "warehouse":
            lines.append(f"  episode {r['episode']}: {r['outcome']:<13} start {r['start_distance_m']:.2f} m -> final "
                         f"{r['final_distance_m']:.2f} m, {r['sim_time_s']:.1f} s, filter {r['filter_interventions']}")
        else:
            lines.append(f"  episode {r['pair']}: {'success' if r['success'] else 'failed':<8} start "
                         f"{r['start_distance']:.3f} -> final {r['final_distance']:.3f}")
    return "\n".join(lines)
