"""navkit's gymnasium environments, registered on import.

    import gymnasium as gym
    env = gym.make("navkit.learning.envs:NavkitNavigation-v0")   # one AGV, (v, omega) actions
    env = gym.make("navkit.learning.envs:NavkitSwarm-v0")        # a robot team, one CBF gain per robot

The multi-robot task also exists as an SB3 ``VecEnv`` over scenes x robots
(:class:`~navkit.learning.envs.swarm_env.SwarmAgentVecEnv`), for parameter-shared PPO.
"""
from gymnasium.envs.registration import register, registry

ENV_IDS = {
    "NavkitNavigation-v0": "navkit.learning.envs.navigation_env:NavigationEnv",
    "NavkitSwarm-v0": "navkit.learning.envs.swarm_env:SwarmAlphaEnv",
    "NavkitWarehouseExplore-v0": "navkit.learning.envs.warehouse_explore_env:WarehouseExploreEnv",
    "NavkitWarehouseExploreMujoco-v0": "navkit.learning.envs.warehouse_explore_env:WarehouseExploreMujocoEnv",
}

for _env_id, _entry_point in ENV_IDS.items():
    if _env_id not in registry:
        register(id=_env_id, entry_point=_entry_point)

__all__ = ["ENV_IDS"]
