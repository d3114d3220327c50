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
