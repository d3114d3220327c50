"""Code health, run with the tests: the rooms layer downwards, ruff is clean, and the base,
algorithm and composition rooms type-check. A wrong-way import or a type error fails CI."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TYPED_ROOMS = ("common", "perception", "planning", "control", "stack")


def _run(*argv: str, timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def test_rooms_import_downwards_only() -> None:
    """import-linter contracts in pyproject.toml (layers, no rclpy below ros_ws, no simulator in algorithms)."""
    proc = _run(str(BIN / "lint-imports"), "--no-cache")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "BROKEN" not in proc.stdout and proc.stdout.count("KEPT") >= 4, proc.stdout[-2000:]


def test_ruff_is_clean() -> None:
    proc = _run(str(BIN / "ruff"), "check", "--no-cache", ".")
    assert proc.returncode == 0, proc.stdout[-4000:]


def test_core_rooms_type_check() -> None:
    proc = _run(sys.executable, "-m", "mypy", "--no-incremental", *TYPED_ROOMS, timeout=600.0)
    assert proc.returncode == 0, proc.stdout[-4000:]
