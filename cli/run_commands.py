"""``navkit demo`` and ``navkit run``: one scenario in-process, then its table, metrics, plot and video.

Every output location is checked before the run, the table is printed whatever happens,
and a run that ends early still leaves its metrics (marked aborted).
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from navkit.cli.args import MAX_TIME_LIMIT_S, float_in, int_in
from navkit.common.errors import NavkitError
from navkit.common.json_output import to_json

REPO_ROOT = Path(__file__).resolve().parents[1]


def add_run_options(p: argparse.ArgumentParser, *, default_out: str) -> None:
    from navkit.stack.config import DEFAULT_PARAMS_FILE

    p.add_argument("--params", type=Path, default=None,
                   help="ROS 2 parameter file (ros__parameters YAML) choosing and configuring the planner, "
                        f"controller and safety filter plugins; the ROS 2 launch uses the same file (default: the "
                        f"scenario's 'params' if it names one, else {DEFAULT_PARAMS_FILE.relative_to(REPO_ROOT)})")
    p.add_argument("--out", type=Path, default=Path(default_out),
                   help="output folder for metrics.json, trajectory.png and the video (default: %(default)s)")
    p.add_argument("--seed", type=int_in(0, 2**63 - 1), default=None,
                   help="override the scenario's seed (sensor noise; swarm: the layout)")
    p.add_argument("--time-limit", type=float_in(0.0, MAX_TIME_LIMIT_S, low_open=True), default=None,
                   help="override the scenario's time limit (sim seconds, up to one day)")
    p.add_argument("--video", default="trajectory.gif",
                   help="video file name inside --out (.gif, or .mp4 with imageio-ffmpeg); 'none' to skip "
                        "(default: %(default)s)")
    p.add_argument("--video-fps", type=float_in(0.0, 60.0, low_open=True), default=4.0,
                   help="overhead frames per simulated second (default: %(default)s)")
    p.add_argument("--record", type=Path, default=None, metavar="BAG.mcap",
                   help="record odom, scan, cmd_vel and camera (2 Hz) as a ROS 2 bag (MCAP), readable by "
                        "rosbags and Foxglove")
    p.add_argument("--robot", choices=("mujoco", "pybullet"), default=None,
                   help="simulator for a single-robot scenario, as robot:= in a launch (default: the scenario's "
                        "'backend', mujoco unless it names another)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON instead of a table")


def _prepare_outputs(args: argparse.Namespace) -> Path | None:
    """Check every output location before the run (a run must not end in 'cannot write');
    returns the video path or None. Notes when an earlier run's files are replaced."""
    from navkit.runner.outputs import check_video_name, prepare_output_dir

    check_video_name(args.video)
    if args.record is not None:
        from navkit.runner.bag_recorder import check_bag_path

        check_bag_path(args.record)
    removed = prepare_output_dir(args.out)
    if removed:
        print(f"navkit: note: {args.out} held an earlier run; replaced its {', '.join(removed)}", file=sys.stderr)
    return None if args.video.lower() == "none" else args.out / args.video


def _report(metrics: dict[str, Any], table: str, written: list[Path], failures: list[str], error: BaseException | None,
            as_json: bool) -> int | None:
    """Print the table (or JSON) whatever happened, then one line per output failure.

    Returns the exit code when the run cannot count as finished (aborted, or outputs lost)."""
    print(to_json(metrics) if as_json else table)
    if written and not as_json:
        print("wrote: " + ", ".join(str(p) for p in written))
    if "recording_error" in metrics:
        print(f"navkit: warning: {metrics['recording_error']}", file=sys.stderr)
    for line in failures:
        print(f"navkit: error: {line}", file=sys.stderr)
    if isinstance(error, KeyboardInterrupt):
        print("navkit: interrupted; the metrics so far are marked aborted", file=sys.stderr)
        return 130
    if error is not None:
        print(f"navkit: error: {error} (the metrics so far are marked aborted)", file=sys.stderr)
        return 2
    return 2 if failures else None


def run_scenario(scenario_path: Path, args: argparse.Namespace) -> int:
    from navkit.runner.in_process import InProcessRunner, RunOptions
    from navkit.runner.outputs import format_metrics_table, write_outputs, write_trajectory_plot, write_video
    from navkit.sim.scenario import load_scenario
    from navkit.stack.config import DEFAULT_PARAMS_FILE, load_stack_config
    from navkit.stack.plugin_catalog import default_registry

    scenario = load_scenario(scenario_path)
    if args.seed is not None:
        scenario = scenario.with_overrides(seed=args.seed)
    if getattr(args, "robot", None):
        scenario = dataclasses.replace(scenario, backend=args.robot)
    registry = default_registry()
    stack = load_stack_config(args.params or scenario.params or DEFAULT_PARAMS_FILE, registry=registry)
    robot = _make_robot(scenario, stack, registry)
    try:
        runner = InProcessRunner(scenario, stack, robot)  # validates the stack before anything is written
        video = _prepare_outputs(args)
        options = RunOptions(video_fps=args.video_fps if video else 0.0, record_path=args.record,
                             progress=not args.no_progress and not args.json, time_limit_s=args.time_limit)
        result = runner.run(options)
    finally:
        close = getattr(robot, "close", None)
        if close:
            close()
    artefacts: list[tuple[str, Any]] = [("trajectory.png", lambda p: write_trajectory_plot(scenario, result, p))]
    if video is not None:
        artefacts.append((video.name, lambda p: write_video(result.frames, p, args.video_fps * 2.0)))
    written, failures = write_outputs(args.out, result.metrics, artefacts)
    if args.record and "recording_error" not in result.metrics:
        written.append(args.record)
    code = _report(result.metrics, format_metrics_table(result.metrics), written, failures, result.error, args.json)
    if code is not None:
        return code
    return 0 if result.metrics["success"] and result.metrics["collisions"] == 0 else 1


def run_swarm(scenario_path: Path, args: argparse.Namespace) -> int:
    """``navkit run`` on a ``kind: swarm`` file: MuJoCo team + SwarmController + an α source."""
    from navkit.runner.outputs import write_outputs, write_video
    from navkit.runner.swarm_outputs import format_swarm_metrics_table, write_traces_csv, write_trajectories_plot
    from navkit.runner.swarm_runner import SwarmRunner, SwarmRunOptions
    from navkit.sim.swarm_scenario import load_swarm_scenario
    from navkit.stack.plugin_catalog import default_registry

    if args.record is not None:
        raise NavkitError(f"{scenario_path}: --record: bag recording is not available for swarm scenarios")
    if getattr(args, "robot", None):
        raise NavkitError(f"{scenario_path}: --robot: swarm scenarios choose their simulator with swarm_backend")
    if args.params is not None:
        raise NavkitError(f"{args.params}: --params: swarm scenarios are configured by their own file "
                          "(--alpha / --policy choose the CBF gains)")
    chosen = [name for name, given in (("--alpha", args.alpha is not None), ("--policy", args.policy is not None),
                                       ("--priority-rule", bool(getattr(args, "priority_rule", False)))) if given]
    if len(chosen) > 1:
        raise NavkitError(f"{scenario_path}: {' and '.join(chosen)}: give one α source, not several")
    scenario = load_swarm_scenario(scenario_path).expand(seed=args.seed, num_agents=args.agents)
    registry = default_registry()
    if args.alpha is not None:
        params, label = {"cbf_policy.plugin": "fixed", "cbf_policy.alpha": args.alpha}, f"fixed {args.alpha:g}"
    elif getattr(args, "priority_rule", False):
        params, label = {"cbf_policy.plugin": "priority_rule"}, "priority rule"
    else:
        path = "" if args.policy is None else str(args.policy)
        params, label = {"cbf_policy.plugin": "online_cbf_gnn", "cbf_policy.path": path}, path or "shipped policy"
    alpha_source = registry.build(registry.choose("cbf_policy", params, "command line"))
    video = _prepare_outputs(args)
    options = SwarmRunOptions(time_limit_s=args.time_limit, video_fps=args.video_fps if video else 0.0,
                              progress=not args.no_progress and not args.json, alpha_label=label)
    runner = SwarmRunner(scenario, alpha_source, backend=registry.build(
        registry.choose("swarm_backend", {"swarm_backend.plugin": "mujoco"}, "command line"), scenario=scenario))
    try:
        result = runner.run(options)
    finally:
        runner.close()
    artefacts: list[tuple[str, Any]] = [("traces.csv", lambda p: write_traces_csv(result, p)),
                                         ("trajectories.png", lambda p: write_trajectories_plot(scenario, result, p))]
    if video is not None:
        artefacts.append((video.name, lambda p: write_video(result.frames, p, args.video_fps * 2.0)))
    written, failures = write_outputs(args.out, result.metrics, artefacts)
    code = _report(result.metrics, format_swarm_metrics_table(result.metrics), written, failures, result.error,
                   args.json)
    if code is not None:
        return code
    return 0 if result.metrics["success"] and result.metrics["collisions"] == 0 else 1


def run_world_model(scenario_path: Path, args: argparse.Namespace) -> int:
    """``navkit run`` on a ``kind: world_model`` file: goal-image episodes with a trained DINO-WM run
    (pointmaze / wall: budgeted MPC on the env; warehouse: the full stack in MuJoCo behind the CBF filter)."""
    from navkit.runner.outputs import check_video_name, write_outputs, write_video
    from navkit.runner.wm_runner import WmRunOptions, WorldModelRunner, format_wm_metrics_table
    from navkit.runner.wm_scenario import MAX_SEED, load_world_model_scenario

    scenario = load_world_model_scenario(scenario_path)
    check_video_name(args.video)
    if args.record is not None:
        raise NavkitError(f"{scenario_path}: --record: bag recording is not available for world_model scenarios")
    if getattr(args, "robot", None):
        raise NavkitError(f"{scenario_path}: --robot: world_model scenarios run in the simulator their run was "
                          "trained in")
    if scenario.env != "warehouse":
        for flag, given in (("--params", args.params is not None), ("--time-limit", args.time_limit is not None)):
            if given:
                raise NavkitError(f"{scenario_path}: {flag}: only for env: warehouse (env: {scenario.env} episodes "
                                  "run a fixed budget of model steps; see the scenario's planning section)")
    if args.seed is not None:
        if args.seed > MAX_SEED:
            raise NavkitError(f"{scenario_path}: --seed: world_model scenarios take seeds up to {MAX_SEED}, "
                              f"got {args.seed}")
        scenario = dataclasses.replace(scenario, seed=args.seed)
    runner = WorldModelRunner(scenario, WmRunOptions(
        video=args.video.lower() != "none", video_fps=args.video_fps, progress=not args.no_progress and not args.json,
        params=args.params, time_limit_s=args.time_limit))  # loads and checks everything before anything is written
    video = _prepare_outputs(args)
    result = runner.run()
    artefacts: list[tuple[str, Any]] = []
    if video is not None:
        artefacts.append((video.name, lambda p: write_video(result.frames, p, result.fps)))
    written, failures = write_outputs(args.out, result.metrics, artefacts)
    code = _report(result.metrics, format_wm_metrics_table(result.metrics), written, failures, result.error, args.json)
    if code is not None:
        return code
    return 0 if result.metrics["success"] and result.metrics["collisions"] == 0 else 1


def _make_robot(scenario: Any, stack: Any, registry: Any) -> Any:
    """The scenario's robot backend, by name through the plugin registry (as ``robot:=`` in a launch)."""
    choice = registry.choose("robot_backend", {"robot_backend.plugin": scenario.backend}, scenario.source,
                             prefix="robot_backend")
    return registry.build(choice, scenario=scenario, cmd_timeout_s=stack.bridge.cmd_timeout_s)


