"""The gymnasium envs: they pass gymnasium's checker, and stable-baselines3 PPO trains on each."""
from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3 import PPO
from stable_baselines3.common.logger import KVWriter, Logger

import navkit.learning.envs  # noqa: F401 - registers the ids
from navkit.control.online_cbf_policy import OnlineCbfPolicyConfig, flat_size
from navkit.learning.envs.swarm_env import SwarmAgentVecEnv, SwarmEnvConfig

FEATURES = flat_size(OnlineCbfPolicyConfig())


class _Record(KVWriter):
    """Keeps every value SB3 logs, so the test can check the losses."""

    def __init__(self) -> None:
        self.values: dict[str, list[float]] = {}

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, Any], step: int = 0) -> None:
        for key, value in key_values.items():
            if isinstance(value, (int, float)):
                self.values.setdefault(key, []).append(float(value))


def _train(model: PPO, steps: int) -> dict[str, list[float]]:
    record = _Record()
    model.set_logger(Logger(None, [record]))
    model.learn(total_timesteps=steps)
    return record.values


def test_navigation_env_passes_the_checker_and_is_seeded() -> None:
    from gymnasium.utils.env_checker import check_env

    env = gym.make("navkit.learning.envs:NavkitNavigation-v0", scenario="scenarios/short_aisle.yaml").unwrapped
    try:
        check_env(env, skip_render_check=True)
        a, _ = env.reset(seed=3)
        b, _ = env.reset(seed=3)
        np.testing.assert_array_equal(a, b)
        obs, reward, terminated, truncated, info = env.step(np.array([1.0, 0.0], dtype=np.float32))
        assert env.observation_space.contains(obs) and math.isfinite(reward)
        assert info["filter_status"] in ("PASS", "MODIFIED")
    finally:
        env.close()


def test_swarm_env_passes_the_checker() -> None:
    from gymnasium.utils.env_checker import check_env

    env = gym.make("navkit.learning.envs:NavkitSwarm-v0", num_agents=4).unwrapped
    check_env(env)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4, FEATURES)


def test_ppo_trains_on_the_navigation_env_with_finite_losses() -> None:
    env = gym.make("navkit.learning.envs:NavkitNavigation-v0", scenario="scenarios/short_aisle.yaml",
                   max_episode_steps=100)
    try:
        model = PPO("MlpPolicy", env, n_steps=256, batch_size=64, n_epochs=2, seed=0, device="cpu", verbose=0)
        values = _train(model, 1024)
    finally:
        env.close()
    for key in ("train/value_loss", "train/policy_gradient_loss", "train/loss"):
        assert values.get(key) and all(math.isfinite(v) for v in values[key]), (key, values.get(key))
    assert all(np.isfinite(p.detach().numpy()).all() for p in model.policy.parameters())


def test_ppo_trains_on_the_per_agent_swarm_vec_env_with_finite_losses() -> None:
    venv = SwarmAgentVecEnv(num_scenes=2, seed=0, num_agents=4, episode_time_s=6.0)
    assert venv.num_envs == 8
    model = PPO("MlpPolicy", venv, n_steps=128, batch_size=128, n_epochs=2, seed=0, device="cpu", verbose=0)
    values = _train(model, 2048)
    for key in ("train/value_loss", "train/policy_gradient_loss", "train/loss"):
        assert values.get(key) and all(math.isfinite(v) for v in values[key]), (key, values.get(key))


def test_swarm_vec_env_restarts_every_scene_when_the_batch_is_over() -> None:
    venv = SwarmAgentVecEnv(num_scenes=2, seed=0, num_agents=4, episode_time_s=1.0)  # 20 control periods
    obs = venv.reset()
    assert obs.shape == (8, FEATURES)
    seeds = [sc.seed for sc in venv.scenes.scenes]
    dones_seen = 0
    for _ in range(21):
        obs, rewards, dones, infos = venv.step(np.zeros((8, 1)))
        assert np.isfinite(rewards).all() and obs.shape == (8, FEATURES)
        if dones.any():
            dones_seen += 1
            assert dones.all() and all("terminal_observation" in i for i in infos)
    assert dones_seen == 1
    assert [sc.seed for sc in venv.scenes.scenes] != seeds  # fresh layouts after the restart


def test_swarm_vec_env_steps_groups_of_families_sizes_and_rates_independently() -> None:
    groups = [SwarmEnvConfig(scenario="scenarios/multi/circle_swap.yaml 3-3", rates_hz=(10.0,), episode_time_s=1.0),
              SwarmEnvConfig(scenario="scenarios/multi/crossing.yaml 5-5", rates_hz=(50.0,), episode_time_s=1.0)]
    venv = SwarmAgentVecEnv(num_scenes=2, seed=1, groups=groups)
    assert venv.num_envs == 2 * 3 + 2 * 5
    assert [g.scenes[0].control_dt_s for g in venv.groups] == [0.1, 0.02]
    venv.reset()
    ended_at = {}
    for tick in range(1, 52):
        _, rewards, dones, infos = venv.step(np.zeros((venv.num_envs, 1)))
        assert np.isfinite(rewards).all()
        if dones[:6].any():
            ended_at.setdefault("swap", tick)
            assert dones[:6].all()
        if dones[6:].any():
            ended_at.setdefault("crossing", tick)
            assert dones[6:].all() and "terminal_observation" in infos[6]
    assert ended_at == {"swap": 10, "crossing": 50}  # 1 s at 10 Hz and at 50 Hz


@pytest.mark.parametrize("bad", [{"lidar_rays": 1}, {"action_repeat": 0}])
def test_navigation_env_config_is_validated(bad: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        gym.make("navkit.learning.envs:NavkitNavigation-v0", **bad)
