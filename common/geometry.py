"""Small planar and 3-D geometry every room needs: angle wrapping, 2-D poses, rigid transforms.

One implementation each, so "which way does yaw wrap" has one answer. Quaternions are
(x, y, z, w), as in ROS messages.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np



@dataclass(frozen=True)
class Pose2D:
    """Planar pose (metres, radians) in whatever frame the owner names."""

    x: float
    y: float
    yaw: float

    def as_array(self) -> np.ndarray:
        return np.array([self.x, self.y, self.yaw], dtype=float)

    def is_finite(self) -> bool:
        return math.isfinite(self.x) and math.isfinite(self.y) and math.isfinite(self.yaw)


AngleT = TypeVar("AngleT", float, np.ndarray)


def wrap_angle(angle: AngleT) -> AngleT:
    """Angle(s) wrapped into [-pi, pi); a float stays a float, an array an array."""
    return (angle + math.pi) % (2.0 * math.pi) - math.pi


def compose(a: Pose2D, b: Pose2D) -> Pose2D:
    """``a ∘ b``: pose ``b`` (given in frame ``a``) expressed in ``a``'s parent frame."""
    c, s = math.cos(a.yaw), math.sin(a.yaw)
    return Pose2D(a.x + c * b.x - s * b.y, a.y + s * b.x + c * b.y, wrap_angle(a.yaw + b.yaw))


def inverse(p: Pose2D) -> Pose2D:
    c, s = math.cos(p.yaw), math.sin(p.yaw)
    return Pose2D(-(c * p.x + s * p.y), s * p.x - c * p.y, wrap_angle(-p.yaw))


def transform_points(pose: Pose2D, points: np.ndarray) -> np.ndarray:
    """Points (N, 2) given in the frame ``pose`` describes, expressed in that pose's parent frame."""
    pts = np.asarray(points, dtype=float).reshape(-1, 2)
    c, s = math.cos(pose.yaw), math.sin(pose.yaw)
    return np.stack([pose.x + c * pts[:, 0] - s * pts[:, 1], pose.y + s * pts[:, 0] + c * pts[:, 1]], axis=1)


def yaw_to_quaternion(yaw: float) -> tuple[float, float, float, float]:
    """(x, y, z, w) of a rotation about z."""
    return 0.0, 0.0, math.sin(yaw / 2.0), math.cos(yaw / 2.0)


def quaternion_to_yaw(x: float, y: float, z: float, w: float) -> float:
    """The rotation about z of a quaternion (the yaw of its heading)."""
    return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


@dataclass(frozen=True)
class RigidTransform:
    """A 3-D rigid transform ``parent <- child`` (TF's ``parent -> child`` edge): rotate, then translate."""

    translation: tuple[float, float, float] = (0.0, 0.0, 0.0)
    rotation: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)
    """Unit quaternion (x, y, z, w)."""
    parent_frame: str = "base_link"
    child_frame: str = ""
    _matrix: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        q = np.asarray(self.rotation, dtype=float)
        norm = float(np.linalg.norm(q))
        if not (np.all(np.isfinite(q)) and np.all(np.isfinite(self.translation)) and norm > 1e-9):
            raise ValueError(f"rigid transform {self.parent_frame}->{self.child_frame}: non-finite or zero rotation")
        x, y, z, w = q / norm
        m = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                      [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                      [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
        object.__setattr__(self, "_matrix", m)

    @property
    def matrix(self) -> np.ndarray:
        """The 3x3 rotation matrix."""
        return self._matrix.copy()

    @property
    def yaw(self) -> float:
        return quaternion_to_yaw(*self.rotation)

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Points (N, 3) in the child frame -> the parent frame."""
        pts = np.asarray(points, dtype=float).reshape(-1, 3)
        return pts @ self._matrix.T + np.asarray(self.translation)

    @classmethod
    def planar(cls, x: float, y: float, yaw: float, *, z: float = 0.0, parent_frame: str = "base_link",
               child_frame: str = "") -> RigidTransform:
        return cls((x, y, z), yaw_to_quaternion(yaw), parent_frame, child_frame)
