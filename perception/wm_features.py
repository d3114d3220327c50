"""The frozen image features a DINO-WM world model is trained and planned on.

DINO-WM (Zhou, Pan, LeCun, Pinto, ICML 2025, arXiv 2411.04983) never trains its encoder: the
predictor learns how *these* features move, so whoever trains a model (``navkit wm train``) and
whoever plans with it (``navkit wm eval``, the ``world_model_mpc`` controller on the robot) must
build the very same encoder and read the very same tokens from it. Both live here, in perception,
so the stack can rebuild a trained run without importing the learning room.
"""
from __future__ import annotations

import numpy as np

from navkit.perception.image_encoder import DinoEncoder, DinoEncoderConfig

__all__ = ["FEATURE_KINDS", "build_encoder", "encode_features"]

FEATURE_KINDS = ("patch", "cls")
"""``patch``: the final-norm patch tokens (the paper's choice); ``cls``: the class token alone (its ablation)."""


def build_encoder(variant: str, weights: str = "", seed: int = 0, image_size: int = 0) -> DinoEncoder:
    """The frozen encoder a run's features come from: training builds it to fill the feature cache, and
    planning rebuilds it from the run's recorded ``encoder``/``weights``/``encoder_seed``/``image_size``, so the
    features planned on are the features trained on."""
    return DinoEncoder(DinoEncoderConfig(variant=variant, weights=weights, random_init_seed=seed,
                                         resize_to=image_size))


def encode_features(encoder: DinoEncoder, images: np.ndarray, feature: str) -> np.ndarray:
    """uint8 (B, H, W, 3) -> (B, P, D) float32: patch tokens, or the class token as a single "patch"."""
    if feature not in FEATURE_KINDS:
        raise ValueError(f"feature: expected one of {', '.join(FEATURE_KINDS)}, got {feature!r}")
    out = encoder.features(images)
    tokens = out.x_norm_patchtokens if feature == "patch" else out.x_norm_clstoken[:, None, :]
    return tokens.float().cpu().numpy()
