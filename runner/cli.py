"""``navkit``: the front door (demo, run, launch, bench).

Bad input ends in one line naming the file and field and a non-zero exit, never a
traceback: users edit YAML files, and a traceback hides which line to fix.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from navkit.common.errors import NavkitError

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_SCENARIO = REPO_ROOT / "scenarios" / "warehouse_demo.yaml"


def _add_run_options(p: argparse.ArgumentParser, *, default_out: str) -> None:
    from navkit.runner.stack_config import DEFAULT_PARAMS_FILE

    p.add_argument("--params", type=Path, default=DEFAULT_PARAMS_FILE,
                   help="ROS 2 parameter file (ros__parameters YAML) configuring planner, controller and "
                        "safety filter; the ROS 2 launch uses the same file (default: %(default)s)")
    p.add_argument("--out", type=Path, default=Path(default_out),
                   help="output folder for metrics.json, trajectory.png and the video (default: %(default)s)")
    p.add_argument("--seed", type=int, default=None, help="override the scenario's seed (sensor noise)")
    p.add_argument("--time-limit", type=float, default=None, help="override the scenario's time limit (sim seconds)")
    p.add_argument("--video", default="trajectory.gif",
                   help="video file name inside --out (.gif, or .mp4 with imageio-ffmpeg); 'none' to skip "
                        "(default: %(default)s)")
    p.add_argument("--video-fps", type=float, default=4.0, help="overhead frames per simulated second (default: %(default)s)")
    p.add_argument("--record", type=Path, default=None, metavar="BAG.mcap",
                   help="record odom, scan, cmd_vel and camera (2 Hz) as a ROS 2 bag (MCAP), readable by "
                        "rosbags and Foxglove")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON instead of a table")


def _run(scenario_path: Path, args: argparse.Namespace) -> int:
    from navkit.runner.in_process import InProcessRunner, RunOptions
    from navkit.runner.outputs import format_metrics_table, write_metrics, write_trajectory_plot, write_video
    from navkit.runner.stack_config import load_stack_config
    from navkit.sim.scenario import load_scenario

    scenario = load_scenario(scenario_path)
    if args.seed is not None:
        scenario = scenario.with_overrides(seed=args.seed)
    stack = load_stack_config(args.params)
    robot = _make_robot(scenario, stack)
    video = None if args.video.lower() == "none" else args.out / args.video
    options = RunOptions(video_fps=args.video_fps if video else 0.0, record_path=args.record,
                         progress=not args.no_progress and not args.json, time_limit_s=args.time_limit)
    try:
        result = InProcessRunner(scenario, stack, robot).run(options)
    finally:
        close = getattr(robot, "close", None)
        if close:
            close()
    written = [write_metrics(result.metrics, args.out), write_trajectory_plot(scenario, result, args.out / "trajectory.png")]
    if video is not None:
        v = write_video(result.frames, video, args.video_fps * 2.0)
        if v:
            written.append(v)
    if args.record:
        written.append(args.record)
    if args.json:
        print(json.dumps(result.metrics, indent=2))
    else:
        print(format_metrics_table(result.metrics))
        print("wrote: " + ", ".join(str(p) for p in written))
    return 0 if result.metrics["success"] and result.metrics["collisions"] == 0 else 1


def _make_robot(scenario, stack):  # noqa: ANN001, ANN202 - small factory
    if scenario.backend == "mujoco":
        from navkit.sim.mujoco_backend import MujocoRobot

        return MujocoRobot(scenario, cmd_timeout_s=stack.bridge.cmd_timeout_s)
    raise NavkitError(f"{scenario.source}: backend: no in-process backend {scenario.backend!r}")


def _bench(args: argparse.Namespace) -> int:
    if args.which == "qp":
        from navkit.benchmarks import qp_bench

        result = qp_bench.run(n_instances=args.n, k=args.k, seed=args.seed)
        print(json.dumps(result, indent=2) if args.json else qp_bench.format_table(result))
    elif args.which == "closed-loop":
        from navkit.benchmarks import closed_loop_bench

        result = closed_loop_bench.run(scenario_path=args.scenario or DEMO_SCENARIO, seeds=args.seeds)
        print(json.dumps(result, indent=2) if args.json else closed_loop_bench.format_table(result))
    elif args.which == "ros-latency":
        from navkit.benchmarks import ros_latency_bench

        result = ros_latency_bench.run(n_scans=args.n, rate_hz=args.rate)
        print(json.dumps(result, indent=2) if args.json else ros_latency_bench.format_table(result))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="navkit",
        description="navkit: perception -> planning -> control -> CBF safety filter, in MuJoCo or on ROS 2.",
        epilog="Examples:\n  navkit demo\n  navkit run scenarios/warehouse_demo.yaml --record run.mcap\n"
               "  navkit launch ros_ws/launch/demo.launch.yaml scenario:=scenarios/warehouse_demo.yaml\n"
               "  navkit bench qp",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="the AGV warehouse demo, in-process (no ROS daemon needed)",
                          description="Drive the AGV through scenarios/warehouse_demo.yaml in MuJoCo with the whole "
                                      "stack in one process; writes metrics.json, trajectory.png and trajectory.gif.")
    _add_run_options(demo, default_out="out/demo")

    run = sub.add_parser("run", help="run a scenario file in-process",
                         description="Run any scenario YAML (map, shelves/obstacles, robot start, goals, seed, "
                                     "sensors; see scenarios/warehouse_demo.yaml) through the whole stack in-process. "
                                     "Exit code 0 when every goal was reached without collision, 1 otherwise, "
                                     "2 for bad input.")
    run.add_argument("scenario", type=Path, help="scenario YAML file")
    _add_run_options(run, default_out="out/run")

    sub.add_parser("launch", help="run a ROS 2 YAML launch file as separate ROS 2 processes "
                                  "(navkit launch --help for its options)", add_help=False)

    bench = sub.add_parser("bench", help="benchmarks that print tables",
                           description="qp: safety-filter QP fast path vs cvxpy (and OSQP); closed-loop: simulated "
                                       "seconds per wall second and per-stage time; ros-latency: scan -> filtered "
                                       "cmd_vel latency over DDS.")
    bench.add_argument("which", choices=["qp", "closed-loop", "ros-latency"])
    bench.add_argument("--json", action="store_true", help="machine-readable output")
    bench.add_argument("--n", type=int, default=500, help="qp: instances; ros-latency: scans (default: %(default)s)")
    bench.add_argument("--k", type=int, default=16, help="qp: constraints per instance (default: %(default)s)")
    bench.add_argument("--seed", type=int, default=0)
    bench.add_argument("--scenario", type=Path, default=None, help="closed-loop: scenario (default: the demo)")
    bench.add_argument("--seeds", type=int, default=3, help="closed-loop: seeds to run (default: %(default)s)")
    bench.add_argument("--rate", type=float, default=50.0, help="ros-latency: scan rate in Hz (default: %(default)s)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["launch"]:
        # The launcher owns its arguments (FILE name:=value ..., --help, --print).
        from navkit.ros_ws.launcher import main as launch_main

        try:
            return launch_main(argv[1:])
        except NavkitError as exc:
            print(f"navkit: error: {exc}", file=sys.stderr)
            return 2
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            return _run(DEMO_SCENARIO, args)
        if args.command == "run":
            return _run(args.scenario, args)
        if args.command == "bench":
            return _bench(args)
    except NavkitError as exc:
        print(f"navkit: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("navkit: interrupted", file=sys.stderr)
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())
