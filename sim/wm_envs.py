"""The small environment contract behind navkit's world-model datasets and planners.

DINO-WM (Zhou et al. 2025, "DINO-WM: World Models on Pre-trained Visual Features enable
Zero-shot Planning", arXiv 2411.04983) learns a latent dynamics model from *offline random
trajectories* of images, proprioception and actions, then plans by matching the embedding of
a goal image. That needs much less than a gymnasium env (no reward, no termination) and one
thing gymnasium does not give: ``state()`` / ``set_state()``, so that a planner evaluation
can put the agent at a start, render the goal image from a goal state and score the final
state against it. :class:`WmEnv` is that contract; every world-model environment in
``navkit.sim`` (:mod:`~navkit.sim.wm_pointmaze`, :mod:`~navkit.sim.wm_wall`,
:mod:`~navkit.sim.wm_warehouse`) implements it, and :func:`make_wm_env` builds one by name.

What "random" means for data collection is environment-specific (uniform noise leaves a
point mass jittering in place; the AGV must not drive into shelves), so the exploration
policy lives with the environment: :meth:`WmEnv.random_action`, seeded by ``reset(seed)``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from navkit.common.errors import ParameterError

WM_ENV_NAMES = ("pointmaze", "wall", "warehouse")
"""Names :func:`make_wm_env` (and ``navkit wm collect --env``) accept."""
MIN_IMAGE_SIZE = 8
MAX_IMAGE_SIZE = 512
"""Square image sides an environment renders (512² x 3 bytes is already 768 kB per frame)."""


@dataclass(frozen=True)
class WmObservation:
    """What a world model sees at one instant: ``visual`` (H, W, 3) uint8, ``proprio`` (P,) float32."""

    visual: np.ndarray
    proprio: np.ndarray


@runtime_checkable
class WmEnv(Protocol):
    """An environment a world model is trained on and a planner is evaluated in.

    ``state()`` is the full simulator state (``set_state(state())`` changes nothing that
    ``render()``, ``proprio()`` or the next ``step`` depend on); ``proprio()`` is what a robot
    would measure of itself, a subset or estimate of it.
    """

    name: str
    image_size: int
    action_dim: int
    proprio_dim: int
    state_dim: int
    action_low: np.ndarray
    action_high: np.ndarray

    def reset(self, seed: int | None = None) -> WmObservation:
        """Start an episode from a random start drawn from ``seed`` (same seed, same start and same
        :meth:`random_action` sequence; ``None`` is seed 0, so that nothing here is unseeded)."""
        ...

    def step(self, action: np.ndarray) -> WmObservation:
        """Apply ``action`` (clipped to [action_low, action_high]) for one control period."""
        ...

    def render(self) -> np.ndarray:
        """The observation image, (image_size, image_size, 3) uint8."""
        ...

    def proprio(self) -> np.ndarray:
        """(proprio_dim,) float32."""
        ...

    def state(self) -> np.ndarray:
        """(state_dim,) float64: everything needed to restore this instant."""
        ...

    def set_state(self, state: np.ndarray) -> WmObservation:
        """Put the environment in ``state`` (a start or a goal for a planner) and observe it."""
        ...

    def goal_distance(self, goal_state: np.ndarray) -> float:
        """How far the agent is from ``goal_state``'s position (the planner's evaluation metric)."""
        ...

    def success(self, goal_state: np.ndarray) -> bool:
        """``goal_distance`` within the environment's success threshold."""
        ...

    def sample_state(self, rng: np.random.Generator) -> np.ndarray:
        """A valid state at rest (agent in free space), for planner start/goal pairs."""
        ...

    def random_action(self) -> np.ndarray:
        """The next action of the data-collection policy (its randomness is seeded by ``reset``)."""
        ...

    def failed(self) -> bool:
        """The trajectory went somewhere a dataset should not contain (the AGV hit something):
        the collector redraws it."""
        ...

    def config_dict(self) -> dict[str, Any]:
        """The environment's configuration as JSON-able data (recorded in dataset metadata)."""
        ...

    def close(self) -> None:
        """Free renderers and contexts."""
        ...


class CorrelatedNoise:
    """Smooth random actions: ``a_t = ρ a_{t-1} + sqrt(1 - ρ²) σ ε_t`` (then clipped to [-1, 1]).

    Independent uniform actions make a massive body tremble in place and cover little of a
    maze in 100 steps; correlated noise travels, and with ``ρ = 0`` it is plain white noise.
    The stationary standard deviation is ``σ`` whatever ``ρ``.
    """

    def __init__(self, dim: int, smoothing: float, scale: float, rng: np.random.Generator) -> None:
        self.dim = dim
        self.smoothing = smoothing
        self.scale = scale
        self.rng = rng
        self.value = rng.normal(0.0, scale, dim)

    def __call__(self) -> np.ndarray:
        rho = self.smoothing
        self.value = rho * self.value + np.sqrt(1.0 - rho * rho) * self.rng.normal(0.0, self.scale, self.dim)
        return np.clip(self.value, -1.0, 1.0)


def check_image_size(size: int, source: str) -> None:
    """Refuse image sides outside [MIN_IMAGE_SIZE, MAX_IMAGE_SIZE] naming ``source``."""
    if isinstance(size, bool) or not isinstance(size, int) or not MIN_IMAGE_SIZE <= size <= MAX_IMAGE_SIZE:
        raise ParameterError(source, "image_size", f"must be an integer in [{MIN_IMAGE_SIZE}, {MAX_IMAGE_SIZE}], "
                                                   f"got {size!r}")


def check_range(source: str, name: str, value: float, low: float, high: float) -> None:
    """A config field in [low, high] (finite), else a :class:`ParameterError` naming it."""
    if not (isinstance(value, (int, float)) and not isinstance(value, bool) and low <= float(value) <= high):
        raise ParameterError(source, name, f"must be a number in [{low:g}, {high:g}], got {value!r}")


def as_action(action: Any, env: WmEnv) -> np.ndarray:
    """``action`` as a finite (action_dim,) float64 vector clipped to the env's box.

    A NaN action is refused rather than clipped: numpy's clip keeps NaN, and a NaN force
    would diverge the simulator several steps later, far from the bad input.
    """
    a = np.asarray(action, dtype=np.float64).reshape(-1)
    if a.shape != (env.action_dim,):
        raise ParameterError(env.name, "action", f"expected {env.action_dim} numbers, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ParameterError(env.name, "action", f"must be finite, got {a.tolist()}")
    return np.clip(a, env.action_low, env.action_high)


def as_state(state: Any, env: WmEnv) -> np.ndarray:
    """``state`` as a finite (state_dim,) float64 vector, else a one-line error naming the env."""
    s = np.asarray(state, dtype=np.float64).reshape(-1)
    if s.shape != (env.state_dim,):
        raise ParameterError(env.name, "state", f"expected {env.state_dim} numbers, got shape {s.shape}")
    if not np.all(np.isfinite(s)):
        raise ParameterError(env.name, "state", "must be finite")
    return s


def make_wm_env(name: str, image_size: int = 64, config: Any | None = None) -> WmEnv:
    """The world-model environment called ``name`` (one of :data:`WM_ENV_NAMES`).

    ``config`` is that environment's config dataclass (``PointMazeConfig``, ``WallConfig``,
    ``WarehouseWmConfig``); ``None`` takes its defaults. Imports are lazy so that the numpy-only
    Wall environment does not load MuJoCo.
    """
    if name == "pointmaze":
        from navkit.sim.wm_pointmaze import PointMazeEnv

        return PointMazeEnv(config, image_size=image_size)
    if name == "wall":
        from navkit.sim.wm_wall import WallEnv

        return WallEnv(config, image_size=image_size)
    if name == "warehouse":
        from navkit.sim.wm_warehouse import WarehouseWmEnv

        return WarehouseWmEnv(config, image_size=image_size)
    raise ParameterError("wm env", "name", f"unknown environment {name!r} (known: {', '.join(WM_ENV_NAMES)})")
