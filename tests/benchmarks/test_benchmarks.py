"""The benchmark scripts run and report what they claim to measure (no timing thresholds)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

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

    from navkit.benchmarks import online_cbf_bench as ob
    from navkit.control.online_cbf_policy import OnlineCbfPolicy, PolicyCheckpointError

    policy = OnlineCbfPolicy().save(tmp_path / "p.pt")  # untrained: what matters here is the bookkeeping
    rows = ob.parse_rows([ob.MULTI / "circle_swap.yaml"], [3])
    r = ob.run(rows, seeds=2, policy_path=policy, rates_hz=(10.0, 50.0), rotations_deg=(180.0,), tuning_seeds=2,
               progress=False, timing_agents=6)
    entry = r["rows"]["circle_swap ×3"]
    assert entry["num_agents"] == 3 and set(entry["rates"]) == {"10", "50"}
    for rate in entry["rates"].values():
        methods = rate["methods"]
        assert set(methods) == {f"fixed α={a:g}" for a in ob.ALPHA_GRID} | {ob.TUNED, ob.RULE, ob.ONLINE}
        assert all(m["episodes"] == 2 for m in methods.values())
        assert rate["best_fixed"] in methods
        lo, hi = methods[ob.ONLINE]["success_ci95"]
        assert 0.0 <= lo <= methods[ob.ONLINE]["success_rate"] <= hi <= 1.0
    assert entry["tuned_alpha"] in ob.ALPHA_GRID and set(entry["rotated"]) == {"180"}
    assert r["timing"]["num_agents"] == 6 and r["timing"]["total_us_per_agent"] > 0
    checks = r["targets"]["checks"]
    assert len([c for c in checks if "rate_hz" in c]) == 2 and len([c for c in checks if "rotation_deg" in c]) == 1
    table = ob.format_table(r)
    assert "priority rule" in table and "targets (online policy)" in table
    with pytest.raises(PolicyCheckpointError, match="not found"):
        ob.run(rows, seeds=1, policy_path=tmp_path / "missing.pt", progress=False)


def test_wilson_interval_and_same_rate_check() -> None:
    from navkit.benchmarks.online_cbf_bench import same_rate, wilson

    lo, hi = wilson(50, 50)
    assert hi == 1.0 and 0.92 < lo < 0.94  # 50/50 still leaves room below 1
    lo, hi = wilson(0, 50)
    assert lo == 0.0 and 0.06 < hi < 0.08

    def m(p: float) -> dict:
        return {"success_rate": p, "episodes": 50}

    assert same_rate(m(1.0), m(0.98)) and not same_rate(m(1.0), m(0.5)) and same_rate(m(0.0), m(0.0))


def test_env_bench_reports_every_env() -> None:
    from navkit.benchmarks import env_bench

    r = env_bench.run(steps=20, scenes=2, agents=4)
    assert r["navigation"]["env_steps"] == 20 and r["navigation"]["env_steps_per_s"] > 0
    assert r["swarm"]["agent_steps_per_s"] > 0 and r["swarm"]["single_scene_agent_steps_per_s"] > 0
    assert r["warehouse_explore"]["env_steps_per_s"] > 0 and r["warehouse_explore"]["mujoco_env_steps_per_s"] > 0
    table = env_bench.format_table(r)
    assert "agent-steps/s" in table and "warehouse exploration VecEnv" in table


def test_rnd_agv_bench_statistics_and_plot(tmp_path) -> None:
    """The bench's own arithmetic (training runs are long; the trainer has its own tests)."""
    from navkit.benchmarks import rnd_agv_bench as rb

    curve = [{"env_steps": 1e5, "success": 0.3}, {"env_steps": 2e5, "success": 0.85}, {"env_steps": 3e5, "success": 0.7}]
    assert rb.steps_to(curve) == 2e5 and math.isnan(rb.steps_to(curve, 0.9))
    mean, half = rb.band(np.array([[0.0, 1.0], [1.0, 1.0], [0.5, 1.0]]))
    np.testing.assert_allclose(mean, [0.5, 1.0])
    assert half[1] == 0.0 and 1.2 < half[0] < 1.3  # t(0.975, 2) * 0.5 / sqrt(3)
    runs = {"ppo": [curve, curve], "ppo_rnd": [curve]}
    png = rb.plot_curves(runs, tmp_path / "c.png")
    assert png.stat().st_size > 1000
    t = rb.throughput(num_envs=4, steps=5)
    assert t["env_steps_per_s"] > 0 and t["env_steps_per_s_unfiltered"] > 0 and t["training_steps_per_s"] > 0


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
    rows = online_cbf_bench.parse_rows([explicit], [8])  # an explicit layout keeps its own team
    r = online_cbf_bench.run(rows, seeds=1, policy_path=None, rates_hz=(20.0,), tuning_seeds=1, progress=False)
    assert r["rows"]["pair"]["num_agents"] == 2 and r["timing"]["total_us_per_agent"] > 0
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: b\nkind: swarm\nbounds: [-4, -4, 4, 4]\nagents: {count: 2, layout: {type: spiral}}\n")
    with pytest.raises(ScenarioError, match="spiral"):
        online_cbf_bench.run([online_cbf_bench.Row(explicit, None), online_cbf_bench.Row(broken, None)], seeds=1,
                             policy_path=None, progress=False)
