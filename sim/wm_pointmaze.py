"""PointMaze: a force-driven ball in a maze, seen from above (navkit's own MuJoCo model).

The world-model benchmark of DINO-WM (Zhou et al. 2025, arXiv 2411.04983; 2,000 random
trajectories of 100 steps) is the D4RL-style point maze: a ball pushed by a 2-D force
through corridors one cell wide. The agent is seen only through a fixed overhead camera,
so a world model must learn from pixels that walls stop the ball and that momentum carries
it on. Proprio is position and velocity, the action is a force in [-1, 1]² (times
``max_force``).

Modelled for speed and a clean image: the ball has two slide joints (no rotation, no
gravity work), frictionless contact with the walls (it slides along them instead of
sticking), each row of wall cells is one box (fewer collision pairs), integration is
``implicitfast`` with joint damping (a terminal speed of ``max_force / damping``), shadows are
off and the camera is orthographic so every cell is the same square in the image.
"""
from __future__ import annotations

import math
import os

# Headless CPU rendering; must be chosen before MuJoCo creates a GL context.
os.environ.setdefault("MUJOCO_GL", "egl")

from dataclasses import asdict, dataclass, field
from typing import Any

import mujoco
import numpy as np

from navkit.common.errors import ParameterError
from navkit.sim.mujoco_divergence import check_mujoco_divergence
from navkit.sim.wm_envs import CorrelatedNoise, WmObservation, as_action, as_state, check_image_size, check_range

_SOURCE = "PointMazeConfig"

MAZES: dict[str, tuple[str, ...]] = {
    # '#' wall, '.' free; row 0 is the top of the image. The classic U: in at the top left,
    # round the wall in the middle, out at the bottom left.
    "umaze": ("#####",
              "#...#",
              "###.#",
              "#...#",
              "#####"),
    # An 8 x 8 maze with loops and dead ends, the size of D4RL's "medium" maze.
    "medium": ("########",
               "#..##..#",
               "#..#...#",
               "##...###",
               "#..#...#",
               "#.#..#.#",
               "#...#..#",
               "########"),
}


@dataclass(frozen=True)
class PointMazeConfig:
    """The maze, the ball's dynamics, the control period and the data-collection policy."""

    maze: str = "umaze"
    """A name in :data:`MAZES`; ignored when ``layout`` is given."""
    layout: tuple[str, ...] = field(default_factory=tuple)
    """Rows of '#' (wall) and '.' (free), top row first, enclosed by walls; empty: ``maze``."""
    cell_m: float = 1.0
    ball_radius_m: float = 0.2
    """Large enough to be several pixels wide at 64 px (a 0.1 m ball is 1-2 px and vanishes)."""
    mass_kg: float = 1.0
    max_force_n: float = 10.0
    damping: float = 2.5
    """Viscous damping (N·s/m): terminal speed max_force / damping = 4 m/s, time constant 0.4 s; random
    forces then move the ball ~4.5 m in 100 steps (a third of the cells of the U-maze)."""
    timestep_s: float = 0.01
    frame_skip: int = 5
    """Physics steps per action: a 20 Hz control period, so 100 steps are 5 s of motion."""
    success_threshold_m: float = 0.5
    """Goal reached within this distance (as D4RL's maze2d)."""
    smoothing: float = 0.8
    """Correlation ρ of the random forces per step (0: white noise, which leaves the ball trembling)."""
    noise_scale: float = 0.7

    def __post_init__(self) -> None:
        if not self.layout and self.maze not in MAZES:
            raise ParameterError(_SOURCE, "maze", f"unknown maze {self.maze!r} (known: {', '.join(MAZES)})")
        rows = self.rows
        if len(rows) < 3 or len({len(r) for r in rows}) != 1 or len(rows[0]) < 3:
            raise ParameterError(_SOURCE, "layout", "expected at least 3 rows of equal length >= 3")
        if any(set(r) - {"#", "."} for r in rows):
            raise ParameterError(_SOURCE, "layout", "rows may hold only '#' (wall) and '.' (free)")
        border = rows[0] + rows[-1] + "".join(r[0] + r[-1] for r in rows)
        if set(border) != {"#"}:
            raise ParameterError(_SOURCE, "layout", "the maze must be enclosed by walls")
        if "." not in "".join(rows):
            raise ParameterError(_SOURCE, "layout", "the maze has no free cell")
        check_range(_SOURCE, "cell_m", self.cell_m, 0.1, 10.0)
        check_range(_SOURCE, "ball_radius_m", self.ball_radius_m, 0.01, 0.45 * self.cell_m)
        check_range(_SOURCE, "mass_kg", self.mass_kg, 0.01, 100.0)
        check_range(_SOURCE, "max_force_n", self.max_force_n, 0.01, 1000.0)
        check_range(_SOURCE, "damping", self.damping, 0.0, 1000.0)
        check_range(_SOURCE, "timestep_s", self.timestep_s, 1e-4, 0.05)
        if isinstance(self.frame_skip, bool) or not isinstance(self.frame_skip, int) or not 1 <= self.frame_skip <= 100:
            raise ParameterError(_SOURCE, "frame_skip", f"must be an integer in [1, 100], got {self.frame_skip!r}")
        check_range(_SOURCE, "success_threshold_m", self.success_threshold_m, 1e-3, 100.0)
        check_range(_SOURCE, "smoothing", self.smoothing, 0.0, 0.999)
        check_range(_SOURCE, "noise_scale", self.noise_scale, 0.0, 10.0)

    @property
    def rows(self) -> tuple[str, ...]:
        return tuple(self.layout) if self.layout else MAZES[self.maze]


def build_pointmaze_mjcf(cfg: PointMazeConfig, image_size: int) -> str:
    """MJCF of the maze (one box per run of wall cells in a row), the ball and the overhead camera."""
    rows = cfg.rows
    n_rows, n_cols = len(rows), len(rows[0])
    cell = cfg.cell_m
    walls: list[str] = []
    for i, row in enumerate(rows):
        j = 0
        while j < n_cols:
            if row[j] != "#":
                j += 1
                continue
            k = j
            while k < n_cols and row[k] == "#":
                k += 1
            cx = ((j + k - 1) / 2.0 - (n_cols - 1) / 2.0) * cell
            cy = ((n_rows - 1) / 2.0 - i) * cell
            walls.append(f'<geom name="wall_{i}_{j}" type="box" pos="{cx:.6g} {cy:.6g} {cell / 4:.6g}" '
                         f'size="{(k - j) * cell / 2:.6g} {cell / 2:.6g} {cell / 4:.6g}" material="wall"/>')
            j = k
    # The outer ring of walls is cropped to a quarter cell: it carries no information and
    # would waste a third of a 64 px image on the U-maze.
    extent = (max(n_rows, n_cols) - 1.5) * cell
    r = cfg.ball_radius_m
    return f"""<mujoco model="pointmaze">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="{cfg.timestep_s:.6g}" integrator="implicitfast" gravity="0 0 0"/>
  <visual>
    <quality shadowsize="0"/>
    <global offwidth="{image_size}" offheight="{image_size}"/>
    <headlight ambient="0.6 0.6 0.6" diffuse="0.3 0.3 0.3" specular="0 0 0"/>
  </visual>
  <asset>
    <material name="floor" rgba="0.85 0.85 0.8 1"/>
    <material name="wall" rgba="0.2 0.3 0.55 1"/>
    <material name="ball" rgba="0.9 0.25 0.1 1"/>
  </asset>
  <worldbody>
    <geom name="floor" type="plane" size="{extent:.6g} {extent:.6g} 0.1" material="floor" contype="0" conaffinity="0"/>
    <camera name="top" pos="0 0 {2 * cell + 5:.6g}" xyaxes="1 0 0 0 1 0" projection="orthographic" fovy="{extent:.6g}"/>
    {chr(10).join('    ' + w for w in walls).strip()}
    <body name="ball" pos="0 0 {r:.6g}">
      <joint name="ball_x" type="slide" axis="1 0 0" damping="{cfg.damping:.6g}"/>
      <joint name="ball_y" type="slide" axis="0 1 0" damping="{cfg.damping:.6g}"/>
      <geom name="ball" type="sphere" size="{r:.6g}" mass="{cfg.mass_kg:.6g}" condim="1" material="ball"/>
    </body>
  </worldbody>
  <actuator>
    <motor name="force_x" joint="ball_x" gear="{cfg.max_force_n:.6g}" ctrlrange="-1 1"/>
    <motor name="force_y" joint="ball_y" gear="{cfg.max_force_n:.6g}" ctrlrange="-1 1"/>
  </actuator>
</mujoco>
"""


class PointMazeEnv:
    """A :class:`~navkit.sim.wm_envs.WmEnv`: state = proprio = (x, y, vx, vy), action = force / max_force."""

    def __init__(self, config: PointMazeConfig | None = None, *, image_size: int = 64) -> None:
        check_image_size(image_size, _SOURCE)
        self.config = config or PointMazeConfig()
        if not isinstance(self.config, PointMazeConfig):
            raise ParameterError(_SOURCE, "config", f"expected a PointMazeConfig, got {type(self.config).__name__}")
        self.name = "pointmaze"
        self.image_size = image_size
        self.action_dim = 2
        self.proprio_dim = 4
        self.state_dim = 4
        self.action_low = -np.ones(2)
        self.action_high = np.ones(2)
        self.model = mujoco.MjModel.from_xml_string(build_pointmaze_mjcf(self.config, image_size))
        self.data = mujoco.MjData(self.model)
        self._renderer: mujoco.Renderer | None = None
        rows, cell = self.config.rows, self.config.cell_m
        n_rows, n_cols = len(rows), len(rows[0])
        self.free_cells = np.array(
            [(((j - (n_cols - 1) / 2.0) * cell), ((n_rows - 1) / 2.0 - i) * cell)
             for i, row in enumerate(rows) for j, ch in enumerate(row) if ch == "."])
        """Centres (x, y) of the free cells: where starts and goals are drawn."""
        self.reset(0)

    # ------------------------------------------------------------------ WmEnv

    def reset(self, seed: int | None = None) -> WmObservation:
        base = 0 if seed is None else seed
        self._noise = CorrelatedNoise(2, self.config.smoothing, self.config.noise_scale,
                                      np.random.default_rng([base, 1]))
        return self.set_state(self.sample_state(np.random.default_rng([base, 0])))

    def step(self, action: np.ndarray) -> WmObservation:
        self.data.ctrl[:] = as_action(action, self)
        mujoco.mj_step(self.model, self.data, nstep=self.config.frame_skip)
        check_mujoco_divergence(self.data, "pointmaze")
        return self._observe()

    def render(self) -> np.ndarray:
        if self._renderer is None:
            self._renderer = mujoco.Renderer(self.model, height=self.image_size, width=self.image_size)
        self._renderer.update_scene(self.data, camera="top")
        return self._renderer.render().copy()

    def proprio(self) -> np.ndarray:
        return self.state().astype(np.float32)

    def state(self) -> np.ndarray:
        return np.concatenate([self.data.qpos[:2], self.data.qvel[:2]]).astype(np.float64)

    def set_state(self, state: np.ndarray) -> WmObservation:
        s = as_state(state, self)
        rows, cell = self.config.rows, self.config.cell_m
        col = int(round(s[0] / cell + (len(rows[0]) - 1) / 2.0))
        row = int(round((len(rows) - 1) / 2.0 - s[1] / cell))
        if not (0 <= row < len(rows) and 0 <= col < len(rows[0])) or rows[row][col] == "#":
            # A ball placed inside a wall would be shot out by the contact solver: refuse it here.
            raise ParameterError(self.name, "state", f"position ({s[0]:g}, {s[1]:g}) is inside a wall or outside "
                                                     "the maze")
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[:2] = s[:2]
        self.data.qvel[:2] = s[2:]
        mujoco.mj_forward(self.model, self.data)
        return self._observe()

    def goal_distance(self, goal_state: np.ndarray) -> float:
        g = np.asarray(goal_state, dtype=np.float64).reshape(-1)
        return math.hypot(float(self.data.qpos[0] - g[0]), float(self.data.qpos[1] - g[1]))

    def success(self, goal_state: np.ndarray) -> bool:
        return self.goal_distance(goal_state) <= self.config.success_threshold_m

    def sample_state(self, rng: np.random.Generator) -> np.ndarray:
        """A random free cell, uniformly inside it (clear of the walls), at rest."""
        c = self.config
        centre = self.free_cells[int(rng.integers(len(self.free_cells)))]
        slack = c.cell_m / 2.0 - c.ball_radius_m - 0.01
        xy = centre + rng.uniform(-slack, slack, 2)
        return np.array([xy[0], xy[1], 0.0, 0.0])

    def random_action(self) -> np.ndarray:
        return self._noise()

    def failed(self) -> bool:
        return False

    def config_dict(self) -> dict[str, Any]:
        d = asdict(self.config)
        d["layout"] = list(self.config.rows)
        return d

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    # ------------------------------------------------------------------ internals

    def _observe(self) -> WmObservation:
        return WmObservation(self.render(), self.proprio())
