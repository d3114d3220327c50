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


def test_env_bench_reports_both_envs() -> None:
    from navkit.benchmarks import env_bench

    r = env_bench.run(steps=20, scenes=2, agents=4)
    assert r["navigation"]["env_steps"] == 20 and r["navigation"]["env_steps_per_s"] > 0
    assert r["swarm"]["agent_steps_per_s"] > 0 and r["swarm"]["single_scene_agent_steps_per_s"] > 0
    assert "agent-steps/s" in env_bench.format_table(r)


def test_online_cbf_bench_takes_an_explicit_layout_and_checks_every_file_first(tmp_path) -> None:
    """Issue 10's crash: an explicit start/goal list could not be resized for the timing row,
    and the error came after every method had run."""
    import pytest

    from navkit.benchmarks import online_cbf_bench
    from navkit.sim.scenario import ScenarioError

    explicit = tmp_path / "pair.yaml"
    explicit.write_text("name: pair\nkind: swarm\nbounds: [-4, -4, 4, 4]\ntime_limit_s: 8.0\n"
                        "agents: {count: 2, layout: {type: explicit, starts: [[-2, 0], [2, 0.3]], "
                        "goals: [[2, 0], [-2, 0.3]]}}\n")
    r = online_cbf_bench.run([explicit], seeds=1, progress=False)
    assert r["scenarios"]["pair"]["num_agents"] == 2 and r["timing"]["total_us_per_agent"] > 0
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: b\nkind: swarm\nbounds: [-4, -4, 4, 4]\nagents: {count: 2, layout: {type: spiral}}\n")
    with pytest.raises(ScenarioError, match="spiral"):
        online_cbf_bench.run([explicit, broken], seeds=1, progress=False)
