"""``navkit wm collect``: write an offline random-trajectory dataset for a DINO-WM world model.

    navkit wm collect --env pointmaze --episodes 2000 --steps 100 --out data/pointmaze
    navkit wm collect --env wall --episodes 1920 --steps 50 --out data/wall --seed 1
    navkit wm collect --env warehouse --episodes 500 --steps 100 --out data/agv --scenario scenarios/warehouse_demo.yaml

(the paper's sizes: PointMaze 2,000 x 100, Wall 1,920 x 50; Zhou et al. 2025, arXiv 2411.04983).
The format is described in :mod:`navkit.learning.wm_dataset`. Bad input is one line and exit
code 2, never a traceback: the parser here is self-contained because ``navkit.learning`` may not
import ``navkit.cli`` (rooms import downwards only).
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from navkit.common.cli_args import CliParser, int_in
from navkit.common.errors import NavkitError
from navkit.learning.wm_dataset import MAX_TRAJ_LEN, MAX_TRAJECTORIES, collect, load_dataset
from navkit.sim.wm_envs import MAX_IMAGE_SIZE, MIN_IMAGE_SIZE, WM_ENV_NAMES

PROG = "navkit wm collect"


def build_parser() -> argparse.ArgumentParser:
    parser = CliParser(
        prog=PROG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Roll out random trajectories (images + proprio + actions) in a world-model environment and "
                    "write them as a dataset folder (metadata.json, frames.npy, proprio.npy, actions.npy, "
                    "states.npy; memory-mappable). Deterministic per --seed.",
        epilog="Examples:\n  navkit wm collect --env pointmaze --episodes 2000 --steps 100 --out data/pointmaze\n"
               "  navkit wm collect --env wall --episodes 1920 --steps 50 --out data/wall")
    parser.add_argument("--env", required=True, choices=WM_ENV_NAMES,
                        help="pointmaze: MuJoCo ball in a maze (overhead camera); wall: dot, wall and door (numpy); "
                             "warehouse: the AGV's front camera in a warehouse (MuJoCo)")
    parser.add_argument("--episodes", type=int_in(1, MAX_TRAJECTORIES), required=True, metavar="N",
                        help="trajectories to collect")
    parser.add_argument("--steps", type=int_in(1, MAX_TRAJ_LEN), required=True, metavar="T",
                        help="actions per trajectory (each stores T + 1 frames)")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="dataset folder to create")
    parser.add_argument("--seed", type=int_in(0, 2**63 - 1), default=0, help="(default: %(default)s)")
    parser.add_argument("--size", type=int_in(MIN_IMAGE_SIZE, MAX_IMAGE_SIZE), default=64, metavar="PX",
                        help="square image side in pixels (default: %(default)s)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing dataset at --out")
    parser.add_argument("--scenario", type=Path, default=None,
                        help="warehouse: single-robot scenario YAML (default: a generated warehouse layout)")
    parser.add_argument("--maze", default=None, help="pointmaze: maze name, umaze (default) or medium")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _env_config(args: argparse.Namespace) -> Any | None:
    """The env's config dataclass from the env-specific options (which other envs refuse)."""
    if args.scenario is not None and args.env != "warehouse":
        raise NavkitError("--scenario: only applies to --env warehouse")
    if args.maze is not None and args.env != "pointmaze":
        raise NavkitError("--maze: only applies to --env pointmaze")
    if args.env == "warehouse" and args.scenario is not None:
        from navkit.sim.wm_warehouse import WarehouseWmConfig

        return WarehouseWmConfig(scenario=str(args.scenario))
    if args.env == "pointmaze" and args.maze is not None:
        from navkit.sim.wm_pointmaze import PointMazeConfig

        return PointMazeConfig(maze=args.maze)
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (0 written, 2 bad input, 130 interrupted)."""
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        out = collect(args.env, args.episodes, args.steps, args.out, seed=args.seed, progress=not args.quiet,
                      image_size=args.size, overwrite=args.overwrite, env_config=_env_config(args))
        ds = load_dataset(out)
    except NavkitError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted (nothing written)", file=sys.stderr)
        return 130
    meta = ds.metadata
    print(f"wrote {out}: {ds.n_traj} trajectories x {ds.traj_len} steps of {ds.env}, images "
          f"{ds.image_size[0]}x{ds.image_size[1]}, proprio {ds.proprio_dim}, actions {ds.action_dim}; "
          f"{meta.get('steps_per_second', 0):g} steps/s, {meta.get('rejected_trajectories', 0)} redrawn")
    return 0


if __name__ == "__main__":
    sys.exit(main())
