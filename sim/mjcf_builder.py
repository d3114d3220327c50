"""Scenario -> MJCF text for the MuJoCo backend.

The model is generated rather than hand-written so that a scenario file is the single
source of truth for the world. Choices that matter for speed and stability on a CPU:
``implicitfast`` integration with wheel armature/damping (plain Euler drifts), thin
ellipsoid wheels (one contact point each, so the effective wheel separation is the
geometric one), soft frictionless casters and motor torque limits (3 N·m, ~3 m/s²)
so the wheels keep traction — with stiff casters or unlimited torque the drive wheels
slip and odometry drifts several metres per minute — and shadows
off (they cost ~10x in CPU rendering), and geom groups that let the lidar ray cast see
obstacles but never the robot's own body.
"""
from __future__ import annotations

from xml.sax.saxutils import quoteattr

from navkit.sim.scenario import Scenario

OBSTACLE_GROUP = 1
"""Geom group of walls, shelves and obstacles: the only group the lidar sees."""
ROBOT_GROUP = 2
PHYSICS_TIMESTEP_S = 0.002
WALL_THICKNESS_M = 0.2


def _f(*values: float) -> str:
    return " ".join(f"{v:.6g}" for v in values)


TOPDOWN_BORDER_M = 0.6


def topdown_view_height(sc: Scenario) -> float:
    """Height (m) of the orthographic overhead view: the map plus a border for the walls.

    Orthographic, so tall shelves and pillars look like their footprint, as on a map.
    Render it at :func:`topdown_aspect` to see the whole width.
    """
    return sc.bounds[3] - sc.bounds[1] + 2 * TOPDOWN_BORDER_M


def topdown_aspect(sc: Scenario) -> float:
    """Width / height of the overhead view."""
    return (sc.bounds[2] - sc.bounds[0] + 2 * TOPDOWN_BORDER_M) / topdown_view_height(sc)


def camera_mount(sc: Scenario) -> tuple[float, float, float]:
    """Where the front camera sits on base_link (x, y, z in metres): at the front edge, lidar height."""
    return (sc.robot.radius_m * 0.9, 0.0, 0.3)


def build_mjcf(sc: Scenario) -> str:
    """The full MJCF document for a scenario (world, obstacles, AGV, sensors, cameras)."""
    xmin, ymin, xmax, ymax = sc.bounds
    cx, cy = (xmin + xmax) / 2.0, (ymin + ymax) / 2.0
    sx, sy = (xmax - xmin) / 2.0, (ymax - ymin) / 2.0
    rm = sc.robot
    cam = sc.sensors.camera
    lidar = sc.sensors.lidar
    wheel_y = rm.wheel_separation_m / 2.0
    obstacles: list[str] = []
    t = WALL_THICKNESS_M / 2.0
    if sc.walls:
        for name, pos, size in (
            ("wall_south", (cx, ymin - t), (sx + 2 * t, t)),
            ("wall_north", (cx, ymax + t), (sx + 2 * t, t)),
            ("wall_west", (xmin - t, cy), (t, sy)),
            ("wall_east", (xmax + t, cy), (t, sy)),
        ):
            obstacles.append(
                f'<geom name="{name}" type="box" pos="{_f(*pos, 0.5)}" size="{_f(*size, 0.5)}" '
                f'material="wall" group="{OBSTACLE_GROUP}"/>'
            )
    for b in sc.boxes:
        material = "shelf" if b.mapped else "unmapped"
        obstacles.append(
            f'<geom name={quoteattr("ob_" + b.name)} type="box" pos="{_f(*b.center, b.height / 2)}" '
            f'size="{_f(b.size[0] / 2, b.size[1] / 2, b.height / 2)}" euler="0 0 {b.yaw:.6g}" '
            f'material="{material}" group="{OBSTACLE_GROUP}"/>'
        )
    for c in sc.cylinders:
        material = "pillar" if c.mapped else "unmapped"
        obstacles.append(
            f'<geom name={quoteattr("ob_" + c.name)} type="cylinder" pos="{_f(*c.center, c.height / 2)}" '
            f'size="{_f(c.radius, c.height / 2)}" material="{material}" group="{OBSTACLE_GROUP}"/>'
        )
    goal_sites = "\n    ".join(
        f'<site name="goal_{i}" type="cylinder" pos="{_f(g[0], g[1], 0.005)}" size="{_f(sc.goal_tolerance_m, 0.005)}" rgba="0.1 0.8 0.2 0.6"/>'
        for i, g in enumerate(sc.goals)
    )
    x0, y0, yaw0 = sc.start
    axle_z = rm.wheel_radius_m
    caster_r = rm.wheel_radius_m / 2.0
    return f"""<mujoco model={quoteattr(sc.name)}>
  <compiler angle="radian" autolimits="true"/>
  <option timestep="{PHYSICS_TIMESTEP_S}" integrator="implicitfast"/>
  <visual>
    <quality shadowsize="0"/>
    <global offwidth="1280" offheight="960"/>
    <headlight ambient="0.35 0.35 0.35" diffuse="0.3 0.3 0.3"/>
  </visual>
  <asset>
    <texture name="grid" type="2d" builtin="checker" rgb1="0.82 0.82 0.8" rgb2="0.74 0.74 0.72" width="256" height="256"/>
    <material name="floor" texture="grid" texrepeat="{_f(sx, sy)}"/>
    <material name="wall" rgba="0.55 0.55 0.6 1"/>
    <material name="shelf" rgba="0.25 0.4 0.75 1"/>
    <material name="pillar" rgba="0.45 0.45 0.45 1"/>
    <material name="unmapped" rgba="0.85 0.35 0.1 1"/>
    <material name="agv" rgba="0.95 0.7 0.1 1"/>
    <material name="wheel" rgba="0.1 0.1 0.1 1"/>
  </asset>
  <worldbody>
    <light directional="true" pos="{_f(cx, cy, 10)}" dir="0 0 -1" diffuse="0.45 0.45 0.45" castshadow="false"/>
    <geom name="floor" type="plane" pos="{_f(cx, cy, 0)}" size="{_f(sx + 1, sy + 1, 0.1)}" material="floor"/>
    <camera name="topdown" pos="{_f(cx, cy, 30)}" xyaxes="1 0 0 0 1 0" projection="orthographic" fovy="{topdown_view_height(sc):.6g}"/>
    {goal_sites}
    {chr(10).join('    ' + o for o in obstacles).strip()}
    <body name="base_link" pos="{_f(x0, y0, axle_z)}" euler="0 0 {yaw0:.6g}">
      <freejoint name="base"/>
      <geom name="chassis" type="cylinder" pos="0 0 0.12" size="{_f(rm.radius_m, 0.08)}" mass="{rm.mass_kg}" material="agv" group="{ROBOT_GROUP}"/>
      <geom name="heading" type="box" pos="{_f(rm.radius_m * 0.55, 0, 0.205)}" size="{_f(rm.radius_m * 0.35, 0.04, 0.005)}" mass="0.01" rgba="0.2 0.2 0.2 1" group="{ROBOT_GROUP}" contype="0" conaffinity="0"/>
      <geom name="caster_front" type="sphere" pos="{_f(rm.radius_m * 0.7, 0, caster_r - axle_z)}" size="{caster_r}" mass="0.2" condim="1" priority="1" solref="0.05 1" group="{ROBOT_GROUP}"/>
      <geom name="caster_back" type="sphere" pos="{_f(-rm.radius_m * 0.7, 0, caster_r - axle_z)}" size="{caster_r}" mass="0.2" condim="1" priority="1" solref="0.05 1" group="{ROBOT_GROUP}"/>
      <site name="lidar" pos="{_f(lidar.x_m, lidar.y_m, lidar.height_m - axle_z)}"/>
      <camera name="front_camera" pos="{_f(*camera_mount(sc))}" xyaxes="0 -1 0 0 0 1" fovy="{cam.fov_deg}"/>
      <body name="wheel_left" pos="{_f(0, wheel_y, 0)}">
        <joint name="wheel_left" type="hinge" axis="0 1 0" damping="0.05" armature="0.02"/>
        <geom type="ellipsoid" size="{_f(rm.wheel_radius_m, 0.025, rm.wheel_radius_m)}" mass="1.0" friction="1.5 0.01 0.001" material="wheel" group="{ROBOT_GROUP}"/>
      </body>
      <body name="wheel_right" pos="{_f(0, -wheel_y, 0)}">
        <joint name="wheel_right" type="hinge" axis="0 1 0" damping="0.05" armature="0.02"/>
        <geom type="ellipsoid" size="{_f(rm.wheel_radius_m, 0.025, rm.wheel_radius_m)}" mass="1.0" friction="1.5 0.01 0.001" material="wheel" group="{ROBOT_GROUP}"/>
      </body>
    </body>
  </worldbody>
  <actuator>
    <velocity name="left_motor" joint="wheel_left" kv="40" ctrlrange="{_f(-rm.max_wheel_speed_rad_s, rm.max_wheel_speed_rad_s)}" forcerange="-3 3"/>
    <velocity name="right_motor" joint="wheel_right" kv="40" ctrlrange="{_f(-rm.max_wheel_speed_rad_s, rm.max_wheel_speed_rad_s)}" forcerange="-3 3"/>
  </actuator>
</mujoco>
"""
