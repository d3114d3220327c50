"""``navkit bench wm`` on tiny REAL runs made here: (a) every planner row (and the paper's CEM) on the same
held-out pairs, (b) world-model MPC vs A* + pure pursuit on the same warehouse starts and goals, both behind the
CBF filter, (c) an encoder row labelled from its run; ``--json`` parsed and its fields checked (no timings)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from navkit.benchmarks import wm_bench
from navkit.cli.main import main
from navkit.learning.wm_dataset import collect
from navkit.learning.wm_training import WmTrainConfig, train

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[2]


def tiny_run(base: Path, env: str, feature: str = "patch") -> Path:
    data = base / f"data_{env}"
    if not data.exists():
        collect(env, 3, 12, data, seed=0, progress=False, image_size=32)
    return train(WmTrainConfig(data=str(data), encoder="tiny", feature=feature, history=1, frameskip=2, depth=1,
                               mlp_dim=64, batch_size=8, steps=4, eval_every=0, val_fraction=0.0,
                               out=str(base / "runs"), run_name=f"{env}_{feature}", progress=False)).run_dir


def small_params(tmp_path: Path) -> Path:
    text = (REPO / "scenarios" / "wm" / "world_model_mpc.params.yaml").read_text()
    for key, value in (("horizon", 2), ("samples", 8), ("elites", 2), ("iterations", 1)):
        (line,) = [ln for ln in text.splitlines() if ln.strip().startswith(f"{key}:")]
        text = text.replace(line, f"      {key}: {value}")
    path = tmp_path / "small.params.yaml"
    path.write_text(text)
    return path


def _finite_or_none(value: object) -> bool:
    return value is None or (isinstance(value, (int, float)) and math.isfinite(value))


def test_bench_wm_planners_warehouse_and_encoders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wall, warehouse = tiny_run(tmp_path, "wall"), tiny_run(tmp_path, "warehouse")
    wall_cls = tiny_run(tmp_path, "wall", feature="cls")
    code = main(["bench", "wm", "--run", f"wall={wall}", "--run", f"warehouse={warehouse}",
                 "--encoder-run", f"wall={wall_cls}", "--pairs", "2", "--budget", "2", "--episodes", "1",
                 "--time-limit", "2", "--params", str(small_params(tmp_path)), "--json"])
    assert code == 0
    r = json.loads(capsys.readouterr().out)
    assert r["pairs"] == 2 and r["episodes"] == 1

    # (a) the four planners and the paper's CEM, all on the same pairs with the same budget.
    a = r["planning"]["wall"]
    assert a["step_budget"] == 2 and a["run"] == str(wall) and "random init" in a["encoder"]
    labels = [row["label"] for row in a["rows"]]
    assert labels == [*wm_bench.PLANNER_ROWS, wm_bench.PAPER_ROW]
    for row in a["rows"]:
        assert row["episodes"] == 2 and 0 <= row["successes"] <= 2
        lo, hi = row["success_ci95"]
        assert 0.0 <= lo <= row["success_rate"] <= hi <= 1.0
        assert row["median_plan_s"] > 0 and _finite_or_none(row["sample_steps_per_success"])
        assert row["env_steps"] == 4
    assert a["rows"][-1]["cem"] == {"samples": 300, "elites": 30, "iterations": 10}
    assert a["rows"][0]["cem"] == {"samples": 64, "elites": 8, "iterations": 4}
    assert len({row["mean_start_distance"] for row in a["rows"]}) == 1  # the same pairs for every row

    # (b) both methods on the same starts and goals; the filter keeps both collision-free.
    w = r["warehouse"]
    assert w["episodes"] == 1 and w["time_limit_s"] == 2.0
    assert set(w["methods"]) == {"world_model_mpc", "astar_pure_pursuit"}
    (wm_row,), (astar_row,) = w["per_episode"]["world_model_mpc"], w["per_episode"]["astar_pure_pursuit"]
    assert wm_row["start"] == astar_row["start"] and wm_row["goal"] == astar_row["goal"]
    for m in w["methods"].values():
        for key in ("success_rate", "success_ci95", "collisions", "time_to_goal_s_mean", "filter_interventions",
                    "filter_interventions_per_episode", "median_plan_s", "p90_plan_s"):
            assert key in m, key
        assert m["collisions"] == 0 and m["episodes"] == 1
    wm = w["methods"]["world_model_mpc"]
    assert wm["replans"] > 0 and wm["plans_timed"] == wm["replans"] and wm["p90_plan_s"] >= wm["median_plan_s"] > 0
    assert w["methods"]["astar_pure_pursuit"]["plans_timed"] == 0 and astar_row["replans"] >= 1

    # (c) the CLS-token run, labelled from its train config.
    (enc,) = r["encoders"]
    assert enc["env"] == "wall" and "CLS token" in enc["label"] and enc["episodes"] == 2

    table = wm_bench.format_table(r)
    assert "paper CEM" in table and "A* + pure pursuit" in table and "(c) encoders" in table


def test_bench_wm_refuses_bad_requests_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wall = tiny_run(tmp_path, "wall")
    assert main(["bench", "wm"]) == 2
    assert "--run: give at least one ENV=FOLDER" in capsys.readouterr().err
    assert main(["bench", "wm", "--run", f"pointmaze={wall}"]) == 2  # a wall run named as pointmaze's
    assert "--run" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["bench", "wm", "--run", f"maze={wall}"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ENV must be one of" in err[0]
