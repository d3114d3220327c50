"""The part of SB3's ``VecEnv`` interface that envs stepped as arrays do not need to vary.

navkit's training envs (the robot team, the warehouses) step every sub-env in one numpy call, so
there are no per-sub-env objects for SB3's attribute and method plumbing to reach: attributes
and methods are the vectorised env's own, answered once per requested index. Subclasses
implement ``reset``, ``step_async``, ``step_wait`` and ``seed``.
"""
from __future__ import annotations

from typing import Any

from stable_baselines3.common.vec_env.base_vec_env import VecEnv


class ArrayVecEnv(VecEnv):
    """``VecEnv`` plumbing for an env whose sub-envs are rows of arrays (see the module docstring)."""

    def close(self) -> None:
        """Nothing to release: no sub-processes, no simulator handles."""

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        return [getattr(self, attr_name)] * len(self._indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        setattr(self, attr_name, value)

    def env_method(self, method_name: str, *method_args: Any, indices: Any = None, **method_kwargs: Any) -> list[Any]:
        return [getattr(self, method_name)(*method_args, **method_kwargs)] * len(self._indices(indices))

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False] * len(self._indices(indices))

    def _indices(self, indices: Any) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        return [indices] if isinstance(indices, int) else list(indices)
