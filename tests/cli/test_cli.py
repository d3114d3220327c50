"""``navkit`` as a user runs it: a subprocess, exit codes, files written, one-line errors."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SHORT_AISLE = REPO / "scenarios" / "short_aisle.yaml"
PARAMS = REPO / "ros_ws" / "config" / "navkit.params.yaml"
RUN_OPTIONS = ("--params", "--out", "--seed", "--time-limit", "--video", "--video-fps", "--record",
               "--no-progress", "--json")


def navkit(*args: str | Path, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "navkit.cli.main", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def _assert_one_line_error(proc: subprocess.CompletedProcess[str], *must_name: str) -> str:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    line = lines[0]
    assert line.startswith("navkit: error: ")
    for text in must_name:
        assert text in line, f"{text!r} not in {line!r}"
    return line


def test_run_short_aisle_writes_metrics_and_plot(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = navkit("run", "scenarios/short_aisle.yaml", "--out", out, "--video", "none", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["scenario"] == "short_aisle" and metrics["success"] is True and metrics["collisions"] == 0
    assert (out / "trajectory.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob("*.gif")) and not list(out.glob("*.mp4"))
    assert "goals reached" in proc.stdout and str(out / "metrics.json") in proc.stdout


def test_run_writes_an_animated_gif(tmp_path: Path) -> None:
    from PIL import Image

    out = tmp_path / "out"
    proc = navkit("run", SHORT_AISLE, "--out", out, "--video", "trajectory.gif", "--video-fps", "2", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    gif = out / "trajectory.gif"
    with Image.open(gif) as im:
        assert im.format == "GIF" and im.n_frames > 1
        assert im.size[0] > im.size[1]  # the 8 m x 4 m map is wider than tall


def test_json_seed_and_time_limit_overrides(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = navkit("run", SHORT_AISLE, "--out", out, "--video", "none", "--json", "--seed", "5", "--time-limit", "1")
    assert proc.returncode == 1, proc.stderr  # goals not reached in 1 s: exit 1, not 2
    metrics = json.loads(proc.stdout)
    assert metrics["seed"] == 5 and metrics["success"] is False
    assert metrics["sim_time_s"] == pytest.approx(1.0, abs=0.03)
    assert json.loads((out / "metrics.json").read_text()) == metrics


def _scenario(tmp_path: Path, name: str, **changes: object) -> Path:
    doc = yaml.safe_load(SHORT_AISLE.read_text())
    for key, value in changes.items():
        doc[key] = value
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc))
    return path


def test_goal_inside_shelf_is_one_line_error(tmp_path: Path) -> None:
    path = _scenario(tmp_path, "inside.yaml", goals=[[6.8, 1.0], [4.0, 2.0]])
    _assert_one_line_error(navkit("run", path, "--out", tmp_path / "o", "--video", "none"),
                           str(path), "goals[1]", "'S1'")
    assert not (tmp_path / "o").exists()  # nothing ran, nothing written


def test_missing_field_is_one_line_error(tmp_path: Path) -> None:
    path = _scenario(tmp_path, "nostart.yaml", robot={"model": "agv_diff_drive"})
    _assert_one_line_error(navkit("run", path, "--out", tmp_path / "o"), str(path), "robot.start", "missing")


def test_unknown_backend_is_one_line_error(tmp_path: Path) -> None:
    path = _scenario(tmp_path, "backend.yaml", backend="gazebo")
    _assert_one_line_error(navkit("run", path, "--out", tmp_path / "o"), str(path), "backend", "gazebo")


def test_malformed_yaml_is_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: broken\nmap: {bounds: [0, 0, 8, 4]\ngoals: [[1, 1]]\n")
    _assert_one_line_error(navkit("run", path, "--out", tmp_path / "o"), str(path), "line ", "malformed YAML")


def test_missing_scenario_file_is_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "ghost.yaml"
    _assert_one_line_error(navkit("run", path, "--out", tmp_path / "o"), str(path), "not found")


def test_params_unknown_key_is_one_line_error(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(PARAMS.read_text().replace("alpha: 1.0", "alpha: 1.0\n      alhpa: 3.0"))
    proc = navkit("run", SHORT_AISLE, "--params", params, "--out", tmp_path / "o", "--video", "none")
    _assert_one_line_error(proc, str(params), "safety_filter.alhpa")


def test_params_missing_file_is_one_line_error(tmp_path: Path) -> None:
    params = tmp_path / "nope.params.yaml"
    proc = navkit("run", SHORT_AISLE, "--params", params, "--out", tmp_path / "o")
    _assert_one_line_error(proc, str(params))


def test_run_help_mentions_every_option() -> None:
    proc = navkit("run", "--help")
    assert proc.returncode == 0 and proc.stderr == ""
    for option in RUN_OPTIONS:
        assert option in proc.stdout, option
    assert "scenario" in proc.stdout and "Exit code" in proc.stdout


def test_demo_help_has_the_same_options() -> None:
    proc = navkit("demo", "--help")
    assert proc.returncode == 0
    for option in RUN_OPTIONS:
        assert option in proc.stdout, option


def test_top_level_help_lists_commands() -> None:
    proc = navkit("--help")
    assert proc.returncode == 0 and proc.stderr == ""
    for command in ("demo", "run", "launch", "bench"):
        assert command in proc.stdout, command
    assert "--record" in proc.stdout  # the examples show recording


def test_launch_help() -> None:
    proc = navkit("launch", "--help")
    assert proc.returncode == 0, proc.stderr
    assert "usage: navkit launch" in proc.stdout and "name:=value" in proc.stdout


def test_no_command_is_a_usage_error() -> None:
    proc = navkit()
    assert proc.returncode == 2 and "usage:" in proc.stderr and "Traceback" not in proc.stderr


def test_train_rnd_agv_writes_a_policy_the_controller_loads(tmp_path: Path) -> None:
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(f"run_dir: {tmp_path / 'run'}\nnum_envs: 4\nn_steps: 32\nn_epochs: 1\nminibatches: 2\n"
                   "eval_every_steps: 128\neval_layouts: 2\nprogress_bar: false\n")
    proc = navkit("train", "rnd-agv", "--algo", "ppo_rnd", "--config", cfg, "--steps", "256", "--seed", "3",
                  timeout=120)
    assert proc.returncode == 0, proc.stderr
    from navkit.control.learned_controller import load_agv_policy

    _, spec, meta = load_agv_policy(tmp_path / "run" / "policy.pt")
    assert meta["algo"] == "ppo_rnd" and meta["seed"] == 3 and spec.num_rays == 24
    assert (tmp_path / "run" / "curve.csv").read_text().count("\n") == 3  # header + 2 evaluations
    # Progress lines go to stderr: `navkit bench rnd-agv --json` trains in-process and its stdout must stay JSON.
    assert "held-out success" in proc.stderr and "held-out success" not in proc.stdout


def test_the_shipped_learned_policy_drives_the_mujoco_agv_through_an_unseen_warehouse(tmp_path: Path) -> None:
    """Issue 11's deployment: the scenario's parameter file picks local_controller rl_policy (the shipped policy),
    its commands pass through the CBF filter, and the robot visits every stop of a held-out warehouse tour
    (the first hidden behind a shelf) without touching anything."""
    out = tmp_path / "out"
    proc = navkit("run", "scenarios/rnd/warehouse_explore.yaml", "--out", out, "--video", "none", "--no-progress",
                  timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["goals_reached"] == 3 and metrics["collisions"] == 0, metrics
    assert metrics["filter_interventions"] > 0  # the filter was in the loop, not bypassed
