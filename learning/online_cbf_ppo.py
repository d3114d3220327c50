"""Train the online-CBF policy with PPO (stable-baselines3), the paper's model-free RL, on the per-robot env.

Gao, Yang & Prorok (2023) train their CBF-tuning GNN with model-free RL. Here PPO runs on
:class:`~navkit.learning.envs.swarm_env.SwarmAgentVecEnv`: every robot of every scene is one
sub-environment sharing one policy (parameter sharing, decentralised execution), one group of
scenes per training family with its own team size, control rates drawn per episode. The
actor is the deployed network itself: SB3's features extractor is
:class:`~navkit.control.online_cbf_policy.NeighbourhoodNet` up to its last hidden layer and
the action head is its linear action layer, so :func:`export_policy` copies weights into an
:class:`~navkit.control.online_cbf_policy.OnlineCbfPolicy` with nothing lost. The critic is a
separate head on the same features.

Model selection scores the exported policy on held-out seeds of the training families and on
families never trained on, as the ES trainer does (:func:`~navkit.learning.online_cbf_training.select`).

Run: ``navkit train online-cbf --method ppo --config learning/configs/online_cbf_ppo.yaml``.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch
from torch import nn

from navkit.common.errors import ParameterError
from navkit.common.params import config_from_params
from navkit.common.yaml_file import read_yaml_file
from navkit.control.online_cbf_policy import NeighbourhoodNet, OnlineCbfPolicy, OnlineCbfPolicyConfig
from navkit.learning.online_cbf_training import (DEFAULT_FAMILIES, DEFAULT_SELECTION, TrainConfigError,
                                                 check_output_locations, load_families, select)
from navkit.learning.swarm_families import Family


@dataclass
class PpoConfig:
    # --- experiment ---
    seed: int = 0
    """Seeds the envs and torch: same seed, same run (single-threaded)."""
    run_dir: str = "runs/online_cbf_ppo/default"
    """TensorBoard logs, model checkpoints (last.zip) and best_policy.pt go here."""
    output: str = ""
    """Where the final policy is written; empty → <run_dir>/policy.pt."""
    resume: bool = True
    """Continue from <run_dir>/last.zip when it exists (weights, optimizer, step count; fresh env seeds)."""
    torch_threads: int = 1
    """Intra-op threads (the network is small)."""
    progress_bar: bool = True
    # --- episodes ---
    families: list[str] = field(default_factory=lambda: list(DEFAULT_FAMILIES))
    """Training families, ``"FILE"`` or ``"FILE MIN-MAX"``; each gets ``groups_per_family`` groups."""
    selection_families: list[str] = field(default_factory=lambda: list(DEFAULT_SELECTION))
    """Families never trained on, scored with the training families to pick the best checkpoint."""
    rates_hz: list[float] = field(default_factory=lambda: [10.0, 20.0, 50.0])
    groups_per_family: int = 2
    """Env groups per family; each draws its team size once from the family's range."""
    scenes_per_group: int = 2
    """Scenes stepped together in a group."""
    episode_time_s: float = 30.0
    """Cap on a training episode (0 → the scenario's limit)."""
    # --- policy ---
    hidden: int = 32
    k_neighbours: int = 6
    k_obstacles: int = 6
    alpha_min: float = 0.1
    alpha_max: float = 20.0
    log_std_init: float = -0.5
    """Initial exploration noise of the action a (α is log-uniform in a: std 0.6 ≈ ×2.5 in α)."""
    # --- PPO ---
    total_env_steps: int = 10_000_000
    """Robot control periods to train for (each sub-env step is one)."""
    n_steps: int = 64
    """Rollout length per sub-env between updates."""
    minibatches: int = 4
    """Minibatches per epoch (batch size = n_steps × sub-envs / minibatches)."""
    n_epochs: int = 4
    learning_rate: float = 3e-4
    gamma: float = 0.99
    """Per control period (at 20 Hz: a ~5 s horizon)."""
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.0
    # --- evaluation ---
    eval_every_steps: int = 2_000_000
    """Model selection every this many env steps (and at the end); 0: only at the end."""
    eval_seeds: int = 10

    def __post_init__(self) -> None:
        bounds: dict[str, tuple[float, float]] = {
            "seed": (0, 2**32 - 1), "torch_threads": (1, 64), "groups_per_family": (1, 64),
            "scenes_per_group": (1, 256), "episode_time_s": (0.0, 3600.0), "hidden": (1, 256),
            "k_neighbours": (1, 256), "k_obstacles": (1, 256), "alpha_min": (1e-6, 1e3), "alpha_max": (1e-6, 1e3),
            "log_std_init": (-10.0, 2.0), "total_env_steps": (1, 10**15), "n_steps": (2, 100_000),
            "minibatches": (1, 10_000), "n_epochs": (1, 1000), "learning_rate": (1e-9, 1.0), "gamma": (0.0, 1.0),
            "gae_lambda": (0.0, 1.0), "clip_range": (1e-6, 10.0), "ent_coef": (0.0, 10.0),
            "eval_every_steps": (0, 10**15), "eval_seeds": (1, 10_000)}
        for name, (low, high) in bounds.items():
            value = getattr(self, name)
            if not low <= value <= high:
                raise ValueError(f"{name}: must be in [{low:g}, {high:g}], got {value!r}")
        if not self.alpha_min < self.alpha_max:
            raise ValueError(f"alpha_max: must exceed alpha_min ({self.alpha_min}), got {self.alpha_max}")
        if not self.families:
            raise ValueError("families: at least one scenario family is required")
        for rate in self.rates_hz:
            if not 2.0 <= rate <= 1000.0:
                raise ValueError(f"rates_hz: every rate must be in [2, 1000] Hz, got {rate}")

    @property
    def policy(self) -> OnlineCbfPolicyConfig:
        return OnlineCbfPolicyConfig(hidden=self.hidden, k_neighbours=self.k_neighbours, k_obstacles=self.k_obstacles,
                                     alpha_min=self.alpha_min, alpha_max=self.alpha_max)


def load_ppo_config(path: str | Path) -> PpoConfig:
    """YAML → PpoConfig (types, unknown keys, bounds, family files); problems raise :class:`TrainConfigError`."""
    path = Path(path)
    doc = read_yaml_file(path, TrainConfigError, "training config") or {}
    if not isinstance(doc, dict):
        raise TrainConfigError(str(path), "<root>", "expected a mapping of PpoConfig fields")
    if doc.get("method", "ppo") != "ppo":
        raise TrainConfigError(str(path), "method", f"this file is for method {doc.get('method')!r}, not ppo")
    doc = {str(k): v for k, v in doc.items() if str(k) != "method"}
    try:
        cfg = config_from_params(PpoConfig, doc, str(path))
    except ParameterError as exc:
        raise TrainConfigError(exc.source, exc.field, exc.problem) from None
    load_families(cfg, str(path))
    check_output_locations(cfg, str(path))
    return cfg


def _extractor_class() -> type:
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

    class NeighbourhoodExtractor(BaseFeaturesExtractor):
        """SB3 features extractor: the deployed network up to its last hidden layer."""

        def __init__(self, observation_space: gym.Space, config: OnlineCbfPolicyConfig) -> None:
            super().__init__(observation_space, features_dim=config.hidden)
            self.net = NeighbourhoodNet(config)

        def forward(self, observations: torch.Tensor) -> torch.Tensor:
            return self.net.features(*self.net.split_flat(observations))

    return NeighbourhoodExtractor


def make_env(cfg: PpoConfig, families: Sequence[Family], seed: int) -> Any:
    from navkit.learning.envs.swarm_env import SwarmAgentVecEnv, SwarmEnvConfig

    groups = [SwarmEnvConfig(scenario=fam.entry, rates_hz=tuple(cfg.rates_hz), episode_time_s=cfg.episode_time_s,
                             policy=cfg.policy)
              for fam in families for _ in range(cfg.groups_per_family)]
    return SwarmAgentVecEnv(num_scenes=cfg.scenes_per_group, seed=seed, groups=groups)


def make_model(cfg: PpoConfig, env: Any) -> Any:
    from stable_baselines3 import PPO

    kwargs = dict(features_extractor_class=_extractor_class(), features_extractor_kwargs={"config": cfg.policy},
                  net_arch={"pi": [], "vf": [64, 64]}, activation_fn=nn.Tanh, log_std_init=cfg.log_std_init,
                  ortho_init=False)
    batch = max(2, cfg.n_steps * env.num_envs // cfg.minibatches)
    return PPO("MlpPolicy", env, n_steps=cfg.n_steps, batch_size=batch, n_epochs=cfg.n_epochs,
               learning_rate=cfg.learning_rate, gamma=cfg.gamma, gae_lambda=cfg.gae_lambda,
               clip_range=cfg.clip_range, ent_coef=cfg.ent_coef, policy_kwargs=kwargs, seed=cfg.seed,
               device="cpu", verbose=0, tensorboard_log=None)


def export_policy(model: Any, config: OnlineCbfPolicyConfig) -> OnlineCbfPolicy:
    """The PPO actor's mean as a deployable :class:`OnlineCbfPolicy` (the same weights, nothing refitted)."""
    net = NeighbourhoodNet(config)
    extractor = model.policy.features_extractor.net
    state = {k: v.detach().clone() for k, v in extractor.state_dict().items() if not k.startswith("action.")}
    state["action.weight"] = model.policy.action_net.weight.detach().clone()
    state["action.bias"] = model.policy.action_net.bias.detach().clone()
    net.load_state_dict(state)
    return OnlineCbfPolicy(config, net)


def train_ppo(cfg: PpoConfig) -> Path:
    """Train (or resume) with PPO and write the final policy (the best by model selection); returns its path."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from torch.utils.tensorboard import SummaryWriter

    torch.set_num_threads(cfg.torch_threads)
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    families, selection = load_families(cfg, "<config>")
    env = make_env(cfg, families, cfg.seed)
    last = run_dir / "last.zip"
    if cfg.resume and last.is_file():
        model = PPO.load(last, env=env, device="cpu")
    else:
        (run_dir / "best_policy.pt").unlink(missing_ok=True)
        model = make_model(cfg, env)
    from stable_baselines3.common.logger import configure

    model.set_logger(configure(str(run_dir / "sb3"), ["tensorboard"]))
    writer = SummaryWriter(str(run_dir))
    state = {"best": -math.inf, "next_eval": (model.num_timesteps // max(cfg.eval_every_steps, 1) + 1)
             * cfg.eval_every_steps if cfg.eval_every_steps else math.inf}
    best_file = run_dir / "best_score.txt"
    if cfg.resume and best_file.is_file():
        try:
            state["best"] = float(best_file.read_text())
        except (ValueError, UnicodeDecodeError):
            raise TrainConfigError(str(best_file), "<file>", "not a number; use --fresh to start over") from None

    def evaluate() -> None:
        steps = int(model.num_timesteps)
        state["best"] = select(export_policy(model, cfg.policy), families + selection, cfg.eval_seeds, writer,
                               steps // 1000, steps, state["best"], run_dir, print, rates_hz=cfg.rates_hz)
        best_file.write_text(repr(state["best"]))
        model.save(last)

    class Every(BaseCallback):
        def _on_step(self) -> bool:
            if self.model.num_timesteps >= state["next_eval"]:
                state["next_eval"] += cfg.eval_every_steps
                evaluate()
            return True

    remaining = cfg.total_env_steps - int(model.num_timesteps)
    try:
        if remaining > 0:
            model.learn(total_timesteps=remaining, callback=Every(), reset_num_timesteps=False,
                        progress_bar=cfg.progress_bar)
        evaluate()
    finally:
        writer.close()
    out = Path(cfg.output) if cfg.output else run_dir / "policy.pt"
    best_path = run_dir / "best_policy.pt"
    final = OnlineCbfPolicy.load(best_path) if best_path.is_file() else export_policy(model, cfg.policy)
    return final.save(out)




def main(argv: Sequence[str] | None = None) -> int:
    """``navkit train online-cbf`` with ``method: ppo`` in the config: train and write the policy."""
    import argparse

    parser = argparse.ArgumentParser(prog="navkit train online-cbf", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="YAML file with PpoConfig fields (and method: ppo)")
    parser.add_argument("--fresh", action="store_true", help="ignore an existing last.zip and start over")
    args = parser.parse_args(argv)
    cfg = load_ppo_config(args.config)
    if args.fresh:
        cfg.resume = False
    print(f"policy written to {train_ppo(cfg)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
