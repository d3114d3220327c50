"""MuJoCo backend for a robot team: N disc agents and the scenario's obstacles in one model.

The physics counterpart of :class:`~navkit.sim.kinematic_swarm.KinematicSwarm`: it takes the same
commands ((1, N, 2) world velocities, or (v, ω) for unicycles), returns the same
:class:`~navkit.sim.kinematic_swarm.SwarmStep`, and a test checks the two agree within a few
centimetres. What physics adds is contact: agents are cylinders on planar joints
(slide x, slide y, hinge z), so two agents driven into each other touch, push and are
*detected* touching from MuJoCo's contact list rather than from a distance formula.

Choices that matter:

* Velocity actuators with a high gain (time constant ~3 ms) track the commanded joint
  velocities; ``implicitfast`` integrates their damping-like force stably at 2 ms steps.
* A unicycle's non-holonomic constraint is enforced by control: (v, ω) becomes joint
  targets (v cos θ, v sin θ, ω) recomputed from the current heading every physics step,
  so the disc can never slide sideways on its own accord (only contacts can push it).
* The floor is visual only (contype 0) and agents have no vertical joint, so the only
  contacts are agent–agent and agent–obstacle ones: cheap, and each one is a collision.
* Moving obstacles are mocap bodies placed from ``MovingObstacle.position_velocity(t)``
  every physics step; static and mocap obstacles never collide with each other.
* Shadows off and an orthographic overhead camera, as in the single-robot backend.
"""
from __future__ import annotations

import colorsys
import math
import os

# Headless CPU rendering; must be chosen before MuJoCo creates a GL context.
os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco
import numpy as np

from navkit.common.geometry import wrap_angle
from navkit.common.swarm_state import SwarmState, SwarmStep
from navkit.sim.mujoco_divergence import check_mujoco_divergence
from navkit.sim.swarm_scenario import SwarmScenario

PHYSICS_TIMESTEP_S = 0.002
AGENT_MASS_KG = 5.0
AGENT_HEIGHT_M = 0.2
VELOCITY_TIME_CONSTANT_S = 0.003
"""Actuator lag m / kv: small against the control period, so MuJoCo tracks the kinematic model."""
OBSTACLE_HEIGHT_M = 0.5
TOPDOWN_BORDER_M = 0.5
AGENT_CONTYPE, AGENT_CONAFFINITY = 1, 3
OBSTACLE_CONTYPE, OBSTACLE_CONAFFINITY = 2, 1
"""Agents collide with agents and obstacles; obstacles never with each other."""


def agent_rgb(i: int) -> tuple[float, float, float]:
    """Agent ``i``'s colour (golden-ratio hues): the same in the video and the trajectory plot."""
    hue = (0.61803398875 * i) % 1.0
    return colorsys.hsv_to_rgb(hue, 0.75, 0.9)


def _f(*values: float) -> str:
    return " ".join(f"{v:.6g}" for v in values)


def topdown_view(sc: SwarmScenario) -> tuple[float, float]:
    """(height in m, width / height) of the orthographic overhead view: the bounds plus a border."""
    xmin, ymin, xmax, ymax = sc.bounds
    h = ymax - ymin + 2 * TOPDOWN_BORDER_M
    return h, (xmax - xmin + 2 * TOPDOWN_BORDER_M) / h


def build_swarm_mjcf(sc: SwarmScenario) -> str:
    """The MJCF document for a swarm scenario: floor, obstacles, N agents, goal sites, camera."""
    xmin, ymin, xmax, ymax = sc.bounds
    cx, cy = (xmin + xmax) / 2.0, (ymin + ymax) / 2.0
    sx, sy = (xmax - xmin) / 2.0, (ymax - ymin) / 2.0
    r = sc.agent_radius_m
    hz = AGENT_HEIGHT_M / 2.0
    inertia_z = 0.5 * AGENT_MASS_KG * r * r
    kv_slide = AGENT_MASS_KG / VELOCITY_TIME_CONSTANT_S
    kv_hinge = inertia_z / VELOCITY_TIME_CONSTANT_S
    view_h, _ = topdown_view(sc)
    ob_attr = f'contype="{OBSTACLE_CONTYPE}" conaffinity="{OBSTACLE_CONAFFINITY}"'
    world: list[str] = []
    for j, (x, y, rad) in enumerate(sc.static_obstacles):
        world.append(f'<geom name="obstacle_{j}" type="cylinder" pos="{_f(x, y, OBSTACLE_HEIGHT_M / 2)}" '
                     f'size="{_f(rad, OBSTACLE_HEIGHT_M / 2)}" material="obstacle" {ob_attr}/>')
    for k, ob in enumerate(sc.moving_obstacles):
        p, _ = ob.position_velocity(0.0)
        world.append(f'<body name="moving_{k}" mocap="true" pos="{_f(p[0], p[1], OBSTACLE_HEIGHT_M / 2)}">'
                     f'<geom name="moving_obstacle_{k}" type="cylinder" size="{_f(ob.radius, OBSTACLE_HEIGHT_M / 2)}" '
                     f'material="moving" {ob_attr}/></body>')
    for i, g in enumerate(sc.goals):
        rgb = agent_rgb(i)
        world.append(f'<site name="goal_{i}" type="cylinder" pos="{_f(g[0], g[1], 0.003)}" '
                     f'size="{_f(sc.goal_tolerance_m, 0.003)}" rgba="{_f(*rgb, 0.45)}"/>')
    actuators: list[str] = []
    for i in range(sc.num_agents):
        rgb = agent_rgb(i)
        world.append(
            f'<body name="agent_{i}" pos="{_f(0, 0, hz)}">'
            f'<joint name="agent_{i}_x" type="slide" axis="1 0 0"/>'
            f'<joint name="agent_{i}_y" type="slide" axis="0 1 0"/>'
            f'<joint name="agent_{i}_yaw" type="hinge" axis="0 0 1"/>'
            f'<geom name="agent_{i}" type="cylinder" size="{_f(r, hz)}" mass="{AGENT_MASS_KG}" '
            f'rgba="{_f(*rgb, 1)}" contype="{AGENT_CONTYPE}" conaffinity="{AGENT_CONAFFINITY}"/>'
            f'<geom name="agent_{i}_heading" type="box" pos="{_f(0.5 * r, 0, hz + 0.002)}" '
            f'size="{_f(0.45 * r, 0.18 * r, 0.002)}" mass="0.001" rgba="0.1 0.1 0.1 1" contype="0" conaffinity="0"/>'
            f'</body>')
        actuators.append(f'<velocity name="agent_{i}_vx" joint="agent_{i}_x" kv="{kv_slide:.6g}"/>')
        actuators.append(f'<velocity name="agent_{i}_vy" joint="agent_{i}_y" kv="{kv_slide:.6g}"/>')
        actuators.append(f'<velocity name="agent_{i}_wz" joint="agent_{i}_yaw" kv="{kv_hinge:.6g}"/>')
    body = "\n    ".join(world)
    acts = "\n    ".join(actuators)
    return f"""<mujoco model="{sc.name}_swarm">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="{PHYSICS_TIMESTEP_S}" integrator="implicitfast" gravity="0 0 -9.81"/>
  <visual>
    <quality shadowsize="0"/>
    <global offwidth="1280" offheight="1280"/>
    <headlight ambient="0.3 0.3 0.3" diffuse="0.15 0.15 0.15" specular="0 0 0"/>
  </visual>
  <asset>
    <texture name="grid" type="2d" builtin="checker" rgb1="0.86 0.86 0.84" rgb2="0.78 0.78 0.76" width="256" height="256"/>
    <material name="floor" texture="grid" texrepeat="{_f(sx, sy)}"/>
    <material name="obstacle" rgba="0.4 0.4 0.42 1"/>
    <material name="moving" rgba="0.85 0.35 0.1 1"/>
  </asset>
  <worldbody>
    <light directional="true" pos="{_f(cx, cy, 10)}" dir="0 0 -1" diffuse="0.35 0.35 0.35" specular="0 0 0" castshadow="false"/>
    <geom name="floor" type="plane" pos="{_f(cx, cy, 0)}" size="{_f(sx + 1, sy + 1, 0.1)}" material="floor" contype="0" conaffinity="0"/>
    <camera name="topdown" pos="{_f(cx, cy, 30)}" xyaxes="1 0 0 0 1 0" projection="orthographic" fovy="{view_h:.6g}"/>
    {body}
  </worldbody>
  <actuator>
    {acts}
  </actuator>
</mujoco>
"""


class MujocoSwarm:
    """N agents of one swarm scenario stepped through MuJoCo physics (one scene, B = 1)."""

    def __init__(self, scenario: SwarmScenario) -> None:
        self.scenario = scenario
        self.dynamics = scenario.dynamics
        self.dt = scenario.control_dt_s
        self.model = mujoco.MjModel.from_xml_string(build_swarm_mjcf(scenario))
        self.data = mujoco.MjData(self.model)
        m = self.model
        n = scenario.num_agents
        self._qx = np.array([m.joint(f"agent_{i}_x").qposadr[0] for i in range(n)])
        self._qy = np.array([m.joint(f"agent_{i}_y").qposadr[0] for i in range(n)])
        self._qyaw = np.array([m.joint(f"agent_{i}_yaw").qposadr[0] for i in range(n)])
        self._vx = np.array([m.joint(f"agent_{i}_x").dofadr[0] for i in range(n)])
        self._vy = np.array([m.joint(f"agent_{i}_y").dofadr[0] for i in range(n)])
        self._ax = np.array([m.actuator(f"agent_{i}_vx").id for i in range(n)])
        self._ay = np.array([m.actuator(f"agent_{i}_vy").id for i in range(n)])
        self._aw = np.array([m.actuator(f"agent_{i}_wz").id for i in range(n)])
        self._mocap = np.array([m.body(f"moving_{k}").mocapid[0] for k in range(len(scenario.moving_obstacles))],
                               dtype=int)
        # geom id -> agent index (or -1), and which geoms are obstacles.
        self._geom_agent = np.full(m.ngeom, -1, dtype=int)
        for i in range(n):
            self._geom_agent[m.geom(f"agent_{i}").id] = i
        self._geom_obstacle = np.zeros(m.ngeom, dtype=bool)
        for j in range(len(scenario.static_obstacles)):
            self._geom_obstacle[m.geom(f"obstacle_{j}").id] = True
        for k in range(len(scenario.moving_obstacles)):
            self._geom_obstacle[m.geom(f"moving_obstacle_{k}").id] = True
        self.goals = scenario.goals[None].astype(float)
        self.radius = scenario.agent_radius_m
        self.max_speed = scenario.max_speed_m_s
        self.tolerance = scenario.goal_tolerance_m
        self._substeps = max(1, int(round(self.dt / PHYSICS_TIMESTEP_S)))
        self._renderers: dict[tuple[int, int], mujoco.Renderer] = {}
        self.reset()

    @property
    def num_agents(self) -> int:
        return self.scenario.num_agents

    @property
    def time(self) -> float:
        return float(self.data.time)

    # ------------------------------------------------------------------ stepping

    def reset(self) -> SwarmState:
        mujoco.mj_resetData(self.model, self.data)
        st = self.scenario.starts
        self.data.qpos[self._qx] = st[:, 0]
        self.data.qpos[self._qy] = st[:, 1]
        self.data.qpos[self._qyaw] = st[:, 2] if self.dynamics == "unicycle" else 0.0
        self._place_moving(0.0)
        mujoco.mj_forward(self.model, self.data)
        self.reached = np.zeros((1, self.num_agents), dtype=bool)
        self._command = np.zeros((self.num_agents, 2))
        return self.state

    def step(self, u: np.ndarray) -> SwarmStep:
        """Apply commands (1, N, 2) for one control period; non-finite commands mean 'stop'."""
        u = np.asarray(u, dtype=float).reshape(self.num_agents, 2)
        u = np.where(np.isfinite(u), u, 0.0)
        d = self.data
        if self.dynamics == "unicycle":
            v = np.clip(u[:, 0], -self.max_speed, self.max_speed)
            w = u[:, 1]
            d.ctrl[self._aw] = w
            for _ in range(self._substeps):
                yaw = d.qpos[self._qyaw]
                d.ctrl[self._ax] = v * np.cos(yaw)
                d.ctrl[self._ay] = v * np.sin(yaw)
                self._place_moving(d.time + PHYSICS_TIMESTEP_S)
                mujoco.mj_step(self.model, d)
        else:
            speed = np.linalg.norm(u, axis=-1, keepdims=True)
            vel = np.where(speed > self.max_speed, u * self.max_speed / np.maximum(speed, 1e-12), u)
            d.ctrl[self._ax] = vel[:, 0]
            d.ctrl[self._ay] = vel[:, 1]
            d.ctrl[self._aw] = 0.0
            if len(self._mocap):
                for _ in range(self._substeps):
                    self._place_moving(d.time + PHYSICS_TIMESTEP_S)
                    mujoco.mj_step(self.model, d)
            else:
                mujoco.mj_step(self.model, d, nstep=self._substeps)
        self._check_divergence()
        # Contacts of the final state (mj_step leaves them from the step's start): refresh.
        mujoco.mj_forward(self.model, d)
        return self._measure()

    @property
    def positions(self) -> np.ndarray:
        """(N, 2) agent positions."""
        return np.stack([self.data.qpos[self._qx], self.data.qpos[self._qy]], axis=1)

    @property
    def state(self) -> SwarmState:
        d = self.data
        t = float(d.time)
        pos, rad, vel = self.scenario.obstacles_at(t)
        headings = d.qpos[self._qyaw] if self.dynamics == "unicycle" else np.zeros(self.num_agents)
        headings = wrap_angle(headings)
        velocities = np.stack([d.qvel[self._vx], d.qvel[self._vy]], axis=1)
        return SwarmState(positions=self.positions[None], headings=headings[None].copy(),
                          velocities=velocities[None], goals=self.goals, active=~self.reached,
                          obstacle_positions=pos[None], obstacle_radii=rad[None], obstacle_velocities=vel[None],
                          time=t, priorities=None if self.scenario.priorities is None else self.scenario.priorities[None],
                          control_dt_s=self.scenario.control_dt_s, dynamics=self.dynamics)

    def contacts(self) -> tuple[np.ndarray, np.ndarray]:
        """(N,) bools from MuJoCo's contact list: touching another agent, touching an obstacle."""
        d = self.data
        n = self.num_agents
        agent_hit = np.zeros(n, dtype=bool)
        obstacle_hit = np.zeros(n, dtype=bool)
        if d.ncon:
            g1 = d.contact.geom1[: d.ncon]
            g2 = d.contact.geom2[: d.ncon]
            touching = d.contact.dist[: d.ncon] < 0.0
            a1, a2 = self._geom_agent[g1], self._geom_agent[g2]
            both = touching & (a1 >= 0) & (a2 >= 0)
            agent_hit[a1[both]] = True
            agent_hit[a2[both]] = True
            ob1 = touching & (a1 >= 0) & self._geom_obstacle[g2]
            ob2 = touching & (a2 >= 0) & self._geom_obstacle[g1]
            obstacle_hit[a1[ob1]] = True
            obstacle_hit[a2[ob2]] = True
        return agent_hit, obstacle_hit

    def overlap(self) -> tuple[np.ndarray, np.ndarray, float, float]:
        """Geometric overlap as KinematicSwarm measures it: (N,) agent, (N,) obstacle, min centre
        distance between agents, min agent-surface to obstacle-surface gap."""
        p = self.positions
        n = self.num_agents
        dist = np.linalg.norm(p[:, None] - p[None], axis=-1)
        dist[np.arange(n), np.arange(n)] = np.inf
        agent = (dist < 2 * self.radius).any(axis=1)
        opos, orad, _ = self.scenario.obstacles_at(self.time)
        if len(orad):
            gap = np.linalg.norm(p[:, None] - opos[None], axis=-1) - orad[None] - self.radius
            obstacle = (gap < 0.0).any(axis=1)
            min_gap = float(gap.min())
        else:
            obstacle, min_gap = np.zeros(n, dtype=bool), float("inf")
        return agent, obstacle, float(dist.min()), min_gap

    def _measure(self) -> SwarmStep:
        state = self.state
        at_goal = np.linalg.norm(state.positions - self.goals, axis=-1) <= self.tolerance
        self.reached |= at_goal
        agent_hit, obstacle_hit = self.contacts()
        _, _, min_dist, _ = self.overlap()
        return SwarmStep(state=state, at_goal=at_goal, agent_collision=agent_hit[None],
                         obstacle_collision=obstacle_hit[None], min_agent_distance=np.array([min_dist]))

    def _place_moving(self, t: float) -> None:
        for k, ob in enumerate(self.scenario.moving_obstacles):
            p, _ = ob.position_velocity(t)
            self.data.mocap_pos[self._mocap[k], :2] = p

    def _check_divergence(self) -> None:
        check_mujoco_divergence(self.data, self.scenario.source)

    # ------------------------------------------------------------------ rendering

    def render_topdown(self, width: int, height: int) -> np.ndarray:
        """An RGB frame (height, width, 3) from the fixed orthographic overhead camera."""
        key = (width, height)
        if key not in self._renderers:
            self._renderers[key] = mujoco.Renderer(self.model, height=height, width=width)
        renderer = self._renderers[key]
        renderer.update_scene(self.data, camera="topdown")
        return renderer.render().copy()

    def close(self) -> None:
        for r in self._renderers.values():
            r.close()
        self._renderers.clear()


def topdown_frame_size(sc: SwarmScenario, height: int) -> tuple[int, int]:
    """(width, height) of an overhead frame of ``height`` pixels showing the whole bounds (even width)."""
    _, aspect = topdown_view(sc)
    return int(math.ceil(height * aspect / 2.0)) * 2, height
