"""``navkit``: the front door (demo, run, launch, bench).

Bad input ends in one line naming the file and field and a non-zero exit, never a
traceback: users edit YAML files, and a traceback hides which line to fix.
"""
from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, Sequence

from navkit.common.json_output import to_json
from navkit.common.errors import NavkitError

REPO_ROOT = Path(__file__).resolve().parents[1]
MAX_AGENTS = 1024
"""As navkit.sim.swarm_scenario.MAX_AGENTS (not imported: the CLI parser loads no simulator)."""
DEMO_SCENARIO = REPO_ROOT / "scenarios" / "warehouse_demo.yaml"


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad option is one line (and exit 2) instead of the whole usage text."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def int_in(low: int, high: int) -> Callable[[str], int]:
    """argparse type: an integer in [low, high] (the bound is in the message)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be in [{low:,}, {high:,}], got {value:,}")
        return value
    return parse


def float_in(low: float, high: float, *, low_open: bool = False) -> Callable[[str], float]:
    """argparse type: a finite number in [low, high] (or (low, high] with ``low_open``)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value) or value > high or value < low or (low_open and value == low):
            bracket = "(" if low_open else "["
            raise argparse.ArgumentTypeError(f"must be a finite number in {bracket}{low:g}, {high:g}], got {text}")
        return value
    return parse


MAX_TIME_LIMIT_S = 86_400.0
MAX_SEEDS = 10_000


def _add_run_options(p: argparse.ArgumentParser, *, default_out: str) -> None:
    from navkit.runner.stack_config import DEFAULT_PARAMS_FILE

    p.add_argument("--params", type=Path, default=DEFAULT_PARAMS_FILE,
                   help="ROS 2 parameter file (ros__parameters YAML) configuring planner, controller and "
                        "safety filter; the ROS 2 launch uses the same file (default: %(default)s)")
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


def _run(scenario_path: Path, args: argparse.Namespace) -> int:
    from navkit.runner.in_process import InProcessRunner, RunOptions
    from navkit.runner.outputs import format_metrics_table, write_outputs, write_trajectory_plot, write_video
    from navkit.runner.stack_config import load_stack_config
    from navkit.sim.scenario import load_scenario

    scenario = load_scenario(scenario_path)
    if args.seed is not None:
        scenario = scenario.with_overrides(seed=args.seed)
    stack = load_stack_config(args.params)
    robot = _make_robot(scenario, stack)
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


def _run_swarm(scenario_path: Path, args: argparse.Namespace) -> int:
    """``navkit run`` on a ``kind: swarm`` file: MuJoCo team + SwarmController + an α source."""
    from navkit.control.swarm_controller import FixedAlpha
    from navkit.runner.outputs import write_outputs, write_video
    from navkit.runner.swarm_outputs import format_swarm_metrics_table, write_traces_csv, write_trajectories_plot
    from navkit.runner.swarm_runner import DEFAULT_POLICY, SwarmRunner, SwarmRunOptions, load_policy
    from navkit.sim.swarm_scenario import load_swarm_scenario

    if args.record is not None:
        raise NavkitError(f"{scenario_path}: --record: bag recording is not available for swarm scenarios")
    if args.alpha is not None and args.policy is not None:
        raise NavkitError(f"{scenario_path}: --alpha and --policy: give one α source, not both")
    scenario = load_swarm_scenario(scenario_path).expand(seed=args.seed, num_agents=args.agents)
    if args.alpha is not None:
        alpha_source, label = FixedAlpha(args.alpha), f"fixed {args.alpha:g}"
    elif args.policy is not None:
        alpha_source, label = load_policy(args.policy), str(args.policy)
    elif DEFAULT_POLICY.is_file():
        alpha_source, label = load_policy(DEFAULT_POLICY), str(DEFAULT_POLICY.relative_to(REPO_ROOT))
    else:
        alpha_source, label = FixedAlpha(1.0), "fixed 1 (no shipped policy)"
        print(f"navkit: note: no shipped policy at {DEFAULT_POLICY.relative_to(REPO_ROOT)}; using a fixed alpha = 1.0 "
              "(--alpha A or --policy PATH to choose)", file=sys.stderr)
    video = _prepare_outputs(args)
    options = SwarmRunOptions(time_limit_s=args.time_limit, video_fps=args.video_fps if video else 0.0,
                              progress=not args.no_progress and not args.json, alpha_label=label)
    runner = SwarmRunner(scenario, alpha_source)
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


def _make_robot(scenario, stack):  # noqa: ANN001, ANN202 - small factory
    if scenario.backend == "mujoco":
        from navkit.sim.mujoco_backend import MujocoRobot

        return MujocoRobot(scenario, cmd_timeout_s=stack.bridge.cmd_timeout_s)
    raise NavkitError(f"{scenario.source}: backend: no in-process backend {scenario.backend!r}")


def _bench(args: argparse.Namespace) -> int:
    if args.which == "qp":
        from navkit.benchmarks import qp_bench

        result = qp_bench.run(n_instances=args.n, k=args.k, seed=args.seed)
        print(to_json(result) if args.json else qp_bench.format_table(result))
    elif args.which == "closed-loop":
        from navkit.benchmarks import closed_loop_bench

        scenario = args.scenario[0] if args.scenario else DEMO_SCENARIO
        result = closed_loop_bench.run(scenario_path=scenario, seeds=args.seeds or 3)
        print(to_json(result) if args.json else closed_loop_bench.format_table(result))
    elif args.which == "ros-latency":
        from navkit.benchmarks import ros_latency_bench

        result = ros_latency_bench.run(n_scans=args.n, rate_hz=args.rate)
        print(to_json(result) if args.json else ros_latency_bench.format_table(result))
    elif args.which == "online-cbf":
        from navkit.benchmarks import online_cbf_bench

        result = online_cbf_bench.run(args.scenario or online_cbf_bench.DEFAULT_SCENARIOS, seeds=args.seeds or 50,
                                      policy_path=args.policy or online_cbf_bench.DEFAULT_POLICY,
                                      progress=not args.json)
        print(to_json(result) if args.json else online_cbf_bench.format_table(result))
    return 0


def _train(args: argparse.Namespace) -> int:
    from navkit.planning.online_cbf_training import main as train_main

    return train_main(["--config", str(args.config)] + (["--fresh"] if args.fresh else []))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="navkit",
        description="navkit: perception -> planning -> control -> CBF safety filter, in MuJoCo or on ROS 2.",
        epilog="Examples:\n  navkit demo\n  navkit run scenarios/warehouse_demo.yaml --record run.mcap\n"
               "  navkit run scenarios/multi/circle_swap.yaml --agents 16\n  navkit train online-cbf\n"
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
    swarm = run.add_argument_group(
        "swarm scenarios (kind: swarm, e.g. scenarios/multi/circle_swap.yaml)",
        "A robot team in MuJoCo: go-to-goal through per-agent CBF-QPs whose gains alpha come from a fixed value "
        "or the online GNN policy. Writes metrics.json, traces.csv (one row per robot per control step), "
        "trajectories.png and the overhead GIF. --params and --record do not apply; --seed re-draws the layout.")
    swarm.add_argument("--agents", type=int_in(1, MAX_AGENTS), default=None, metavar="N",
                       help="resize the scenario's layout to N agents (circle, swap_lines and crossing layouts)")
    swarm.add_argument("--alpha", type=float_in(0.0, 1e3, low_open=True), default=None, metavar="A",
                       help="fixed CBF gain alpha for every agent (the baseline); default: the shipped policy "
                            "control/policies/online_cbf_gnn.pt when it exists, else alpha = 1.0 (with a note)")
    swarm.add_argument("--policy", type=Path, default=None, metavar="PATH",
                       help="online CBF policy checkpoint giving each agent its alpha every control period")

    sub.add_parser("launch", help="run a ROS 2 YAML launch file as separate ROS 2 processes "
                                  "(navkit launch --help for its options)", add_help=False)

    bench = sub.add_parser("bench", help="benchmarks that print tables",
                           description="qp: safety-filter QP fast path vs cvxpy (and OSQP); closed-loop: simulated "
                                       "seconds per wall second and per-stage time; ros-latency: scan -> filtered "
                                       "cmd_vel latency over DDS; online-cbf: GNN-tuned CBFs vs fixed alpha on "
                                       "multi-robot scenarios (success, collisions, separation, infeasible QPs, "
                                       "time-to-goal, path ratio) and policy+QP cost per agent.")
    bench.add_argument("which", choices=["qp", "closed-loop", "ros-latency", "online-cbf"])
    bench.add_argument("--json", action="store_true", help="machine-readable output")
    bench.add_argument("--n", type=int_in(1, 1_000_000), default=500,
                       help="qp: instances; ros-latency: scans (default: %(default)s)")
    bench.add_argument("--k", type=int_in(1, 360), default=16, help="qp: constraints per instance (default: %(default)s)")
    bench.add_argument("--seed", type=int_in(0, 2**32 - 1), default=0)
    bench.add_argument("--scenario", type=Path, action="append", default=None,
                       help="closed-loop: scenario (default: the demo); online-cbf: swarm scenario, repeatable "
                            "(default: the four in scenarios/multi/)")
    bench.add_argument("--seeds", type=int_in(1, MAX_SEEDS), default=None,
                       help="seeds per scenario (default: 3 for closed-loop, 50 for online-cbf)")
    bench.add_argument("--policy", type=Path, default=None,
                       help="online-cbf: policy checkpoint (default: control/policies/online_cbf_gnn.pt)")
    bench.add_argument("--rate", type=float_in(0.0, 1000.0, low_open=True), default=50.0,
                       help="ros-latency: scan rate in Hz (default: %(default)s)")
    train = sub.add_parser("train", help="train a policy (online-cbf: the GNN that tunes CBF gains)",
                           description="Train with RL; progress bar, TensorBoard logs under runs/, periodic "
                                       "evaluation, checkpoints; --resume continues an interrupted run.")
    train.add_argument("what", choices=["online-cbf"])
    train.add_argument("--config", type=Path, default=REPO_ROOT / "planning" / "configs" / "online_cbf.yaml",
                       help="training config YAML (default: %(default)s)")
    train.add_argument("--fresh", action="store_true",
                       help="start over instead of resuming from the run's last checkpoint (resume is the default)")
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
    if not argv:
        parser.print_help(sys.stderr)
        return 2
    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            return _run(DEMO_SCENARIO, args)
        if args.command == "run":
            from navkit.sim.swarm_scenario import is_swarm_scenario

            if is_swarm_scenario(args.scenario):
                return _run_swarm(args.scenario, args)
            for option in ("agents", "alpha", "policy"):
                if getattr(args, option) is not None:
                    raise NavkitError(f"{args.scenario}: --{option}: only applies to swarm scenarios (kind: swarm)")
            return _run(args.scenario, args)
        if args.command == "bench":
            return _bench(args)
        if args.command == "train":
            return _train(args)
    except NavkitError as exc:
        print(f"navkit: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("navkit: interrupted", file=sys.stderr)
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())
