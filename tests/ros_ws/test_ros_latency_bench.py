"""The ROS 2 latency benchmark runs end to end (structure and sanity only: no timing thresholds)."""
from __future__ import annotations

import math

import pytest

from navkit.benchmarks import ros_latency_bench

pytestmark = pytest.mark.ros


def test_ros_latency_bench_runs_and_reports() -> None:
    result = ros_latency_bench.run(n_scans=40, rate_hz=50.0)
    warmup = ros_latency_bench.WARMUP
    assert result["lost"] == 0
    assert result["count"] == 40 - warmup == len(result["latencies_ms"])
    assert all(math.isfinite(x) and x > 0 for x in result["latencies_ms"])
    assert 0 < result["median_ms"] <= result["p90_ms"] <= result["p99_ms"] <= result["max_ms"]
    assert result["target_median_ms"] == 3.0 and isinstance(result["passed"], bool)
    # The filter answered each scan with a real (finite, non-negative) command, not a refusal.
    assert 0.0 < result["v_out_median"] <= 0.5 + 1e-9
    table = ros_latency_bench.format_table(result)
    assert "scan -> cmd_vel" in table and "median ms" in table and ("PASS" in table or "FAIL" in table)


def test_ros_latency_bench_rejects_too_few_scans() -> None:
    with pytest.raises(ValueError, match="n_scans"):
        ros_latency_bench.run(n_scans=ros_latency_bench.WARMUP)
