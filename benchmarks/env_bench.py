"""Environment throughput: how fast the gymnasium envs step, without a policy update.

* ``NavkitNavigation-v0``: one MuJoCo AGV, random actions, no rendering; env steps/s
  (each env step is ``action_repeat`` control periods) and control periods/s.
* the multi-robot task as the per-agent SB3 ``VecEnv`` (B scenes x N robots, CBF-QPs and
  vectorised kinematics): agent-steps/s, and the same through the single-scene
  ``NavkitSwarm-v0`` for comparison (what vectorising over scenes buys).

Random actions are drawn from a seeded generator; timings are wall clock on this machine.
"""
from __future__ import annotations

import argparse
import time
from typing import Any

import gymnasium as gym
import numpy as np

import navkit.learning.envs  # noqa: F401 - registers the ids
from navkit.common.json_output import to_json
from navkit.learning.envs.swarm_env import SwarmAgentVecEnv


def _navigation(steps: int, seed: int) -> dict[str, Any]:
    env = gym.make("navkit.learning.envs:NavkitNavigation-v0").unwrapped
    rng = np.random.default_rng(seed)
    try:
        env.reset(seed=seed)
        done_episodes = 0
        start = time.perf_counter()
        for _ in range(steps):
            _, _, terminated, truncated, _ = env.step(rng.uniform(-1, 1, 2).astype(np.float32))
            if terminated or truncated:
                done_episodes += 1
                env.reset()
        wall = time.perf_counter() - start
        repeat = env.config.action_repeat
    finally:
        env.close()
    return {"env_steps": steps, "wall_s": round(wall, 3), "env_steps_per_s": round(steps / wall, 1),
            "control_periods_per_s": round(steps * repeat / wall, 1), "action_repeat": repeat,
            "episodes_ended": done_episodes}


def _swarm(steps: int, scenes: int, agents: int, seed: int) -> dict[str, Any]:
    venv = SwarmAgentVecEnv(num_scenes=scenes, seed=seed, num_agents=agents)
    rng = np.random.default_rng(seed)
    venv.reset()
    start = time.perf_counter()
    for _ in range(steps):
        venv.step(rng.uniform(-1, 1, (venv.num_envs, 1)))
    wall = time.perf_counter() - start
    single = gym.make("navkit.learning.envs:NavkitSwarm-v0", num_agents=agents).unwrapped
    single.reset(seed=seed)
    start = time.perf_counter()
    single_steps = max(steps // 4, 10)
    for _ in range(single_steps):
        _, _, terminated, truncated, _ = single.step(rng.uniform(-1, 1, agents).astype(np.float32))
        if terminated or truncated:
            single.reset()
    single_wall = time.perf_counter() - start
    return {"scenes": scenes, "agents_per_scene": agents, "vec_steps": steps, "wall_s": round(wall, 3),
            "agent_steps_per_s": round(steps * venv.num_envs / wall, 1),
            "single_scene_agent_steps_per_s": round(single_steps * agents / single_wall, 1)}


def _warehouse(steps: int, num_envs: int, seed: int) -> dict[str, Any]:
    from navkit.learning.envs.warehouse_explore_env import WarehouseExploreMujocoEnv, WarehouseExploreVecEnv

    venv = WarehouseExploreVecEnv(num_envs, seed)
    rng = np.random.default_rng(seed)
    venv.reset()
    for _ in range(20):  # the first layouts are generated (and cached) here, as early in training
        venv.step(rng.uniform(-1, 1, (num_envs, 2)))
    start = time.perf_counter()
    for _ in range(steps):
        venv.step(rng.uniform(-1, 1, (num_envs, 2)))
    wall = time.perf_counter() - start
    mj = WarehouseExploreMujocoEnv(layout_seeds=[seed])
    try:
        mj.reset()
        mj_steps = max(steps // 10, 10)
        start = time.perf_counter()
        for _ in range(mj_steps):
            _, _, terminated, truncated, _ = mj.step(rng.uniform(-1, 1, 2).astype(np.float32))
            if terminated or truncated:
                mj.reset()
        mj_wall = time.perf_counter() - start
    finally:
        mj.close()
    return {"num_envs": num_envs, "env_steps_per_s": round(steps * num_envs / wall, 1),
            "mujoco_env_steps_per_s": round(mj_steps / mj_wall, 1)}


def run(steps: int = 500, scenes: int = 16, agents: int = 8, seed: int = 0) -> dict[str, Any]:
    return {"navigation": _navigation(steps, seed), "swarm": _swarm(steps, scenes, agents, seed),
            "warehouse_explore": _warehouse(steps, 32, seed)}


def format_table(r: dict[str, Any]) -> str:
    nav, sw = r["navigation"], r["swarm"]
    rows = [
        ("NavkitNavigation-v0 (MuJoCo AGV)", nav["env_steps_per_s"], "env-steps/s"),
        (f"  control periods ({nav['action_repeat']} per env step)", nav["control_periods_per_s"], "periods/s"),
        (f"swarm VecEnv, {sw['scenes']} scenes x {sw['agents_per_scene']} robots", sw["agent_steps_per_s"],
         "agent-steps/s"),
        (f"NavkitSwarm-v0, 1 scene x {sw['agents_per_scene']} robots", sw["single_scene_agent_steps_per_s"],
         "agent-steps/s"),
        (f"warehouse exploration VecEnv, {r['warehouse_explore']['num_envs']} warehouses, behind the filter",
         r["warehouse_explore"]["env_steps_per_s"], "env-steps/s"),
        ("NavkitWarehouseExploreMujoco-v0 (through the filter)", r["warehouse_explore"]["mujoco_env_steps_per_s"],
         "env-steps/s"),
    ]
    lines = ["environment throughput (random actions, no policy update, no rendering)"]
    lines += [f"  {name:<48}{rate:>10.0f} {unit}" for name, rate, unit in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    result = run(steps=args.steps)
    print(to_json(result) if args.json else format_table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
