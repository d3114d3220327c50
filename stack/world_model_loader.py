"""Rebuild a trained DINO-WM run (``navkit wm train``) for planning: encoder + predictor + the env's units.

DINO-WM (Zhou, Pan, LeCun, Pinto, ICML 2025, arXiv 2411.04983) plans on the features of a *frozen*
encoder, so a run can only be planned with if the encoder is rebuilt exactly as the training feature
cache was built (variant, weights, seed, input size, feature kind), and observations are turned into the
predictor's frames exactly as the dataset's were (proprio normalised by the training split's mean/std,
images at the dataset's size). This module does both, from the run's checkpoint alone.

It lives in the composition room because it joins two algorithm rooms (perception's encoder, planning's
predictor), which may not import each other; ``navkit wm eval`` (learning) and the ``world_model_mpc``
local controller plugin (built by :mod:`navkit.stack.plugin_catalog`) both load runs through it.
"""
from __future__ import annotations

import math
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from navkit.common.errors import FieldError, brief
from navkit.perception.wm_features import FEATURE_KINDS, build_encoder, encode_features
from navkit.planning.dino_wm import DinoWmModel, DinoWmModelConfig, DinoWmPredictor, PredictorConfig

__all__ = ["LoadedModel", "WorldModelLoadError", "load_model"]


class WorldModelLoadError(FieldError):
    """A run folder or checkpoint is missing, foreign or lacks what planning needs; names the file and field."""


@dataclass
class LoadedModel:
    """A trained run rebuilt for planning: the model, and how to turn observations into its frames.

    Everything a controller needs to know about the run's env is read from the checkpoint (the env's
    name, its command scale and control period from ``env_config``, the predictor's frameskip and
    history), so a robot is driven in the units the model was trained in, never in guessed ones.
    """

    model: DinoWmModel
    checkpoint: dict[str, Any]
    proprio_mean: np.ndarray
    proprio_std: np.ndarray
    path: Path = field(default_factory=Path)
    """The checkpoint file the model came from (errors about its contents name it)."""

    @property
    def history(self) -> int:
        """H, the frames the predictor sees: a planner's start state is this many frames at most."""
        return self.model.predictor.config.history

    @property
    def frameskip(self) -> int:
        """Env actions per model step: a controller replans every ``frameskip`` control periods."""
        return self.model.predictor.config.frameskip

    @property
    def env(self) -> str:
        """The env the run's dataset came from (``wall``, ``pointmaze``, ``warehouse``)."""
        return str(self.checkpoint.get("env", ""))

    @property
    def env_config(self) -> dict[str, Any]:
        """The dataset env's settings as recorded at collection (command scale, control period, layout)."""
        value = self.checkpoint.get("env_config") or {}
        return dict(value) if isinstance(value, dict) else {}

    @property
    def image_size(self) -> tuple[int, int] | None:
        """(H, W) of the dataset's frames; camera images of another size are resized to it before encoding."""
        size = self.checkpoint.get("image_size")
        if isinstance(size, (list, tuple)) and len(size) == 2 and all(isinstance(s, int) and s > 0 for s in size):
            return int(size[0]), int(size[1])
        return None

    @property
    def v_max(self) -> float:
        """Speed (m/s) of a normalised action[0] = 1 in the run's env (``env_config.v_max``)."""
        return self._env_number("v_max")

    @property
    def omega_max(self) -> float:
        """Turn rate (rad/s) of a normalised action[1] = 1 in the run's env (``env_config.omega_max``)."""
        return self._env_number("omega_max")

    @property
    def control_period_s(self) -> float:
        """How long the env held each action (``env_config.control_period_s``): one env step of the dataset."""
        return self._env_number("control_period_s")

    def _env_number(self, name: str) -> float:
        value = self.env_config.get(name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise WorldModelLoadError(str(self.path), f"env_config.{name}",
                                      f"expected a number > 0, got {brief(value)} (the run's env is "
                                      f"{self.env or 'unknown'!r}; only velocity-commanded envs such as "
                                      "'warehouse' record it)")
        return float(value)

    def frame(self, visual: np.ndarray, proprio: np.ndarray | None = None) -> Tensor:
        """One observation -> one packed frame (F,) as the predictor was trained on.

        ``visual`` (H, W, 3) uint8 of another size is centre-cropped to the dataset's aspect ratio and resized
        to its frame size (bicubic with antialiasing); ``proprio`` is normalised by the training split's
        statistics. ``None`` proprio (a goal image carries none) becomes the training mean, i.e. a normalised
        zero: the one value that says nothing about where the robot is."""
        image = self._resized(np.asarray(visual))
        if proprio is None:
            p = np.zeros_like(self.proprio_mean, dtype=np.float32)
        else:
            p = (np.asarray(proprio, dtype=np.float32) - self.proprio_mean) / self.proprio_std
        with torch.no_grad():
            return self.model.encode_frames(image[None], p[None])[0]

    def _resized(self, image: np.ndarray) -> np.ndarray:
        size = self.image_size
        if size is None or image.ndim != 3 or image.shape[:2] == size or image.dtype != np.uint8:
            return image  # the encoder checks (and refuses) anything that is not uint8 RGB
        # Another aspect ratio: centre-crop the wider side first, so the model sees the same vertical (or
        # horizontal) field of view undistorted, not a squashed wider view it never trained on.
        h, w = image.shape[:2]
        if h * size[1] != w * size[0]:
            if w * size[0] > h * size[1]:  # too wide
                keep = max(1, round(h * size[1] / size[0]))
                image = image[:, (w - keep) // 2:(w - keep) // 2 + keep]
            else:
                keep = max(1, round(w * size[0] / size[1]))
                image = image[(h - keep) // 2:(h - keep) // 2 + keep]
            if image.shape[:2] == size:
                return np.ascontiguousarray(image)
        x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float().div_(255.0)
        x = F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False).clamp_(0.0, 1.0)
        return x[0].permute(1, 2, 0).mul_(255.0).round_().to(torch.uint8).numpy()


def load_model(run: str | Path, checkpoint: str = "best.pt", proprio_weight: float = 0.1) -> LoadedModel:
    """Rebuild encoder + predictor of a ``navkit wm train`` run (the encoder exactly as the cache was built).

    The checkpoint is read with ``torch.load(weights_only=True)``: a run's checkpoint holds only tensors and
    plain containers, so a file that needs arbitrary unpickling is not one and is refused.
    :class:`WorldModelLoadError` names the run folder or checkpoint file and the field at fault."""
    path = Path(run) / checkpoint
    if not Path(run).is_dir():
        raise WorldModelLoadError(str(run), "run", "no such run folder (navkit wm train writes one)")
    if not path.is_file():
        raise WorldModelLoadError(str(path), "checkpoint", "missing (train the run first: navkit wm train)")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
        cfg = ck["train_config"]
        pc = PredictorConfig(**ck["predictor_config"])
        low, high = np.asarray(ck["action_low"], np.float64), np.asarray(ck["action_high"], np.float64)
        mean, std = np.asarray(ck["proprio_mean"], np.float32), np.asarray(ck["proprio_std"], np.float32)
        state = ck["predictor"]
        encoder_args = (cfg["encoder"], cfg["weights"], cfg["encoder_seed"], cfg["image_size"])
        feature = cfg["feature"]
    except (KeyError, TypeError, IndexError, RuntimeError, OSError, ValueError, EOFError,
            pickle.UnpicklingError) as exc:
        raise WorldModelLoadError(str(path), "checkpoint",
                                  f"not a navkit wm train checkpoint ({type(exc).__name__})") from None
    predictor = DinoWmPredictor(pc)
    try:
        predictor.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise WorldModelLoadError(str(path), "predictor",
                                  f"weights do not fit the recorded predictor_config ({type(exc).__name__})") from None
    _check_recorded_numbers(path, pc, low, high, mean, std, feature)
    try:
        encoder = build_encoder(*encoder_args)
    except (ValueError, TypeError, RuntimeError, OSError, KeyError) as exc:
        raise WorldModelLoadError(str(path), "train_config.encoder",
                                  f"cannot rebuild the run's encoder from {brief(encoder_args)} "
                                  f"({type(exc).__name__}: {brief(str(exc), 120)})") from None

    def encode(images: np.ndarray) -> np.ndarray:
        return encode_features(encoder, np.ascontiguousarray(images), feature)

    mc = DinoWmModelConfig(proprio_weight=proprio_weight, action_mean=tuple(float(v) for v in (high + low) / 2),
                           action_std=tuple(float(v) for v in (high - low) / 2))
    loaded = LoadedModel(DinoWmModel(encode, predictor, mc), ck, mean, std, path)
    _probe(loaded)
    return loaded


def _check_recorded_numbers(path: Path, pc: PredictorConfig, low: np.ndarray, high: np.ndarray, mean: np.ndarray,
                            std: np.ndarray, feature: Any) -> None:
    """The checkpoint's action box, proprio statistics and feature kind fit its predictor: a run that would
    only fail (or, with a zero std, plan on NaN) on the robot's first command fails here, naming the field."""
    src = str(path)
    if feature not in FEATURE_KINDS:
        raise WorldModelLoadError(src, "train_config.feature", f"expected one of {FEATURE_KINDS}, got {brief(feature)}")
    for name, box in (("action_low", low), ("action_high", high)):
        if box.shape != (pc.action_dim,) or not np.all(np.isfinite(box)):
            raise WorldModelLoadError(src, name, f"expected {pc.action_dim} finite numbers, got {brief(box.tolist())}")
    if not np.all(high > low):
        raise WorldModelLoadError(src, "action_high", "must exceed action_low in every dimension")
    for name, stat in (("proprio_mean", mean), ("proprio_std", std)):
        if stat.shape != (pc.proprio_dim,) or not np.all(np.isfinite(stat)):
            raise WorldModelLoadError(src, name,
                                      f"expected {pc.proprio_dim} finite numbers, got {brief(stat.tolist())}")
    if not np.all(std > 0):
        raise WorldModelLoadError(src, "proprio_std", f"must be > 0 in every dimension, got {brief(std.tolist())}")


def _probe(loaded: LoadedModel) -> None:
    """Encode one grey frame of the run's size: an encoder that does not give the predictor's patch grid
    (another feature kind or image size than the checkpoint says) or a non-finite frame fails at load, as one
    line, not on the first command while the robot is driving."""
    size = loaded.image_size or (32, 32)
    try:
        frame = loaded.frame(np.full((*size, 3), 128, np.uint8), None)
    except (FieldError, ValueError, RuntimeError) as exc:
        raise WorldModelLoadError(str(loaded.path), "train_config",
                                  f"the rebuilt encoder does not fit the predictor ({brief(str(exc), 160)})") from None
    if not bool(torch.isfinite(frame).all()):
        raise WorldModelLoadError(str(loaded.path), "predictor", "a test frame encodes to non-finite numbers")
