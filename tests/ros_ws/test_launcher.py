"""navkit's YAML launcher: parsing to NodeSpecs, node argv, and process supervision."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from navkit.ros_ws.launcher import (LaunchError, NodeSpec, ProcessSpec, main, node_command, package_share_dir,
                                    parse_launch_file, run_launch)


def _write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture()
def files(tmp_path: Path) -> Path:
    _write(tmp_path / "demo.params.yaml", "safety_filter:\n  ros__parameters:\n    alpha: 1.0\n")
    _write(tmp_path / "robot.launch.yaml", """\
        launch:
        - arg: {name: robot_name}
        - arg: {name: use_camera, default: "false"}
        - node:
            pkg: navkit
            exec: navkit_robot_bridge
            name: bridge
            param:
            - {name: robot_name, value: "$(var robot_name)"}
            - {name: backend, value: "$(var robot)"}
        - node: {pkg: navkit, exec: navkit_planner, name: camera_planner, if: "$(var use_camera)"}
        """)
    return _write(tmp_path / "main.launch.yaml", """\
        launch:
        - arg: {name: robot, default: mujoco, description: "sim backend or driver"}
        - arg: {name: rate, default: "20"}
        - let: {name: params, value: "$(dirname)/demo.params.yaml"}
        - node:
            pkg: navkit
            exec: navkit_safety_filter
            name: safety_filter
            namespace: ""
            output: screen
            on_exit: shutdown
            param:
            - {from: "$(var params)"}
            - {name: use_sim_time, value: true}
            - {name: rate_hz, value: "$(eval '$(var rate) * 2.5')"}
            - {name: frames, value: [odom, "$(var robot)"]}
            remap:
            - {from: cmd_vel_in, to: cmd_vel_nav}
            args: "--verbose --tag 'a b'"
        - group:
          - push-ros-namespace: {namespace: robot_0}
          - let: {name: robot, value: inner}
          - node: {pkg: navkit, exec: navkit_planner, name: planner}
          - node: {pkg: navkit, exec: navkit_controller, name: ctrl, namespace: /abs}
          - include:
              file: "$(dirname)/robot.launch.yaml"
              arg:
              - {name: robot_name, value: "r0"}
              - {name: use_camera, value: "$(eval '\\"$(var robot)\\" == \\"inner\\"')"}
        - node: {pkg: navkit, exec: navkit_controller, name: only_real, if: "$(eval '\\"$(var robot)\\" == \\"real\\"')"}
        - node: {pkg: navkit, exec: navkit_controller, name: not_real, unless: "$(eval '\\"$(var robot)\\" == \\"real\\"')"}
        - node: {pkg: navkit, exec: navkit_controller, name: from_env, namespace: "$(env NAVKIT_TEST_NS fallback)"}
        """)


def test_parse_resolves_args_groups_includes_and_conditions(files: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NAVKIT_TEST_NS", raising=False)
    nodes = parse_launch_file(files, {"rate": "10"})
    by_name = {n.name: n for n in nodes}
    assert [n.name for n in nodes] == ["safety_filter", "planner", "ctrl", "bridge", "camera_planner", "not_real",
                                       "from_env"]
    sf = by_name["safety_filter"]
    assert sf == NodeSpec(name="safety_filter", namespace="/", pkg="navkit", exec="navkit_safety_filter",
                          params_files=(str((files.parent / "demo.params.yaml").resolve()),),
                          params={"use_sim_time": True, "rate_hz": 25.0, "frames": ["odom", "mujoco"]},
                          remaps=(("cmd_vel_in", "cmd_vel_nav"),), args=("--verbose", "--tag", "a b"),
                          on_exit_shutdown=True, output="screen")
    assert by_name["planner"].namespace == "/robot_0"
    assert by_name["ctrl"].namespace == "/abs"  # absolute namespace ignores the pushed one
    bridge = by_name["bridge"]
    assert bridge.namespace == "/robot_0"
    assert bridge.params == {"robot_name": "r0", "backend": "inner"}  # include sees the group's let
    assert by_name["not_real"].namespace == "/"  # the group's let and namespace did not leak out
    assert by_name["from_env"].namespace == "/fallback"

    monkeypatch.setenv("NAVKIT_TEST_NS", "envns")
    real = {n.name: n for n in parse_launch_file(files, {"robot": "real"})}
    assert "only_real" in real and "not_real" not in real
    assert real["from_env"].namespace == "/envns"
    assert real["safety_filter"].params["rate_hz"] == 50.0


def test_find_pkg_share_is_the_ros_ws_package(tmp_path: Path) -> None:
    f = _write(tmp_path / "a.launch.yaml", """\
        launch:
        - let: {name: share, value: "$(find-pkg-share navkit)"}
        - node: {pkg: navkit, exec: navkit_planner, name: planner, namespace: "$(eval '\\"$(var share)\\".endswith(\\"ros_ws\\")')"}
        - node: {pkg: navkit, exec: navkit_planner, name: p2, param: [{from: "$(var share)/config/navkit.params.yaml"}]}
        """)
    nodes = parse_launch_file(f, {})
    assert nodes[0].namespace == "/True"
    assert nodes[1].params_files == (str(package_share_dir() / "config" / "navkit.params.yaml"),)
    import navkit.ros_ws

    assert package_share_dir() == Path(navkit.ros_ws.__file__).resolve().parent


@pytest.mark.parametrize(("body", "field", "problem"), [
    ("- node: {pkg: navkit, exec: navkit_planner, name: $(var missing)}", "launch[0].node.name", "missing"),
    ("- node: {pkg: navkit, exec: navkit_planner, colour: red}", "launch[0].node.colour", "unknown attribute"),
    ("- nodes: {pkg: navkit, exec: navkit_planner}", "launch[0].nodes", "unknown action"),
    ("- node: {pkg: nav2_bringup, exec: x}", "launch[0].node.pkg", "only navkit nodes"),
    ("- node: {pkg: navkit, exec: navkit_nope}", "launch[0].node.exec", "no navkit executable"),
    ("- node: {pkg: navkit, exec: navkit_planner, respawn: true}", "launch[0].node.respawn", "ros2 launch"),
    ("- arg: {name: needed}", "launch[0].arg.needed", "required launch argument"),
    ("- let: {name: x, value: \"$(foo bar)\"}", "launch[0].let.value", "unknown substitution"),
    ("- let: {name: x, value: \"$(eval '().__class__')\"}", "launch[0].let.value", "may be looked up"),
    ("- let: {name: x, value: \"$(eval 'open(1)')\"}", "launch[0].let.value", "may be called"),
    ("- let: {name: x, value: \"$(eval '9**9**9')\"}", "launch[0].let.value", "exponent"),
    ("- let: {name: x, value: \"$(eval '[0]*10**9')\"}", "launch[0].let.value", "repetition"),
    ("- for: {len: '1000000000', name: i, children: []}", "launch[0].for.len", "limit"),
    ("- node: {pkg: navkit, exec: navkit_planner, if: maybe}", "launch[0].node.if", "true/false"),
    ("- include: {file: nowhere.launch.yaml}", "launch[0].include.file", "not found"),
])
def test_errors_name_file_and_field(tmp_path: Path, body: str, field: str, problem: str) -> None:
    f = _write(tmp_path / "bad.launch.yaml", "launch:\n" + body + "\n")
    with pytest.raises(LaunchError) as info:
        parse_launch_file(f, {})
    err = info.value
    assert err.source == str(f.resolve()) and err.field == field and problem in err.problem, str(err)


def test_error_in_included_file_names_that_file(tmp_path: Path) -> None:
    inner = _write(tmp_path / "inner.launch.yaml", "launch:\n- let: {name: y, value: $(var nope)}\n")
    outer = _write(tmp_path / "outer.launch.yaml", "launch:\n- include: {file: $(dirname)/inner.launch.yaml}\n")
    with pytest.raises(LaunchError, match="nope") as info:
        parse_launch_file(outer, {})
    assert info.value.source == str(inner.resolve())


def test_node_command_runs_the_entry_point_with_ros_args() -> None:
    spec = NodeSpec(name="sf", namespace="/robot_0", pkg="navkit", exec="navkit_safety_filter",
                    params_files=("/tmp/p.yaml",), params={"use_sim_time": True, "alpha": 1.5, "mode": "soft",
                                                           "ids": [1, 2], "label": "a: b"},
                    remaps=(("cmd_vel_in", "cmd_vel_nav"),), args=("--x",))
    argv = node_command(spec)
    assert argv[:3] == [sys.executable, "-c", "import sys; from navkit.ros_ws.navkit_nodes.safety_filter_node "
                                              "import main; sys.exit(main())"]
    assert argv[3:] == ["--x", "--ros-args", "-r", "__node:=sf", "-r", "__ns:=/robot_0",
                        "--params-file", "/tmp/p.yaml",
                        "-p", "use_sim_time:=true", "-p", "alpha:=1.5", "-p", "mode:=soft", "-p", "ids:=[1, 2]",
                        "-p", 'label:="a: b"', "-r", "cmd_vel_in:=cmd_vel_nav"]


def test_main_print_and_bad_cli_args(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(files), "--print", "rate:=4"]) == 0
    out = capsys.readouterr().out
    assert "safety_filter: " in out and "rate_hz:=10.0" in out
    assert main([str(files), "rate=4", "--print"]) == 2
    assert "name:=value" in capsys.readouterr().err


# --------------------------------------------------------------- supervision

def _py(code: str) -> tuple[str, ...]:
    return (sys.executable, "-c", code)


SLEEPER = "import os, time; print('ready', os.getpid(), flush=True); time.sleep(60)"


def test_failing_process_stops_the_others() -> None:
    lines: list[str] = []
    start = time.monotonic()
    code = run_launch([ProcessSpec("sleeper", _py(SLEEPER)),
                       ProcessSpec("crasher", _py("import time, sys; time.sleep(0.3); print('bye'); sys.exit(3)"))],
                      log=lines.append, stop_timeout_s=2.0)
    assert code == 1
    assert time.monotonic() - start < 5.0
    assert "[crasher] bye" in lines
    assert "[launch] crasher exited with code 3; stopping all nodes" in lines
    assert any(line.startswith("[sleeper] ready") for line in lines)


def test_killed_process_is_reported_by_signal() -> None:
    lines: list[str] = []
    code = run_launch([ProcessSpec("victim", _py("import os, signal; os.kill(os.getpid(), signal.SIGKILL)"))],
                      log=lines.append, stop_timeout_s=1.0)
    assert code == 1
    assert "[launch] victim was killed by signal SIGKILL; stopping all nodes" in lines


def test_on_exit_shutdown_node_finishing_cleanly_returns_zero() -> None:
    lines: list[str] = []
    code = run_launch([ProcessSpec("sleeper", _py(SLEEPER)),
                       ProcessSpec("episode", _py("import time; time.sleep(0.3)"), on_exit_shutdown=True)],
                      log=lines.append, stop_timeout_s=2.0)
    assert code == 0
    assert "[launch] episode finished; shutting down" in lines


def test_stubborn_child_is_escalated_to_sigterm() -> None:
    stubborn = "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"
    lines: list[str] = []
    code = run_launch([ProcessSpec("stubborn", _py(stubborn)),
                       ProcessSpec("quitter", _py("import time; time.sleep(0.5)"))],
                      log=lines.append, stop_timeout_s=0.5)
    assert code == 1
    assert "[launch] stubborn still running; sending SIGTERM" in lines


def test_sigint_to_launcher_stops_children(tmp_path: Path) -> None:
    script = _write(tmp_path / "run.py", f"""\
        import sys
        from navkit.ros_ws.launcher import ProcessSpec, run_launch
        code = {SLEEPER!r}
        sys.exit(run_launch([ProcessSpec("a", (sys.executable, "-c", code)),
                             ProcessSpec("b", (sys.executable, "-c", code))], stop_timeout_s=2.0))
        """)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    assert proc.stdout is not None
    pids = []
    deadline = time.monotonic() + 10
    while len(pids) < 2 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if " ready " in line:
            pids.append(int(line.split()[-1]))
    assert len(pids) == 2, "children did not start"
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "[launch] received SIGINT; stopping all nodes" in out
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


# ------------------------------------------------------------------ for loops (launch's ForLoop)


def test_for_loop_expands_children_with_index(tmp_path: Path) -> None:
    f = _write(tmp_path / "swarm.launch.yaml", """\
        launch:
        - arg: {name: n, default: "3"}
        - for:
            len: $(var n)
            name: i
            children:
            - group:
              - push-ros-namespace: {namespace: robot_$(index i)}
              - node:
                  pkg: navkit
                  exec: navkit_planner
                  name: agent
                  param:
                  - {name: robot_index, value: "$(index i)"}
                  - {name: label, value: "r$(eval '$(index i) * 10')"}
        - node: {pkg: navkit, exec: navkit_safety_filter, name: after}
        """)
    nodes = parse_launch_file(f)
    assert [(n.namespace, n.name) for n in nodes] == [("/robot_0", "agent"), ("/robot_1", "agent"),
                                                       ("/robot_2", "agent"), ("/", "after")]
    assert [n.params["robot_index"] for n in nodes[:3]] == [0, 1, 2]  # read as YAML: ints
    assert [n.params["label"] for n in nodes[:3]] == ["r0", "r10", "r20"]
    assert len(parse_launch_file(f, {"n": "5"})) == 6
    assert len(parse_launch_file(f, {"n": "0"})) == 1  # no iteration
    assert len(parse_launch_file(f, {"n": "-2"})) == 1  # range(-2): none, as int() + range in launch


def test_for_loop_scopes_only_its_index(tmp_path: Path) -> None:
    """Like launch's ForLoop: the index is local to the body; let and push-ros-namespace leak."""
    f = _write(tmp_path / "leak.launch.yaml", """\
        launch:
        - for:
            len: 2
            name: i
            children:
            - push-ros-namespace: {namespace: r$(index i)}
            - let: {name: last, value: "$(index i)"}
            - node: {pkg: navkit, exec: navkit_planner, name: "n$(index i)"}
        - node: {pkg: navkit, exec: navkit_controller, name: "after_$(var last)"}
        """)
    nodes = parse_launch_file(f)
    assert [(n.namespace, n.name) for n in nodes] == [("/r0", "n0"), ("/r0/r1", "n1"), ("/r0/r1", "after_1")]

    outside = _write(tmp_path / "outside.launch.yaml", """\
        launch:
        - for: {len: 1, name: i, children: []}
        - node: {pkg: navkit, exec: navkit_planner, name: "n$(index i)"}
        """)
    with pytest.raises(LaunchError, match=r"\$\(index i\): not inside a for loop"):
        parse_launch_file(outside)


def test_nested_for_loops_and_includes_see_the_index(tmp_path: Path) -> None:
    _write(tmp_path / "one.launch.yaml", """\
        launch:
        - node: {pkg: navkit, exec: navkit_planner, name: "p$(index i)_$(index j)"}
        """)
    f = _write(tmp_path / "grid.launch.yaml", """\
        launch:
        - for:
            len: 2
            name: i
            children:
            - for:
                len: "$(eval '$(index i) + 1')"
                name: j
                children:
                - include: {file: "$(dirname)/one.launch.yaml"}
        """)
    assert [n.name for n in parse_launch_file(f)] == ["p0_0", "p1_0", "p1_1"]


@pytest.mark.parametrize("body, where, problem", [
    ("{len: two, name: i, children: []}", "len", "expected an integer"),
    ("{len: 2.5, name: i, children: []}", "len", "expected an integer"),
    ("{len: 2, children: []}", "name", "required attribute missing"),
    ("{len: 2, name: i}", "children", "expected a list of actions"),
    ("{len: 2, name: i, children: [], step: 2}", "step", "unknown attribute"),
])
def test_for_loop_errors_name_the_field(tmp_path: Path, body: str, where: str, problem: str) -> None:
    f = _write(tmp_path / "bad.launch.yaml", f"launch:\n- for: {body}\n")
    with pytest.raises(LaunchError, match=problem) as info:
        parse_launch_file(f)
    assert f"launch[0].for.{where}" in str(info.value) and str(f) in str(info.value)
