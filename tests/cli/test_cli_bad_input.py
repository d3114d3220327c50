"""Issue 6: every bad input is exit 2 with one line naming file and field (or option); output
faults never cost what was measured. ``main()`` is called in-process (fast); the subprocess
view of the same errors is in test_cli.py."""
from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import Any
from collections.abc import Callable

import pytest
import yaml

from navkit.cli import main as cli

REPO = Path(__file__).resolve().parents[2]
SHORT_AISLE = REPO / "scenarios" / "short_aisle.yaml"
SWAP = REPO / "scenarios" / "multi" / "circle_swap.yaml"
PARAMS = REPO / "ros_ws" / "config" / "navkit.params.yaml"
QUICK = ("--time-limit", "1.0", "--video", "none", "--no-progress")


pytestmark = pytest.mark.usefixtures("in_tmp_dir")  # default output folders land in tmp, not the checkout


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as exc:  # argparse's own exit (bad option)
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line(code: int, err: str, *names: str) -> str:
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for name in names:
        assert name in lines[0], f"{name!r} not in {lines[0]!r}"
    return lines[0]


def _scenario(tmp_path: Path, **changes: Any) -> Path:
    doc = yaml.safe_load(SHORT_AISLE.read_text())
    doc.update(changes)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _text(tmp_path: Path, name: str, content: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


BAD_INPUTS: dict[str, tuple[Callable[[Path], list[Any]], tuple[str, ...]]] = {
    "scenario UTF-16": (lambda t: ["run", _text(t, "u16.yaml", SHORT_AISLE.read_text().encode("utf-16"))],
                        ("u16.yaml", "UTF-16")),
    "scenario not UTF-8": (lambda t: ["run", _text(t, "latin.yaml", b"name: caf\xe9\n")], ("latin.yaml", "not UTF-8")),
    "scenario seed -1": (lambda t: ["run", _scenario(t, seed=-1)], ("s.yaml", "seed", ">= 0")),
    "scenario 10**400": (lambda t: ["run", _scenario(t, time_limit_s=10**400)], ("time_limit_s", "too large")),
    "scenario 20 km map": (lambda t: ["run", _scenario(t, map={"bounds": [0, 0, 900, 900]})], ("map.bounds", "200 m")),
    "scenario 5e7 rays": (lambda t: ["run", _scenario(t, sensors={"lidar": {"num_rays": 50_000_000}})],
                          ("sensors.lidar.num_rays", "10,000")),
    "scenario a directory": (lambda t: ["run", t], ("is a directory",)),
    "params duplicate alpha": (lambda t: ["run", SHORT_AISLE, "--params", _text(
        t, "dup.yaml", PARAMS.read_text().replace("alpha: 1.0", "alpha: 1.0\n      alpha: 50.0"))],
                               ("dup.yaml", "duplicate key 'alpha'")),
    "params rate_hz 0": (lambda t: ["run", SHORT_AISLE, "--params", _text(
        t, "r.yaml", PARAMS.read_text().replace("rate_hz: 50.0", "rate_hz: 0"))], ("r.yaml", "rate_hz")),
    "params 10**400": (lambda t: ["run", SHORT_AISLE, "--params", _text(
        t, "b.yaml", PARAMS.read_text().replace("alpha: 1.0", "alpha: " + "9" * 400))], ("b.yaml", "safety_filter.alpha")),
    "params planner grid too fine": (lambda t: ["run", _scenario(t, map={"bounds": [0, 0, 200, 100]}), "--params", _text(
        t, "g.yaml", PARAMS.read_text().replace("resolution_m: 0.05", "resolution_m: 0.01"))],
                                     ("resolution_m", "limit")),
    "params planner resolution below its bound": (lambda t: ["run", SHORT_AISLE, "--params", _text(
        t, "g.yaml", PARAMS.read_text().replace("resolution_m: 0.05", "resolution_m: 0.0005"))],
                                                  ("resolution_m", "[0.01, 1]")),
    "--agents 100000": (lambda t: ["run", SWAP, "--agents", "100000"], ("--agents", "1,024")),
    "--agents 0": (lambda t: ["run", SWAP, "--agents", "0"], ("--agents",)),
    "bench qp --n 0": (lambda t: ["bench", "qp", "--n", "0"], ("--n",)),
    "bench --seeds -1": (lambda t: ["bench", "online-cbf", "--seeds", "-1"], ("--seeds",)),
    "bench --seeds 0": (lambda t: ["bench", "closed-loop", "--seeds", "0"], ("--seeds",)),
    "bench rnd-agv --policy missing": (lambda t: ["bench", "rnd-agv", "--policy", t / "none.pt"], ("none.pt",)),
    "bench rnd-agv --method": (lambda t: ["bench", "rnd-agv", "--method", "dqn"], ("--method", "dqn")),
    "--video v.txt": (lambda t: ["run", SHORT_AISLE, "--video", "v.txt", "--out", t / "o"], ("v.txt", "--video")),
    "--time-limit nan": (lambda t: ["run", SHORT_AISLE, "--time-limit", "nan"], ("--time-limit",)),
    "--time-limit inf": (lambda t: ["run", SHORT_AISLE, "--time-limit", "inf"], ("--time-limit",)),
    "--time-limit 0": (lambda t: ["run", SHORT_AISLE, "--time-limit", "0"], ("--time-limit",)),
    "--time-limit -1": (lambda t: ["run", SHORT_AISLE, "--time-limit", "-1"], ("--time-limit",)),
    "--seed -1": (lambda t: ["run", SHORT_AISLE, "--seed", "-1"], ("--seed",)),
    "--out is a file": (lambda t: ["run", SHORT_AISLE, "--out", _text(t, "file", "x"), *QUICK],
                        ("--out", "not a folder")),
    "--record exists": (lambda t: ["run", SHORT_AISLE, "--record", (t / "bag").mkdir() or t / "bag.mcap",
                                   "--out", t / "o", *QUICK], ("--record", "already exists")),
    "train config bad value": (lambda t: ["train", "online-cbf", "--config", _text(t, "c.yaml", "population: 3\n")],
                               ("c.yaml", "population")),
    "train config duplicate": (lambda t: ["train", "online-cbf", "--config", _text(t, "d.yaml", "seed: 1\nseed: 2\n")],
                               ("d.yaml", "duplicate key 'seed'")),
    "launch eval bomb": (lambda t: ["launch", _text(t, "e.launch.yaml", "launch:\n- let: {name: x, value: \"$(eval "
                                                    "'9**9**9')\"}\n"), "--print"], ("e.launch.yaml", "exponent")),
    "launch duplicate key": (lambda t: ["launch", _text(t, "k.launch.yaml", "launch: []\nlaunch: []\n"), "--print"],
                             ("k.launch.yaml", "duplicate key 'launch'")),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_line_and_exit_2(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    build, names = BAD_INPUTS[case]
    code, _, err = run_main(build(tmp_path), capsys)
    assert_one_line(code, err, *names)
    assert not (tmp_path / "out").exists()  # refused before anything was written


# ------------------------------------------------------------------ output faults (issue 6, defect 8)


def test_a_run_that_diverges_still_writes_its_metrics_marked_aborted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from navkit.sim.mujoco_backend import MujocoRobot
    from navkit.common.errors import SimulationDiverged

    real_advance = MujocoRobot.advance

    def advance(self: MujocoRobot, duration_s: float) -> None:
        if self.now() > 0.5:
            raise SimulationDiverged("physics produced NaN (injected)")
        real_advance(self, duration_s)

    monkeypatch.setattr(MujocoRobot, "advance", advance)
    code, out, err = run_main(["run", SHORT_AISLE, "--out", tmp_path, *QUICK], capsys)
    assert code == 2
    assert "goals reached" in out  # the table is printed
    assert "injected" in err and "aborted" in err and "Traceback" not in err
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["aborted"] is True and "injected" in metrics["abort_reason"]
    assert 0.5 <= metrics["sim_time_s"] < 0.6


def test_a_full_disk_while_recording_ends_the_bag_not_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from navkit.runner.bag_recorder import BagRecorder

    calls = {"n": 0}
    real = BagRecorder.write_odom

    def write_odom(self: BagRecorder, odom: Any, topic: str = "/odom") -> None:
        calls["n"] += 1
        if calls["n"] > 10:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(self, odom, topic)

    monkeypatch.setattr(BagRecorder, "write_odom", write_odom)
    bag = tmp_path / "run.mcap"
    code, out, err = run_main(["run", SHORT_AISLE, "--out", tmp_path / "o", "--record", bag, *QUICK], capsys)
    assert code == 1  # the run itself finished (1 s is too short to reach the goals)
    assert "No space left" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()  # no half bag blocking a retry
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert "recording stopped" in metrics["recording_error"]
    assert metrics["sim_time_s"] >= 1.0


def test_an_unwritable_artefact_keeps_metrics_and_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    from navkit.runner import outputs

    def full_disk(*_: Any, **__: Any) -> Path:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(outputs, "write_trajectory_plot", full_disk)
    code, out, err = run_main(["run", SHORT_AISLE, "--out", tmp_path, *QUICK], capsys)
    assert code == 2
    assert "goals reached" in out
    assert_one_line(code, err, "trajectory.png", "No space left")
    assert json.loads((tmp_path / "metrics.json").read_text())["files"] == ["metrics.json", "trajectory.png"]


def test_reusing_out_replaces_the_previous_runs_files_and_says_so(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = run_main(["run", SHORT_AISLE, "--out", tmp_path, "--time-limit", "0.5", "--no-progress",
                           "--video", "first.gif", "--video-fps", "8"], capsys)
    assert code == 1 and (tmp_path / "first.gif").is_file()
    code, _, err = run_main(["run", SHORT_AISLE, "--out", tmp_path, "--time-limit", "0.5", "--no-progress",
                             "--video", "none"], capsys)
    assert code == 1
    assert "held an earlier run" in err and "first.gif" in err
    assert not (tmp_path / "first.gif").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json", "trajectory.png"]


def test_a_swarm_run_checks_its_output_folder_first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = _text(tmp_path, "file", "x")
    code, _, err = run_main(["run", SWAP, "--out", blocker, "--alpha", "1.0", *QUICK], capsys)
    assert_one_line(code, err, "--out", "not a folder")


def _swarm_file(t: Path, extra: str) -> Path:
    return _text(t, "sw.yaml", SWAP.read_text() + extra)


def _launch_file(t: Path, body: str) -> Path:
    return _text(t, "l.launch.yaml", "launch:\n" + body)


# Found by the malformed-input harness (tracebacks, or bad values silently accepted).
MORE_BAD_INPUTS: dict[str, tuple[Callable[[Path], list[Any]], tuple[str, ...]]] = {
    "robot.model a list": (lambda t: ["run", _scenario(t, robot={"model": ["a"], "start": [1.0, 1.0, 0.0]})],
                           ("robot.model",)),
    "random obstacle region reversed": (lambda t: ["run", _swarm_file(
        t, "random_obstacles: {count: 3, region: [3, 3, -3, -3]}\n"), "--alpha", "1"], ("random_obstacles.region",)),
    "planner resolution 1e6": (lambda t: ["run", SHORT_AISLE, "--params", _text(
        t, "r.yaml", PARAMS.read_text().replace("resolution_m: 0.05", "resolution_m: 1000000.0"))], ("resolution_m",)),
    "cbf lookahead 0": (lambda t: ["run", SHORT_AISLE, "--params", _text(
        t, "l.yaml", PARAMS.read_text().replace("lookahead_m: 0.1", "lookahead_m: 0.0"))], ("lookahead_m", "> 0")),
    "cbf v_max 0": (lambda t: ["run", SHORT_AISLE, "--params", _text(
        t, "v.yaml", PARAMS.read_text().replace("v_max: 0.8", "v_max: 0.0"))], ("v_max",)),
    "dotted and nested key": (lambda t: ["run", SHORT_AISLE, "--params", _text(
        t, "d.yaml", PARAMS.read_text().replace("filter_on_scan: true", "filter_on_scan: true\n    safety_filter.alpha: 2.0")
    )], ("safety_filter.alpha", "given twice")),
    "use_sim_time a string": (lambda t: ["run", SHORT_AISLE, "--params", _text(
        t, "u.yaml", PARAMS.read_text().replace("planner:\n  ros__parameters:\n", "planner:\n  ros__parameters:\n    use_sim_time: \"true\"\n", 1))], ("use_sim_time",)),
    "unknown robot backend": (lambda t: ["run", SHORT_AISLE, "--params", _text(
        t, "b.yaml", PARAMS.read_text().replace("backend: mujoco", "backend: gazebo"))], ("backend", "mujoco")),
    "--params on a swarm": (lambda t: ["run", SWAP, "--params", PARAMS], ("--params",)),
    "policy file is text": (lambda t: ["run", SWAP, "--policy", _text(t, "p.pt", "hello")], ("p.pt", "not a torch")),
    "train iterations 0": (lambda t: ["train", "online-cbf", "--config", _text(t, "i.yaml", "iterations: 0\n")],
                           ("iterations",)),
    "train run_dir is a file": (lambda t: ["train", "online-cbf", "--config", _text(
        t, "r.yaml", f"run_dir: {_text(t, 'busy', 'x')}\n")], ("run_dir", "not a folder")),
    "train output is a folder": (lambda t: ["train", "online-cbf", "--config", _text(
        t, "o.yaml", f"output: {t}\nrun_dir: {t / 'run'}\n")], ("output", "folder")),
    "train rnd-agv unknown key": (lambda t: ["train", "rnd-agv", "--config", _text(
        t, "r.yaml", "lerning_rate: 0.1\n")], ("lerning_rate", "unknown")),
    "train rnd-agv one-sample minibatches": (lambda t: ["train", "rnd-agv", "--config", _text(
        t, "m.yaml", "num_envs: 2\nn_steps: 4\nminibatches: 8\n")], ("minibatches", ">= 2")),
    "train rnd-agv bad family": (lambda t: ["train", "rnd-agv", "--config", _text(
        t, "f.yaml", "family: maze\n")], ("family", "maze")),
    "train rnd-agv with online-cbf options": (lambda t: ["train", "online-cbf", "--algo", "ppo"], ("--algo",)),
    "scenario params file missing": (lambda t: ["run", _text(
        t, "s.yaml", "map: {bounds: [0, 0, 5, 5]}\nrobot: {start: [1, 1, 0]}\ngoals: [[4, 4]]\nparams: none.yaml\n")],
        ("params", "none.yaml")),
    "scenario params name too long": (lambda t: ["run", _scenario(t, params="p" * 5000)], ("params", "not found")),
    "train family name too long": (lambda t: ["train", "online-cbf", "--config", _text(
        t, "l.yaml", "families: [" + "f" * 5000 + "]\n")], ("families[0]", "not found")),
    "train missing selection family": (lambda t: ["train", "online-cbf", "--config", _text(
        t, "e.yaml", "eval_every: 0\nselection_families: [nope.yaml]\n")], ("selection_families[0]", "not found")),
    "launch unbalanced quote": (lambda t: ["launch", _launch_file(
        t, "- node: {pkg: navkit, exec: navkit_planner, args: \"--foo 'bar\"}\n"), "--print"], ("args", "quotation")),
    "launch nested substitutions": (lambda t: ["launch", _launch_file(
        t, "- let: {name: x, value: '" + "$(var " * 1200 + "x" + ")" * 1200 + "'}\n"), "--print"], ("nested",)),
    "launch node name with a space": (lambda t: ["launch", _launch_file(
        t, "- node: {pkg: navkit, exec: navkit_planner, name: my node}\n"), "--print"], ("name", "not a valid ROS")),
    "launch endless $(": (lambda t: ["launch", _launch_file(t, "- let: {name: x, value: '" + "$(" * 4000 + "'}\n"),
                                     "--print"], ("l.launch.yaml",)),
    "launch --stop-timeout nan": (lambda t: ["launch", _launch_file(t, "[]\n"), "--stop-timeout", "nan"],
                                  ("--stop-timeout",)),
}


@pytest.mark.parametrize("case", sorted(MORE_BAD_INPUTS))
def test_more_bad_input_is_one_line_and_exit_2(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    build, names = MORE_BAD_INPUTS[case]
    code, _, err = run_main(build(tmp_path), capsys)
    line = assert_one_line(code, err, *names)
    assert len(line) < 400
