"""navkit as a ROS 2 ament_python package: the install tree colcon builds is complete and usable.

colcon's ament_python build runs, in the source folder (with no network):

    python setup.py egg_info --egg-base BUILD build --build-base BUILD/build \\
        install --record BUILD/install.log --install-scripts <setup.cfg [install] install_scripts> \\
        --single-version-externally-managed install_data

with the install prefix as ``sys.prefix``. The fixture below runs the same command with
``--prefix`` (which lands the same files; checked against a real ``colcon build``, whose tree adds
only its own hooks and setup scripts), then checks what ``ros2 launch navkit ...`` needs: every
executable a launch file names in ``lib/navkit``, the ament index marker, ``share/navkit/package.xml``,
and every ``$(find-pkg-share navkit)/...`` path and scenario/parameter reference inside
``share/navkit``; and that the installed Python package runs from the prefix. Before building,
colcon reads setup.py's configuration through ``repr()``/``ast.literal_eval``; that step is checked
too (a ``requires-python`` read from pyproject.toml used to break it).
"""
from __future__ import annotations

import ast
import configparser
import json
import os
import re
import subprocess
import sys
import sysconfig
import textwrap
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from navkit.ros_ws.launcher import LaunchError, NodeSpec, package_share_dir, parse_launch_file

REPO = Path(__file__).resolve().parents[2]
PACKAGE = "navkit"
SOURCE_LAUNCH = REPO / "ros_ws" / "launch"
# Launch files one runs (swarm_agent.launch.yaml is included by the multi-robot files, once per robot).
TOP_LEVEL_LAUNCH_FILES = ("demo.launch.yaml", "multi_robot.launch.yaml", "multi_robot_jazzy.launch.yaml")
JAZZY_MAX_ROBOTS = 16
FIND_PKG_SHARE = re.compile(r"\$\(find-pkg-share\s+navkit\)(/[^\s\"')]*)")
FILE_SUFFIXES = (".yaml", ".yml", ".pt", ".pgm", ".png", ".xml")


def _entry_points() -> dict[str, str]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]


def _yaml_strings(node: Any) -> Iterator[str]:
    """Every string value (and key) in a parsed YAML document; comments are not values."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _yaml_strings(key)
            yield from _yaml_strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _yaml_strings(item)


def _launch_execs(node: Any) -> Iterator[tuple[str, str]]:
    """(pkg, exec) of every node action anywhere in a launch document (groups, for bodies, ...)."""
    if isinstance(node, dict):
        body = node.get("node")
        if isinstance(body, dict):
            yield str(body.get("pkg")), str(body.get("exec"))
        for value in node.values():
            yield from _launch_execs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _launch_execs(item)


def _install_scripts_option() -> str:
    """setup.cfg's [install] install_scripts, read as colcon reads it (and passes it on the command line)."""
    parser = configparser.ConfigParser()
    parser.read(REPO / "setup.cfg")
    value = parser.get("install", "install-scripts", fallback=None) or parser.get("install", "install_scripts",
                                                                                   fallback=None)
    assert value, "setup.cfg has no [install] install_scripts: colcon would put the executables in bin/"
    return value


@pytest.fixture(scope="module")
def prefix(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An install prefix built by setup.py as colcon's ament_python build task runs it."""
    root = tmp_path_factory.mktemp("colcon")
    build, install = root / "build" / PACKAGE, root / "install" / PACKAGE
    build.mkdir(parents=True)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(install), "platbase": str(install)}))
    site.mkdir(parents=True)  # `setup.py install` wants its library folder to exist and be importable
    env = dict(os.environ, PYTHONPATH=str(site))
    cmd = [sys.executable, "-W", "ignore", "setup.py",
           "egg_info", "--egg-base", os.path.relpath(build, REPO),
           "build", "--build-base", str(build / "build"),
           "install", "--record", str(build / "install.log"), "--prefix", str(install),
           "--install-scripts", _install_scripts_option(), "--single-version-externally-managed",
           "install_data"]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return install


def _site_packages(prefix: Path) -> Path:
    return Path(sysconfig.get_path("purelib", vars={"base": str(prefix), "platbase": str(prefix)}))


def _run_installed(prefix: Path, code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Python with the install prefix first on the path, as a sourced colcon workspace has it."""
    env = dict(os.environ, PYTHONPATH=str(_site_packages(prefix)), AMENT_PREFIX_PATH=str(prefix))
    return subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True,
                          timeout=120, cwd=prefix)


# ------------------------------------------------------------------ what colcon reads before building


def test_colcon_can_read_setup_py_configuration() -> None:
    """colcon runs setup.py to the config stage and literal_evals the repr of the result: every value
    must be a plain literal (a SpecifierSet from pyproject's requires-python was not)."""
    code = textwrap.dedent("""\
        import sys
        import setuptools  # noqa: F401  (before distutils: setuptools provides it)
        from distutils.core import run_setup
        dist = run_setup("setup.py", script_args=("--dry-run",), stop_after="config")
        skip = ("cmdclass", "distclass", "ext_modules", "metadata")
        data = {k: v for k, v in vars(dist).items()
                if not k.startswith("_") and not callable(v) and k not in skip and k not in dist.display_option_names}
        data["metadata"] = {k: v for k, v in vars(dist.metadata).items() if k not in ("license_files", "provides_extras")}
        sys.stdout.write(repr(data))
        """)
    done = subprocess.run([sys.executable, "-W", "ignore", "-c", code], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    data = ast.literal_eval(done.stdout)
    assert data["metadata"]["name"] == PACKAGE
    assert data["python_requires"] == ">=3.10,<3.14"
    # One source for it: setup.py. (A static requires-python would be silently overridden by setup.py's.)
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert "requires-python" not in project and "requires-python" in project.get("dynamic", [])
    assert set(data["entry_points"]["console_scripts"]) == {f"{k} = {v}" for k, v in _entry_points().items()}
    # colcon maps data_files itself: (relative destination, [relative sources]) tuples.
    assert data["data_files"], "no data_files: colcon would install no launch/config files"
    for dest, sources in data["data_files"]:
        assert isinstance(sources, list) and not Path(dest).is_absolute()
        assert sources and all(not Path(s).is_absolute() and (REPO / s).is_file() for s in sources), (dest, sources)


# ------------------------------------------------------------------ the install tree


def test_ament_index_marker_and_manifest(prefix: Path) -> None:
    marker = prefix / "share" / "ament_index" / "resource_index" / "packages" / PACKAGE
    assert marker.is_file(), "ROS 2 tools (ros2 launch, ros2 pkg) find packages through this marker"
    assert (prefix / "share" / PACKAGE / "package.xml").read_bytes() == (REPO / "package.xml").read_bytes()


def test_every_entry_point_is_an_executable_in_lib_navkit(prefix: Path) -> None:
    lib = prefix / "lib" / PACKAGE
    for name in _entry_points():
        exe = lib / name
        assert exe.is_file() and os.access(exe, os.X_OK), f"{exe} missing: `ros2 run navkit {name}` would fail"
    assert not (prefix / "bin").exists(), "executables belong in lib/navkit for ros2 run / ros2 launch"


def test_every_launch_exec_is_installed(prefix: Path) -> None:
    installed = sorted((prefix / "share" / PACKAGE / "launch").glob("*.yaml"))
    assert [p.name for p in installed] == sorted(p.name for p in SOURCE_LAUNCH.glob("*.yaml"))
    seen = set()
    for path in installed:
        for pkg, exe in _launch_execs(yaml.safe_load(path.read_text())):
            assert pkg == PACKAGE, f"{path.name}: node of package {pkg}"
            assert (prefix / "lib" / PACKAGE / exe).is_file(), f"{path.name}: exec {exe} is not in lib/{PACKAGE}"
            seen.add(exe)
    assert {"navkit_robot_bridge", "navkit_swarm_agent"} <= seen  # the walk found the nodes


def test_share_holds_config_scenarios_and_policies(prefix: Path) -> None:
    share = prefix / "share" / PACKAGE

    def rel_files(root: Path) -> set[str]:
        return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}

    assert rel_files(share / "config") == rel_files(REPO / "ros_ws" / "config")
    assert rel_files(share / "scenarios") == rel_files(REPO / "scenarios")
    shipped = {p.relative_to(REPO / "control" / "policies").as_posix()
               for p in (REPO / "control" / "policies").rglob("*.pt")}
    assert any("/" in name for name in shipped)  # world-model runs are folders (wm_warehouse/best.pt)
    assert rel_files(share / "policies") == shipped
    # The checkpoints stay package data of navkit.control too (navkit.control.shipped loads them from there).
    assert {p for p in rel_files(_site_packages(prefix) / PACKAGE / "control" / "policies") if p.endswith(".pt")} == \
        shipped


def test_find_pkg_share_paths_in_launch_and_config_files_resolve(prefix: Path) -> None:
    share = prefix / "share" / PACKAGE
    checked = 0
    for path in sorted([*(share / "launch").glob("*.yaml"), *(share / "config").glob("*.yaml")]):
        for text in _yaml_strings(yaml.safe_load(path.read_text())):
            for rel in FIND_PKG_SHARE.findall(text):
                target = share / rel.lstrip("/")
                assert target.is_file(), f"{path.name}: $(find-pkg-share navkit){rel} is not installed"
                checked += 1
    assert checked >= 5  # params (x3), scenarios, policy defaults


def test_files_that_scenarios_and_parameter_files_name_are_installed(prefix: Path) -> None:
    """A scenario's `params:` (relative to the scenario) and any other file a scenario or parameter
    file names must be in the install tree; an empty value means a shipped default."""
    share = prefix / "share" / PACKAGE
    checked = 0
    for path in sorted([*(share / "scenarios").rglob("*.yaml"), *(share / "config").glob("*.yaml")]):
        for text in _yaml_strings(yaml.safe_load(path.read_text())):
            if not text.endswith(FILE_SUFFIXES) or text.startswith(("/", "$(")) or " " in text:
                continue
            target = (path.parent / text).resolve()
            assert target.is_file() and share.resolve() in target.parents, f"{path}: {text} does not resolve"
            checked += 1
    assert checked >= 1  # scenarios/rnd/warehouse_explore.yaml names its parameter file


def test_installed_package_runs_from_the_prefix(prefix: Path) -> None:
    done = _run_installed(prefix, "import navkit.cli.main as m, navkit.control.shipped as s; "
                                  "print(m.__file__); print(s.SHIPPED_ONLINE_CBF_POLICY.is_file())")
    assert done.returncode == 0, done.stderr[-3000:]
    module_file, policy_found = done.stdout.split()
    assert Path(module_file).is_relative_to(prefix), module_file
    assert policy_found == "True"
    env = dict(os.environ, PYTHONPATH=str(_site_packages(prefix)), AMENT_PREFIX_PATH=str(prefix))
    cli = subprocess.run([str(prefix / "lib" / PACKAGE / "navkit"), "--help"], env=env, capture_output=True,
                         text=True, timeout=120)
    assert cli.returncode == 0 and "launch" in cli.stdout, cli.stderr[-3000:]


# ------------------------------------------------------------------ navkit's launcher in both layouts


def _path_values(spec: dict[str, Any]) -> list[str]:
    values = [*spec["params_files"], *(v for v in spec["params"].values() if isinstance(v, str))]
    return [v for v in values if v.endswith(FILE_SUFFIXES)]


_PARSE_INSTALLED = """\
import json, sys
from pathlib import Path
from navkit.ros_ws import launcher
share = launcher.package_share_dir()
out = {"launcher": launcher.__file__, "share": str(share), "files": {}}
for name in sys.argv[1:]:
    nodes = launcher.parse_launch_file(share / "launch" / name, {"n": "3"})
    out["files"][name] = [{"label": n.label, "params_files": list(n.params_files), "params": dict(n.params)}
                          for n in nodes]
print(json.dumps(out))
"""


def test_navkit_launcher_resolves_find_pkg_share_in_the_install_tree(prefix: Path) -> None:
    done = _run_installed(prefix, _PARSE_INSTALLED, *TOP_LEVEL_LAUNCH_FILES)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout)
    share = prefix / "share" / PACKAGE
    assert Path(out["launcher"]).is_relative_to(prefix), out["launcher"]
    assert Path(out["share"]) == share
    for name, specs in out["files"].items():
        paths = [p for spec in specs for p in _path_values(spec)]
        assert paths, name
        for p in paths:
            assert Path(p).is_file() and Path(p).is_relative_to(share), f"{name}: {p}"


def test_navkit_launcher_resolves_find_pkg_share_in_the_source_checkout() -> None:
    share = package_share_dir()
    assert share == REPO / "ros_ws"
    for sub in ("launch", "config", "scenarios", "policies"):
        assert (share / sub).is_dir(), f"$(find-pkg-share navkit)/{sub} does not resolve in the checkout"
    for name in TOP_LEVEL_LAUNCH_FILES:
        specs = parse_launch_file(SOURCE_LAUNCH / name, {"n": "3"})
        paths = [p for s in specs for p in _path_values({"params_files": s.params_files, "params": s.params})]
        assert paths, name
        for p in paths:
            assert Path(p).is_file(), f"{name}: {p}"
    # scenario and policy defaults are the checkout's own files (through ros_ws/scenarios, ros_ws/policies)
    demo = {s.name: s for s in parse_launch_file(SOURCE_LAUNCH / "demo.launch.yaml", {})}
    assert Path(demo["robot_bridge"].params["scenario"]).resolve() == REPO / "scenarios" / "warehouse_demo.yaml"


# ------------------------------------------------------------------ the Jazzy form of the multi-robot launch


def _comparable(specs: list[NodeSpec]) -> list[tuple[Any, ...]]:
    return [(s.label, s.exec, s.params_files, sorted(s.params.items()), s.on_exit_shutdown) for s in specs]


@pytest.mark.parametrize("n", ["1", "4", str(JAZZY_MAX_ROBOTS)])
def test_jazzy_multi_robot_file_starts_the_same_nodes_as_the_kilted_one(n: str) -> None:
    kilted = parse_launch_file(SOURCE_LAUNCH / "multi_robot.launch.yaml", {"n": n, "seed": "3"})
    jazzy = parse_launch_file(SOURCE_LAUNCH / "multi_robot_jazzy.launch.yaml", {"n": n, "seed": "3"})
    assert len(kilted) == int(n) + 1
    assert _comparable(jazzy) == _comparable(kilted)


def test_jazzy_multi_robot_file_refuses_more_robots_than_it_has_groups() -> None:
    with pytest.raises(LaunchError, match=f"n_at_most_{JAZZY_MAX_ROBOTS}"):
        parse_launch_file(SOURCE_LAUNCH / "multi_robot_jazzy.launch.yaml", {"n": str(JAZZY_MAX_ROBOTS + 1)})


def test_only_the_kilted_multi_robot_file_uses_for() -> None:
    """`for` exists in ROS 2 Kilted's launch only; every other launch file must parse on Jazzy."""
    for path in sorted(SOURCE_LAUNCH.glob("*.yaml")):
        uses_for = re.search(r"^\s*-\s*for:", path.read_text(), re.M) is not None
        assert uses_for == (path.name == "multi_robot.launch.yaml"), path.name
        if path.name != "multi_robot.launch.yaml":
            assert "Jazzy" in path.read_text().split("launch:", 1)[0], f"{path.name}: header names no distro"
