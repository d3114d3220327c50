"""``navkit``: the front door (demo, run, launch, bench, train, plugins); the only module that imports every room.

Bad input ends in one line naming the file and field and a non-zero exit, never a
traceback: users edit YAML files, and a traceback hides which line to fix.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from navkit.cli.args import MAX_AGENTS, MAX_SEEDS, CliParser, float_in, int_in
from navkit.cli.run_commands import add_run_options, run_scenario, run_swarm, run_world_model
from navkit.common.errors import NavkitError
from navkit.common.json_output import to_json

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_SCENARIO = REPO_ROOT / "scenarios" / "warehouse_demo.yaml"
SHORT_AISLE = REPO_ROOT / "scenarios" / "short_aisle.yaml"


WM_ENVS = ("pointmaze", "wall", "warehouse")
"""As navkit.sim.wm_envs.WM_ENV_NAMES (not imported: the CLI parser loads no simulator)."""


def _env_run(text: str) -> tuple[str, Path]:
    """argparse type of ``bench wm --run`` / ``--encoder-run``: ENV=FOLDER."""
    env, sep, folder = text.partition("=")
    if not sep or not folder:
        raise argparse.ArgumentTypeError(f"expected ENV=FOLDER (ENV one of {', '.join(WM_ENVS)}), got {text!r}")
    if env not in WM_ENVS:
        raise argparse.ArgumentTypeError(f"ENV must be one of {', '.join(WM_ENVS)}, got {env!r}")
    return env, Path(folder)


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
    elif args.which == "ros-faults":
        from navkit.benchmarks import ros_fault_bench

        result = ros_fault_bench.run(repeats=args.seeds or 1)
        print(to_json(result) if args.json else ros_fault_bench.format_table(result))
    elif args.which == "envs":
        from navkit.benchmarks import env_bench

        result = env_bench.run(steps=args.n)
        print(to_json(result) if args.json else env_bench.format_table(result))
    elif args.which == "rnd-agv":
        from navkit.benchmarks import rnd_agv_bench
        from navkit.control.learned_controller import load_agv_policy

        if args.policy is not None:  # checked before hours of training, not after
            load_agv_policy(args.policy)
        result = rnd_agv_bench.run(methods=args.method or rnd_agv_bench.METHODS, seeds=args.seeds or 3,
                                   steps=args.steps or 1_500_000, jobs=args.jobs, policy=args.policy,
                                   progress=not args.json)
        print(to_json(result) if args.json else rnd_agv_bench.format_table(result))
    elif args.which == "online-cbf":
        from navkit.benchmarks import online_cbf_bench

        rows = online_cbf_bench.parse_rows(args.scenario, args.agents)
        result = online_cbf_bench.run(rows, seeds=args.seeds or 50,
                                      policy_path=args.policy or online_cbf_bench.DEFAULT_POLICY,
                                      rates_hz=args.rates or online_cbf_bench.RATES_HZ, jobs=args.jobs,
                                      progress=not args.json)
        print(to_json(result) if args.json else online_cbf_bench.format_table(result))
    elif args.which == "backends":
        from navkit.benchmarks import backend_bench

        scenario = args.scenario[0] if args.scenario else SHORT_AISLE
        result = backend_bench.run(scenario, seeds=args.seeds or 3)
        print(to_json(result) if args.json else backend_bench.format_table(result))
    elif args.which == "encoder":
        from navkit.benchmarks import encoder_bench
        from navkit.perception.fast_encoder import BACKENDS

        # bf16 is 4x slower on CPUs without native bf16 and never within tolerance: left out by default.
        result = encoder_bench.run(backends=[b for b in BACKENDS if b != "eager-bf16"], seed=args.seed)
        print(to_json(result) if args.json else encoder_bench.format_table(result))
    elif args.which == "wm":
        from navkit.benchmarks import wm_bench

        runs: dict[str, Path] = {}
        for env, folder in args.run or []:
            if env in runs:
                raise NavkitError(f"{folder}: --run: {env} given twice ({runs[env]} and {folder})")
            runs[env] = folder
        result = wm_bench.run(runs, pairs=args.pairs, episodes=args.episodes, encoder_runs=args.encoder_run or [],
                              seed=args.seed, budget=args.budget, params=args.params,
                              time_limit_s=args.time_limit or 60.0, progress=not args.json)
        print(to_json(result) if args.json else wm_bench.format_table(result))
    elif args.which == "serial-base":
        from navkit.benchmarks import serial_base_bench

        result = serial_base_bench.run(n=args.n, seed=args.seed)
        print(to_json(result) if args.json else serial_base_bench.format_table(result))
    return 0


def _plugins(args: argparse.Namespace) -> int:
    """``navkit plugins``: every slot and the plugins that can fill it, with their parameters."""
    from navkit.common.plugins import config_fields
    from navkit.stack.plugin_catalog import default_registry

    registry = default_registry()
    for slot_name, slot in registry.slots.items():
        names = registry.names(slot_name)
        print(f"{slot_name}  ({slot.protocol.split(':')[-1]}; default: {slot.default or 'none'})")
        if not names:
            print("    (no implementation yet)")
        for name in names:
            plugin = registry.plugin(slot_name, name)
            cls = registry.config_class(plugin) if args.verbose else None
            print(f"    {name:<16}{plugin.summary}")
            if cls is not None:
                print(f"    {'':<16}parameters: {', '.join(config_fields(cls))}")
    return 0


def _map(args: argparse.Namespace) -> int:
    """``navkit map SCENARIO --out map.yaml``: a scenario's static map as map_server YAML + PGM."""
    from navkit.common.map_file import write_map_file
    from navkit.sim.scenario import load_scenario
    from navkit.sim.scenario_map import scenario_grid

    grid = scenario_grid(load_scenario(args.scenario), args.resolution)
    if args.out.suffix not in (".yaml", ".yml"):
        raise NavkitError(f"{args.out}: --out: expected a .yaml file name (the .pgm is written beside it)")
    try:
        path = write_map_file(grid, args.out)
    except OSError as exc:
        raise NavkitError(f"{args.out}: --out: cannot write ({exc.strerror or exc})") from None
    rows, cols = grid.shape
    print(f"wrote {path} and {path.with_suffix('.pgm')} ({cols} x {rows} cells of {grid.resolution} m)")
    return 0


def _perception(args: argparse.Namespace) -> int:
    """``navkit perception encode``: one image's final-norm patch tokens, to check against the official model."""
    import numpy as np

    from navkit.perception.image_encoder import DinoEncoder, DinoEncoderConfig, encode_image_file

    if args.out.suffix != ".npy":
        raise NavkitError(f"{args.out}: --out: expected a .npy file name")
    if not args.weights:
        print("navkit: warning: no --weights: the encoder has RANDOM weights (its features mean nothing)",
              file=sys.stderr)
    encoder = DinoEncoder(DinoEncoderConfig(variant=args.encoder, weights=str(args.weights or "")))
    feats = encode_image_file(encoder, args.image)
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        np.save(args.out, feats)
    except OSError as exc:
        raise NavkitError(f"{args.out}: --out: cannot write ({exc.strerror or exc})") from None
    print(f"wrote {args.out}: patch tokens {feats.shape[0]} x {feats.shape[1]} ({args.encoder}, "
          f"{'weights ' + str(args.weights) if args.weights else 'random weights'})")
    return 0


def _train(args: argparse.Namespace) -> int:
    """``navkit train online-cbf``: the config's ``method`` (es, the default, or ppo) picks the trainer;
    ``navkit train rnd-agv``: the AGV exploration policy (``--algo``)."""
    if args.what == "rnd-agv":
        from navkit.learning.rnd_agv_training import main as rnd_main

        argv = ["--fresh"] if args.fresh else []
        if args.config is not None:
            argv += ["--config", str(args.config)]
        for flag, value in (("--algo", args.algo), ("--seed", args.seed), ("--steps", args.steps)):
            if value is not None:
                argv += [flag, str(value)]
        return rnd_main(argv)
    if args.algo is not None or args.seed is not None or args.steps is not None:
        raise NavkitError(f"{args.config or 'online-cbf'}: --algo/--seed/--steps: only for rnd-agv (online-cbf "
                          "reads them from its config)")
    args.config = args.config or REPO_ROOT / "learning" / "configs" / "online_cbf.yaml"
    from navkit.common.yaml_file import read_yaml_file
    from navkit.learning.online_cbf_training import TrainConfigError

    doc = read_yaml_file(args.config, TrainConfigError, "training config")
    method = doc.get("method", "es") if isinstance(doc, dict) else "es"
    if method == "ppo":
        from navkit.learning.online_cbf_ppo import main as ppo_main

        return ppo_main(["--config", str(args.config)] + (["--fresh"] if args.fresh else []))
    if method != "es":
        raise TrainConfigError(str(args.config), "method", f"expected es or ppo, got {method!r}")
    from navkit.learning.online_cbf_training import main as train_main

    return train_main(["--config", str(args.config)] + (["--fresh"] if args.fresh else []))


def build_parser() -> argparse.ArgumentParser:
    parser = CliParser(
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
    add_run_options(demo, default_out="out/demo")

    run = sub.add_parser("run", help="run a scenario file in-process",
                         description="Run any scenario YAML (map, shelves/obstacles, robot start, goals, seed, "
                                     "sensors; see scenarios/warehouse_demo.yaml) through the whole stack in-process. "
                                     "Exit code 0 when every goal was reached without collision, 1 otherwise, "
                                     "2 for bad input.")
    run.add_argument("scenario", type=Path, help="scenario YAML file")
    add_run_options(run, default_out="out/run")
    swarm = run.add_argument_group(
        "swarm scenarios (kind: swarm, e.g. scenarios/multi/circle_swap.yaml)",
        "A robot team in MuJoCo: go-to-goal through per-agent CBF-QPs whose gains alpha come from a fixed value "
        "or the online GNN policy. Writes metrics.json, traces.csv (one row per robot per control step), "
        "trajectories.png and the overhead GIF. --params and --record do not apply; --seed re-draws the layout.")
    swarm.add_argument("--agents", type=int_in(1, MAX_AGENTS), default=None, metavar="N",
                       help="resize the scenario's layout to N agents (circle, swap_lines and crossing layouts)")
    swarm.add_argument("--alpha", type=float_in(0.0, 1e3, low_open=True), default=None, metavar="A",
                       help="fixed CBF gain alpha for every agent (the baseline); default: the shipped policy "
                            "control/policies/online_cbf_gnn.pt")
    swarm.add_argument("--priority-rule", action="store_true",
                       help="hand-written right of way instead of the policy: the robot with the highest token "
                            "nearby keeps alpha 3, the others yield with alpha 0.3")
    swarm.add_argument("--policy", type=Path, default=None, metavar="PATH",
                       help="online CBF policy checkpoint giving each agent its alpha every control period")

    run.add_argument_group(
        "world-model goal-image scenarios (kind: world_model, e.g. scenarios/wm/warehouse_goal_image.yaml)",
        "Drive to goal IMAGES with a navkit wm train run (DINO-WM). env pointmaze/wall: budgeted MPC episodes on "
        "held-out start/goal pairs, video of the goal image beside the current view; env warehouse: the full stack "
        "in MuJoCo with the world_model_mpc controller behind the CBF safety filter, video goal | robot camera | "
        "overhead. Writes metrics.json (success per episode, collisions, filter interventions, replans, plan "
        "times) and the video; --params and --time-limit apply to the warehouse only, --record does not apply.")

    sub.add_parser("launch", help="run a ROS 2 YAML launch file as separate ROS 2 processes "
                                  "(navkit launch --help for its options)", add_help=False)
    sub.add_parser("record", help="record the live ROS 2 graph into an MCAP bag (navkit record --help)",
                   add_help=False)
    sub.add_parser("wm", help="DINO-WM world models: navkit wm collect (datasets), train (the predictor on "
                              "encoder features), eval (goal-image planning); navkit wm <cmd> --help", add_help=False)

    bench = sub.add_parser("bench", help="benchmarks that print tables",
                           description="qp: safety-filter QP fast path vs cvxpy (and OSQP); closed-loop: simulated "
                                       "seconds per wall second and per-stage time; ros-latency: scan -> filtered "
                                       "cmd_vel latency over DDS; ros-faults: wheels-stop and node-exit times when the "
                                       "safety filter freezes or the launcher is killed (--seeds = repeats); "
                                       "envs: gymnasium env steps/s; online-cbf: GNN-tuned CBFs vs fixed alpha on "
                                       "multi-robot scenarios (success, collisions, separation, infeasible QPs, "
                                       "time-to-goal, path ratio) and policy+QP cost per agent; rnd-agv: PPO vs PPO + "
                                       "RND on sparse-reward warehouse navigation (trains --seeds runs per method, "
                                       "hours on 2 cores; learning curves PNG in out/bench_rnd_agv) and the policy "
                                       "in MuJoCo vs A* + pure pursuit; backends: MuJoCo vs PyBullet on one scenario "
                                       "(real-time factor, physics and sensor cost, cross-simulator trajectory "
                                       "difference); serial-base: command-to-wheel latency of the RoboClaw serial "
                                       "driver against its emulator (--n commands); encoder: DINOv2 ViT-S/14 at 224 px, "
                                       "eager PyTorch vs torch.compile / ONNX Runtime / OpenVINO (optional extra "
                                       "'fast'), images/s and max difference to eager; wm: DINO-WM goal-image "
                                       "planning: planners (success, 95% CI, s/replan, model evaluations per success) "
                                       "on pointmaze/wall runs incl. the paper's CEM, world-model MPC vs A* + pure "
                                       "pursuit on warehouse goal images (both behind the CBF filter), encoder "
                                       "variants (--run ENV=DIR, --encoder-run ENV=DIR).")
    bench.add_argument("which", choices=["qp", "closed-loop", "ros-latency", "ros-faults", "online-cbf", "envs",
                                         "rnd-agv", "backends", "serial-base", "encoder", "wm"])
    bench.add_argument("--steps", type=int_in(1000, 10**10), default=None,
                       help="rnd-agv: environment steps per training run (default: 1.5 M)")
    bench.add_argument("--json", action="store_true", help="machine-readable output")
    bench.add_argument("--n", type=int_in(1, 1_000_000), default=500,
                       help="qp: instances; ros-latency: scans (default: %(default)s)")
    bench.add_argument("--k", type=int_in(1, 360), default=16, help="qp: constraints per instance (default: %(default)s)")
    bench.add_argument("--seed", type=int_in(0, 2**32 - 1), default=0)
    bench.add_argument("--scenario", type=Path, action="append", default=None,
                       help="closed-loop: scenario (default: the demo); online-cbf: swarm scenario, repeatable "
                            "(default: swaps of 4/8/16/32 and every other family in scenarios/multi/)")
    bench.add_argument("--agents", type=int_in(1, 1024), action="append", default=None,
                       help="online-cbf: team size, repeatable; every --scenario at every size (explicit layouts "
                            "keep theirs)")
    bench.add_argument("--rates", type=float_in(2.0, 1000.0), action="append", default=None,
                       help="online-cbf: control rate in Hz, repeatable (default: 10, 20 and 50)")
    bench.add_argument("--jobs", type=int_in(1, 64), default=1,
                       help="online-cbf, rnd-agv: worker processes (default: %(default)s; 2 on a 2-core machine)")
    bench.add_argument("--method", choices=["ppo", "ppo_rnd", "ppo_own"], action="append", default=None,
                       help="rnd-agv: learner, repeatable (default: ppo, ppo_rnd and ppo_own, the compact PPO "
                            "without RND that checks PPO + RND against SB3's PPO)")
    bench.add_argument("--seeds", type=int_in(1, MAX_SEEDS), default=None,
                       help="seeds per scenario (default: 3 for closed-loop, 50 for online-cbf)")
    bench.add_argument("--policy", type=Path, default=None,
                       help="online-cbf: policy checkpoint (default: control/policies/online_cbf_gnn.pt); rnd-agv: "
                            "the policy driven in MuJoCo (default: control/policies/rnd_agv.pt)")
    bench.add_argument("--rate", type=float_in(0.0, 1000.0, low_open=True), default=50.0,
                       help="ros-latency: scan rate in Hz (default: %(default)s)")
    wm = bench.add_argument_group("wm (DINO-WM goal images)")
    wm.add_argument("--run", type=_env_run, action="append", default=None, metavar="ENV=DIR",
                    help="wm: a navkit wm train run folder per env (pointmaze, wall: planner comparison; warehouse: "
                         "world-model MPC vs A* + pure pursuit); repeatable")
    wm.add_argument("--encoder-run", type=_env_run, action="append", default=None, metavar="ENV=DIR",
                    help="wm: a run of the same env with another encoder (self-distilled, random init, CLS token), "
                         "labelled from its train config; repeatable")
    wm.add_argument("--pairs", type=int_in(1, 100_000), default=50,
                    help="wm: held-out start/goal pairs per planner on pointmaze/wall (default: %(default)s)")
    wm.add_argument("--episodes", type=int_in(1, 10_000), default=20,
                    help="wm: warehouse episodes per method (default: %(default)s)")
    wm.add_argument("--budget", type=int_in(1, 10_000), default=None,
                    help="wm: model steps per pointmaze/wall episode (default: navkit wm eval's)")
    wm.add_argument("--params", type=Path, default=None,
                    help="wm: parameter file of the world-model warehouse stack (default: "
                         "scenarios/wm/world_model_mpc.params.yaml)")
    wm.add_argument("--time-limit", type=float_in(0.0, 3600.0, low_open=True), default=None,
                    help="wm: sim seconds per warehouse episode (default: 60)")
    plugins = sub.add_parser("plugins", help="list the slots of the stack and the plugins that fill them",
                             description="Every slot (robot_backend, global_planner, local_controller, safety_filter, "
                                         "...) and the plugin names a parameter file may choose with 'plugin:'.")
    plugins.add_argument("-v", "--verbose", action="store_true", help="also list each plugin's parameters")
    map_cmd = sub.add_parser("map", help="write a scenario's static map as a map_server YAML + PGM",
                             description="The map a robot would have been given for a scenario (mapped obstacles and "
                                         "walls), as map_server writes it: use it with map_source.plugin: map_file.")
    map_cmd.add_argument("scenario", type=Path, help="single-robot scenario YAML")
    map_cmd.add_argument("--out", type=Path, required=True, help="map YAML to write (the PGM goes beside it)")
    map_cmd.add_argument("--resolution", type=float_in(0.01, 1.0), default=0.05,
                         help="metres per cell (default: %(default)s)")
    perception = sub.add_parser("perception", help="image encoders: encode an image with a DINOv2 ViT; pretrain one "
                                                   "by DINO self-distillation (navkit perception pretrain --help)",
                                description="encode: the final-norm patch tokens of one RGB image (ImageNet "
                                            "normalisation; a 224x224 image is not resized) from a DINOv2 ViT, "
                                            "loaded strictly from the official checkpoint file.")
    perception.add_argument("what", choices=["encode"])
    perception.add_argument("--encoder", default="dinov2_vits14",
                            choices=["dinov2_vits14", "dinov2_vits14_reg", "dinov2_vitb14", "dinov2_vitb14_reg",
                                     "dinov2_vitl14", "dinov2_vitl14_reg", "tiny"],
                            help="architecture (default: %(default)s)")
    perception.add_argument("--weights", type=Path, default=None,
                            help="the official checkpoint file, e.g. dinov2_vits14_pretrain.pth (never downloaded)")
    perception.add_argument("--image", type=Path, required=True, help="an RGB PNG/JPEG")
    perception.add_argument("--out", type=Path, required=True, help="where to write the (P, D) float32 .npy")

    train = sub.add_parser("train", help="train a policy (online-cbf: the GNN that tunes CBF gains; rnd-agv: an "
                                         "AGV reaching goals in unseen warehouses from sparse reward)",
                           description="Train with RL; progress bar, TensorBoard logs under runs/, periodic "
                                       "evaluation on held-out scenarios, checkpoints; an interrupted run resumes "
                                       "exactly unless --fresh.")
    train.add_argument("what", choices=["online-cbf", "rnd-agv"])
    train.add_argument("--config", type=Path, default=None,
                       help="training config YAML (online-cbf default: learning/configs/online_cbf.yaml; rnd-agv: "
                            "every field optional, see learning/configs/rnd_agv.yaml)")
    train.add_argument("--algo", choices=["ppo", "ppo_rnd", "ppo_own"], default=None,
                       help="rnd-agv: stable-baselines3 PPO, PPO + RND, or the compact PPO without RND")
    train.add_argument("--seed", type=int_in(0, 2**31 - 1), default=None, help="rnd-agv: training seed")
    train.add_argument("--steps", type=int_in(1, 10**12), default=None, help="rnd-agv: environment steps")
    train.add_argument("--fresh", action="store_true",
                       help="start over instead of resuming from the run's last checkpoint (resume is the default)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] == ["perception", "pretrain"]:
        # DINO self-distillation pretraining owns its arguments.
        from navkit.learning.dino_pretrain import main as pretrain_main

        return pretrain_main(argv[2:])
    if argv[:1] == ["wm"] and argv[1:2] not in (["collect"], ["train"], ["eval"]):
        print("navkit: error: navkit wm: subcommands are collect, train, eval (navkit wm <cmd> --help)",
              file=sys.stderr)
        return 2
    if argv[:2] == ["wm", "train"]:
        from navkit.learning.wm_training import main as wm_train_main

        return wm_train_main(argv[2:])
    if argv[:2] == ["wm", "eval"]:
        from navkit.learning.wm_eval import main as wm_eval_main

        return wm_eval_main(argv[2:])
    if argv[:2] == ["wm", "collect"]:
        # World-model datasets (DINO-WM): the collector owns its arguments.
        from navkit.learning.wm_collect_cli import main as wm_collect_main

        return wm_collect_main(argv[2:])
    if argv[:1] == ["record"]:
        # The live recorder owns its arguments (OUT.mcap --topic ... --ros-args ...).
        from navkit.ros_ws.live_recorder import main as record_main

        return record_main(argv[1:])
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
            return run_scenario(DEMO_SCENARIO, args)
        if args.command == "run":
            from navkit.sim.swarm_scenario import is_swarm_scenario

            from navkit.runner.wm_scenario import is_world_model_scenario

            if is_swarm_scenario(args.scenario):
                return run_swarm(args.scenario, args)
            for option in ("agents", "alpha", "policy", "priority_rule"):
                if getattr(args, option) not in (None, False):
                    flag = "--" + option.replace("_", "-")
                    raise NavkitError(f"{args.scenario}: {flag}: only applies to swarm scenarios (kind: swarm)")
            if is_world_model_scenario(args.scenario):
                return run_world_model(args.scenario, args)
            return run_scenario(args.scenario, args)
        if args.command == "bench":
            return _bench(args)
        if args.command == "train":
            return _train(args)
        if args.command == "plugins":
            return _plugins(args)
        if args.command == "map":
            return _map(args)
        if args.command == "perception":
            return _perception(args)
    except NavkitError as exc:
        print(f"navkit: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("navkit: interrupted", file=sys.stderr)
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())
