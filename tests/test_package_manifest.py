"""package.xml is a valid ROS 2 (format 3, ament_python) manifest that agrees with pyproject.toml."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from catkin_pkg.package import Package, parse_package

REPO = Path(__file__).resolve().parents[1]
MANIFEST = REPO / "package.xml"
PYPROJECT = REPO / "pyproject.toml"

REQUIRED_EXEC_DEPENDS = ("rclpy", "geometry_msgs", "nav_msgs", "sensor_msgs", "std_msgs", "rosgraph_msgs",
                         "visualization_msgs")
ROS_PYPI_PREFIX = "ros-kilted-"
# rosdep keys (rosdep's python list) that a navkit dependency can resolve to, and the PyPI
# distribution each stands for: an <exec_depend>/<test_depend> on python3-* must be one of these,
# and pyproject.toml must depend on the same distribution.
ROSDEP_PYTHON_KEYS = {
    "python3-numpy": "numpy",
    "python3-scipy": "scipy",
    "python3-yaml": "pyyaml", "python3-serial": "pyserial",
    "python3-matplotlib": "matplotlib",
    "python3-imageio": "imageio",
    "python3-tqdm": "tqdm",
    "python3-catkin-pkg": "catkin-pkg",
    "python3-torch": "torch",
    "python3-pytest": "pytest",
}
# ROS 2 packages navkit can use that no PyPI wheel provides (so pyproject.toml cannot list them).
ROS_PACKAGES_NOT_ON_PYPI = {
    "tf2_msgs": "the bridge publishes /tf when a ROS 2 install provides tf2_msgs",
}
_ROS_PACKAGE_NAME = re.compile(r"[a-z][a-z0-9_]*")


@pytest.fixture(scope="module")
def package() -> Package:
    if not MANIFEST.is_file():
        pytest.fail(f"{MANIFEST} is missing: ROS 2 tooling (colcon, rosdep, ros2 pkg) cannot see navkit")
    return parse_package(str(MANIFEST))


def _ros_interface_packages_from_pyproject() -> set[str]:
    """ROS package names behind the ``ros-kilted-*`` PyPI deps that are rclpy or interface packages."""
    deps = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    names = set()
    for dep in deps:
        dist = re.split(r"[\s<>=!~;\[]", dep.strip(), maxsplit=1)[0].lower()
        if not dist.startswith(ROS_PYPI_PREFIX):
            continue
        ros_name = dist[len(ROS_PYPI_PREFIX):].replace("-", "_")
        if ros_name == "rclpy" or ros_name.endswith("_msgs") or ros_name.endswith("_interfaces"):
            names.add(ros_name)
    return names


def test_manifest_is_valid_format_3(package: Package) -> None:
    warnings: list[str] = []
    package.validate(warnings=warnings)  # raises InvalidPackage on a broken manifest
    assert package.package_format == 3
    assert package.name == "navkit"
    assert package.licenses and package.maintainers and package.description.strip()


def test_build_type_is_ament_python(package: Package) -> None:
    build_types = [e.content for e in package.exports if e.tagname == "build_type"]
    assert build_types == ["ament_python"]
    assert package.get_build_type() == "ament_python"


def test_version_matches_pyproject(package: Package) -> None:
    assert package.version == tomllib.loads(PYPROJECT.read_text())["project"]["version"]


def test_required_exec_depends(package: Package) -> None:
    exec_depends = {d.name for d in package.exec_depends}
    missing = sorted(set(REQUIRED_EXEC_DEPENDS) - exec_depends)
    assert not missing, f"package.xml lacks <exec_depend> for {missing}"


def test_every_ros_message_dependency_in_pyproject_is_an_exec_depend(package: Package) -> None:
    from_pyproject = _ros_interface_packages_from_pyproject()
    # The parser must find the packages the nodes import, or this test checks nothing.
    assert {"rclpy", "std_msgs", "geometry_msgs", "sensor_msgs", "nav_msgs"} <= from_pyproject
    exec_depends = {d.name for d in package.exec_depends}
    missing = sorted(from_pyproject - exec_depends)
    assert not missing, f"pyproject.toml depends on {missing} (as {ROS_PYPI_PREFIX}*) but package.xml does not"


def test_no_duplicate_dependencies(package: Package) -> None:
    names = [d.name for d in package.exec_depends]
    assert len(names) == len(set(names))


def _pypi_names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\s<>=!~;\[]", r.strip(), maxsplit=1)[0].lower().replace("_", "-") for r in requirements}


def test_every_dependency_is_a_rosdep_key_or_ros_package_that_pyproject_agrees_with(package: Package) -> None:
    """rosdep must resolve every <exec_depend>/<test_depend>: a python3-* key stands for a PyPI
    dependency of pyproject.toml; any other name is a ROS 2 package, which pyproject.toml installs
    as ros-kilted-NAME unless no wheel exists (ROS_PACKAGES_NOT_ON_PYPI)."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    runtime = _pypi_names(project["dependencies"])
    tests = runtime | _pypi_names(project["optional-dependencies"]["test"])
    for deps, pypi, kind in ((package.exec_depends, runtime, "exec_depend"), (package.test_depends, tests, "test_depend")):
        for dep in deps:
            if dep.name.startswith("python3-"):
                assert dep.name in ROSDEP_PYTHON_KEYS, f"<{kind}>{dep.name}: not a rosdep key navkit knows"
                assert ROSDEP_PYTHON_KEYS[dep.name] in pypi, \
                    f"<{kind}>{dep.name}: pyproject.toml does not depend on {ROSDEP_PYTHON_KEYS[dep.name]}"
            else:
                assert _ROS_PACKAGE_NAME.fullmatch(dep.name), f"<{kind}>{dep.name}: not a ROS package name"
                assert f"{ROS_PYPI_PREFIX}{dep.name.replace('_', '-')}" in pypi or dep.name in ROS_PACKAGES_NOT_ON_PYPI, \
                    f"<{kind}>{dep.name}: pyproject.toml has no {ROS_PYPI_PREFIX}{dep.name.replace('_', '-')}"
