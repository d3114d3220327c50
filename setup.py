"""navkit as a ROS 2 ``ament_python`` package: the file ``colcon build`` runs.

pyproject.toml stays the one source of the name, version, dependencies, packages, package data
and entry points: setuptools (61 or newer) reads it whichever tool runs this file, so
``pip install -e '.[test]'`` behaves as before and colcon installs the same Python code. This file
adds only what pyproject.toml cannot say:

* ``python_requires``. pyproject.toml lists ``requires-python`` under ``dynamic`` and the constraint
  lives here, as a string: from pyproject.toml setuptools holds it as a ``SpecifierSet`` object, and
  colcon reads this file's configuration through ``repr()`` and ``ast.literal_eval``, which fails
  on that object (colcon stops before building anything). pip still enforces it (``Requires-Python``
  in the metadata).
* ``data_files``: the ROS 2 layout under the install prefix. The ament index marker
  (``share/ament_index/resource_index/packages/navkit``, from ``resource/navkit``) makes ROS 2
  tools find the package; ``share/navkit`` holds package.xml, ``launch/`` and ``config/`` (from
  ``ros_ws/``), ``scenarios/``, ``maps/`` (when the checkout has one) and ``policies/`` (the
  checkpoints in ``control/policies``, which stay package data of ``navkit.control`` as well).
  setup.cfg sends the executables to ``lib/navkit``, where ``ros2 run``/``ros2 launch`` look.

An editable pip install gets no ``data_files``: copies in the environment would go stale as the
checkout changes, and a source checkout serves the same paths from ``ros_ws/`` (see
``navkit.ros_ws.launcher.package_share_dir``). setuptools' editable wheels skip data_files today
(checked with setuptools 84); the guard below keeps it that way if that changes. A plain
``pip install .`` (a wheel) does install them, under the environment's ``share/``.

Distros: ROS 2 Jazzy and Kilted (Ubuntu 24.04: Python 3.12, setuptools 68). Humble's setuptools
(59) cannot read pyproject.toml; this file says so instead of building a package with no name.
"""
from __future__ import annotations

import sys
from pathlib import Path

import setuptools
from setuptools import setup

PACKAGE = "navkit"
PYTHON_REQUIRES = ">=3.10,<3.14"
HERE = Path(__file__).resolve().parent


def _files(pattern: str) -> list[str]:
    """Files matching ``pattern`` (relative to this folder), as the relative paths data_files wants."""
    return sorted(p.relative_to(HERE).as_posix() for p in HERE.glob(pattern) if p.is_file())


def _tree(source: str, dest: str) -> list[tuple[str, list[str]]]:
    """Every file under ``source`` (hidden files and caches left out), keeping its sub-folder under ``dest``."""
    groups: dict[str, list[str]] = {}
    root = HERE / source
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if not path.is_file() or any(part.startswith(".") or part == "__pycache__" for part in rel.parts):
            continue
        folder = (Path(dest) / rel.parent).as_posix()
        groups.setdefault(folder, []).append(path.relative_to(HERE).as_posix())
    return sorted(groups.items())


def data_files() -> list[tuple[str, list[str]]]:
    """The ROS 2 install layout: (destination under the prefix, [source files]) pairs."""
    share = f"share/{PACKAGE}"
    entries = [
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (share, ["package.xml"]),
        (f"{share}/launch", _files("ros_ws/launch/*.yaml")),
        (f"{share}/config", _files("ros_ws/config/*.yaml")),
        *_tree("control/policies", f"{share}/policies"),  # policies and world-model run folders
        *_tree("scenarios", f"{share}/scenarios"),
        *_tree("maps", f"{share}/maps"),
    ]
    return [(dest, sources) for dest, sources in entries if sources]


def _setuptools_reads_pyproject() -> bool:
    major = setuptools.__version__.split(".", 1)[0]
    return major.isdigit() and int(major) >= 61


if not _setuptools_reads_pyproject():
    sys.exit(f"navkit's setup.py needs setuptools >= 61 to read pyproject.toml (found {setuptools.__version__}); "
             "ROS 2 Jazzy and Kilted ship setuptools 68")
if not Path("pyproject.toml").is_file():
    # `colcon build --symlink-install` runs `setup.py develop` from its build folder, where it links
    # setup.py, setup.cfg, data files and top-level packages only. navkit has no top-level package
    # folder (navkit.common is common/, ...) and its metadata is in pyproject.toml, so that cannot work.
    sys.exit("navkit: run setup.py from the checkout (beside pyproject.toml). `colcon build --symlink-install` "
             "is not supported (navkit's packages are mapped from top-level folders): use `colcon build`, "
             "or `pip install -e .` to work on the source")

# `editable_wheel` is the setuptools command behind `pip install -e` (PEP 660).
_EDITABLE = "editable_wheel" in sys.argv[1:]

setup(
    python_requires=PYTHON_REQUIRES,
    data_files=[] if _EDITABLE else data_files(),
)
