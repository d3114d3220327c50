"""The lifecycle manager node over DDS: bring-up order, failed transitions, a managed node that dies, Ctrl-C.

The managed nodes are tiny ``rclpy.lifecycle.LifecycleNode``s run by this very file as a
script (``python test_lifecycle_manager.py --log FILE /ns/name ...``), each appending
``name transition`` to a shared log as its callback runs. The manager waits for each
answer before the next call, so the log's line order is the order of the transitions.
"""
from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ros_helpers import Proc, domain_id, ros_env

pytestmark = pytest.mark.ros

MANAGER = [sys.executable, "-m", "navkit.ros_ws.navkit_nodes.lifecycle_manager_node"]
FAST = ["-p", "check_period_s:=0.3", "-p", "bond_period_s:=1.0", "-p", "transition_timeout_s:=3.0"]
Spawn = Callable[[list[str], dict[str, str], str], Proc]


def managed_nodes(log: Path, *names: str, fail: str = "", deactivate: str = "") -> list[str]:
    """argv of one process hosting managed nodes ``names`` (``/ns/name``).

    ``fail="NAME:TRANSITION"``: that callback returns FAILURE; ``deactivate="NAME"``: that
    node deactivates itself half a second after it was activated.
    """
    return [sys.executable, __file__, "--log", str(log), *(["--fail", fail] if fail else []),
            *(["--deactivate", deactivate] if deactivate else []), *names]


def manager(namespace: str, *names: str) -> list[str]:
    return MANAGER + ["--ros-args", "-r", f"__ns:={namespace}", "-p", f"node_names:=[{', '.join(names)}]", *FAST]


def transitions(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def wait_for(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def exit_code(proc: Proc, timeout_s: float) -> int | None:
    try:
        return proc.proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return None


UP = ["a configure", "b configure", "a activate", "b activate"]


def test_configures_all_then_activates_all_in_order_and_brings_them_down_on_ctrl_c(spawn: Spawn,
                                                                                     tmp_path: Path) -> None:
    """Relative names resolve against the manager's namespace: ``a`` is /robot/a, ``sub/b`` is /robot/sub/b."""
    env, log = ros_env(domain_id()), tmp_path / "transitions.log"
    spawn(managed_nodes(log, "/robot/a", "/robot/sub/b"), env, "managed")
    mgr = spawn(manager("/robot", "a", "sub/b"), env, "lifecycle_manager")
    assert wait_for(lambda: transitions(log) == UP, 20.0), (transitions(log), mgr.output())
    time.sleep(1.0)  # a few check periods: the manager stays up while all are active
    assert mgr.proc.poll() is None, mgr.output()
    assert "all 2 managed nodes are active" in mgr.output()

    mgr.proc.send_signal(signal.SIGINT)
    assert exit_code(mgr, 15.0) == 0, mgr.output()
    assert transitions(log) == UP + ["b deactivate", "a deactivate", "b cleanup", "a cleanup"], mgr.output()


@pytest.mark.parametrize("failing", ["configure", "activate"])
def test_a_failed_transition_names_the_node_exits_1_and_leaves_nothing_active(spawn: Spawn, tmp_path: Path,
                                                                             failing: str) -> None:
    env, log = ros_env(domain_id()), tmp_path / "transitions.log"
    spawn(managed_nodes(log, "/a", "/b", fail=f"b:{failing}"), env, "managed")
    mgr = spawn(manager("/", "a", "b"), env, "lifecycle_manager")
    assert exit_code(mgr, 20.0) == 1, mgr.output()
    lines = [line for line in mgr.output().splitlines() if "bring-up failed" in line]
    assert len(lines) == 1 and "'b'" in lines[0] and failing in lines[0], mgr.output()
    log_lines = transitions(log)
    if failing == "configure":
        assert log_lines == ["a configure", "b configure failed", "a cleanup"], log_lines
    else:  # b fell back to inactive: a is deactivated, then both are cleaned up, in reverse order
        assert log_lines == ["a configure", "b configure", "a activate", "b activate failed", "a deactivate",
                             "b cleanup", "a cleanup"], log_lines


def test_a_managed_node_killed_after_activation_stops_the_manager(spawn: Spawn, tmp_path: Path) -> None:
    env, log = ros_env(domain_id()), tmp_path / "transitions.log"
    spawn(managed_nodes(log, "/a"), env, "managed_a")
    victim = spawn(managed_nodes(log, "/b"), env, "managed_b")
    mgr = spawn(manager("/", "a", "b"), env, "lifecycle_manager")
    assert wait_for(lambda: transitions(log) == UP, 20.0), (transitions(log), mgr.output())

    victim.proc.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    assert exit_code(mgr, 10.0) == 1, mgr.output()
    took = time.monotonic() - killed_at
    assert took < 5.0, f"the manager took {took:.1f} s to notice"
    assert "managed node 'b' is gone" in mgr.output(), mgr.output()
    assert transitions(log)[len(UP):] == ["a deactivate", "a cleanup"], transitions(log)


def test_a_managed_node_that_leaves_active_stops_the_manager(spawn: Spawn, tmp_path: Path) -> None:
    env, log = ros_env(domain_id()), tmp_path / "transitions.log"
    spawn(managed_nodes(log, "/a", "/b", deactivate="b"), env, "managed")
    mgr = spawn(manager("/", "a", "b"), env, "lifecycle_manager")
    assert exit_code(mgr, 20.0) == 1, mgr.output()
    assert "managed node 'b' left ACTIVE: it is now inactive" in mgr.output(), mgr.output()
    assert transitions(log) == UP + ["b deactivate", "a deactivate", "b cleanup", "a cleanup"], transitions(log)


def test_bad_node_names_exit_2_with_one_line(spawn: Spawn) -> None:
    mgr = spawn(MANAGER + ["--ros-args", "-p", "node_names:=[a, a]"], ros_env(domain_id()), "lifecycle_manager")
    assert exit_code(mgr, 15.0) == 2, mgr.output()
    assert "node_names" in mgr.output() and "more than once" in mgr.output()


# ------------------------------------------------------------------ the managed nodes (run as a script)


def _run_managed_nodes(argv: list[str]) -> int:
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

    parser = argparse.ArgumentParser()
    parser.add_argument("--log", required=True)
    parser.add_argument("--fail", default="", help="NAME:TRANSITION that returns FAILURE")
    parser.add_argument("--deactivate", default="", help="NAME that deactivates itself 0.5 s after activation")
    parser.add_argument("names", nargs="+")
    args = parser.parse_args(argv)

    class Recorder(LifecycleNode):
        def __init__(self, full_name: str) -> None:
            namespace, name = full_name.rsplit("/", 1)
            super().__init__(name, namespace=namespace or "/")
            self.short = name

        def _record(self, transition: str) -> TransitionCallbackReturn:
            failed = args.fail == f"{self.short}:{transition}"
            with open(args.log, "a") as f:
                f.write(f"{self.short} {transition}{' failed' if failed else ''}\n")
            return TransitionCallbackReturn.FAILURE if failed else TransitionCallbackReturn.SUCCESS

        def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
            return self._record("configure")

        def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
            if args.deactivate == self.short:
                def leave() -> None:
                    timer.cancel()
                    self.trigger_deactivate()

                timer = self.create_timer(0.5, leave)
            return self._record("activate")

        def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
            return self._record("deactivate")

        def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
            return self._record("cleanup")

    rclpy.init()
    executor = SingleThreadedExecutor()
    for name in args.names:
        executor.add_node(Recorder(name))
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(_run_managed_nodes(sys.argv[1:]))
