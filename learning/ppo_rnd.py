"""PPO with Random Network Distillation (Burda et al. 2019) for continuous actions, compact and checkable.

Why not an SB3 subclass: stable-baselines3's PPO carries one reward stream and one value
head through ``collect_rollouts``, ``RolloutBuffer`` and ``train``; RND needs two (extrinsic,
episodic; intrinsic, non-episodic), each with its own discount and value head, plus the
predictor's update inside the minibatch loop. Overriding all three would leave little of SB3.
So this is a compact PPO written to SB3's PPO defaults (tanh MLPs 64-64 for actor and critic,
orthogonal init, a state-independent log-std, unsquashed Gaussian actions clipped for the
env, GAE, clipped surrogate, per-minibatch advantage normalisation, Adam 3e-4 with eps 1e-5,
gradient clip 0.5) with ``rnd`` off or on; with it off it is checked against SB3's PPO on the
same task (``navkit bench rnd-agv`` has both rows, and a test compares their learning).

RND, as in the reference implementations (OpenAI's and CleanRL's ``ppo_rnd``; see
Burda et al.): a fixed random target network f and a trained predictor f̂ read the *next*
observation, normalised by a running mean/std initialised from random-action steps and
clipped to ±5; the intrinsic reward ‖f̂(s') − f(s')‖² is divided by the running std of its
discounted return (a forward filter with γ_int); the critic has two heads (extrinsic with
γ_ext and episode ends, intrinsic with γ_int and *no* episode ends); advantages combine as
``ext_coef``·A_ext + ``int_coef``·A_int (2 : 1); the predictor trains on a random
``update_proportion`` (25 %) of each minibatch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn


@dataclass
class PpoRndConfig:
    """Hyper-parameters (defaults: SB3's PPO and the RND reference values)."""

    rnd: bool = True
    """Add the intrinsic reward (False: plain PPO with one value head)."""
    n_steps: int = 128
    """Rollout length per env between updates."""
    n_epochs: int = 10
    minibatches: int = 8
    learning_rate: float = 3e-4
    gamma: float = 0.999
    """Extrinsic discount (episodic)."""
    gamma_int: float = 0.99
    """Intrinsic discount (non-episodic)."""
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    ext_coef: float = 2.0
    int_coef: float = 1.0
    update_proportion: float = 0.25
    """Fraction of each minibatch the RND predictor trains on."""
    rnd_hidden: int = 128
    rnd_out: int = 64
    obs_norm_steps: int = 50
    """Random-action steps (per env) that initialise the observation normaliser."""
    log_std_init: float = 0.0
    hidden: int = 64


class RunningMeanStd:
    """Running mean and variance over batches (Chan et al. parallel update), as in the references."""

    def __init__(self, shape: tuple[int, ...] = ()) -> None:
        self.mean = np.zeros(shape)
        self.var = np.ones(shape)
        self.count = 1e-4

    def update(self, x: np.ndarray) -> None:
        batch_mean, batch_var, n = x.mean(axis=0), x.var(axis=0), x.shape[0]
        delta = batch_mean - self.mean
        total = self.count + n
        self.mean = self.mean + delta * n / total
        m2 = self.var * self.count + batch_var * n + delta**2 * self.count * n / total
        self.var = m2 / total
        self.count = total

    def state(self) -> dict[str, Any]:
        return {"mean": self.mean.copy(), "var": self.var.copy(), "count": self.count}

    def load(self, s: dict[str, Any]) -> None:
        self.mean, self.var, self.count = np.array(s["mean"]), np.array(s["var"]), float(s["count"])


class RewardForwardFilter:
    """Discounted running sum of intrinsic rewards per env (what RND normalises by)."""

    def __init__(self, gamma: float) -> None:
        self.gamma = gamma
        self.rewems: np.ndarray | None = None

    def update(self, rews: np.ndarray) -> np.ndarray:
        self.rewems = rews if self.rewems is None else self.rewems * self.gamma + rews
        return self.rewems


def _layer(i: int, o: int, gain: float) -> nn.Linear:
    layer = nn.Linear(i, o)
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


class ActorCritic(nn.Module):
    """SB3's MlpPolicy shapes: separate tanh MLPs for actor and critic; one or two value heads."""

    def __init__(self, obs_size: int, act_size: int, hidden: int = 64, two_heads: bool = False,
                 log_std_init: float = 0.0) -> None:
        super().__init__()
        g = math.sqrt(2)
        self.actor = nn.Sequential(_layer(obs_size, hidden, g), nn.Tanh(), _layer(hidden, hidden, g), nn.Tanh())
        self.mean = _layer(hidden, act_size, 0.01)
        self.log_std = nn.Parameter(torch.full((act_size,), log_std_init))
        self.critic = nn.Sequential(_layer(obs_size, hidden, g), nn.Tanh(), _layer(hidden, hidden, g), nn.Tanh())
        self.value_ext = _layer(hidden, 1, 1.0)
        self.value_int = _layer(hidden, 1, 1.0) if two_heads else None

    def distribution(self, obs: torch.Tensor) -> torch.distributions.Normal:
        return torch.distributions.Normal(self.mean(self.actor(obs)), self.log_std.exp())

    def values(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.critic(obs)
        v_int = self.value_int(h).squeeze(-1) if self.value_int is not None else torch.zeros(obs.shape[0])
        return self.value_ext(h).squeeze(-1), v_int

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        d = self.distribution(obs)
        return d.mean if deterministic else d.sample()


class RndNetworks(nn.Module):
    """A fixed random target and a trained predictor over normalised observations."""

    def __init__(self, obs_size: int, hidden: int, out: int) -> None:
        super().__init__()

        def mlp() -> nn.Sequential:
            return nn.Sequential(_layer(obs_size, hidden, math.sqrt(2)), nn.LeakyReLU(),
                                 _layer(hidden, hidden, math.sqrt(2)), nn.LeakyReLU(),
                                 _layer(hidden, out, math.sqrt(2)))

        self.target = mlp()
        self.predictor = mlp()
        for p in self.target.parameters():
            p.requires_grad_(False)

    def error(self, obs: torch.Tensor) -> torch.Tensor:
        """(N,) squared prediction error: the intrinsic reward before normalisation."""
        return (self.predictor(obs) - self.target(obs)).pow(2).sum(dim=1) / 2.0


def gae(rewards: np.ndarray, values: np.ndarray, next_value: np.ndarray, dones: np.ndarray, gamma: float,
        lam: float, episodic: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Generalised advantage estimation over (T, E) arrays; ``dones[t]`` ends the episode after step t.

    Non-episodic (the intrinsic stream) ignores episode ends: novelty keeps accruing across them.
    Returns (advantages, returns)."""
    t_len = rewards.shape[0]
    adv = np.zeros_like(rewards)
    last = np.zeros(rewards.shape[1])
    for t in reversed(range(t_len)):
        nxt = next_value if t == t_len - 1 else values[t + 1]
        cont = 1.0 - dones[t] if episodic else np.ones_like(dones[t])
        delta = rewards[t] + gamma * nxt * cont - values[t]
        last = delta + gamma * lam * cont * last
        adv[t] = last
    return adv, adv + values


def combined_advantages(adv_ext: np.ndarray, adv_int: np.ndarray, ext_coef: float, int_coef: float) -> np.ndarray:
    """The RND papers' mix: ext_coef·A_ext + int_coef·A_int."""
    return ext_coef * adv_ext + int_coef * adv_int


def dormant_ratio(model: nn.Module, obs: torch.Tensor, tau: float = 0.025) -> float:
    """DrM's dormant ratio: the fraction of hidden units (after each Tanh of ``model``) whose mean |activation|
    over ``obs`` is below ``tau`` × their layer's mean (Xu et al. 2024): a health metric of the network."""
    acts: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: acts.append(out.detach()))
             for m in model.modules() if isinstance(m, nn.Tanh)]
    try:
        with torch.no_grad():
            model(obs)
    finally:
        for h in hooks:
            h.remove()
    dormant = total = 0
    for a in acts:
        score = a.abs().mean(dim=0)
        dormant += int((score < tau * score.mean().clamp_min(1e-12)).sum())
        total += score.numel()
    return dormant / max(total, 1)


class PpoRnd:
    """The learner: ``collect(env)`` one rollout, ``update()``; ``state()``/``load_state()`` for exact resume."""

    def __init__(self, obs_size: int, act_size: int, num_envs: int, config: PpoRndConfig, seed: int = 0) -> None:
        self.config = c = config
        torch.manual_seed(seed)
        self.rng = np.random.default_rng(seed)
        self.policy = ActorCritic(obs_size, act_size, c.hidden, two_heads=c.rnd, log_std_init=c.log_std_init)
        self.rnd = RndNetworks(obs_size, c.rnd_hidden, c.rnd_out) if c.rnd else None
        params = list(self.policy.parameters()) + (list(self.rnd.predictor.parameters()) if self.rnd else [])
        self.optimizer = torch.optim.Adam(params, lr=c.learning_rate, eps=1e-5)
        self.obs_rms = RunningMeanStd((obs_size,))
        self.int_rms = RunningMeanStd(())
        self.int_filter = RewardForwardFilter(c.gamma_int)
        self.num_envs = num_envs
        self.num_timesteps = 0
        self.next_obs: np.ndarray | None = None
        self.stats: dict[str, float] = {}

    # -- RND helpers ------------------------------------------------------------------

    def normalise(self, obs: np.ndarray) -> torch.Tensor:
        x = (obs - self.obs_rms.mean) / np.sqrt(self.obs_rms.var + 1e-8)
        return torch.as_tensor(np.clip(x, -5.0, 5.0), dtype=torch.float32)

    def intrinsic(self, next_obs: np.ndarray) -> np.ndarray:
        """Raw intrinsic reward of next observations (before return-std normalisation)."""
        assert self.rnd is not None
        with torch.no_grad():
            return self.rnd.error(self.normalise(next_obs)).numpy()

    def init_obs_norm(self, env: Any) -> None:
        """Seed the observation normaliser with random-action steps (the references' warm-up)."""
        obs = [env.reset()]
        for _ in range(self.config.obs_norm_steps):
            env.step_async(self.rng.uniform(-1, 1, (self.num_envs, env.action_space.shape[0])))
            o, _, _, _ = env.step_wait()
            obs.append(o)
        self.obs_rms.update(np.concatenate(obs))
        self.next_obs = env.reset()

    # -- one iteration ----------------------------------------------------------------

    def collect(self, env: Any, on_episode: Any = None) -> dict[str, np.ndarray]:
        c, e = self.config, self.num_envs
        if self.next_obs is None:
            if c.rnd:
                self.init_obs_norm(env)
            else:
                self.next_obs = env.reset()
        obs_size = self.next_obs.shape[1]
        buf = {k: np.zeros((c.n_steps, e) + s, dtype=np.float32) for k, s in (
            ("obs", (obs_size,)), ("actions", (env.action_space.shape[0],)), ("logp", ()), ("rew", ()),
            ("rew_int", ()), ("done", ()), ("v_ext", ()), ("v_int", ()))}
        next_obs_all = []
        for t in range(c.n_steps):
            obs = self.next_obs
            with torch.no_grad():
                o = torch.as_tensor(obs, dtype=torch.float32)
                dist = self.policy.distribution(o)
                action = dist.sample()
                logp = dist.log_prob(action).sum(-1)
                v_ext, v_int = self.policy.values(o)
            a = action.numpy()
            env.step_async(np.clip(a, -1.0, 1.0))
            new_obs, rew, done, infos = env.step_wait()
            # The observation that followed this action (before an auto-reset replaced it).
            true_next = new_obs.copy()
            for i in np.flatnonzero(done):
                true_next[i] = infos[i]["terminal_observation"]
                if on_episode is not None:
                    on_episode(infos[i])
            # SB3's bootstrap of truncated episodes: add γ·V(terminal obs) to the reward.
            for i in np.flatnonzero(done):
                if infos[i].get("TimeLimit.truncated", False):
                    with torch.no_grad():
                        v_term, _ = self.policy.values(torch.as_tensor(true_next[i:i + 1], dtype=torch.float32))
                    rew[i] += c.gamma * float(v_term[0])
            buf["obs"][t], buf["actions"][t], buf["logp"][t] = obs, a, logp.numpy()
            buf["rew"][t], buf["done"][t] = rew, done
            buf["v_ext"][t], buf["v_int"][t] = v_ext.numpy(), v_int.numpy()
            next_obs_all.append(true_next)
            self.next_obs = new_obs
            self.num_timesteps += e
        with torch.no_grad():
            last_ext, last_int = self.policy.values(torch.as_tensor(self.next_obs, dtype=torch.float32))
        next_obs_arr = np.stack(next_obs_all)
        if c.rnd:
            raw = self.intrinsic(next_obs_arr.reshape(-1, obs_size)).reshape(c.n_steps, e)
            returns = np.stack([self.int_filter.update(raw[t]) for t in range(c.n_steps)])
            self.int_rms.update(returns.reshape(-1))
            buf["rew_int"] = (raw / np.sqrt(self.int_rms.var + 1e-8)).astype(np.float32)
            self.obs_rms.update(next_obs_arr.reshape(-1, obs_size))
            self.stats["intrinsic_reward_mean"] = float(buf["rew_int"].mean())
        adv_ext, ret_ext = gae(buf["rew"], buf["v_ext"], last_ext.numpy(), buf["done"], c.gamma, c.gae_lambda)
        if c.rnd:
            adv_int, ret_int = gae(buf["rew_int"], buf["v_int"], last_int.numpy(), buf["done"], c.gamma_int,
                                   c.gae_lambda, episodic=False)
            adv = combined_advantages(adv_ext, adv_int, c.ext_coef, c.int_coef)
        else:
            adv_int, ret_int, adv = np.zeros_like(adv_ext), np.zeros_like(ret_ext), adv_ext
        buf.update(adv=adv, ret_ext=ret_ext, ret_int=ret_int, next_obs=next_obs_arr)
        return buf

    def update(self, buf: dict[str, np.ndarray]) -> dict[str, float]:
        c = self.config
        n = c.n_steps * self.num_envs
        flat = {k: torch.as_tensor(v.reshape(n, *v.shape[2:]), dtype=torch.float32) for k, v in buf.items()}
        norm_next = self.normalise(buf["next_obs"].reshape(n, -1)) if c.rnd else None
        size = n // c.minibatches
        losses: dict[str, list[float]] = {k: [] for k in ("pg", "value", "entropy", "rnd", "clip_fraction")}
        for _ in range(c.n_epochs):
            order = torch.as_tensor(self.rng.permutation(n))
            for start in range(0, n, size):
                idx = order[start:start + size]
                dist = self.policy.distribution(flat["obs"][idx])
                logp = dist.log_prob(flat["actions"][idx]).sum(-1)
                ratio = (logp - flat["logp"][idx]).exp()
                adv = flat["adv"][idx]
                adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                pg = -torch.min(adv * ratio, adv * ratio.clamp(1 - c.clip_range, 1 + c.clip_range)).mean()
                v_ext, v_int = self.policy.values(flat["obs"][idx])
                value = (v_ext - flat["ret_ext"][idx]).pow(2).mean()
                if c.rnd:
                    value = value + (v_int - flat["ret_int"][idx]).pow(2).mean()
                entropy = dist.entropy().sum(-1).mean()
                loss = pg + c.vf_coef * value - c.ent_coef * entropy
                if self.rnd is not None and norm_next is not None:
                    err = self.rnd.error(norm_next[idx])
                    keep = torch.as_tensor(self.rng.random(len(idx)) < c.update_proportion, dtype=torch.float32)
                    rnd_loss = (err * keep).sum() / keep.sum().clamp_min(1.0)
                    loss = loss + rnd_loss
                    losses["rnd"].append(float(rnd_loss.detach()))
                self.optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_([p for g in self.optimizer.param_groups for p in g["params"]],
                                         c.max_grad_norm)
                self.optimizer.step()
                losses["pg"].append(float(pg.detach()))
                losses["value"].append(float(value.detach()))
                losses["entropy"].append(float(entropy.detach()))
                losses["clip_fraction"].append(float(((ratio - 1).abs() > c.clip_range).float().mean()))
        out = {k: float(np.mean(v)) for k, v in losses.items() if v}
        out.update(self.stats)
        out["std"] = float(self.policy.log_std.detach().exp().mean())
        return out

    # -- exact resume -----------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {"policy": self.policy.state_dict(), "rnd": self.rnd.state_dict() if self.rnd else None,
                "optimizer": self.optimizer.state_dict(), "obs_rms": self.obs_rms.state(),
                "int_rms": self.int_rms.state(), "int_filter": self.int_filter.rewems,
                "rng": self.rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
                "num_timesteps": self.num_timesteps, "next_obs": self.next_obs}

    def load_state(self, s: dict[str, Any]) -> None:
        self.policy.load_state_dict(s["policy"])
        if self.rnd is not None:
            self.rnd.load_state_dict(s["rnd"])
        self.optimizer.load_state_dict(s["optimizer"])
        self.obs_rms.load(s["obs_rms"])
        self.int_rms.load(s["int_rms"])
        self.int_filter.rewems = s["int_filter"]
        self.rng.bit_generator.state = s["rng"]
        torch.set_rng_state(s["torch_rng"])
        self.num_timesteps = int(s["num_timesteps"])
        self.next_obs = s["next_obs"]
