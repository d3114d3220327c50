#!/usr/bin/env bash
# Creates .venv in the checkout and installs navkit with every dependency (CPU torch,
# MuJoCo, ROS 2 Kilted wheels with Fast DDS, cvxpy/OSQP/Clarabel, ...). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# constraints.txt pins the CPU build of torch: nothing may swap it for a CUDA build.
.venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
env -u _ROS_WHEELS_BOOTSTRAP_COMPLETE .venv/bin/python -c 'import tf2_msgs.msg; from rosidl_generator_py import import_type_support as i; i("tf2_msgs")' >/dev/null 2>&1 || bash scripts/build_tf2_msgs.sh .venv
