"""The benchmark scripts run and report what they claim to measure (no timing thresholds)."""
from __future__ import annotations

import math
from pathlib import Path

from navkit.benchmarks import closed_loop_bench, qp_bench

SHORT = Path(__file__).resolve().parents[2] / "scenarios" / "short_aisle.yaml"


def test_qp_bench_compares_the_same_instances() -> None:
    r = qp_bench.run(n_instances=40, k=12, seed=1)
    table = qp_bench.format_table(r)
    assert "cvxpy" in table and "exact" in table
    # The fast path and the cvxpy reference solved the same instances to the same answers.
    assert r["feasibility_disagreements"] == 0
    assert r["max_abs_diff_fast_vs_cvxpy"] < 1e-5


def test_closed_loop_bench_reports_every_stage() -> None:
    r = closed_loop_bench.run(SHORT, seeds=1)
    assert r["success"] == 1 and r["collisions"] == 0
    assert r["real_time_factor_median"] > 0 and math.isfinite(r["real_time_factor_median"])
    for stage in ("physics", "sensing", "perception", "planning", "control", "safety_filter"):
        assert r["stage_ms_mean"][stage] > 0
    assert "real-time factor" in closed_loop_bench.format_table(r)


def test_online_cbf_bench_compares_every_method_on_the_same_seeds(tmp_path) -> None:
    import pytest

    from navkit.benchmarks import online_cbf_bench
    from navkit.control.online_cbf_policy import PolicyCheckpointError

    swap = online_cbf_bench.DEFAULT_SCENARIOS[0]
    r = online_cbf_bench.run([swap], seeds=2, progress=False)
    methods = r["scenarios"]["circle_swap"]["methods"]
    assert set(methods) == {f"fixed α={a:g}" for a in online_cbf_bench.ALPHA_GRID} | {"online GNN"}
    assert all(m["episodes"] == 2 for m in methods.values())
    assert r["scenarios"]["circle_swap"]["best_fixed"] in methods
    assert r["timing"]["total_us_per_agent"] > 0
    assert "online GNN" in online_cbf_bench.format_table(r)
    with pytest.raises(PolicyCheckpointError, match="not found"):
        online_cbf_bench.run([swap], seeds=1, policy_path=tmp_path / "missing.pt", progress=False)
