"""Strict JSON for metrics and benchmark results.

Python's json writes ``Infinity``/``NaN`` for non-finite floats, which strict parsers
(jq, browsers, most non-Python tools) reject. A metric that has no value (no obstacle
seen: infinite gap; nobody arrived: no time-to-goal) is written as ``null`` instead.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np


def _clean(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _clean(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        value = float(obj)
        return value if math.isfinite(value) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def to_json(obj: Any) -> str:
    """Indented strict JSON; non-finite numbers become null."""
    return json.dumps(_clean(obj), indent=2, allow_nan=False)


METRICS_FILE = "metrics.json"
"""What every run, launch and benchmark names its metrics file."""


def write_metrics(metrics: dict[str, Any], out_dir: Path) -> Path:
    """``out_dir/metrics.json`` (strict JSON), creating the folder; OSError on a full or read-only disk."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / METRICS_FILE
    path.write_text(to_json(metrics) + "\n")
    return path
