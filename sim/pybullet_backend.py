"""PyBullet backend of the robot interface: the same diff-drive AGV and warehouse as the MuJoCo one.

A second simulator is how navkit tells a property of its stack from an artefact of one
physics engine: a run that reaches its goals in both, along nearly the same path, does
not depend on MuJoCo's soft contacts or PyBullet's rigid ones. So this backend copies
:class:`~navkit.sim.mujoco_backend.MujocoRobot`'s semantics rather than PyBullet's habits:
the world comes from the same :class:`~navkit.sim.scenario.Scenario` with the dimensions
of :mod:`navkit.sim.mjcf_builder` (wall thickness, chassis, wheel and caster placement,
lidar and camera mounts), physics steps at the same 2 ms, odometry integrates noisy wheel
encoder speeds once per odometry period, and the driver watchdog stops stale commands.

The base is a wheeled multibody, not a kinematic body pushed by ``resetBaseVelocity``:
two velocity-controlled wheel joints with MuJoCo's torque limit (3 N·m) and friction
(1.5) carry a 20 kg chassis on two frictionless casters. Measured against MuJoCo from
rest, that reproduces the torque-limited spin-up (0.25 m/s after 0.1 s at a 0.5 m/s
command in both, the same 0.1 s lag of the turn on an arc) and the steady speeds, and it
keeps what a kinematic base would lose: wheels that slip when the torque is exceeded, a
base that a wall stops by contact forces, and encoder speeds that are the wheels' own.
Wheel contact proved stable at 2 ms (single-point sphere wheels, as MuJoCo's thin
ellipsoids), so the kinematic fallback was not needed.

Every pybullet call names this instance's private physics client (``DIRECT``, no GUI,
never the process-wide default client), so several robots coexist in one process and
:meth:`PybulletRobot.close` releases exactly its own world.

Known differences from MuJoCo (tests/sim/test_pybullet_backend.py measures each):

* Rigid contact: wheels do not sink into the floor, so the robot drives ~0.4 % faster at
  the same wheel speed and its odometry needs no radius calibration; wheels do not slip
  when turning in place, so odometry drifts less than MuJoCo's.
* Casters are rigid (MuJoCo's are soft), so the chassis load is shared differently between
  casters and wheels; traction stays ample either way at 3 N·m.
* The wheels touch only the floor: an obstacle lower than the chassis bottom (0.12 m) meets
  the casters but not the wheels.
* Lidar: boxes and walls read the same to float precision; PyBullet's ray test against a
  cylinder is a convex cast, up to ~1 cm off on grazing rays (MuJoCo's is analytic).
* Camera: TinyRenderer's flat shading and a plain floor instead of the checker texture;
  the same intrinsics, mount and metric depth. The overhead view is a narrow perspective
  from far above, since TinyRenderer cannot draw an orthographic one.
* PyBullet neither warns nor resets on bad numbers; :meth:`PybulletRobot.advance` checks
  the base state itself and raises :class:`~navkit.common.errors.SimulationDiverged`.
"""
from __future__ import annotations

import math
import weakref
from typing import Any

import numpy as np
import pybullet

from navkit.common.errors import NavkitError, SimulationDiverged
from navkit.common.geometry import Pose2D, RigidTransform, yaw_to_quaternion
from navkit.common.sensor_data import CameraImage, CameraIntrinsics, LaserScan, Odometry, VelocityCommand
from navkit.sim.mjcf_builder import PHYSICS_TIMESTEP_S, WALL_THICKNESS_M, camera_mount, topdown_view_height
from navkit.sim.diff_drive import DiffDriveDriver
from navkit.sim.scenario import Scenario

__all__ = ["PybulletRobot", "PybulletUnavailable"]

# Robot dimensions that build_mjcf writes as literals; tests/sim/test_pybullet_backend.py reads
# them back from the generated MJCF, so the two robots cannot silently drift apart.
CHASSIS_Z_M = 0.12
"""Chassis cylinder centre above base_link (the wheel axle)."""
CHASSIS_HALF_HEIGHT_M = 0.08
CASTER_X_FRACTION = 0.7
"""Casters sit at ±0.7 robot radii along x, their radius half the wheel's, touching the floor."""
CASTER_MASS_KG = 0.2
WHEEL_MASS_KG = 1.0
WHEEL_HALF_WIDTH_M = 0.025
"""Half-width of MuJoCo's ellipsoid wheel (for its spin inertia and the picture; contact is a sphere)."""
WHEEL_ARMATURE = 0.02
"""Rotor inertia reflected to the wheel (kg·m²); PyBullet has no armature, so it joins the wheel's inertia."""
WHEEL_DAMPING = 0.05
"""Joint damping (N·m·s/rad) of each wheel, as MuJoCo's."""
WHEEL_FRICTION = 1.5
MOTOR_TORQUE_LIMIT_NM = 3.0
"""MuJoCo's forcerange: ~3 m/s² at most, so the wheels keep traction."""
FLOOR_FRICTION = 1.0
OBSTACLE_FRICTION = 1.0
WALL_HEIGHT_M = 1.0

ODOM_WHEEL_RADIUS_SCALE = 1.0
"""Calibrated effective wheel radius / nominal radius.

MuJoCo's soft contact compresses its wheels (0.996 there); PyBullet's rigid contact does
not: 15 m straight at 0.7 m/s reads 1.000001 of the true distance with the nominal radius,
and a full turn in place 1e-4 rad off (MuJoCo's wheels slip ~0.3 % there). What remains is
the encoder noise, so this robot's odometry drifts less than MuJoCo's.
"""

CONTACT_DEPTH_M = 1e-4
"""A robot-obstacle contact point counts as a collision at or below this signed distance.

Bullet keeps manifold points that are a little apart (up to its contact-breaking
threshold); MuJoCo with zero margin reports only touching or overlapping geoms. The
0.1 mm allows for the solver pushing a resting contact just apart, and nothing more.
"""

# Collision groups. Bullet's ray test has the fixed group 1, so bit 1 is "visible to the lidar".
_RAY = 1
_FLOOR = 2
_OBSTACLE = 4
_CHASSIS = 8
_WHEEL = 16

_CAMERA_NEAR_M = 0.01
_TOPDOWN_CAMERA_Z_M = 1000.0
_TOPDOWN_DEPTH_M = 200.0
"""Scene depth the overhead view keeps (obstacles are at most 100 m tall)."""

_COLOURS = {
    "floor": (0.78, 0.78, 0.76, 1.0), "wall": (0.55, 0.55, 0.6, 1.0), "shelf": (0.25, 0.4, 0.75, 1.0),
    "pillar": (0.45, 0.45, 0.45, 1.0), "unmapped": (0.85, 0.35, 0.1, 1.0), "agv": (0.95, 0.7, 0.1, 1.0),
    "wheel": (0.1, 0.1, 0.1, 1.0), "heading": (0.2, 0.2, 0.2, 1.0), "goal": (0.1, 0.8, 0.2, 1.0),
}
"""MuJoCo's materials, so videos of the two simulators look alike."""

_LEFT, _RIGHT, _CASTER_FRONT, _CASTER_BACK = 0, 1, 2, 3
"""Link indices of the robot multibody (the base, -1, is the chassis)."""


class PybulletUnavailable(NavkitError):
    """PyBullet could not open a physics client (a broken install, or the client table full)."""


class PybulletRobot:
    """A simulated AGV in PyBullet: a :class:`~navkit.common.interfaces.RobotBackend` with
    :class:`~navkit.common.interfaces.SimulationTruth`, interchangeable with ``MujocoRobot``.
    """

    def __init__(self, scenario: Scenario, *, cmd_timeout_s: float = 0.5) -> None:
        self.scenario = scenario
        self.driver = DiffDriveDriver(scenario.robot, scenario.sensors.odometry, cmd_timeout_s=cmd_timeout_s,
                                      wheel_radius_scale=ODOM_WHEEL_RADIUS_SCALE)
        cid = pybullet.connect(pybullet.DIRECT)
        if cid < 0:
            raise PybulletUnavailable(f"{scenario.source}: pybullet.connect(DIRECT) failed")
        self._cid: int = cid
        # Disconnects even if close() is never called (a test, a crashed run): DIRECT clients
        # otherwise live until the process ends.
        self._finalizer = weakref.finalize(self, _disconnect, cid)
        self._call("setGravity", 0.0, 0.0, -9.81)
        self._call("setTimeStep", PHYSICS_TIMESTEP_S)
        self._obstacle_ids: set[int] = set()
        self._floor_id = self._build_world()
        self._robot_id, self._com_offset = self._build_robot()
        lidar = scenario.sensors.lidar
        fov = math.radians(lidar.fov_deg)
        full_circle = abs(fov - 2.0 * math.pi) < 1e-9
        self._angle_inc = fov / lidar.num_rays if full_circle else fov / max(lidar.num_rays - 1, 1)
        self._angle_min = -fov / 2.0 if not full_circle else -math.pi
        self._ray_angles = self._angle_min + self._angle_inc * np.arange(lidar.num_rays)
        # Each ray's direction on base_link through the lidar's mount (offset, turned or upside
        # down), exactly as MujocoRobot turns them, so both scans hold the same rays in the same order.
        self._scan_mount = lidar.mount(base_height_m=scenario.robot.wheel_radius_m)
        sensor_dirs = np.stack([np.cos(self._ray_angles), np.sin(self._ray_angles), np.zeros(lidar.num_rays)], axis=1)
        base_dirs = sensor_dirs @ self._scan_mount.matrix.T
        self._ray_base_angles = np.arctan2(base_dirs[:, 1], base_dirs[:, 0])
        cam = scenario.sensors.camera
        self.camera_intrinsics = CameraIntrinsics.from_fov(cam.width, cam.height, cam.fov_deg)
        # The same optical frame on base_link as MujocoRobot's (z forward, x right, y down).
        self.camera_extrinsics = RigidTransform(camera_mount(scenario), (-0.5, 0.5, -0.5, 0.5), "base_link",
                                                "camera_optical_frame")
        xmin, ymin, xmax, ymax = scenario.bounds
        self._camera_far_m = 2.0 * math.hypot(xmax - xmin, ymax - ymin) + 10.0
        self._call("performCollisionDetection")
        self._initial_state = self._call("saveState")
        self.reset(scenario.seed)

    # ------------------------------------------------------------------ interface

    def reset(self, seed: int | None = None) -> None:
        # restoreState brings back poses, velocities and the contact cache, so an episode after
        # a reset steps exactly as one in a fresh instance (same seed, same trajectory).
        self._call("restoreState", self._initial_state)
        self._steps = 0
        self._rng = np.random.default_rng(self.scenario.seed if seed is None else seed)
        self.driver.reset(Pose2D(*self.scenario.start))
        self._wheel_targets = (0.0, 0.0)
        self._drive_wheels(0.0, 0.0)
        self._call("performCollisionDetection")

    def now(self) -> float:
        """Simulated seconds since the reset (a step count, so it never accumulates rounding)."""
        return self._steps * PHYSICS_TIMESTEP_S

    @property
    def cmd_timeout_s(self) -> float:
        """The driver watchdog's timeout (held by the shared driver: one copy)."""
        return self.driver.cmd_timeout_s

    def apply_command(self, cmd: VelocityCommand) -> None:
        self.driver.apply_command(cmd, self.now())

    @property
    def watchdog_trips(self) -> int:
        """How many control periods the driver watchdog stopped the base (stale command)."""
        return self.driver.watchdog_trips

    def advance(self, duration_s: float) -> None:
        """Step physics for ``duration_s``, integrating odometry once per odometry period (as MuJoCo)."""
        for nstep in self.driver.odometry_periods(duration_s, PHYSICS_TIMESTEP_S):
            self._set_wheel_targets()
            for _ in range(nstep):
                self._call("stepSimulation")
            self._steps += nstep
            self._check_divergence()
            self._integrate_odometry(nstep * PHYSICS_TIMESTEP_S)

    def read_odometry(self) -> Odometry:
        return self.driver.odometry(self.now())

    def read_scan(self) -> LaserScan:
        """A horizontal ray fan from the lidar mount that only obstacles and walls can stop.

        Rays stay level when the chassis pitches (as MuJoCo's), so a braking robot does not
        see the floor; the scan carries the mount, so consumers place its points on base_link.
        """
        lidar = self.scenario.sensors.lidar
        origin = self._lidar_position()
        world = self._ray_base_angles + self.true_pose().yaw
        starts = np.broadcast_to(origin, (lidar.num_rays, 3))
        ends = origin + lidar.range_max_m * np.stack([np.cos(world), np.sin(world), np.zeros_like(world)], axis=1)
        hits = self._call("rayTestBatch", starts.tolist(), ends.tolist(), collisionFilterMask=_OBSTACLE)
        fraction = np.array([h[2] for h in hits], dtype=np.float64)
        hit = np.array([h[0] >= 0 for h in hits], dtype=bool)
        ranges = np.where(hit, fraction * lidar.range_max_m, -1.0)
        ranges[hit] += self._rng.normal(0.0, lidar.noise_std_m, int(hit.sum()))
        ranges[~hit | (ranges >= lidar.range_max_m)] = np.inf
        return LaserScan(stamp=self.now(), angle_min=self._angle_min, angle_increment=self._angle_inc,
                         range_min=lidar.range_min_m, range_max=lidar.range_max_m,
                         ranges=ranges.astype(np.float32), mount=self._scan_mount)

    def read_camera(self) -> CameraImage | None:
        """The front camera through the CPU TinyRenderer (no GL context, so it runs anywhere)."""
        cam = self.scenario.sensors.camera
        if not cam.enabled:
            return None
        rot, pos = self._base_link_frame()
        eye = pos + rot @ np.asarray(camera_mount(self.scenario))
        forward, up = rot[:, 0], rot[:, 2]
        view = self._call("computeViewMatrix", eye.tolist(), (eye + forward).tolist(), up.tolist())
        proj = self._call("computeProjectionMatrixFOV", cam.fov_deg, cam.width / cam.height, _CAMERA_NEAR_M,
                          self._camera_far_m)
        rgb, zbuffer = self._render(cam.width, cam.height, view, proj)
        depth = None
        if cam.depth:
            near, far = _CAMERA_NEAR_M, self._camera_far_m
            # OpenGL's non-linear z-buffer back to metres along the optical axis (MuJoCo's depth).
            depth = (far * near / (far - (far - near) * zbuffer)).astype(np.float32)
        return CameraImage(stamp=self.now(), rgb=rgb, depth=depth, intrinsics=self.camera_intrinsics,
                           extrinsics=self.camera_extrinsics)

    # ------------------------------------------------------------- simulation truth

    def true_pose(self) -> Pose2D:
        """base_link (the axle centre, as MuJoCo's freejoint), not PyBullet's centre of mass."""
        rot, (x, y, _) = self._base_link_frame()
        return Pose2D(float(x), float(y), math.atan2(rot[1, 0], rot[0, 0]))

    def in_collision(self) -> bool:
        """True while a robot part touches a wall or obstacle (contacts of the last physics step)."""
        contacts = self._call("getContactPoints", bodyA=self._robot_id)
        return any(c[2] in self._obstacle_ids and c[8] <= CONTACT_DEPTH_M for c in contacts)

    def render_topdown(self, width: int, height: int) -> np.ndarray:
        """An overhead RGB frame framed like MuJoCo's orthographic ``topdown`` camera (for videos).

        TinyRenderer draws nothing through an orthographic matrix (it assumes a perspective
        one), so the view is a narrow perspective from high above: from 1 km a 2 m shelf's
        top is 0.2 % larger than its footprint, below a pixel at video sizes.
        """
        xmin, ymin, xmax, ymax = self.scenario.bounds
        cx, cy = (xmin + xmax) / 2.0, (ymin + ymax) / 2.0
        z = _TOPDOWN_CAMERA_Z_M
        fov_deg = math.degrees(2.0 * math.atan(topdown_view_height(self.scenario) / 2.0 / z))
        view = self._call("computeViewMatrix", [cx, cy, z], [cx, cy, 0.0], [0.0, 1.0, 0.0])
        proj = self._call("computeProjectionMatrixFOV", fov_deg, width / height, z - _TOPDOWN_DEPTH_M, z + 1.0)
        rgb, _ = self._render(width, height, view, proj)
        return rgb

    def close(self) -> None:
        """Disconnect this robot's physics client (idempotent); other instances are untouched."""
        self._finalizer()

    # ------------------------------------------------------------------ internals

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """A pybullet function on this instance's client, never the process-wide default one."""
        if not self._finalizer.alive:
            raise PybulletUnavailable(f"{self.scenario.source}: this PybulletRobot was closed")
        return getattr(pybullet, name)(*args, physicsClientId=self._cid, **kwargs)

    def _build_world(self) -> int:
        """Floor, walls, shelves and obstacles as static bodies; returns the floor's id."""
        sc = self.scenario
        xmin, ymin, xmax, ymax = sc.bounds
        cx, cy = (xmin + xmax) / 2.0, (ymin + ymax) / 2.0
        sx, sy = (xmax - xmin) / 2.0, (ymax - ymin) / 2.0
        floor_col = self._call("createCollisionShape", pybullet.GEOM_PLANE)
        floor_vis = self._call("createVisualShape", pybullet.GEOM_BOX, halfExtents=[sx + 1.0, sy + 1.0, 0.005],
                               visualFramePosition=[0.0, 0.0, -0.005], rgbaColor=_COLOURS["floor"])
        floor = self._static_body(floor_col, floor_vis, (cx, cy, 0.0), 0.0, FLOOR_FRICTION)
        self._call("setCollisionFilterGroupMask", floor, -1, _FLOOR, _CHASSIS | _WHEEL)
        t = WALL_THICKNESS_M / 2.0
        if sc.walls:
            for pos, half in (((cx, ymin - t), (sx + 2 * t, t)), ((cx, ymax + t), (sx + 2 * t, t)),
                              ((xmin - t, cy), (t, sy)), ((xmax + t, cy), (t, sy))):
                self._add_box(pos, half, WALL_HEIGHT_M, 0.0, "wall")
        for b in sc.boxes:
            colour = "shelf" if b.mapped else "unmapped"
            self._add_box(b.center, (b.size[0] / 2, b.size[1] / 2), b.height, b.yaw, colour)
        for c in sc.cylinders:
            col = self._call("createCollisionShape", pybullet.GEOM_CYLINDER, radius=c.radius, height=c.height)
            vis = self._call("createVisualShape", pybullet.GEOM_CYLINDER, radius=c.radius, length=c.height,
                             rgbaColor=_COLOURS["pillar" if c.mapped else "unmapped"])
            self._add_obstacle(self._static_body(col, vis, (*c.center, c.height / 2), 0.0, OBSTACLE_FRICTION))
        for g in sc.goals:  # markers for the videos only: no collision shape
            vis = self._call("createVisualShape", pybullet.GEOM_CYLINDER, radius=sc.goal_tolerance_m, length=0.01,
                             rgbaColor=_COLOURS["goal"])
            self._call("createMultiBody", 0.0, -1, vis, [g[0], g[1], 0.005], useMaximalCoordinates=True)
        return floor

    def _add_box(self, center: tuple[float, float], half: tuple[float, float], height: float, yaw: float,
                 colour: str) -> None:
        col = self._call("createCollisionShape", pybullet.GEOM_BOX, halfExtents=[*half, height / 2])
        vis = self._call("createVisualShape", pybullet.GEOM_BOX, halfExtents=[*half, height / 2],
                         rgbaColor=_COLOURS[colour])
        self._add_obstacle(self._static_body(col, vis, (*center, height / 2), yaw, OBSTACLE_FRICTION))

    def _add_obstacle(self, body: int) -> None:
        """Obstacles stop the chassis and the lidar's rays, nothing else (static bodies never meet)."""
        self._call("setCollisionFilterGroupMask", body, -1, _OBSTACLE, _CHASSIS | _RAY)
        self._obstacle_ids.add(body)

    def _static_body(self, col: int, vis: int, pos: tuple[float, float, float], yaw: float, friction: float) -> int:
        """A fixed rigid body: maximal coordinates keep it out of the multibody solver, which
        otherwise visits every fixed multibody each step (2.5x slower with 2000 obstacles)."""
        body = self._call("createMultiBody", 0.0, col, vis, list(pos), list(yaw_to_quaternion(yaw)),
                         useMaximalCoordinates=True)
        self._call("changeDynamics", body, -1, lateralFriction=friction)
        return int(body)

    def _build_robot(self) -> tuple[int, np.ndarray]:
        """The AGV as a multibody: chassis base, two wheel joints, two fixed casters.

        Wheels are spheres (one contact point each, so the track is the geometric one, as
        MuJoCo's thin ellipsoids give) that touch only the floor: within the chassis
        footprint they could only meet obstacles lower than the chassis bottom (0.12 m).
        Casters are frictionless links of their own, since one friction per link is all
        PyBullet has and the chassis needs friction against walls. Returns the body id and
        the centre-of-mass offset on base_link (PyBullet reports the base's centre of mass).
        """
        sc, rm = self.scenario, self.scenario.robot
        r, wheel_y, caster_r = rm.wheel_radius_m, rm.wheel_separation_m / 2.0, rm.wheel_radius_m / 2.0
        caster_x, caster_z = rm.radius_m * CASTER_X_FRACTION, caster_r - r
        chassis_h = 2 * CHASSIS_HALF_HEIGHT_M
        chassis = self._call("createCollisionShape", pybullet.GEOM_CYLINDER, radius=rm.radius_m, height=chassis_h,
                             collisionFramePosition=[0.0, 0.0, CHASSIS_Z_M])
        body_vis = self._call("createVisualShapeArray", shapeTypes=[pybullet.GEOM_CYLINDER, pybullet.GEOM_BOX],
                              radii=[rm.radius_m, 0.0], lengths=[chassis_h, 0.0],
                              halfExtents=[[0.0, 0.0, 0.0], [rm.radius_m * 0.35, 0.04, 0.005]],
                              visualFramePositions=[[0.0, 0.0, CHASSIS_Z_M], [rm.radius_m * 0.55, 0.0, 0.205]],
                              rgbaColors=[_COLOURS["agv"], _COLOURS["heading"]])
        wheel = self._call("createCollisionShape", pybullet.GEOM_SPHERE, radius=r)
        wheel_vis = self._call("createVisualShape", pybullet.GEOM_CYLINDER, radius=r, length=2 * WHEEL_HALF_WIDTH_M,
                               visualFrameOrientation=list(pybullet.getQuaternionFromEuler([math.pi / 2, 0.0, 0.0])),
                               rgbaColor=_COLOURS["wheel"])
        caster = self._call("createCollisionShape", pybullet.GEOM_SPHERE, radius=caster_r)
        com = np.array([0.0, 0.0, CHASSIS_Z_M])
        x0, y0, yaw0 = sc.start
        robot = self._call(
            "createMultiBody", rm.mass_kg, chassis, body_vis, [x0, y0, r], list(yaw_to_quaternion(yaw0)),
            baseInertialFramePosition=com.tolist(),
            linkMasses=[WHEEL_MASS_KG, WHEEL_MASS_KG, CASTER_MASS_KG, CASTER_MASS_KG],
            linkCollisionShapeIndices=[wheel, wheel, caster, caster],
            linkVisualShapeIndices=[wheel_vis, wheel_vis, -1, -1],
            linkPositions=[[0.0, wheel_y, 0.0], [0.0, -wheel_y, 0.0], [caster_x, 0.0, caster_z],
                           [-caster_x, 0.0, caster_z]],
            linkOrientations=[[0.0, 0.0, 0.0, 1.0]] * 4, linkInertialFramePositions=[[0.0, 0.0, 0.0]] * 4,
            linkInertialFrameOrientations=[[0.0, 0.0, 0.0, 1.0]] * 4, linkParentIndices=[0] * 4,
            linkJointTypes=[pybullet.JOINT_REVOLUTE, pybullet.JOINT_REVOLUTE, pybullet.JOINT_FIXED,
                            pybullet.JOINT_FIXED],
            linkJointAxis=[[0.0, 1.0, 0.0]] * 2 + [[0.0, 0.0, 1.0]] * 2)
        # Solid cylinder about its own centre; no air drag (PyBullet's default damping is 0.04, MuJoCo's 0).
        # Damping belongs to the whole multibody: pybullet 3.2.7 applies a link's changeDynamics to the
        # base when it carries linearDamping/angularDamping, so only this base call may name them.
        i_zz = rm.mass_kg * rm.radius_m ** 2 / 2.0
        i_xx = rm.mass_kg * (3 * rm.radius_m ** 2 + chassis_h ** 2) / 12.0
        self._call("changeDynamics", robot, -1, localInertiaDiagonal=[i_xx, i_xx, i_zz], linearDamping=0.0,
                   angularDamping=0.0, lateralFriction=OBSTACLE_FRICTION)
        # MuJoCo's ellipsoid wheel (radii r, half-width, r) spins with its own inertia plus the armature.
        side = WHEEL_MASS_KG * (WHEEL_HALF_WIDTH_M ** 2 + r ** 2) / 5.0
        spin = WHEEL_MASS_KG * 2 * r ** 2 / 5.0 + WHEEL_ARMATURE
        for link in (_LEFT, _RIGHT):
            self._call("changeDynamics", robot, link, localInertiaDiagonal=[side, spin, side],
                       lateralFriction=WHEEL_FRICTION, jointDamping=WHEEL_DAMPING)
            self._call("setCollisionFilterGroupMask", robot, link, _WHEEL, _FLOOR)
        caster_i = 2.0 * CASTER_MASS_KG * caster_r ** 2 / 5.0
        for link in (_CASTER_FRONT, _CASTER_BACK):
            self._call("changeDynamics", robot, link, localInertiaDiagonal=[caster_i] * 3, lateralFriction=0.0)
            self._call("setCollisionFilterGroupMask", robot, link, _CHASSIS, _FLOOR | _OBSTACLE)
        self._call("setCollisionFilterGroupMask", robot, -1, _CHASSIS, _FLOOR | _OBSTACLE)
        return int(robot), com

    def _base_link_frame(self) -> tuple[np.ndarray, np.ndarray]:
        """(rotation 3x3, position) of base_link in the world, from the centre-of-mass pose."""
        pos, quat = self._call("getBasePositionAndOrientation", self._robot_id)
        rot = np.asarray(pybullet.getMatrixFromQuaternion(quat), dtype=float).reshape(3, 3)
        return rot, np.asarray(pos, dtype=float) - rot @ self._com_offset

    def _lidar_position(self) -> np.ndarray:
        """The lidar's origin in the world; ``height_m`` is above the floor, base_link is at the axle."""
        rot, pos = self._base_link_frame()
        return pos + rot @ np.asarray(self._scan_mount.translation)

    def _render(self, width: int, height: int, view: Any, proj: Any) -> tuple[np.ndarray, np.ndarray]:
        _, _, rgba, zbuffer, _ = self._call("getCameraImage", width, height, viewMatrix=view, projectionMatrix=proj,
                                            renderer=pybullet.ER_TINY_RENDERER, shadow=0,
                                            flags=pybullet.ER_NO_SEGMENTATION_MASK)
        rgb = np.asarray(rgba, dtype=np.uint8).reshape(height, width, 4)[:, :, :3].copy()
        return rgb, np.asarray(zbuffer, dtype=np.float64).reshape(height, width)

    def _set_wheel_targets(self) -> None:
        """The shared driver's watchdog and wheel saturation (as MujocoRobot), then the motors."""
        self._drive_wheels(*self.driver.wheel_targets(self.now()))

    def _drive_wheels(self, left: float, right: float) -> None:
        self._wheel_targets = (left, right)
        self._call("setJointMotorControlArray", self._robot_id, [_LEFT, _RIGHT], pybullet.VELOCITY_CONTROL,
                   targetVelocities=[left, right], forces=[MOTOR_TORQUE_LIMIT_NM] * 2)

    def _wheel_speeds(self) -> tuple[float, float]:
        left, right = self._call("getJointStates", self._robot_id, [_LEFT, _RIGHT])
        return float(left[1]), float(right[1])

    def _integrate_odometry(self, dt: float) -> None:
        self.driver.integrate(*self._wheel_speeds(), dt, self._rng)

    def _check_divergence(self) -> None:
        """Raise :class:`SimulationDiverged` on a non-finite or exploded state.

        PyBullet, unlike MuJoCo, neither resets itself nor warns: NaN simply propagates, and a
        robot flung through the floor keeps falling. Either ends the episode honestly here.
        """
        pos, quat = self._call("getBasePositionAndOrientation", self._robot_id)
        lin, ang = self._call("getBaseVelocity", self._robot_id)
        state = np.array([*pos, *quat, *lin, *ang], dtype=float)
        if not np.all(np.isfinite(state)) or abs(pos[2]) > 10.0 or np.max(np.abs(state)) > 1e6:
            raise SimulationDiverged(
                f"{self.scenario.source}: PyBullet diverged at t={self.now():.3f} s (non-finite or exploded state)")


def _disconnect(cid: int) -> None:
    """Release one physics client; quiet if pybullet already dropped it (e.g. at interpreter exit)."""
    try:
        pybullet.disconnect(physicsClientId=cid)
    except pybullet.error:
        pass
