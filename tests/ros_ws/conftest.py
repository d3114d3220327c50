"""Fixtures for the multi-process ROS 2 tests (helpers in ros_helpers.py)."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ros_helpers import Proc, RosClient, start_process


@pytest.fixture()
def spawn(tmp_path: Path) -> Iterator[Callable[[list[str], dict[str, str], str], Proc]]:
    """Start a process (log in tmp_path/NAME.log); every one is killed in teardown, whatever the outcome."""
    started: list[Proc] = []

    def start(argv: list[str], env: dict[str, str], name: str) -> Proc:
        started.append(start_process(argv, env, tmp_path / f"{name}.log"))
        return started[-1]

    yield start
    for p in started:
        p.kill()


@pytest.fixture()
def ros_client(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[int], RosClient]]:
    """An rclpy client node in the test process on a given domain; closed in teardown."""
    clients: list[RosClient] = []

    def make(domain: int) -> RosClient:
        clients.append(RosClient(domain, monkeypatch))
        return clients[-1]

    yield make
    for c in clients:
        c.close()
