"""The warehouse-exploration task: both envs pass the checker, fast and MuJoCo agree, auto-reset and held-out layouts."""
from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest

import navkit.learning.envs  # noqa: F401 - registers the ids
from navkit.learning.envs.warehouse_explore_env import (ExploreConfig, WarehouseExploreMujocoEnv,
                                                        WarehouseExploreVecEnv, held_out_seeds)
from navkit.sim.warehouse_layouts import HELD_OUT_SEED_BASE


def test_fast_env_passes_the_checker() -> None:
    from gymnasium.utils.env_checker import check_env

    env = gym.make("navkit.learning.envs:NavkitWarehouseExplore-v0").unwrapped
    check_env(env)
    a, _ = env.reset(seed=4)
    b, _ = env.reset(seed=4)
    np.testing.assert_array_equal(a, b)


def test_mujoco_env_passes_the_checker() -> None:
    from gymnasium.utils.env_checker import check_env

    env = gym.make("navkit.learning.envs:NavkitWarehouseExploreMujoco-v0", layout_seeds=[3]).unwrapped
    try:
        check_env(env, skip_render_check=True)
    finally:
        env.close()


def test_fast_and_mujoco_versions_agree_on_observation_and_reward_for_the_same_state() -> None:
    seed = HELD_OUT_SEED_BASE + 2
    mj = WarehouseExploreMujocoEnv(layout_seeds=[seed], safety_filter=False)
    try:
        obs_mj, _ = mj.reset()
        fast = WarehouseExploreVecEnv(1, 0, ExploreConfig(safety_filter=False), layout_seeds=[seed])
        obs_fast = fast.reset()[0]
        np.testing.assert_allclose(obs_mj, obs_fast, atol=1e-5)  # lidar, goal and twist at the start
        # The same short drive in both: poses stay within centimetres, so do observations.
        rng = np.random.default_rng(0)
        for _ in range(15):
            a = rng.uniform([0.2, -0.5], [1.0, 0.5])
            obs_mj, r_mj, term, trunc, _ = mj.step(a)
            fast.step_async(a[None])
            obs_fast, r_fast, done, _ = fast.step_wait()
            assert not term and not done[0] and r_mj == r_fast == 0.0
        pose = mj.robot.true_pose()
        assert math.hypot(pose.x - fast.sim.pose[0, 0], pose.y - fast.sim.pose[0, 1]) < 0.05
        # A few cm of pose difference moves a grazing ray's hit a lot; on average the scans agree closely.
        assert np.abs(obs_mj[:24] - obs_fast[0, :24]).mean() < 0.02
    finally:
        mj.close()


def test_reward_is_plus_one_at_the_goal_and_minus_one_on_a_collision() -> None:
    env = WarehouseExploreVecEnv(2, 0, ExploreConfig(time_penalty=0.001), layout_seeds=held_out_seeds(2))
    env.reset()
    env.sim.pose[0, :2] = env.goal[0]  # env 0 at its goal
    box = env.sim.box_c[1, 0]
    env.sim.pose[1, :2] = box  # env 1 inside a shelf
    obs, reward, done, infos = env.step(np.zeros((2, 2)))
    assert done.all()
    assert reward[0] == pytest.approx(1.0 - 0.001) and infos[0]["is_success"] and not infos[0]["is_collision"]
    assert reward[1] == pytest.approx(-1.0 - 0.001) and infos[1]["is_collision"] and not infos[1]["is_success"]
    assert "terminal_observation" in infos[0] and obs.shape == (2, 29)
    # Auto-reset: both envs start a new episode at their new layout's start, and the returned observation
    # is the new episode's, the terminal one only in the info.
    assert (env.steps == 0).all()
    for i in range(2):
        np.testing.assert_allclose(env.sim.pose[i], env.layouts(int(env.seeds[i])).start)
    assert not np.array_equal(obs[0], infos[0]["terminal_observation"])


def test_training_never_draws_held_out_layouts_and_episodes_time_out() -> None:
    env = WarehouseExploreVecEnv(4, 1, ExploreConfig(layout_pool=50))
    env.reset()
    seen = set(env.seeds.tolist())
    for _ in range(410):  # past the 40 s limit of every first episode
        _, _, done, infos = env.step(np.zeros((4, 2)))
        for i in np.flatnonzero(done):
            assert infos[i]["TimeLimit.truncated"] and infos[i]["episode"]["l"] == 400
        seen |= set(env.seeds.tolist())
    assert max(seen) < 50 and len(seen) > 4
    assert min(held_out_seeds(3)) >= HELD_OUT_SEED_BASE


def test_state_round_trip_continues_identically() -> None:
    a = WarehouseExploreVecEnv(3, 5)
    a.reset()
    rng = np.random.default_rng(1)
    for _ in range(30):
        a.step(rng.uniform(-1, 1, (3, 2)))
    snapshot = a.state()
    b = WarehouseExploreVecEnv(3, 99)
    b.set_state(snapshot)
    actions = rng.uniform(-1, 1, (60, 3, 2))
    for act in actions:
        oa, ra, da, _ = a.step(act)
        ob, rb, db, _ = b.step(act)
        np.testing.assert_array_equal(oa, ob)
        np.testing.assert_array_equal(ra, rb)


def test_the_vectorised_filter_outputs_what_the_robots_safety_filter_outputs_for_the_same_scan() -> None:
    """Training behind the filter only means something if it is the deployed filter: same scan, same command."""
    from navkit.common.observation import Observation
    from navkit.common.sensor_data import LaserScan, VelocityCommand
    from navkit.control.cbf_filter import CbfSafetyFilter

    env = WarehouseExploreVecEnv(6, 0, layout_seeds=held_out_seeds(6))
    env.reset()
    rng = np.random.default_rng(3)
    # Put each robot near a shelf so the filter has something to do, facing a random way.
    for i in range(6):
        box_c, box_h = env.sim.box_c[i, 0], env.sim.box_half[i, 0]
        env.sim.pose[i] = [box_c[0] + rng.uniform(-box_h[0], box_h[0]), box_c[1] - box_h[1] - 0.42,
                           rng.uniform(-math.pi, math.pi)]
    env._rays = None
    actions = rng.uniform(-1, 1, (6, 2))
    env.step_async(actions)
    got = env.filtered_command()
    assert env.filter is not None
    reference = CbfSafetyFilter(env.filter.config)
    c = env.config
    changed = 0
    for i in range(6):
        rays = env.sim.scan()[i]
        scan = LaserScan(0.0, -math.pi, 2 * math.pi / c.lidar_rays, 0.05, c.range_max_m,
                         np.where(rays < c.range_max_m, rays, np.inf), frame_id=reference.config.scan_frame_id)
        cmd = VelocityCommand(0.0, actions[i, 0] * c.v_max, actions[i, 1] * c.omega_max)
        want = reference.filter(cmd, Observation(0.0, scan=scan), 0.0)
        np.testing.assert_allclose(got[i], [want.command.v, want.command.omega], atol=1e-9)
        changed += want.status.name != "PASS"
    assert changed >= 3  # the comparison exercised the constraints, not only pass-through


def test_behind_the_filter_a_robot_driving_at_a_shelf_stops_short_of_it() -> None:
    seeds = held_out_seeds(4)
    for safety_filter, expect_hit in ((False, True), (True, False)):
        env = WarehouseExploreVecEnv(4, 0, ExploreConfig(safety_filter=safety_filter), layout_seeds=seeds)
        env.reset()
        for i in range(4):  # 1 m south of a shelf, facing it, with nothing else within 0.6 m
            for k in range(env.sim.box_count[i]):
                box_c, box_h = env.sim.box_c[i, k], env.sim.box_half[i, k]
                env.sim.pose[i] = [box_c[0], box_c[1] - box_h[1] - 1.0, math.pi / 2]
                if env.sim.clearance(env.sim.pose[:, :2])[i] > 0.6:
                    break
            assert env.sim.clearance(env.sim.pose[:, :2])[i] > 0.6
        env._rays = None
        hits = np.zeros(4, dtype=bool)
        for _ in range(40):  # full speed ahead for 4 s
            _, _, done, infos = env.step(np.tile([1.0, 0.0], (4, 1)))
            for i in np.flatnonzero(done):
                hits[i] |= infos[i]["is_collision"]
        assert hits.all() == expect_hit and hits.any() == expect_hit
