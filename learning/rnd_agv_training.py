"""Train an AGV to reach goals in unseen warehouses from sparse reward: SB3 PPO, or PPO + RND (Yin et al.).

``navkit train rnd-agv --algo ppo|ppo_rnd|ppo_own [--config FILE] [--seed N]``:

* ``ppo``: stable-baselines3's PPO (the baseline users know), on the vectorised warehouse env;
* ``ppo_rnd``: :mod:`navkit.learning.ppo_rnd` with Random Network Distillation;
* ``ppo_own``: the same compact PPO with RND off, the check that it matches SB3's PPO.

Every ``eval_every_steps`` the deterministic policy drives ``eval_layouts`` held-out
warehouses (layout seeds never trained on) and the success rate, collision rate and
time-to-goal go to TensorBoard and ``curve.csv``; the best policy so far is kept. Also
logged: extrinsic episode return and success of training episodes, intrinsic reward and RND
loss, the dormant ratio of the policy network (DrM), throughput. Checkpoints hold everything
needed to continue bit for bit (weights, optimiser, normalisers, every RNG, the envs' robots
and layouts), so an interrupted run resumes exactly.

CleanRL-style: one :class:`RndAgvConfig` with every knob and the reason it matters, one loop in :func:`train`.
"""
from __future__ import annotations

import argparse
import csv
import math
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from navkit.common.errors import ParameterError, brief
from navkit.common.params import config_from_params
from navkit.common.yaml_file import read_yaml_file
from navkit.control.learned_controller import AgvPolicy, save_agv_policy
from navkit.learning.envs.warehouse_explore_env import ExploreConfig, WarehouseExploreVecEnv, held_out_seeds
from navkit.learning.ppo_rnd import PpoRnd, PpoRndConfig, dormant_ratio

ALGOS = ("ppo", "ppo_rnd", "ppo_own")
RESUME_MUST_MATCH = ("algo", "seed", "num_envs", "n_steps", "minibatches", "family", "safety_filter")
"""Config fields a run can only be resumed with unchanged."""


@dataclass
class RndAgvConfig:
    # --- experiment ---
    algo: str = "ppo_rnd"
    """ppo (stable-baselines3), ppo_rnd (PPO + RND), ppo_own (the compact PPO without RND)."""
    seed: int = 0
    run_dir: str = ""
    """Logs and checkpoints; empty → runs/rnd_agv/<algo>_s<seed>."""
    output: str = ""
    """Where the final (best) policy is written; empty → <run_dir>/policy.pt."""
    resume: bool = True
    """Continue from <run_dir>/last.pt when it exists."""
    progress_bar: bool = True
    torch_threads: int = 1
    # --- task ---
    family: str = "mixed"
    """Training layouts: open, behind_shelves or mixed."""
    num_envs: int = 16
    total_env_steps: int = 3_000_000
    time_penalty: float = 0.0
    """Per-step penalty (0: sparse +1 / -1 only, the paper's setting)."""
    safety_filter: bool = True
    """Train and evaluate behind the robot's CBF safety filter, as the policy will be deployed (see
    :attr:`~navkit.learning.envs.warehouse_explore_env.ExploreConfig.safety_filter`)."""
    # --- PPO (SB3 defaults except gamma) ---
    n_steps: int = 128
    n_epochs: int = 10
    minibatches: int = 8
    learning_rate: float = 3e-4
    gamma: float = 0.999
    """Extrinsic discount for every algorithm (a 400-step episode with one reward at its end)."""
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.0
    # --- RND ---
    gamma_int: float = 0.99
    ext_coef: float = 2.0
    int_coef: float = 1.0
    update_proportion: float = 0.25
    # --- evaluation & checkpoints ---
    eval_every_steps: int = 100_000
    eval_layouts: int = 50
    eval_family: str = "mixed"

    def __post_init__(self) -> None:
        if self.algo not in ALGOS:
            raise ValueError(f"algo: expected one of {', '.join(ALGOS)}, got {self.algo!r}")
        bounds = {"seed": (0, 2**31 - 1), "num_envs": (1, 4096), "total_env_steps": (1, 10**12),
                  "time_penalty": (0.0, 1.0), "n_steps": (2, 100_000), "n_epochs": (1, 1000),
                  "minibatches": (1, 100_000), "learning_rate": (1e-9, 1.0), "gamma": (0.0, 1.0),
                  "gae_lambda": (0.0, 1.0), "clip_range": (1e-6, 10.0), "ent_coef": (0.0, 10.0),
                  "gamma_int": (0.0, 1.0), "ext_coef": (0.0, 100.0), "int_coef": (0.0, 100.0),
                  "update_proportion": (0.0, 1.0), "eval_every_steps": (0, 10**12), "eval_layouts": (1, 100_000),
                  "torch_threads": (1, 64)}
        for name, (low, high) in bounds.items():
            value = getattr(self, name)
            if not low <= value <= high:
                raise ValueError(f"{name}: must be in [{low:g}, {high:g}], got {value!r}")
        if self.n_steps * self.num_envs // self.minibatches < 2:  # advantages are normalised per minibatch
            raise ValueError(f"minibatches: n_steps x num_envs / minibatches must be >= 2 samples, got "
                             f"{self.n_steps} x {self.num_envs} / {self.minibatches}")
        ExploreConfig(family=self.family)
        ExploreConfig(family=self.eval_family)

    @property
    def directory(self) -> Path:
        return Path(self.run_dir or f"runs/rnd_agv/{self.algo}_s{self.seed}")

    @property
    def env(self) -> ExploreConfig:
        return ExploreConfig(family=self.family, time_penalty=self.time_penalty, safety_filter=self.safety_filter)


class RndAgvConfigError(ParameterError):
    """A training config file is malformed; names the file and key."""


def load_config(path: str | Path | None, **overrides: Any) -> RndAgvConfig:
    """YAML (optional) + command-line overrides → config; problems raise :class:`RndAgvConfigError`."""
    doc: dict[str, Any] = {}
    source = str(path) if path else "<command line>"
    if path is not None:
        raw = read_yaml_file(Path(path), RndAgvConfigError, "training config") or {}
        if not isinstance(raw, dict):
            raise RndAgvConfigError(source, "<root>", "expected a mapping of RndAgvConfig fields")
        doc = {str(k): v for k, v in raw.items()}
    doc.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return config_from_params(RndAgvConfig, doc, source)
    except ParameterError as exc:
        raise RndAgvConfigError(exc.source, exc.field, exc.problem) from None


# ---------------------------------------------------------------------------------- policies


def export(learner: Any, algo: str, obs_size: int) -> AgvPolicy:
    """The trained actor's mean as an :class:`AgvPolicy` (weights copied, nothing refitted)."""
    policy = AgvPolicy(obs_size)
    if algo == "ppo":
        layers = [m for m in learner.policy.mlp_extractor.policy_net if isinstance(m, nn.Linear)]
        layers.append(learner.policy.action_net)
    else:
        layers = [m for m in learner.policy.actor if isinstance(m, nn.Linear)] + [learner.policy.mean]
    targets = [m for m in policy.net if isinstance(m, nn.Linear)]
    with torch.no_grad():
        for dst, src in zip(targets, layers):
            dst.weight.copy_(src.weight)
            dst.bias.copy_(src.bias)
    return policy


# ---------------------------------------------------------------------------------- evaluation


def evaluate(act: Callable[[np.ndarray], np.ndarray], env_config: ExploreConfig, seeds: Sequence[int],
             num_envs: int = 25) -> dict[str, float]:
    """Each held-out layout driven once by ``act`` (deterministic): success, collision rate, time-to-goal."""
    n = min(num_envs, len(seeds))
    env = WarehouseExploreVecEnv(n, 0, env_config, layout_seeds=list(seeds))
    obs = env.reset()
    results: dict[int, dict[str, Any]] = {}
    while len(results) < len(seeds):
        env.step_async(act(obs))
        obs, _, done, infos = env.step_wait()
        for i in np.flatnonzero(done):
            seed = infos[i]["layout_seed"]
            if seed not in results:
                results[seed] = infos[i]
    rows = list(results.values())
    ttg = [r["time_to_goal_s"] for r in rows if r["is_success"]]
    return {"success": float(np.mean([r["is_success"] for r in rows])),
            "collision_rate": float(np.mean([r["is_collision"] for r in rows])),
            "time_to_goal_s": float(np.mean(ttg)) if ttg else math.nan}


# ---------------------------------------------------------------------------------- the loop


class _EpisodeLog:
    def __init__(self) -> None:
        self.success: deque[float] = deque(maxlen=200)
        self.collision: deque[float] = deque(maxlen=200)
        self.returns: deque[float] = deque(maxlen=200)

    def __call__(self, info: dict[str, Any]) -> None:
        self.success.append(float(info["is_success"]))
        self.collision.append(float(info["is_collision"]))
        self.returns.append(float(info["episode"]["r"]))


class _SB3Learner:
    """SB3's PPO stepped one rollout at a time, with the episode log and exact checkpoints."""

    def __init__(self, cfg: RndAgvConfig, env: WarehouseExploreVecEnv, log: _EpisodeLog) -> None:
        from stable_baselines3 import PPO

        self.cfg, self.env, self.log = cfg, env, log
        batch = max(2, cfg.n_steps * cfg.num_envs // cfg.minibatches)
        self.model = PPO("MlpPolicy", env, n_steps=cfg.n_steps, batch_size=batch, n_epochs=cfg.n_epochs,
                         learning_rate=cfg.learning_rate, gamma=cfg.gamma, gae_lambda=cfg.gae_lambda,
                         clip_range=cfg.clip_range, ent_coef=cfg.ent_coef, seed=cfg.seed, device="cpu", verbose=0)
        from stable_baselines3.common.logger import Logger

        self.model.set_logger(Logger(None, []))

    @property
    def num_timesteps(self) -> int:
        return int(self.model.num_timesteps)

    def iterate(self) -> dict[str, float]:
        from stable_baselines3.common.callbacks import BaseCallback

        log = self.log

        class Episodes(BaseCallback):
            def _on_step(self) -> bool:
                for info, done in zip(self.locals["infos"], self.locals["dones"]):
                    if done:
                        log(info)
                return True

        self.model.learn(self.cfg.n_steps * self.cfg.num_envs, callback=Episodes(), reset_num_timesteps=False)
        return {}

    def act(self, obs: np.ndarray) -> np.ndarray:
        return self.model.predict(obs, deterministic=True)[0]

    def dormant(self, obs: np.ndarray) -> float:
        return dormant_ratio(self.model.policy.mlp_extractor.policy_net, torch.as_tensor(obs, dtype=torch.float32))

    def state(self, path: Path) -> dict[str, Any]:
        self.model.save(path.with_suffix(".sb3.zip"))
        return {"last_obs": self.model._last_obs, "episode_starts": self.model._last_episode_starts,
                "num_timesteps": self.model.num_timesteps, "torch_rng": torch.get_rng_state(),
                "numpy_rng": np.random.get_state()}

    def load(self, path: Path, s: dict[str, Any]) -> None:
        from stable_baselines3 import PPO
        from stable_baselines3.common.logger import Logger

        self.model = PPO.load(path.with_suffix(".sb3.zip"), env=self.env, device="cpu")
        self.model.set_logger(Logger(None, []))
        self.model._last_obs = s["last_obs"]
        self.model._last_episode_starts = s["episode_starts"]
        self.model.num_timesteps = int(s["num_timesteps"])
        torch.set_rng_state(s["torch_rng"])
        np.random.set_state(s["numpy_rng"])


class _OwnLearner:
    """The compact PPO (with or without RND)."""

    def __init__(self, cfg: RndAgvConfig, env: WarehouseExploreVecEnv, log: _EpisodeLog) -> None:
        self.cfg, self.env, self.log = cfg, env, log
        pc = PpoRndConfig(rnd=cfg.algo == "ppo_rnd", n_steps=cfg.n_steps, n_epochs=cfg.n_epochs,
                          minibatches=cfg.minibatches, learning_rate=cfg.learning_rate, gamma=cfg.gamma,
                          gamma_int=cfg.gamma_int, gae_lambda=cfg.gae_lambda, clip_range=cfg.clip_range,
                          ent_coef=cfg.ent_coef, ext_coef=cfg.ext_coef, int_coef=cfg.int_coef,
                          update_proportion=cfg.update_proportion)
        self.model = PpoRnd(env.observation_space.shape[0], 2, cfg.num_envs, pc, seed=cfg.seed)

    @property
    def num_timesteps(self) -> int:
        return self.model.num_timesteps

    def iterate(self) -> dict[str, float]:
        return self.model.update(self.model.collect(self.env, on_episode=self.log))

    def act(self, obs: np.ndarray) -> np.ndarray:
        return self.model.policy.act(torch.as_tensor(obs, dtype=torch.float32), deterministic=True).numpy()

    def dormant(self, obs: np.ndarray) -> float:
        return dormant_ratio(self.model.policy.actor, torch.as_tensor(obs, dtype=torch.float32))

    def state(self, path: Path) -> dict[str, Any]:
        return self.model.state()

    def load(self, path: Path, s: dict[str, Any]) -> None:
        self.model.load_state(s)


def train(cfg: RndAgvConfig) -> Path:
    """Train (or resume) ``cfg.algo``; writes the best policy by held-out success and returns its path."""
    from torch.utils.tensorboard import SummaryWriter
    from tqdm import tqdm

    torch.set_num_threads(cfg.torch_threads)
    run_dir = cfg.directory
    run_dir.mkdir(parents=True, exist_ok=True)
    env = WarehouseExploreVecEnv(cfg.num_envs, cfg.seed, cfg.env)
    log = _EpisodeLog()
    learner: Any = _SB3Learner(cfg, env, log) if cfg.algo == "ppo" else _OwnLearner(cfg, env, log)
    last = run_dir / "last.pt"
    best = -math.inf
    next_eval = cfg.eval_every_steps
    curve_path = run_dir / "curve.csv"
    if cfg.resume and last.is_file():
        # Our own checkpoint (numpy arrays and RNG states need full unpickling): only ever load run dirs you wrote.
        ck = torch.load(last, map_location="cpu", weights_only=False)
        saved = ck.get("config", {})
        for key in RESUME_MUST_MATCH:  # what shapes the saved learner and envs: continuing with others cannot work
            if key in saved and saved[key] != getattr(cfg, key):
                raise RndAgvConfigError(str(run_dir), key, f"{brief(getattr(cfg, key))} differs from the checkpoint's "
                                        f"{brief(saved[key])} in {last}; use --fresh (or another run_dir)")
        learner.load(last, ck["learner"])
        env.set_state(ck["env"])
        best, next_eval = float(ck["best"]), int(ck["next_eval"])
        for key, values in ck["log"].items():
            getattr(log, key).extend(values)
    else:
        for stale in (curve_path, run_dir / "best_policy.pt"):
            stale.unlink(missing_ok=True)
    writer = SummaryWriter(str(run_dir))
    eval_seeds = held_out_seeds(cfg.eval_layouts)
    eval_env = ExploreConfig(family=cfg.eval_family, time_penalty=cfg.time_penalty, safety_filter=cfg.safety_filter)
    bar = tqdm(total=cfg.total_env_steps, initial=learner.num_timesteps, disable=not cfg.progress_bar,
               desc=f"rnd-agv {cfg.algo}", unit="step", unit_scale=True)
    t_env = time.perf_counter()
    try:
        while learner.num_timesteps < cfg.total_env_steps:
            before = learner.num_timesteps
            t0 = time.perf_counter()
            stats = learner.iterate()
            steps = learner.num_timesteps
            bar.update(steps - before)
            writer.add_scalar("time/steps_per_s", (steps - before) / max(time.perf_counter() - t0, 1e-9), steps)
            for key, value in stats.items():
                writer.add_scalar(f"train/{key}", value, steps)
            if log.success:
                writer.add_scalar("train/success", float(np.mean(log.success)), steps)
                writer.add_scalar("train/collision_rate", float(np.mean(log.collision)), steps)
                writer.add_scalar("train/extrinsic_return", float(np.mean(log.returns)), steps)
            if steps >= next_eval or steps >= cfg.total_env_steps:
                next_eval = steps + cfg.eval_every_steps if cfg.eval_every_steps else 10**18
                result = evaluate(learner.act, eval_env, eval_seeds)
                result["dormant_ratio"] = learner.dormant(env.observe())
                for key, value in result.items():
                    writer.add_scalar(f"eval/{key}", value, steps)
                new_file = not curve_path.is_file()
                with curve_path.open("a", newline="") as fh:
                    w = csv.writer(fh)
                    if new_file:
                        w.writerow(["env_steps", "success", "collision_rate", "time_to_goal_s", "dormant_ratio",
                                    "train_success", "wall_s"])
                    w.writerow([steps, result["success"], result["collision_rate"], result["time_to_goal_s"],
                                result["dormant_ratio"], float(np.mean(log.success)) if log.success else 0.0,
                                round(time.perf_counter() - t_env, 1)])
                # To stderr, with the bar: stdout stays clean for machine-readable output (navkit bench --json).
                bar.write(f"{steps:>9d} steps: held-out success {result['success']:.2f}, collisions "
                          f"{result['collision_rate']:.2f}, time-to-goal {result['time_to_goal_s']:.1f} s",
                          file=sys.stderr)
                if result["success"] > best:
                    best = result["success"]
                    save_agv_policy(export(learner.model, cfg.algo, env.observation_space.shape[0]), cfg.env.spec,
                                    run_dir / "best_policy.pt", {"algo": cfg.algo, "seed": cfg.seed,
                                                                 "env_steps": steps, "held_out_success": best})
                ck = {"learner": learner.state(last), "env": env.state(), "best": best, "next_eval": next_eval,
                      "log": {k: list(getattr(log, k)) for k in ("success", "collision", "returns")},
                      "config": asdict(cfg)}
                tmp = last.with_suffix(".tmp")
                torch.save(ck, tmp)
                os.replace(tmp, last)
    finally:
        bar.close()
        writer.close()
    out = Path(cfg.output) if cfg.output else run_dir / "policy.pt"
    best_path = run_dir / "best_policy.pt"
    if best_path.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(best_path.read_bytes())
        return out
    return save_agv_policy(export(learner.model, cfg.algo, env.observation_space.shape[0]), cfg.env.spec, out,
                           {"algo": cfg.algo, "seed": cfg.seed, "env_steps": learner.num_timesteps})


def main(argv: Sequence[str] | None = None) -> int:
    """``navkit train rnd-agv``: see the module docstring."""
    p = argparse.ArgumentParser(prog="navkit train rnd-agv", description=__doc__.splitlines()[0])
    p.add_argument("--algo", choices=ALGOS, default=None, help="default: the config's, else ppo_rnd")
    p.add_argument("--config", type=Path, default=None, help="YAML with RndAgvConfig fields")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--steps", type=int, default=None, help="total environment steps")
    p.add_argument("--fresh", action="store_true", help="ignore an existing last.pt and start over")
    a = p.parse_args(argv)
    cfg = load_config(a.config, algo=a.algo, seed=a.seed, total_env_steps=a.steps)
    if a.fresh:
        cfg.resume = False
    print(f"policy written to {train(cfg)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
