#!/usr/bin/env bash
# Builds the ROS 2 Kilted message package tf2_msgs (TFMessage, the /tf and /tf_static type)
# from ros_ws/msg/tf2_msgs/TFMessage.msg and installs it into a virtual environment, laid out
# as the ros-kilted-* wheels lay out theirs, so `from tf2_msgs.msg import TFMessage` works in
# any process that the venv's python starts. tf2_msgs has no wheel on PyPI; the generators do.
#
#   bash scripts/build_tf2_msgs.sh [VENV]      (VENV defaults to the checkout's .venv)
#
# Needs cmake, a C and a C++ compiler, and Python headers. Builds in a temporary directory
# (kept, with its log, only when the build fails); re-running rebuilds and overwrites the same
# files. Quiet on success but for one line.
#
# The generator wheels leave some of their dependencies undeclared; the missing ones are
# installed from this list (with the checkout's constraints.txt), once:
REQUIREMENTS="ros-kilted-ament-cmake ros-kilted-ament-cmake-include-directories ros-kilted-ament-cmake-ros-core ros-kilted-ament-package ros-kilted-rosidl-default-generators ros-kilted-rosidl-core-generators catkin-pkg"
set -Eeuo pipefail

die() { echo "build_tf2_msgs: $*" >&2; exit 1; }

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MSG="$REPO/ros_ws/msg/tf2_msgs/TFMessage.msg"
VENV="${1:-$REPO/.venv}"
[ -d "$VENV" ] || die "no virtual environment at $VENV (run scripts/setup.sh first)"
VENV="$(cd "$VENV" && pwd)"
PY="$VENV/bin/python"
[ -x "$PY" ] || die "$PY not found: $VENV is not a virtual environment"
[ -f "$MSG" ] || die "$MSG is missing"

command -v cmake >/dev/null 2>&1 || die "cmake not found: install it (e.g. apt-get install cmake) and re-run"
command -v "${CC:-cc}" >/dev/null 2>&1 || die "C compiler '${CC:-cc}' not found: install one (e.g. apt-get install build-essential) and re-run"
command -v "${CXX:-c++}" >/dev/null 2>&1 || die "C++ compiler '${CXX:-c++}' not found: install one (e.g. apt-get install build-essential) and re-run"

# Every python the venv starts re-executes itself once through the ROS wheels' bootstrap
# (.pth), which puts VENV/lib on LD_LIBRARY_PATH; a guard variable inherited from another
# venv's process would skip that, so the checks below run without it.
vpy() { env -u _ROS_WHEELS_BOOTSTRAP_COMPLETE -u PYTHONPATH "$PY" "$@"; }

vpy -c 'import os, sysconfig, sys; sys.exit(not os.path.isfile(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
  || die "Python.h not found for $PY: install the Python development headers (e.g. apt-get install python3-dev) and re-run"

# Which of REQUIREMENTS are not installed. (Not `python -` with a here-document: the bootstrap
# re-executes the interpreter, and the second one would find stdin already read.)
# shellcheck disable=SC2086
missing="$(vpy -c 'import sys
from importlib import metadata
for name in sys.argv[1:]:
    try:
        metadata.distribution(name)
    except metadata.PackageNotFoundError:
        print(name)' $REQUIREMENTS)"
if [ -n "$missing" ]; then
  # shellcheck disable=SC2086
  vpy -m pip install --quiet --disable-pip-version-check -c "$REPO/constraints.txt" $missing >/dev/null 2>&1 \
    || die "pip could not install $(echo $missing) into $VENV"
fi

start=$SECONDS
WORK="$(mktemp -d "${TMPDIR:-/tmp}/tf2_msgs_build.XXXXXX")"
LOG="$WORK/build.log"
trap 'echo "build_tf2_msgs: build failed, see $LOG" >&2' ERR
mkdir -p "$WORK/src/msg"
cp "$MSG" "$WORK/src/msg/TFMessage.msg"

cat > "$WORK/src/package.xml" <<'EOF'
<?xml version="1.0"?>
<package format="3">
  <name>tf2_msgs</name>
  <version>0.41.0</version>
  <description>tf2_msgs/msg/TFMessage for ROS 2 Kilted, built by navkit's scripts/build_tf2_msgs.sh.</description>
  <maintainer email="navkit@example.com">navkit</maintainer>
  <license>BSD-3-Clause</license>
  <buildtool_depend>ament_cmake</buildtool_depend>
  <buildtool_depend>rosidl_default_generators</buildtool_depend>
  <depend>geometry_msgs</depend>
  <exec_depend>rosidl_default_runtime</exec_depend>
  <member_of_group>rosidl_interface_packages</member_of_group>
  <export>
    <build_type>ament_cmake</build_type>
  </export>
</package>
EOF

cat > "$WORK/src/CMakeLists.txt" <<'EOF'
cmake_minimum_required(VERSION 3.21)
project(tf2_msgs C CXX)
find_package(ament_cmake REQUIRED)
find_package(rosidl_default_generators REQUIRED)
find_package(geometry_msgs REQUIRED)
rosidl_generate_interfaces(${PROJECT_NAME} "msg/TFMessage.msg" DEPENDENCIES geometry_msgs)

# The message wheels' exported *__rosidl_generator_py targets name the include directories of
# the machine that built them (its Python and NumPy headers). CMake refuses a target that
# names a missing directory; this build's own Python3/NumPy targets bring the right ones, so
# drop the missing entries from the imported targets (in this build only, nothing installed
# is changed).
get_directory_property(_imported IMPORTED_TARGETS)
foreach(_target IN LISTS _imported)
  get_target_property(_dirs ${_target} INTERFACE_INCLUDE_DIRECTORIES)
  if(_dirs)
    set(_kept)
    foreach(_dir IN LISTS _dirs)
      if(EXISTS "${_dir}" OR _dir MATCHES "^\\$<")
        list(APPEND _kept "${_dir}")
      endif()
    endforeach()
    set_target_properties(${_target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_kept}")
  endif()
endforeach()

ament_package()
EOF

# Only this venv's packages: no sourced ROS install, colcon workspace or PYTHONPATH leaks in.
run() {
  env -u PYTHONPATH -u COLCON_PREFIX_PATH -u _ROS_WHEELS_BOOTSTRAP_COMPLETE \
    AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV" PATH="$VENV/bin:$PATH" \
    LD_LIBRARY_PATH="$VENV/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$@" >>"$LOG" 2>&1
}
run cmake -S "$WORK/src" -B "$WORK/build" \
  -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
  -DCMAKE_PREFIX_PATH="$VENV" -DCMAKE_INSTALL_PREFIX="$VENV" \
  -DPython3_EXECUTABLE="$PY"
run cmake --build "$WORK/build" --parallel "$(nproc 2>/dev/null || echo 2)"
run cmake --install "$WORK/build"
cp "$WORK/build/install_manifest.txt" "$VENV/share/tf2_msgs/install_manifest.txt"

# Loading the type support (not only the Python module) is what shows the libraries resolve.
hash="$(cd "$WORK" && vpy -c 'import json, sys
from rosidl_generator_py import import_type_support
from tf2_msgs.msg import TFMessage
import_type_support("tf2_msgs")
print(json.load(open(sys.argv[1]))["type_hashes"][0]["hash_string"])' "$VENV/share/tf2_msgs/msg/TFMessage.json" 2>>"$LOG")" \
  || { echo "build_tf2_msgs: installed, but tf2_msgs' type support does not load in $VENV, see $LOG" >&2; exit 1; }
trap - ERR
rm -rf "$WORK"
echo "tf2_msgs built and installed into $VENV in $((SECONDS - start)) s (TFMessage $hash)"
