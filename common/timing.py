"""Stage timing, progress over simulated time, and frame scheduling: one of each for every runner.

The single-robot runner, the swarm runner, the trainers and the benchmarks all report
per-stage milliseconds with the same keys (``mean``, ``p50``, ``p99``, ``max``, ``calls``)
and show the same progress bar, so their outputs can be compared and parsed alike.
"""
from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import numpy as np

TIMING_KEYS = ("mean", "p50", "p99", "max", "calls")


def summarize_ms(samples_s: Iterable[float]) -> dict[str, float]:
    """Milliseconds statistics of durations given in seconds (rounded to 0.1 µs)."""
    a = 1e3 * np.asarray(list(samples_s), dtype=float)
    if a.size == 0:
        return {"mean": 0.0, "p50": 0.0, "p99": 0.0, "max": 0.0, "calls": 0}
    return {"mean": round(float(a.mean()), 4), "p50": round(float(np.median(a)), 4),
            "p99": round(float(np.percentile(a, 99)), 4), "max": round(float(a.max()), 4), "calls": int(a.size)}


class StageTimer:
    """Wall time per named stage; ``lap`` records since a start point and returns the new one."""

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = defaultdict(list)

    def lap(self, stage: str, since: float) -> float:
        now = time.perf_counter()
        self.samples[stage].append(now - since)
        return now

    def add(self, stage: str, seconds: float) -> None:
        self.samples[stage].append(seconds)

    def summary(self, order: Iterable[str] | None = None) -> dict[str, dict[str, float]]:
        """``{stage: {mean, p50, p99, max, calls}}`` in milliseconds, stages in ``order`` when given."""
        names = list(order) if order is not None else list(self.samples)
        return {name: summarize_ms(self.samples[name]) for name in names if self.samples.get(name)}


class FrameSchedule:
    """When to grab a video frame: every ``1/fps`` simulated seconds (never when fps is 0)."""

    def __init__(self, fps: float) -> None:
        self.period = 1.0 / fps if fps > 0 else None
        self._next = 0.0

    def due(self, now: float) -> bool:
        if self.period is None or now < self._next - 1e-9:
            return False
        self._next += self.period
        return True


class _NoBar:
    n = 0.0
    total = 0.0

    def update(self, _: float) -> None:
        pass

    def set_postfix_str(self, _: str, refresh: bool = True) -> None:
        pass

    def close(self) -> None:
        pass


def sim_time_bar(total_s: float, desc: str, enabled: bool) -> Any:
    """A tqdm bar over simulated seconds (or a do-nothing stand-in when disabled)."""
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=round(total_s, 1), unit="sim s", desc=desc,
                bar_format="{l_bar}{bar}| {n:.1f}/{total:.0f} sim s [{elapsed}<{remaining}{postfix}]")
