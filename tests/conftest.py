"""Shared test set-up: headless rendering and loopback-only DDS even when pytest is run directly,
and fixtures several rooms' tests use. ROS 2 process fixtures live in tests/ros_ws/conftest.py."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

# Before any test imports MuJoCo or rclpy: render on the CPU, never talk DDS beyond this machine.
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="session")
def _sb3_logs_in_pytest_tmp(tmp_path_factory: pytest.TempPathFactory) -> None:
    """stable-baselines3 makes a /tmp/SB3-<date> folder for every learn() without a custom logger; keep
    those inside pytest's own temporary tree, which pytest prunes, instead of littering /tmp."""
    os.environ["SB3_LOGDIR"] = str(tmp_path_factory.mktemp("sb3"))


@pytest.fixture()
def repo_root() -> Path:
    """The navkit checkout (scenarios/, ros_ws/config/, ...)."""
    return REPO_ROOT


@pytest.fixture()
def in_tmp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the test in its own empty working directory: default output folders (out/run, runs/)
    land there, never in the checkout."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
