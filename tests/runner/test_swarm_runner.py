"""``navkit run`` on swarm scenarios: files written, safety, one-line errors, and the runner in-process."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from navkit.control.swarm_controller import FixedAlpha
from navkit.runner.swarm_runner import SwarmRunner, SwarmRunOptions
from navkit.sim.swarm_scenario import load_swarm_scenario

REPO = Path(__file__).resolve().parents[2]
CIRCLE = "scenarios/multi/circle_swap.yaml"
EPISODE_FIELDS = ("scenario", "seed", "num_agents", "success", "collisions", "min_separation_m",
                  "min_obstacle_gap_m", "infeasible", "mean_time_to_goal_s", "path_length_ratio", "agents_at_goal",
                  "episode_time_s")


def navkit(*args: str | Path, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "navkit.cli.main", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def test_circle_swap_4_agents_writes_outputs_without_collisions(tmp_path: Path) -> None:
    out = tmp_path / "tmp"
    proc = navkit("run", CIRCLE, "--agents", "4", "--alpha", "1.0", "--video", "none", "--out", out,
                  "--time-limit", "10", "--no-progress")
    assert proc.returncode == 1, proc.stderr  # a fixed alpha deadlocks the swap: not every robot arrives
    assert "Traceback" not in proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    for name in EPISODE_FIELDS:
        assert name in metrics, name
    assert metrics["num_agents"] == 4 and metrics["collisions"] == 0 and metrics["overlap_collisions"] == 0
    assert metrics["min_separation_m"] > 2 * 0.2
    assert metrics["alpha"]["source"] == "fixed 1" and metrics["alpha"]["mean"] == 1.0
    assert metrics["step_ms"]["physics"]["mean"] > 0 and metrics["step_ms"]["controller"]["mean"] > 0
    with (out / "traces.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    steps = metrics["control_steps"]
    assert steps == 200 and len(rows) == 4 * steps
    assert sorted({r["robot"] for r in rows}) == ["0", "1", "2", "3"]
    assert {"time_s", "x", "y", "heading", "v", "alpha", "filter_status"} <= set(rows[0])
    assert (out / "trajectories.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob("*.gif"))
    assert "collisions" in proc.stdout and str(out / "traces.csv") in proc.stdout


def test_gif_and_the_shipped_policy_by_default(tmp_path: Path) -> None:
    from PIL import Image

    out = tmp_path / "o"
    proc = navkit("run", CIRCLE, "--agents", "3", "--time-limit", "1", "--video-fps", "4", "--out", out,
                  "--no-progress")
    assert proc.returncode == 1, proc.stderr  # 1 s is too short for anyone to arrive
    assert json.loads((out / "metrics.json").read_text())["alpha"]["source"] == "shipped policy"
    with Image.open(out / "trajectory.gif") as im:
        assert im.format == "GIF" and im.n_frames >= 4


def test_bad_swarm_yaml_is_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad_swarm.yaml"
    bad.write_text((REPO / CIRCLE).read_text().replace("dynamics: single_integrator", "dynamics: hovercraft"))
    proc = navkit("run", bad, "--out", tmp_path / "o", "--video", "none")
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("navkit: error: ")
    assert str(bad) in lines[0] and "dynamics" in lines[0]


def test_too_many_agents_for_the_circle_is_one_line_error(tmp_path: Path) -> None:
    fixed_radius = tmp_path / "fixed_circle.yaml"  # no spacing_m: the circle does not grow with the team
    fixed_radius.write_text((REPO / CIRCLE).read_text().replace(" spacing_m: 1.2,", ""))
    proc = navkit("run", fixed_radius, "--agents", "80", "--alpha", "1", "--out", tmp_path / "o", "--video", "none")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert str(fixed_radius) in proc.stderr and "agents.layout" in proc.stderr and "Traceback" not in proc.stderr


def test_swarm_options_on_a_single_robot_scenario_are_refused(tmp_path: Path) -> None:
    proc = navkit("run", "scenarios/short_aisle.yaml", "--agents", "4", "--out", tmp_path / "o")
    assert proc.returncode == 2 and "--agents" in proc.stderr and "Traceback" not in proc.stderr


def test_32_agents_run_a_few_steps(tmp_path: Path) -> None:
    out = tmp_path / "o32"
    proc = navkit("run", CIRCLE, "--agents", "32", "--alpha", "1.0", "--time-limit", "0.5", "--video", "none",
                  "--out", out, "--json")
    assert proc.returncode == 1, proc.stderr
    metrics = json.loads(proc.stdout)
    assert metrics["num_agents"] == 32 and metrics["control_steps"] == 10 and metrics["collisions"] == 0
    with (out / "traces.csv").open() as fh:
        assert sum(1 for _ in fh) == 1 + 32 * 10


def test_run_help_explains_swarm_options() -> None:
    proc = navkit("run", "--help")
    assert proc.returncode == 0
    for text in ("--agents", "--alpha", "--policy", "kind: swarm", "traces.csv"):
        assert text in proc.stdout, text


def test_in_process_runner_traces_and_unicycles() -> None:
    sc = load_swarm_scenario(REPO / "scenarios" / "multi" / "circle_swap_unicycle.yaml").expand(num_agents=4)
    runner = SwarmRunner(sc, FixedAlpha(2.0))
    result = runner.run(SwarmRunOptions(time_limit_s=3.0))
    runner.close()
    tr, m = result.traces, result.metrics
    assert tr.x.shape == (60, 4) and tr.time.shape == (60,) and m["collisions"] == 0
    np.testing.assert_allclose(tr.alpha, 2.0)
    np.testing.assert_allclose(np.stack([tr.x[0], tr.y[0]], 1), sc.starts[:, :2])
    assert tr.path(0).shape == (61, 2) and np.all(tr.v <= sc.max_speed_m_s + 1e-3)
    assert m["episode_time_s"] == pytest.approx(3.0) and m["alpha"]["mean"] == pytest.approx(2.0)


def test_policy_object_is_used_as_alpha_source() -> None:
    calls = []

    def policy(state):
        calls.append(state.time)
        return np.linspace(0.5, 2.0, state.num_agents)[None]

    sc = load_swarm_scenario(REPO / CIRCLE).expand(num_agents=4)
    result = SwarmRunner(sc, policy).run(SwarmRunOptions(time_limit_s=0.5, alpha_label="test policy"))
    assert len(calls) == 10 and result.metrics["alpha"]["source"] == "test policy"
    assert result.metrics["alpha"]["min"] == 0.5 and result.metrics["alpha"]["max"] == 2.0


def test_policy_trained_on_the_kinematic_env_works_in_mujoco() -> None:
    """The shipped policy was trained on KinematicSwarm only; in MuJoCo physics it must still bring a swap
    and a crossing home without a collision."""
    from navkit.control.online_cbf_policy import OnlineCbfPolicy
    from navkit.control.shipped import SHIPPED_ONLINE_CBF_POLICY
    from navkit.sim.swarm_scenario import load_swarm_scenario

    policy = OnlineCbfPolicy.load(SHIPPED_ONLINE_CBF_POLICY)
    multi = Path(__file__).resolve().parents[2] / "scenarios" / "multi"
    for name, seed in (("circle_swap", 0), ("circle_swap", 1), ("crossing", 0)):
        sc = load_swarm_scenario(multi / f"{name}.yaml").expand(seed=seed)
        m = SwarmRunner(sc, policy).run(SwarmRunOptions()).metrics
        assert m["success"] and m["agents_at_goal"] == m["num_agents"] == 8, (name, seed, m)
        assert m["collisions"] == 0 and m["min_separation_m"] >= 0.4, m
    assert policy.fallbacks == 0


def test_runner_and_rollout_score_the_same_episode_the_same_way() -> None:
    """Issue 7: one scorer. The runner on the kinematic backend and the vectorised rollout
    play the same episode; every shared metric must agree exactly."""
    from navkit.control.swarm_controller import SwarmController
    from navkit.learning.swarm_rollout import rollout
    from navkit.sim.kinematic_swarm import KinematicSwarm

    sc = load_swarm_scenario(REPO / "scenarios" / "multi" / "moving_obstacles.yaml").expand(seed=3, num_agents=4)
    runner = SwarmRunner(sc, FixedAlpha(1.0), backend=KinematicSwarm([sc]))
    metrics = runner.run(SwarmRunOptions()).metrics
    row = rollout([sc], SwarmController.for_scenario(sc), FixedAlpha(1.0))[0]
    assert metrics["agents_at_goal"] == row.agents_at_goal > 0
    for key in ("success", "collisions", "agent_collisions", "obstacle_collisions", "infeasible"):
        assert metrics[key] == getattr(row, key), key
    for key in ("min_separation_m", "min_obstacle_gap_m", "mean_time_to_goal_s", "path_length_ratio"):
        assert metrics[key] == pytest.approx(getattr(row, key)), key
    assert metrics["episode_time_s"] == pytest.approx(row.episode_time_s)
