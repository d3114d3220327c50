"""``kind: world_model`` scenario files: every mistake is one line naming the file and the field (exit 2 from
``navkit run``), checked before a model is loaded or a file written."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from navkit.runner.wm_scenario import (DEFAULT_PARAMS, PACKAGE_ROOT, PlanningSettings, WarehouseSettings,
                                       is_world_model_scenario, load_world_model_scenario,
                                       parse_world_model_scenario)
from navkit.sim.scenario import ScenarioError

REPO = Path(__file__).resolve().parents[2]
WM = REPO / "scenarios" / "wm"


@pytest.fixture()
def fake_run(tmp_path: Path) -> Path:
    """A run folder as far as the schema looks (the folder and its checkpoint file exist)."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "best.pt").write_bytes(b"")
    return run


def _doc(run: Path, env: str = "warehouse", **changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"name": "t", "kind": "world_model", "env": env, "run": str(run), "episodes": 3, "seed": 4}
    doc.update(changes)
    return {k: v for k, v in doc.items() if v is not None}


def _error(doc: dict[str, Any], source: str = "wm.yaml") -> str:
    with pytest.raises(ScenarioError) as exc:
        parse_world_model_scenario(doc, source)
    text = str(exc.value)
    assert "\n" not in text and text.startswith(f"{source}: ")
    return text


def test_a_valid_file_reads_with_defaults(fake_run: Path, tmp_path: Path) -> None:
    sc = parse_world_model_scenario(_doc(fake_run), str(tmp_path / "wm.yaml"))
    assert (sc.env, sc.run, sc.checkpoint, sc.episodes, sc.seed) == ("warehouse", str(fake_run.resolve()), "best.pt",
                                                                     3, 4)
    assert sc.warehouse == WarehouseSettings() and sc.warehouse.params == str(DEFAULT_PARAMS)
    from navkit.stack.config import load_stack_config

    shipped = load_stack_config(DEFAULT_PARAMS)  # the shipped file: world-model MPC, then the CBF filter
    assert (shipped.local_controller.name, shipped.safety_filter.name) == ("world_model_mpc", "cbf_lidar")
    assert shipped.local_controller.config.run == ""  # filled in from each scenario's run
    small = parse_world_model_scenario(_doc(fake_run, "wall", planning={"planner": "mppi", "step_budget": 9}),
                                       str(tmp_path / "wm.yaml"))
    assert small.planning == PlanningSettings(planner="mppi", step_budget=9)
    # A relative run is taken from the scenario's folder first.
    path = tmp_path / "rel.yaml"
    path.write_text(yaml.safe_dump(_doc(Path("run"))))
    assert load_world_model_scenario(path).run == str(fake_run.resolve())
    assert is_world_model_scenario(path) and not is_world_model_scenario(REPO / "scenarios" / "short_aisle.yaml")


@pytest.mark.parametrize(("changes", "env", "field"), [
    ({"env": None}, "warehouse", "env: missing required field"),
    ({"env": "maze"}, "warehouse", "env: expected one of pointmaze, wall, warehouse"),
    ({"kind": "swarm"}, "warehouse", "kind: expected 'world_model'"),
    ({"run": None}, "warehouse", "run: missing required field"),
    ({"run": "no/such/run"}, "warehouse", "run: no such run folder"),
    ({"checkpoint": "last.pt"}, "warehouse", "checkpoint: 'last.pt' not found"),
    ({"checkpoint": "../best.pt"}, "warehouse", "checkpoint: expected a file name"),
    ({"checkpoint": "x" * 5000}, "warehouse", "checkpoint: 'xxx"),
    ({"run": "x" * 5000}, "warehouse", "run: no such run folder"),
    ({"episodes": 0}, "warehouse", "episodes: must be >= 1"),
    ({"seed": -1}, "wall", "seed: must be >= 0"),
    ({"seed": 2**40}, "wall", "seed: must be <="),
    ({"bogus": 1}, "warehouse", "bogus: unknown field"),
    ({"goal_ahead_m": [6.0, 2.0]}, "warehouse", "goal_ahead_m: expected [min, max]"),
    ({"goal_ahead_m": [2.0]}, "warehouse", "goal_ahead_m: expected a list of 2 numbers"),
    ({"success_radius_m": -0.5}, "warehouse", "success_radius_m: must be > 0"),
    ({"time_limit_s": "long"}, "warehouse", "time_limit_s: expected a finite number"),
    ({"params": "missing.params.yaml"}, "warehouse", "params: parameter file 'missing.params.yaml' not found"),
    ({"planning": {"horizon": 3}}, "warehouse", "planning: only for env: pointmaze or wall"),
    ({"goal_ahead_m": [2, 6]}, "pointmaze", "goal_ahead_m: only for env: warehouse"),
    ({"params": "x.yaml"}, "wall", "params: only for env: warehouse"),
    ({"planning": {"planner": "a_star"}}, "wall", "planning.planner: expected one of mpc_cem"),
    ({"planning": {"samples": 4, "elites": 5}}, "wall", "planning.elites: must be <= planning.samples"),
    ({"planning": {"horzion": 3}}, "pointmaze", "planning.horzion: unknown field"),
    ({"planning": {"step_budget": 1.5}}, "pointmaze", "planning.step_budget: expected an integer"),
])
def test_each_mistake_names_its_field(fake_run: Path, changes: dict[str, Any], env: str, field: str) -> None:
    doc = _doc(fake_run, env)
    doc.update(changes)
    assert field in _error({k: v for k, v in doc.items() if v is not None})


def _navkit(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "navkit.cli.main", *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=120)


def _one_line(proc: subprocess.CompletedProcess[str], *must_name: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("navkit: error: "), proc.stderr
    for text in must_name:
        assert text in lines[0], (text, lines[0])


def test_navkit_run_refuses_a_bad_file_in_one_line_before_writing(fake_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(_doc(fake_run, "warehouse", success_radius_m=9.0)))
    _one_line(_navkit("run", bad, "--out", out), str(bad), "success_radius_m: must be <= 2")
    wall = tmp_path / "wall.yaml"
    wall.write_text(yaml.safe_dump(_doc(fake_run, "wall")))
    _one_line(_navkit("run", wall, "--out", out, "--params", DEFAULT_PARAMS), str(wall), "--params: only for env")
    _one_line(_navkit("run", wall, "--out", out, "--record", tmp_path / "b.mcap"), "--record")
    # The schema passes, the checkpoint does not: still one line, naming the checkpoint file and field.
    _one_line(_navkit("run", wall, "--out", out), "best.pt", "checkpoint")
    assert not out.exists()


def test_shipped_files_name_their_shipped_runs_and_params() -> None:
    for name, env in (("pointmaze.yaml", "pointmaze"), ("warehouse_goal_image.yaml", "warehouse")):
        sc = load_world_model_scenario(WM / name)
        assert sc.env == env and Path(sc.run) == (PACKAGE_ROOT / "control" / "policies" / f"wm_{env}").resolve()
        if env == "warehouse":
            assert sc.warehouse.params == str((WM / "world_model_mpc.params.yaml").resolve())


NASTY: list[Any] = [None, True, -1, 0, 1, 2**63, 10**400, -1e308, float("nan"), float("inf"), "", "x", "x" * 5000,
                    [], {}, [[]], [1, 2, 3], {"a": 1}, [0.0, 0.0], [2.0, 6.0], -0.5, 0.001, "mpc_cem", "warehouse"]
FIELDS = ["name", "kind", "env", "run", "checkpoint", "episodes", "seed", "description", "goal_ahead_m", "params",
          "time_limit_s", "success_radius_m", "planning", "planning.planner", "planning.step_budget",
          "planning.horizon", "planning.samples", "planning.elites", "planning.proprio_weight", "extra"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_fuzzed_files_load_or_name_the_field(fake_run: Path, data: st.DataObject) -> None:
    env = data.draw(st.sampled_from(["warehouse", "wall"]))
    doc = _doc(fake_run, env)
    if env == "wall":
        doc["planning"] = {"planner": "mpc_cem", "horizon": 3}
    for _ in range(data.draw(st.integers(1, 3))):
        key, value = data.draw(st.sampled_from(FIELDS)), data.draw(st.sampled_from(NASTY))
        if key.startswith("planning."):
            if not isinstance(doc.get("planning"), dict):
                doc["planning"] = {}
            doc["planning"][key.split(".", 1)[1]] = value
        else:
            doc[key] = value
    try:
        parse_world_model_scenario(doc, "fuzz.yaml")
    except ScenarioError as exc:
        assert str(exc).startswith("fuzz.yaml: ") and "\n" not in str(exc)
