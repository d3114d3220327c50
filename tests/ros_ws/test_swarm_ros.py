"""The robot team as namespaced ROS 2 processes: a 4-robot launch over Fast DDS, the agent
node's neighbour selection, and its refusal to turn NaN odometry into motion.

Processes get ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` and their own ``ROS_DOMAIN_ID``
and are killed in teardown (helpers in ros_helpers.py, fixtures in conftest.py).

Which 4-robot run: every fixed α deadlocks the circle swap (measured with ``rollout``:
seeds 0-3, α in {0.5, 1, 3}, n = 4 and 8; see also test_swarm_rollout.py), so the launch
test runs the circle swap with the online-CBF policy when its checkpoint is present, and
otherwise ``moving_obstacles`` seed 0 with fixed α (4 robots swap sides between three
moving obstacles; 15.8 sim s), which also exercises perception with moving obstacles.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ros_helpers import REPO_ROOT, Proc, RosClient, domain_id, ros_env

pytestmark = pytest.mark.ros

LAUNCH = REPO_ROOT / "ros_ws" / "launch" / "multi_robot.launch.yaml"
CIRCLE_SWAP = REPO_ROOT / "scenarios" / "multi" / "circle_swap.yaml"
MOVING = REPO_ROOT / "scenarios" / "multi" / "moving_obstacles.yaml"
AGENT_NODE = [sys.executable, "-c",
              "import sys; from navkit.ros_ws.navkit_nodes.swarm_agent_node import main; sys.exit(main())"]


# ------------------------------------------------------------------ the 4-robot launch over DDS


def _launch_four(tmp_path: Path, run_args: list[str]) -> tuple[int | None, dict, str]:
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "navkit.cli.main", "launch", str(LAUNCH), "n:=4", "real_time_factor:=2.5",
            f"output_dir:={out}", *run_args]
    log = tmp_path / "launch.log"
    with log.open("wb") as f:
        proc = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=ros_env(domain_id()), cwd=REPO_ROOT, start_new_session=True)
    handle = Proc(proc, log)
    try:
        code = proc.wait(timeout=60.0)
    except subprocess.TimeoutExpired:
        code = None
    finally:
        handle.kill()
    text = log.read_text(errors="replace")
    metrics = json.loads((out / "metrics.json").read_text()) if (out / "metrics.json").is_file() else {}
    return code, metrics, text


def test_four_robot_launch_reaches_every_goal(tmp_path: Path) -> None:
    """Four robots, each its own namespaced node pair over DDS, cross a field with moving obstacles."""
    code, m, text = _launch_four(tmp_path, [f"scenario:={MOVING}", "policy:=", "alpha:=3.0", "seed:=0"])
    assert code == 0, f"launch exit code {code}:\n{text[-4000:]}"
    assert m["success"] and m["agents_at_goal"] == m["num_agents"] == 4, m
    assert m["collisions"] == 0 and m["min_separation_m"] >= 0.4, m
    assert m["watchdog_trips"] == 0 and m["nonfinite_cmds"] == 0, m
    for i in range(4):
        assert f"[robot_{i}/swarm_agent]" in text  # one agent per namespace
    assert "[launch] swarm_bridge finished; shutting down" in text
    assert "Traceback" not in text, text[-4000:]


POLICY = REPO_ROOT / "control" / "policies" / "online_cbf_gnn.pt"


@pytest.mark.skipif(not POLICY.is_file(), reason="the shipped online-CBF policy checkpoint is absent")
def test_four_robot_circle_swap_with_the_policy_keeps_robots_apart(tmp_path: Path) -> None:
    """The shipped online-CBF policy swaps 4 robots over DDS as safely as in-process (0 collisions).

    Regression: with torch's default thread count in each of the 5 processes the agents
    missed control periods, neighbour broadcasts arrived 0.1-1 s late and robots touched while
    passing (min separation ~0.38 m, 2-9 collision onsets) although every goal was reached.
    """
    pytest.importorskip("torch")
    code, m, text = _launch_four(tmp_path, [f"scenario:={CIRCLE_SWAP}", f"policy:={POLICY}", "seed:=0"])
    assert code == 0, f"launch exit code {code}:\n{text[-4000:]}"
    assert f"policy {POLICY}" in text, text[-4000:]  # the GNN, not the fixed-alpha fallback
    assert m["success"] and m["agents_at_goal"] == m["num_agents"] == 4, m
    assert m["collisions"] == 0 and m["min_separation_m"] >= 0.4, m
    assert m["watchdog_trips"] == 0 and m["nonfinite_cmds"] == 0, m
    assert "Traceback" not in text, text[-4000:]


# ------------------------------------------------------------------ neighbour selection (no ROS graph)


def test_neighbour_outside_sensing_range_is_ignored() -> None:
    from navkit.stack.swarm_agent import NeighbourState, select_neighbours

    def s(x: float, y: float, stamp: float = 10.0, v: float = 0.0) -> NeighbourState:
        return NeighbourState(np.array([x, y]), np.array([v, 0.0]), 0.0, stamp)

    others = {1: s(1.0, 1.0), 2: s(2.01, 0.0), 3: s(0.0, -2.0), 4: s(0.5, 0.0, stamp=9.0),
              5: s(0.3, 0.0, v=math.nan), 6: s(-1.9, 0.0)}
    got = select_neighbours(np.array([0.0, 0.0]), others, sensing_radius_m=2.0, now=10.0, max_age_s=0.5)
    # 2: 2.01 m away (outside); 3: exactly at the radius (inside); 4: stale; 5: NaN velocity.
    assert got == [1, 3, 6]
    assert select_neighbours(np.array([10.0, 10.0]), others, 2.0, 10.0, 0.5) == []


def test_obstacle_perception_is_limited_to_the_sensing_radius() -> None:
    from navkit.sim.swarm_perception import perceived_obstacles

    centres = np.array([[2.2, 0.0], [2.6, 0.0], [0.0, -1.0]])
    radii = np.array([0.3, 0.3, 0.1])
    # Surface distance: 1.9 (seen), 2.3 (not), 0.9 (seen).
    assert perceived_obstacles(np.zeros(2), centres, radii, 2.0).tolist() == [0, 2]


# ------------------------------------------------------------------ NaN odometry -> zero cmd_vel


def test_nan_odometry_gives_zero_cmd_vel_and_no_crash(spawn: Callable[..., Proc],
                                                      ros_client: Callable[[int], RosClient]) -> None:
    from geometry_msgs.msg import TwistStamped
    from nav_msgs.msg import Odometry
    from visualization_msgs.msg import MarkerArray

    domain = domain_id()
    node = spawn(AGENT_NODE + ["--ros-args", "-r", "__ns:=/robot_0", "-p", "robot_index:=0", "-p", "num_agents:=4",
                               "-p", f"scenario:={MOVING}", "-p", "seed:=0", "-p", "use_sim_time:=false",
                               "-p", "stale_timeout_s:=5.0"], ros_env(domain), "agent")
    client = ros_client(domain)
    cmds: list[tuple[float, float]] = []
    client.node.create_subscription(TwistStamped, "/robot_0/cmd_vel",
                                    lambda m: cmds.append((m.twist.linear.x, m.twist.linear.y)), 50)
    odom_pub = client.node.create_publisher(Odometry, "/robot_0/odom", 10)
    obstacles_pub = client.node.create_publisher(MarkerArray, "/robot_0/obstacles", 10)
    assert client.spin_until(lambda: odom_pub.get_subscription_count() and obstacles_pub.get_subscription_count()
                             and client.node.count_publishers("/robot_0/cmd_vel"), 20.0), node.output()

    def odom(x: float, y: float) -> Any:
        msg = Odometry()
        msg.header.stamp = client.now().to_msg()
        msg.header.frame_id, msg.child_frame_id = "map", "robot_0/base_link"
        msg.pose.pose.position.x, msg.pose.pose.position.y = x, y
        msg.pose.pose.orientation.w = 1.0
        return msg

    def send(msg: Any, done: Callable[[list[tuple[float, float]]], bool]) -> list[tuple[float, float]]:
        """Perception then ``msg``, repeated (the first samples may precede discovery) until ``done``."""
        start = len(cmds)
        for _ in range(40):
            obstacles_pub.publish(MarkerArray())  # nothing in range: an empty perception, stamped on arrival
            client.spin_for(0.02)
            odom_pub.publish(msg)
            if client.spin_until(lambda: done(cmds[start:]), 0.1):
                break
        client.spin_for(0.1)
        return cmds[start:]

    # robot_0 of moving_obstacles seed 0 starts near (-4.5, 0), its goal near (+4.4, -0.4).
    good = send(odom(-4.5, 0.0), lambda c: any(vx > 0.5 for vx, _ in c))
    assert any(vx > 0.5 for vx, _ in good), (good, node.output())  # driving toward its goal
    bad = send(odom(math.nan, 0.0), lambda c: len(c) >= 3)
    assert bad and all(c == (0.0, 0.0) for c in bad), (bad, node.output())
    assert all(math.isfinite(a) and math.isfinite(b) for a, b in cmds)
    assert node.proc.poll() is None, f"the agent node died:\n{node.output()}"
    node.proc.send_signal(__import__("signal").SIGINT)
    assert node.proc.wait(timeout=10.0) == 0
    log = node.output()
    assert "NaN/Inf odometry: commanding zero" in log, log
    assert "Traceback" not in log, log
