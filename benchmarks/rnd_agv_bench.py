"""PPO vs PPO + RND on sparse-reward warehouse navigation (Yin et al.'s claim), measured here.

For each method and seed the same budget of environment steps is trained (``navkit train
rnd-agv``, resumable: a rerun continues finished runs instead of repeating them), with the
held-out success curve recorded every ``eval_every`` steps on the validation layouts. The table
gives, per method, the steps until held-out success first reached 80 % (per seed; "—" if never),
the final held-out success, collision rate and time-to-goal, and the best checkpoint's success
split by layout family (goal in sight, goal behind shelves) on a *second* held-out set, the final
layouts (the best checkpoint was picked on the validation layouts, so reporting it there would
flatter it); ``curves.png`` plots mean held-out success with a 95 % band over seeds. The
compact PPO without RND (``ppo_own``) is the check that PPO + RND differs from SB3's PPO only
by RND.

Also measured: throughput of the vectorised env through SB3's ``VecEnv`` interface (random
actions) and of training with the policy update, and the policy file (default: the shipped
one) driving the MuJoCo AGV through the CBF safety filter on the final layouts, next to the
classical stack (A* + pure pursuit) on the same goals.
"""
from __future__ import annotations

import argparse
import csv
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from navkit.common.json_output import to_json

METHODS = ("ppo", "ppo_rnd", "ppo_own")
TARGET_SUCCESS = 0.8


def _read_curve(path: Path) -> list[dict[str, float]]:
    with path.open() as fh:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def steps_to(curve: list[dict[str, float]], level: float = TARGET_SUCCESS) -> float:
    """Environment steps at the first evaluation with held-out success ≥ ``level`` (NaN if never)."""
    for row in curve:
        if row["success"] >= level:
            return row["env_steps"]
    return math.nan


def band(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and 95 % half-width (Student t over seeds) along axis 0."""
    from scipy import stats

    n = values.shape[0]
    mean = values.mean(axis=0)
    if n < 2:
        return mean, np.zeros_like(mean)
    return mean, stats.t.ppf(0.975, n - 1) * values.std(axis=0, ddof=1) / math.sqrt(n)


def _train_one(args: tuple) -> tuple[str, int, str]:
    method, seed, steps, eval_every, eval_layouts, out = args
    import torch

    from navkit.learning.rnd_agv_training import RndAgvConfig, train

    torch.set_num_threads(1)
    cfg = RndAgvConfig(algo=method, seed=seed, total_env_steps=steps, eval_every_steps=eval_every,
                       eval_layouts=eval_layouts, run_dir=str(Path(out) / f"{method}_s{seed}"), progress_bar=False)
    return method, seed, str(train(cfg))


def throughput(num_envs: int = 32, steps: int = 300) -> dict[str, float]:
    """Env steps/s through SB3's VecEnv interface (random actions; behind the safety filter, as trained, and
    without it), and with SB3 PPO training (filter on)."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.logger import Logger

    from navkit.learning.envs.warehouse_explore_env import ExploreConfig, WarehouseExploreVecEnv

    rates = {}
    for filtered in (False, True):
        env = WarehouseExploreVecEnv(num_envs, 0, ExploreConfig(safety_filter=filtered))
        rng = np.random.default_rng(0)
        env.reset()
        for _ in range(20):  # layouts cached, as during training
            env.step(rng.uniform(-1, 1, (num_envs, 2)))
        t = time.perf_counter()
        for _ in range(steps):
            env.step(rng.uniform(-1, 1, (num_envs, 2)))
        rates[filtered] = steps * num_envs / (time.perf_counter() - t)
    model = PPO("MlpPolicy", env, n_steps=128, batch_size=512, seed=0, device="cpu", verbose=0)
    model.set_logger(Logger(None, []))
    model.learn(128 * num_envs)
    t = time.perf_counter()
    model.learn(2 * 128 * num_envs, reset_num_timesteps=False)
    with_update = 2 * 128 * num_envs / (time.perf_counter() - t)
    return {"num_envs": num_envs, "env_steps_per_s": round(rates[True]), "env_steps_per_s_unfiltered": round(rates[False]),
            "training_steps_per_s": round(with_update)}


def mujoco_comparison(policy_path: Path, layouts: int = 20, family: str = "mixed") -> dict[str, Any]:
    """The policy through the safety filter vs A* + pure pursuit, in MuJoCo, on the same held-out warehouses."""
    from navkit.control.learned_controller import load_agv_policy
    from navkit.learning.envs.warehouse_explore_env import WarehouseExploreMujocoEnv, final_layout_seeds
    from navkit.learning.navigation_episode import NavigationEpisode

    policy, spec, meta = load_agv_policy(policy_path)
    env = WarehouseExploreMujocoEnv(family=family)
    rows: dict[str, list[dict[str, Any]]] = {"learned policy + CBF filter": [], "A* + pure pursuit + CBF filter": []}
    try:
        for seed in final_layout_seeds(layouts):
            obs, _ = env.reset(options={"layout_seed": seed})
            done = False
            info: dict[str, Any] = {}
            while not done:
                obs, _, term, trunc, info = env.step(policy.act(obs[None])[0])
                done = term or trunc
            rows["learned policy + CBF filter"].append(
                {"success": info["is_success"], "collision": env.episode.task.collisions > 0,
                 "time_to_goal_s": info["time_to_goal_s"] if info["is_success"] else math.nan})
            # The classical stack on the very same warehouse and start.
            assert env.scenario is not None
            episode = NavigationEpisode(env.scenario, env.stack_config, env.robot)
            episode.reset()
            step = episode.step()
            while not (step.terminated or step.truncated or episode.task.goals.done):
                step = episode.step()
            reached = bool(episode.task.goals.done)
            rows["A* + pure pursuit + CBF filter"].append(
                {"success": reached, "collision": episode.task.collisions > 0,
                 "time_to_goal_s": episode.task.goal_times[0] if reached else math.nan})
    finally:
        env.close()
    out: dict[str, Any] = {"layouts": layouts, "family": family, "policy": str(policy_path), "policy_meta": meta}
    for name, r in rows.items():
        ttg = [x["time_to_goal_s"] for x in r if x["success"]]
        out[name] = {"success": float(np.mean([x["success"] for x in r])),
                     "collision_rate": float(np.mean([x["collision"] for x in r])),
                     "time_to_goal_s": float(np.mean(ttg)) if ttg else math.nan}
    return out


def run(methods: Sequence[str] = ("ppo", "ppo_rnd", "ppo_own"), seeds: int = 3, steps: int = 1_500_000,
        eval_every: int = 100_000, eval_layouts: int = 50, out: Path = Path("out/bench_rnd_agv"), jobs: int = 1,
        policy: Path | None = None, mujoco_layouts: int = 20, progress: bool = True) -> dict[str, Any]:
    from navkit.control.learned_controller import load_agv_policy
    from navkit.control.shipped import SHIPPED_AGV_POLICY
    from navkit.learning.envs.warehouse_explore_env import ExploreConfig, final_layout_seeds
    from navkit.learning.rnd_agv_training import evaluate

    out.mkdir(parents=True, exist_ok=True)
    jobs_list = [(m, s, steps, eval_every, eval_layouts, str(out)) for m in methods for s in range(seeds)]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs_list), desc="rnd-agv bench", unit="run")
    policies: dict[tuple[str, int], str] = {}
    if jobs > 1:
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(jobs) as pool:
            for m, s, path in pool.imap_unordered(_train_one, jobs_list):
                policies[(m, s)] = path
                if bar is not None:
                    bar.update(1)
    else:
        for job in jobs_list:
            m, s, path = _train_one(job)
            policies[(m, s)] = path
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    result: dict[str, Any] = {"seeds": seeds, "env_steps": steps, "eval_every": eval_every,
                              "eval_layouts": eval_layouts, "methods": {}}
    curves: dict[str, list[list[dict[str, float]]]] = {}
    for m in methods:
        runs = [_read_curve(out / f"{m}_s{s}" / "curve.csv") for s in range(seeds)]
        curves[m] = runs
        per_family: dict[str, dict[str, float]] = {}
        for family in ("open", "behind_shelves"):
            scores = []
            for s in range(seeds):
                pol, _, _ = load_agv_policy(policies[(m, s)])
                scores.append(evaluate(pol.act, ExploreConfig(family=family), final_layout_seeds(eval_layouts)))
            per_family[family] = {k: float(np.nanmean([x[k] for x in scores])) for k in scores[0]}
        reach = [steps_to(r) for r in runs]
        result["methods"][m] = {
            "steps_to_80pct": reach,
            "seeds_reaching_80pct": int(sum(math.isfinite(x) for x in reach)),
            "final_success": [r[-1]["success"] for r in runs],
            "best_success": [max(x["success"] for x in r) for r in runs],
            "final_collision_rate": [r[-1]["collision_rate"] for r in runs],
            "final_time_to_goal_s": [r[-1]["time_to_goal_s"] for r in runs],
            "best_policy_by_family": per_family,
        }
    result["curves_png"] = str(plot_curves(curves, out / "curves.png"))
    result["throughput"] = throughput()
    chosen = policy or SHIPPED_AGV_POLICY
    result["mujoco"] = mujoco_comparison(chosen, mujoco_layouts) if Path(chosen).is_file() else None
    return result


def plot_curves(curves: dict[str, list[list[dict[str, float]]]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for method, runs in curves.items():
        n = min(len(r) for r in runs)
        x = np.array([row["env_steps"] for row in runs[0][:n]])
        y = np.array([[row["success"] for row in r[:n]] for r in runs])
        mean, half = band(y)
        ax.plot(x / 1e6, mean, label=f"{method} ({len(runs)} seeds)")
        ax.fill_between(x / 1e6, np.clip(mean - half, 0, 1), np.clip(mean + half, 0, 1), alpha=0.2)
    ax.axhline(TARGET_SUCCESS, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("environment steps (millions)")
    ax.set_ylabel("held-out success")
    ax.set_ylim(0, 1)
    ax.set_title("sparse-reward warehouse navigation: PPO vs PPO + RND (mean, 95 % band)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _fmt(values: Sequence[float], digits: int = 2) -> str:
    return " / ".join("—" if not math.isfinite(v) else f"{v:.{digits}f}" for v in values)


def format_table(r: dict[str, Any]) -> str:
    lines = [f"rnd-agv benchmark: {r['seeds']} seeds per method, {r['env_steps'] / 1e6:g} M env steps each, "
             f"held-out success on {r['eval_layouts']} validation warehouses every {r['eval_every'] / 1e3:g} k steps; "
             f"'open / behind shelves': best checkpoint on {r['eval_layouts']} other (final) warehouses per family",
             "", f"  {'method':<9}{'steps to 80 % (M), per seed':>30}{'final success':>20}{'best':>18}"
                 f"{'collisions':>18}{'open / behind shelves':>24}"]
    for m, row in r["methods"].items():
        fam = row["best_policy_by_family"]
        lines.append(f"  {m:<9}{_fmt([x / 1e6 for x in row['steps_to_80pct']]):>30}{_fmt(row['final_success']):>20}"
                     f"{_fmt(row['best_success']):>18}{_fmt(row['final_collision_rate']):>18}"
                     f"{fam['open']['success']:>12.2f} / {fam['behind_shelves']['success']:.2f}")
    t = r["throughput"]
    lines += ["", f"throughput ({t['num_envs']} envs, SB3 VecEnv, one process): {t['env_steps_per_s']:,} env-steps/s with "
                  f"random actions behind the safety filter ({t['env_steps_per_s_unfiltered']:,} without); "
                  f"{t['training_steps_per_s']:,} env-steps/s while training SB3 PPO",
              f"learning curves: {r['curves_png']}"]
    mj = r.get("mujoco")
    if mj:
        lines += ["", f"MuJoCo AGV, {mj['layouts']} final held-out warehouses ({mj['family']}), policy {mj['policy']}:"]
        for name in ("learned policy + CBF filter", "A* + pure pursuit + CBF filter"):
            x = mj[name]
            lines.append(f"  {name:<32} success {x['success']:.2f}  collisions {x['collision_rate']:.2f}  "
                         f"time-to-goal {x['time_to_goal_s']:.1f} s")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=1_500_000)
    p.add_argument("--out", type=Path, default=Path("out/bench_rnd_agv"))
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--policy", type=Path, default=None)
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    for name in ("seeds", "jobs"):  # as `navkit bench rnd-agv` checks them: before hours of training
        if getattr(a, name) < 1:
            p.error(f"--{name}: must be >= 1, got {getattr(a, name)}")
    if a.steps < 1000:
        p.error(f"--steps: must be >= 1000, got {a.steps}")
    r = run(a.methods, a.seeds, a.steps, out=a.out, jobs=a.jobs, policy=a.policy, progress=not a.json)
    print(to_json(r) if a.json else format_table(r))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
