"""Pretrain a DINOv2-shaped ViT on navkit's own camera frames by DINO self-distillation, on a CPU.

``navkit perception pretrain --data DATASET_DIR [--data ...] [--variant tiny] [--steps N] [--out DIR] [--fresh]``

Why: the released DINOv2 weights (Oquab et al. 2023, "DINOv2: Learning Robust Visual Features without
Supervision") are trained on 142 M web photographs at 224 px; the frames of navkit's simulated cameras are
64 px renderings of a dot, a maze or a warehouse, and no weights may be downloaded in some deployments. DINO
(Caron et al. 2021, "Emerging Properties in Self-Supervised Vision Transformers") learns features without
labels from the images one has: a *student* network is trained to predict, from any crop of an image, the
output distribution a *teacher* gives for the large ("global") crops of the same image; the teacher is an
exponential moving average (EMA) of the student and is the network one keeps. This module is that recipe,
sized so that the ``tiny`` ViT (patch 8, width 96, depth 4) trains on two CPU cores in minutes:

* multi-crop: 2 global crops (``global_crop_size``, area scale 0.4-1) and ``local_crops`` small ones (area
  scale 0.1-0.4); the teacher sees only the global crops, the student all of them, so the student must infer
  the whole from a part ("local-to-global correspondence");
* DINO's augmentations, written in torch on uint8 frames (no torchvision): random resized crop with
  horizontal flip (one batched ``grid_sample``), colour jitter (brightness, contrast, saturation; hue is left
  out, it costs an RGB<->HSV round trip for little on these renderings), random grayscale, Gaussian blur with
  an own separable kernel, solarisation on the second global crop only;
* the DINO head (3-layer MLP -> L2-normalised bottleneck -> weight-normalised last layer, frozen for the first
  epoch, which the paper found stabilises the start), cross-entropy between the centred, sharpened teacher
  softmax and the student log-softmax over every (global teacher view, other student view) pair;
* the schedules of the paper as functions of the step: learning rate (linear warm-up, cosine decay),
  weight decay (cosine 0.04 -> 0.4), teacher EMA momentum (cosine 0.996 -> 1), teacher temperature
  (linear warm-up 0.04 -> 0.07); centring with momentum 0.9.

Collapse is the failure mode of self-distillation (every image gets the same output): centring alone
flattens the teacher towards uniform, sharpening alone towards one dimension, and the balance is what
trains. Both are logged: the entropy of the batch-mean teacher distribution (0 when every image picks the
same dimension) and the mean per-image entropy (``log(out_dim)`` when every output is uniform).

Every ``eval_every`` steps (and at step 0, the random initialisation's baseline, and at the end) a linear probe
measures whether the teacher's features carry what a planner needs: ridge regression of each frame's
proprioception (Wall: the dot's x, y) from the class token and from the mean patch token, fitted on training
trajectories and scored (R²) on held-out ones that training never saw. Runs resume exactly (same numbers bit for
bit) from ``last.pt``; at the end the teacher backbone is written as a plain state dict with the official DINOv2
parameter names, which :func:`navkit.perception.dinov2_checkpoint.load_dinov2` loads strictly, beside a JSON
saying how it was made.

Known limit, measured (200 x 50 Wall frames at 64 px; 200 steps of batch 64 on one thread, 5.4 min): frames that
differ only by a dot of a few pixels give a random network nearly the same output for every image (mutual
information between image and teacher prototype 0.02 nats at step 0); it falls below 0.01 nats within ~40 steps
and to 0.001 by the end (uniform collapse; a run warns when it stays under 0.01), and the exported teacher probes
like the random initialisation. A 10x learning rate without photometric augmentation collapses faster. DINO's
objective assumes images that differ in content; on synthetic frames that do (discs of random colours and sizes,
the tests) the same code lowers its loss and keeps ~1 nat of information about the image.

CleanRL-style: one :class:`DinoPretrainConfig` with every knob and why it matters, one loop in :func:`train`.
"""
from __future__ import annotations

import argparse
import copy
import csv
import datetime
import hashlib
import importlib.metadata
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from navkit.common.cli_args import CliParser, int_in
from navkit.common.errors import FieldError, NavkitError, ParameterError, brief
from navkit.common.params import config_from_params
from navkit.common.yaml_file import read_yaml_file
from navkit.learning.wm_dataset import WmDataset, load_dataset
from navkit.perception.dinov2_checkpoint import VARIANTS
from navkit.perception.image_encoder import IMAGENET_MEAN, IMAGENET_STD
from navkit.perception.vit import DinoVisionTransformer

__all__ = ["GLOBAL_CROPS", "DinoHead", "DinoNetwork", "DinoPretrainConfig", "DinoPretrainError", "DinoPretrainResult",
           "FramePool", "color_jitter", "dino_loss", "ema_update", "gaussian_blur", "linear_probe", "main",
           "multi_crop", "random_grayscale", "random_resized_crop", "ridge_r2", "schedules", "solarize",
           "teacher_entropies", "train", "update_center"]

PROG = "navkit perception pretrain"
GLOBAL_CROPS = 2
"""Global crops per image: DINO's two views, the teacher's targets (the second one is solarised)."""
RIDGE_GRID = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
"""Ridge penalties the probe chooses from, as fractions of the mean eigenvalue of the features' scatter matrix."""
COLLAPSE_INFORMATION = 0.01
COLLAPSE_WINDOW = 50
"""A run warns (once) when the teacher's mutual information with the image stays below COLLAPSE_INFORMATION nats
for COLLAPSE_WINDOW steps: its output no longer depends on the image, and more steps will not bring that back."""
CHECKPOINT_FORMAT = "navkit-dino-pretrain-checkpoint"
EXPORT_FORMAT = "navkit-dino-pretrain-export"
CITATION = ("Caron et al. 2021, Emerging Properties in Self-Supervised Vision Transformers (DINO), arXiv 2104.14294; "
            "Oquab et al. 2023, DINOv2: Learning Robust Visual Features without Supervision, arXiv 2304.07193")
RESUME_MUST_MATCH = ("data", "variant", "layerscale_init", "seed", "steps", "batch_size", "global_crop_size",
                     "local_crop_size", "local_crops", "out_dim", "head_hidden_dim", "head_bottleneck_dim",
                     "norm_last_layer", "val_fraction")
"""Config fields a run can only be resumed with unchanged: they shape the networks, the data order or the schedules."""


class DinoPretrainError(FieldError):
    """A pretraining run cannot start or continue (bad datasets, a checkpoint of another run, NaN loss)."""


def _probability(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}: must be a probability in [0, 1], got {value!r}")


def _scale(name: str, value: tuple[float, float]) -> None:
    if len(value) != 2 or not 0.0 < value[0] <= value[1] <= 1.0:
        raise ValueError(f"{name}: must be (low, high) with 0 < low <= high <= 1, got {value!r}")


@dataclass
class DinoPretrainConfig:
    """Every knob of a pretraining run. Defaults: DINO's recipe, scaled to a 64 px ``tiny`` ViT on one CPU core."""

    # --- data & experiment ---
    data: tuple[str, ...] = ()
    """Dataset folders (``navkit wm collect``); their frames are pooled. All must have the same image size."""
    val_fraction: float = 0.1
    """Share of each dataset's trajectories held out from training: the linear probe is scored on them."""
    variant: str = "tiny"
    """Backbone shape, a name of :data:`navkit.perception.dinov2_checkpoint.VARIANTS` (what ``load_dinov2`` takes)."""
    layerscale_init: float = 1.0
    """Initial LayerScale gain of the fresh backbone. DINO (v1) has no LayerScale, i.e. a gain of 1; DINOv2 starts
    at 1e-5, which keeps deep stacks stable over long, large-batch runs, but then a random network's class token
    barely depends on the image (every residual branch is nearly silent), the teacher gives every image the same
    output, centring makes it uniform, and a short run starts collapsed (measured on the tests' 32 px discs: the
    teacher's mutual information with the image is 0.1 nats at 0.1, 1.2 nats at 1). Only the initialisation
    changes: names and shapes, and so the exported file, are those of the variant."""
    seed: int = 0
    """Initial weights, data order, crops and augmentations all follow from it (per step: resume is exact)."""
    steps: int = 2000
    """Optimiser steps. The schedules stretch over them, so a run resumes only with the same value."""
    batch_size: int = 64
    """Images per step. Centring averages over the batch, so very small batches make it noisy."""
    out: str = "runs/dino_pretrain"
    """Parent folder of runs."""
    run_name: str = ""
    """The run's folder under ``out`` (checkpoints, TensorBoard, curve, export); empty -> ``<variant>_s<seed>``."""
    resume: bool = True
    """Continue from ``<run>/last.pt`` when it exists (``--fresh`` turns this off)."""
    checkpoint_every: int = 200
    """Steps between checkpoints (one is also written at the end and when a run is halted)."""
    eval_every: int = 500
    """Steps between linear probes of the teacher (0: only at the end)."""
    progress_bar: bool = True
    torch_threads: int = 1
    """CPU threads for torch: 1 keeps a run reproducible bit for bit and leaves the other cores to the robot."""
    # --- multi-crop ---
    global_crop_size: int = 64
    """Side of the global crops in pixels, the image size the backbone is trained for (a multiple of the patch)."""
    global_crop_scale: tuple[float, float] = (0.4, 1.0)
    """Area fraction of the frame a global crop covers (DINO: 0.4-1)."""
    local_crops: int = 4
    """Small crops seen only by the student (DINO: 8 of 96 px at 224; 4 keep a CPU step cheap)."""
    local_crop_size: int = 32
    """Side of the local crops in pixels (a multiple of the patch size)."""
    local_crop_scale: tuple[float, float] = (0.1, 0.4)
    """Area fraction of a local crop (DINO: 0.05-0.4; 0.1 so a crop of a 64 px frame keeps a few pixels of
    structure)."""
    # --- augmentations (DINO's probabilities) ---
    flip_p: float = 0.5
    jitter_p: float = 0.8
    brightness: float = 0.4
    """Brightness factor drawn from [1 - b, 1 + b] (as torchvision's ColorJitter)."""
    contrast: float = 0.4
    saturation: float = 0.2
    grayscale_p: float = 0.2
    blur_p: tuple[float, float, float] = (1.0, 0.1, 0.5)
    """Probability of a Gaussian blur on the first global crop, the second, and each local crop (DINO's)."""
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    """Blur sigma range in pixels of a 224 px crop (DINO's), scaled by crop side / 224: a 64 px crop is blurred
    as much relative to its content as DINO's are, not 3.5 times more."""
    solarize_p: float = 0.2
    """Solarisation probability on the second global crop (DINO's asymmetric augmentation)."""
    # --- head & loss ---
    out_dim: int = 1024
    """Prototypes K of the head's softmax (DINO: 65,536; 1,024 keeps the last layer cheap on a CPU)."""
    head_hidden_dim: int = 512
    head_bottleneck_dim: int = 128
    norm_last_layer: bool = True
    """Fix the last layer's weight-norm gain at 1 (DINO's default: more stable, slightly worse than learnt)."""
    freeze_last_layer_epochs: int = 1
    """Epochs during which the last layer gets no update: DINO found it avoids a degenerate start."""
    student_temp: float = 0.1
    teacher_temp_start: float = 0.04
    teacher_temp: float = 0.07
    """The teacher temperature warms up linearly from ``teacher_temp_start``: a sharp start prevents the uniform
    collapse, a softer end carries more information per image (DINO's 0.04 -> 0.07)."""
    teacher_temp_warmup_fraction: float = 0.3
    """Share of the run the teacher-temperature warm-up lasts (DINO: 30 of 100 epochs)."""
    center_momentum: float = 0.9
    """EMA momentum of the centre subtracted from the teacher's logits."""
    center_warm_start: bool = True
    """Start the centre at the teacher's mean logits on the first batch instead of DINO's zeros. With zeros the
    first ~``1 / (1 - center_momentum)`` steps' targets are one sharp distribution shared by every image (a
    collapsed target by construction) whenever the head's logits spread more than the temperature, which they do
    with a small ``out_dim``: the loss then starts artificially low and the student is first taught to collapse."""
    # --- optimisation ---
    lr: float = 5e-4
    """Peak learning rate per 256 images: the peak is ``lr * batch_size / 256`` (DINO's linear scaling rule)."""
    min_lr: float = 1e-6
    warmup_fraction: float = 0.1
    """Share of the run the learning rate warms up linearly from 0 (DINO: 10 of 100 epochs)."""
    weight_decay: float = 0.04
    weight_decay_end: float = 0.4
    """Weight decay rises on a cosine from ``weight_decay`` to this; biases and norms are never decayed."""
    momentum_teacher: float = 0.996
    """Teacher EMA momentum at the start; it rises on a cosine to 1, so the teacher settles as training ends."""
    clip_grad: float = 3.0
    """Per-parameter gradient-norm clip (DINO's); 0 disables it."""
    # --- linear probe ---
    probe_train_frames: int = 2048
    probe_test_frames: int = 1024
    probe_ridge: tuple[float, ...] = RIDGE_GRID
    """Ridge penalties the probe chooses from on the training frames (see :func:`ridge_r2`)."""

    def __post_init__(self) -> None:
        self.data = tuple(str(d) for d in self.data)
        if self.variant not in VARIANTS:
            raise ValueError(f"variant: unknown {brief(self.variant)} (known: {', '.join(VARIANTS)})")
        ints = {"seed": (0, 2**31 - 1), "steps": (1, 10**9), "batch_size": (2, 65536),
                "checkpoint_every": (1, 10**9), "eval_every": (0, 10**9), "torch_threads": (1, 256),
                "global_crop_size": (1, 4096), "local_crops": (0, 64), "local_crop_size": (1, 4096),
                "out_dim": (2, 10**6), "head_hidden_dim": (1, 65536), "head_bottleneck_dim": (1, 65536),
                "freeze_last_layer_epochs": (0, 10**6), "probe_train_frames": (2, 10**7),
                "probe_test_frames": (1, 10**7)}
        for name, (low, high) in ints.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"{name}: must be an integer in [{low:,}, {high:,}], got {brief(value)}")
        patch = VARIANTS[self.variant].patch_size
        for name in ("global_crop_size", "local_crop_size"):
            if getattr(self, name) % patch:
                raise ValueError(f"{name}: {getattr(self, name)} px is not a multiple of {self.variant}'s patch "
                                 f"size {patch}")
        _scale("global_crop_scale", self.global_crop_scale)
        _scale("local_crop_scale", self.local_crop_scale)
        for name in ("flip_p", "jitter_p", "grayscale_p", "solarize_p", "brightness", "contrast", "saturation",
                     "val_fraction", "teacher_temp_warmup_fraction", "warmup_fraction", "center_momentum",
                     "momentum_teacher"):
            _probability(name, getattr(self, name))
        if self.val_fraction >= 1.0 or self.center_momentum >= 1.0:
            raise ValueError("val_fraction and center_momentum must be < 1")
        if len(self.blur_p) != 3:
            raise ValueError(f"blur_p: expected 3 probabilities (global 1, global 2, local), got {self.blur_p!r}")
        for i, p in enumerate(self.blur_p):
            _probability(f"blur_p[{i}]", p)
        if len(self.blur_sigma) != 2 or not 0.0 < self.blur_sigma[0] <= self.blur_sigma[1] <= 50.0:
            raise ValueError(f"blur_sigma: must be (low, high) with 0 < low <= high <= 50, got {self.blur_sigma!r}")
        for name in ("student_temp", "teacher_temp_start", "teacher_temp", "lr"):
            value = getattr(self, name)
            if not (0.0 < value <= 100.0 and math.isfinite(value)):
                raise ValueError(f"{name}: must be a positive number, got {value!r}")
        # > 0: on collapsed (rank-deficient) features an unpenalised fit is singular and would stop the run.
        if not self.probe_ridge or not all(0.0 < r <= 1e6 for r in self.probe_ridge):
            raise ValueError(f"probe_ridge: expected one or more penalties in (0, 1e6], got {self.probe_ridge!r}")
        for name in ("layerscale_init", "min_lr", "weight_decay", "weight_decay_end", "clip_grad"):
            value = getattr(self, name)
            if not (0.0 <= value <= 1e6 and math.isfinite(value)):
                raise ValueError(f"{name}: must be a finite number >= 0, got {value!r}")
        if not self.run_name:
            self.run_name = f"{self.variant}_s{self.seed}"
        if Path(self.run_name).name != self.run_name or self.run_name in (".", ".."):
            raise ValueError(f"run_name: must be a plain folder name, got {brief(self.run_name)}")

    @property
    def directory(self) -> Path:
        """The run's folder: ``<out>/<run_name>``."""
        return Path(self.out) / self.run_name

    @property
    def peak_lr(self) -> float:
        return self.lr * self.batch_size / 256.0

    @property
    def crops(self) -> int:
        return GLOBAL_CROPS + self.local_crops


# ---------------------------------------------------------------------------------- augmentations
# All take float32 images (B, 3, H, W) in [0, 1] and a torch.Generator, draw every random number from it
# (never from torch's global RNG) and return a new tensor of the same dtype: same generator state, same output.


def _uniform(generator: torch.Generator, n: int, low: float, high: float) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator)


def _chance(generator: torch.Generator, n: int, p: float) -> torch.Tensor:
    """(n,) bool, each True with probability p (drawn even when p is 0 or 1: the generator advances the same)."""
    return torch.rand(n, generator=generator) < p


def random_resized_crop(images: torch.Tensor, size: int, scale: tuple[float, float], generator: torch.Generator,
                        flip_p: float = 0.5, ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0)) -> torch.Tensor:
    """(B, 3, H, W) -> (B, 3, size, size): each image cropped to a random box and resized, flipped with ``flip_p``.

    torchvision's RandomResizedCrop, vectorised: the box covers an area fraction drawn from ``scale`` with an
    aspect ratio log-uniform in ``ratio``; of 10 draws the first that fits is used, else the largest centred box
    of a clamped ratio. Boxes are continuous (sub-pixel), and cropping, resizing and flipping are one batched
    bilinear ``grid_sample`` instead of a Python loop of crops and resizes.
    """
    b, _, h, w = images.shape
    tries = 10
    area = torch.empty(b, tries).uniform_(scale[0], scale[1], generator=generator) * (h * w)
    log_ratio = torch.empty(b, tries).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=generator)
    aspect = torch.exp(log_ratio)
    cw, ch = torch.sqrt(area * aspect), torch.sqrt(area / aspect)
    fits = (cw <= w) & (ch <= h)
    first = torch.where(fits.any(1), fits.float().argmax(1), torch.full((b,), -1))
    # Fallback (no draw fits): the whole image, cut to the nearest allowed ratio (torchvision's).
    whole = w / h
    fw, fh = (w, w / ratio[0]) if whole < ratio[0] else ((h * ratio[1], h) if whole > ratio[1] else (w, h))
    pick = first.clamp(min=0).unsqueeze(1)
    cw = torch.where(first >= 0, cw.gather(1, pick).squeeze(1), torch.full((b,), float(fw)))
    ch = torch.where(first >= 0, ch.gather(1, pick).squeeze(1), torch.full((b,), float(fh)))
    x0 = torch.rand(b, generator=generator) * (w - cw)
    y0 = torch.rand(b, generator=generator) * (h - ch)
    flip = _chance(generator, b, flip_p)
    # affine_grid maps output [-1, 1] to input [-1, 1] (align_corners=False: -1 is the outer edge of pixel 0).
    sx, sy = cw / w, ch / h
    tx, ty = (2.0 * x0 + cw) / w - 1.0, (2.0 * y0 + ch) / h - 1.0
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = torch.where(flip, -sx, sx)
    theta[:, 0, 2] = tx
    theta[:, 1, 1] = sy
    theta[:, 1, 2] = ty
    grid = F.affine_grid(theta, [b, images.shape[1], size, size], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _gray(images: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) luma with the ITU-R 601 weights torchvision uses."""
    return (0.299 * images[:, 0:1] + 0.587 * images[:, 1:2] + 0.114 * images[:, 2:3])


def color_jitter(images: torch.Tensor, generator: torch.Generator, p: float = 0.8, brightness: float = 0.4,
                 contrast: float = 0.4, saturation: float = 0.2) -> torch.Tensor:
    """With probability ``p`` per image: brightness, contrast, saturation scaled by factors drawn from
    [1 - x, 1 + x], in that order (torchvision shuffles the order; a fixed one is cheaper and as varied here).
    Contrast blends towards the image's mean grey, saturation towards its own grey image."""
    b = images.shape[0]
    apply = _chance(generator, b, p).view(b, 1, 1, 1)
    fb = _uniform(generator, b, 1.0 - brightness, 1.0 + brightness).view(b, 1, 1, 1)
    fc = _uniform(generator, b, 1.0 - contrast, 1.0 + contrast).view(b, 1, 1, 1)
    fs = _uniform(generator, b, 1.0 - saturation, 1.0 + saturation).view(b, 1, 1, 1)
    x = (images * fb).clamp(0.0, 1.0)
    mean = _gray(x).mean(dim=(2, 3), keepdim=True)
    x = ((x - mean) * fc + mean).clamp(0.0, 1.0)
    gray = _gray(x)
    x = ((x - gray) * fs + gray).clamp(0.0, 1.0)
    return torch.where(apply, x, images)


def random_grayscale(images: torch.Tensor, generator: torch.Generator, p: float = 0.2) -> torch.Tensor:
    """With probability ``p`` per image: its grey image in all three channels (colour is not always a cue)."""
    b = images.shape[0]
    apply = _chance(generator, b, p).view(b, 1, 1, 1)
    return torch.where(apply, _gray(images).expand_as(images), images)


def gaussian_blur(images: torch.Tensor, generator: torch.Generator, p: float,
                  sigma: tuple[float, float] = (0.1, 2.0)) -> torch.Tensor:
    """With probability ``p`` per image: a Gaussian blur with sigma (pixels) uniform in ``sigma``.

    Separable (a row pass then a column pass, each a grouped 1-D convolution with one kernel per image), with
    the kernel cut at 3 sigma of the largest sigma and reflected borders: O(H W sigma) per image, no FFT."""
    b, c, h, w = images.shape
    sig = _uniform(generator, b, sigma[0], sigma[1])
    apply = _chance(generator, b, p).view(b, 1, 1, 1)
    if not bool(apply.any()):  # after the draws: the generator advances the same either way
        return images.clone()
    radius = max(1, min(math.ceil(3.0 * sigma[1]), h - 1, w - 1))
    t = torch.arange(-radius, radius + 1, dtype=images.dtype)
    kernel = torch.exp(-0.5 * (t.view(1, -1) / sig.view(-1, 1)) ** 2)
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (B*C, K)
    x = images.reshape(1, b * c, h, w)
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="reflect"), kernel.view(b * c, 1, 1, -1), groups=b * c)
    x = F.conv2d(F.pad(x, (0, 0, radius, radius), mode="reflect"), kernel.view(b * c, 1, -1, 1), groups=b * c)
    return torch.where(apply, x.view(b, c, h, w), images)


def solarize(images: torch.Tensor, generator: torch.Generator, p: float = 0.2, threshold: float = 0.5) -> torch.Tensor:
    """With probability ``p`` per image: every intensity at or above ``threshold`` inverted (PIL's solarize)."""
    b = images.shape[0]
    apply = _chance(generator, b, p).view(b, 1, 1, 1)
    return torch.where(apply & (images >= threshold), 1.0 - images, images)


def multi_crop(frames: torch.Tensor, cfg: DinoPretrainConfig, generator: torch.Generator) -> list[torch.Tensor]:
    """uint8 frames (B, H, W, 3) -> ``2 + local_crops`` normalised float32 views (B, 3, S, S): DINO's recipe.

    View 0 is always blurred, view 1 rarely blurred but sometimes solarised, local views blurred half the time;
    every view is cropped, maybe flipped, colour-jittered and maybe grey. Normalised with the ImageNet
    statistics, as :class:`navkit.perception.image_encoder.DinoEncoder` feeds the exported backbone."""
    if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected uint8 frames (B, H, W, 3), got {frames.dtype} {tuple(frames.shape)}")
    images = frames.permute(0, 3, 1, 2).float().div(255.0)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    views = []
    for v in range(cfg.crops):
        is_global = v < GLOBAL_CROPS
        size = cfg.global_crop_size if is_global else cfg.local_crop_size
        x = random_resized_crop(images, size, cfg.global_crop_scale if is_global else cfg.local_crop_scale,
                                generator, cfg.flip_p)
        x = color_jitter(x, generator, cfg.jitter_p, cfg.brightness, cfg.contrast, cfg.saturation)
        x = random_grayscale(x, generator, cfg.grayscale_p)
        s = size / 224.0
        x = gaussian_blur(x, generator, cfg.blur_p[min(v, 2)], (cfg.blur_sigma[0] * s, cfg.blur_sigma[1] * s))
        if v == 1:
            x = solarize(x, generator, cfg.solarize_p)
        views.append((x - mean) / std)
    return views


# ---------------------------------------------------------------------------------- networks, loss, updates


class DinoHead(nn.Module):
    """DINO's projection head: 3-layer MLP (GELU) -> L2-normalised bottleneck -> weight-normalised linear to K logits.

    The weight normalisation is written out (``weight = g * v / |v|`` per output row) rather than through torch's
    parametrisation, so the parameters are plain tensors with plain names. With ``norm_last_layer`` the gain ``g``
    is fixed at 1: every logit is then a cosine similarity between the bottleneck and a prototype, in [-1, 1],
    and the temperatures alone set how sharp the softmax is."""

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int = 512, bottleneck_dim: int = 128,
                 norm_last_layer: bool = True, seed: int = 0) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, hidden_dim),
                                 nn.GELU(), nn.Linear(hidden_dim, bottleneck_dim))
        self.last_layer_v = nn.Parameter(torch.empty(out_dim, bottleneck_dim))
        self.last_layer_g = nn.Parameter(torch.ones(out_dim, 1), requires_grad=not norm_last_layer)
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for module in self.mlp:
                if isinstance(module, nn.Linear):
                    nn.init.trunc_normal_(module.weight, std=0.02, generator=generator)
                    nn.init.zeros_(module.bias)
            nn.init.trunc_normal_(self.last_layer_v, std=0.02, generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.normalize(self.mlp(x), dim=-1, p=2.0)
        weight = self.last_layer_g * self.last_layer_v / self.last_layer_v.norm(dim=1, keepdim=True)
        return F.linear(x, weight)


class DinoNetwork(nn.Module):
    """Backbone + head on a list of views; views of equal size go through the backbone together (one forward
    per resolution, as DINO's MultiCropWrapper). Returns the logits of all views concatenated in order."""

    def __init__(self, backbone: DinoVisionTransformer, head: DinoHead) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, views: Sequence[torch.Tensor]) -> torch.Tensor:
        outputs: list[torch.Tensor] = []
        start = 0
        while start < len(views):
            end = start + 1
            while end < len(views) and views[end].shape[-2:] == views[start].shape[-2:]:
                end += 1
            outputs.append(self.backbone.forward_features(torch.cat(list(views[start:end]))).x_norm_clstoken)
            start = end
        return self.head(torch.cat(outputs))


def build_networks(cfg: DinoPretrainConfig) -> tuple[DinoNetwork, DinoNetwork]:
    """(student, teacher): the same random weights drawn from ``cfg.seed``; the teacher never gets gradients."""
    backbone = DinoVisionTransformer(replace(VARIANTS[cfg.variant], layerscale_init=cfg.layerscale_init),
                                     seed=cfg.seed)
    head = DinoHead(backbone.embed_dim, cfg.out_dim, cfg.head_hidden_dim, cfg.head_bottleneck_dim,
                    cfg.norm_last_layer, seed=cfg.seed + 1)
    student = DinoNetwork(backbone, head)
    teacher = copy.deepcopy(student).requires_grad_(False).eval()
    return student, teacher


def dino_loss(student_logits: Sequence[torch.Tensor], teacher_logits: Sequence[torch.Tensor], center: torch.Tensor,
              student_temp: float, teacher_temp: float) -> torch.Tensor:
    """DINO's loss: the mean over pairs (teacher view i, student view v != i) of
    ``-sum_k softmax((t_i - center) / teacher_temp)_k * log_softmax(s_v / student_temp)_k``, averaged over images.

    ``teacher_logits[i]`` must be the teacher's output on the same crop as ``student_logits[i]`` (the global
    views come first): a student is never asked to predict the teacher on its own view, which it could do
    without learning anything about the image."""
    targets = [F.softmax((t.detach() - center) / teacher_temp, dim=-1) for t in teacher_logits]
    log_probs = [F.log_softmax(s / student_temp, dim=-1) for s in student_logits]
    total = student_logits[0].new_zeros(())
    pairs = 0
    for i, q in enumerate(targets):
        for v, log_p in enumerate(log_probs):
            if v == i:
                continue
            total = total + torch.sum(-q * log_p, dim=-1).mean()
            pairs += 1
    if pairs == 0:
        raise ValueError("dino_loss: needs at least two views (no pair of different views)")
    return total / pairs


@torch.no_grad()
def update_center(center: torch.Tensor, teacher_logits: torch.Tensor, momentum: float) -> torch.Tensor:
    """The new centre: ``momentum * center + (1 - momentum) * mean of the teacher's logits over the batch``.

    Subtracting it keeps any one prototype from winning every image (the one-dimension collapse); its EMA makes
    the correction depend little on the batch."""
    return center * momentum + teacher_logits.detach().mean(dim=0, keepdim=True) * (1.0 - momentum)


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, momentum: float) -> None:
    """``teacher <- momentum * teacher + (1 - momentum) * student``, parameter by parameter (momentum 1: unchanged,
    0: a copy). The teacher is this average of past students, which the paper shows is better than any of them."""
    for t, s in zip(teacher.parameters(), student.parameters(), strict=True):
        t.mul_(momentum).add_(s.detach(), alpha=1.0 - momentum)


@torch.no_grad()
def teacher_entropies(teacher_logits: torch.Tensor, center: torch.Tensor, teacher_temp: float) -> tuple[float, float]:
    """(entropy of the batch-mean teacher distribution, mean per-image entropy), in nats.

    The collapse monitor: the first falls to 0 when every image is sent to the same prototype, the second rises
    to ``log(K)`` when every output is uniform; a healthy teacher keeps the first high and the second below it.
    Their difference is the mutual information between the image and the teacher's prototype, which both kinds
    of collapse drive to 0: the one number that says whether the teacher's output still depends on the image."""
    probs = F.softmax((teacher_logits - center) / teacher_temp, dim=-1)
    mean = probs.mean(0)
    mean_entropy = float(-(mean * torch.log(mean.clamp_min(1e-30))).sum())
    sample_entropy = float(-(probs * torch.log(probs.clamp_min(1e-30))).sum(-1).mean())
    return mean_entropy, sample_entropy


def _cosine(start: float, end: float, t: float) -> float:
    """From ``start`` at t = 0 to ``end`` at t = 1 on half a cosine."""
    return end + 0.5 * (start - end) * (1.0 + math.cos(math.pi * min(max(t, 0.0), 1.0)))


def schedules(cfg: DinoPretrainConfig, step: int) -> dict[str, float]:
    """lr, weight decay, teacher momentum and teacher temperature at ``step`` (functions of the step alone)."""
    total = cfg.steps
    warm = int(cfg.warmup_fraction * total)
    if step < warm:
        lr = cfg.peak_lr * step / warm
    else:
        lr = _cosine(cfg.peak_lr, cfg.min_lr, (step - warm) / max(1, total - warm - 1))
    t_warm = int(cfg.teacher_temp_warmup_fraction * total)
    temp = cfg.teacher_temp if step >= t_warm else \
        cfg.teacher_temp_start + (cfg.teacher_temp - cfg.teacher_temp_start) * step / t_warm
    frac = step / max(1, total - 1)
    return {"lr": lr, "weight_decay": _cosine(cfg.weight_decay, cfg.weight_decay_end, frac),
            "momentum": _cosine(cfg.momentum_teacher, 1.0, frac), "teacher_temp": temp}


def _optimizer(student: DinoNetwork, cfg: DinoPretrainConfig) -> torch.optim.AdamW:
    """AdamW with two groups: weights (decayed on the schedule) and biases/norm gains (never decayed: shrinking
    them only moves the operating point of the layers, as DINO's ``get_params_groups``)."""
    decayed: list[nn.Parameter] = []
    plain: list[nn.Parameter] = []
    for name, param in student.named_parameters():
        if not param.requires_grad:
            continue
        (plain if name.endswith(".bias") or param.ndim == 1 else decayed).append(param)
    return torch.optim.AdamW([{"params": decayed, "weight_decay": cfg.weight_decay},
                              {"params": plain, "weight_decay": 0.0}], lr=0.0)


# ---------------------------------------------------------------------------------- data


class FramePool:
    """The training frames of several datasets as one indexable pool, with a seeded order per epoch.

    Each dataset's trajectories are split (seeded) into training and held-out ones; only training frames are
    sampled. Epoch ``e`` is a permutation drawn from ``(seed, e)`` and step ``k`` takes batch ``k mod
    steps_per_epoch`` of it: a batch is a function of the step, so a resumed run sees exactly the images an
    uninterrupted one would (the last partial batch of an epoch is dropped)."""

    def __init__(self, datasets: Sequence[WmDataset], batch_size: int, seed: int, val_fraction: float) -> None:
        if not datasets:
            raise DinoPretrainError("data", "data", "no dataset given (pass --data DATASET_DIR)")
        sizes = {ds.image_size for ds in datasets}
        if len(sizes) > 1:
            raise DinoPretrainError(str(datasets[1].path), "image_size", f"the datasets' frames differ in size "
                                    f"({', '.join(f'{h}x{w}' for h, w in sorted(sizes))}); pass one size")
        self.datasets = list(datasets)
        self.batch_size, self.seed = batch_size, seed
        train_rows: list[np.ndarray] = []
        test_rows: list[np.ndarray] = []
        for d, ds in enumerate(self.datasets):
            train_traj, test_traj = ds.split(val_fraction, seed)
            t1 = ds.traj_len + 1
            for trajs, rows in ((train_traj, train_rows), (test_traj, test_rows)):
                grid = np.stack(np.meshgrid(trajs, np.arange(t1), indexing="ij"), -1).reshape(-1, 2)
                rows.append(np.concatenate([np.full((len(grid), 1), d), grid], 1))
        self.train = np.concatenate(train_rows).astype(np.int64)
        """(n, 3): dataset, trajectory, frame of every training frame."""
        self.test = np.concatenate(test_rows).astype(np.int64)
        """(m, 3): the held-out frames (the probe's test set)."""
        if len(self.train) < batch_size:
            raise DinoPretrainError(str(self.datasets[0].path), "batch_size",
                                    f"{batch_size} images per step but the training trajectories hold only "
                                    f"{len(self.train)} frames; use a smaller --batch-size or more data")
        self.steps_per_epoch = len(self.train) // batch_size
        self._epoch = -1
        self._order = np.empty(0, dtype=np.int64)

    def gather(self, rows: np.ndarray) -> np.ndarray:
        """uint8 frames (len(rows), H, W, 3) of the (dataset, trajectory, frame) rows, in order."""
        h, w = self.datasets[0].image_size
        out = np.empty((len(rows), h, w, 3), dtype=np.uint8)
        for d, ds in enumerate(self.datasets):
            sel = np.flatnonzero(rows[:, 0] == d)
            if len(sel):
                order = np.lexsort((rows[sel, 2], rows[sel, 1]))  # sorted reads from the memory map
                out[sel[order]] = ds.frames[rows[sel[order], 1], rows[sel[order], 2]]
        return out

    def proprio(self, rows: np.ndarray) -> np.ndarray:
        """float32 proprioception (len(rows), P) of the rows: the probe's targets."""
        return np.stack([self.datasets[d].proprio[i, t] for d, i, t in rows]).astype(np.float32)

    def batch(self, step: int) -> np.ndarray:
        """The uint8 frames of ``step``'s batch (batch_size, H, W, 3)."""
        epoch, k = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, 1, epoch]))
            self._order, self._epoch = rng.permutation(len(self.train)), epoch
        return self.gather(self.train[self._order[k * self.batch_size:(k + 1) * self.batch_size]])

    def probe_rows(self, n_train: int, n_test: int) -> tuple[np.ndarray, np.ndarray]:
        """Seeded subsets of training and held-out frames for the linear probe (empty test set: no held-out)."""
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, 3]))
        tr = self.train[np.sort(rng.permutation(len(self.train))[:n_train])]
        te = self.test[np.sort(rng.permutation(len(self.test))[:n_test])]
        return tr, te


# ---------------------------------------------------------------------------------- linear probe


def _ridge_fit(a: torch.Tensor, y: torch.Tensor, lam: float) -> torch.Tensor:
    """Weights (d, k) of ridge regression of centred ``y`` on centred ``a`` with penalty ``lam`` (primal or dual)."""
    if a.shape[1] <= a.shape[0]:
        return torch.linalg.solve(a.T @ a + lam * torch.eye(a.shape[1], dtype=a.dtype), a.T @ y)
    return a.T @ torch.linalg.solve(a @ a.T + lam * torch.eye(a.shape[0], dtype=a.dtype), y)


def _r2(y: torch.Tensor, pred: torch.Tensor) -> float:
    sse = ((y - pred) ** 2).sum(0)
    sst = ((y - y.mean(0)) ** 2).sum(0).clamp_min(1e-12)
    return float((1.0 - sse / sst).mean())


def ridge_r2(x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor,
             ridges: Sequence[float] = RIDGE_GRID) -> float:
    """R² on the test set of a ridge regression fitted on the training set, averaged over target dimensions
    (1: perfect; 0: no better than the training mean; negative: worse).

    Features are centred with the training mean but not scaled per dimension (scaling would blow up dimensions
    that barely vary in training). The penalty is chosen from ``ridges`` (fractions of the mean eigenvalue of the
    training scatter matrix, so one grid suits class tokens, patch means and raw pixels) by the R² of a fit on
    the first 80 % of the training rows scored on the last 20 % (rows in trajectory order: a split by
    trajectory, so adjacent frames do not leak), then refitted on all of them. A fixed penalty would either
    wipe out the low-variance directions where position may live or overfit raw pixels; choosing it on the
    training set keeps the test set untouched. Solved in float64, in the dual when features outnumber frames."""
    xt, yt = x_train.double(), y_train.double()
    lam_unit = float(((xt - xt.mean(0)) ** 2).sum()) / xt.shape[1] + 1e-12
    best = ridges[0]
    if len(ridges) > 1:
        cut = max(1, int(0.8 * len(xt)))
        fit_x, fit_y, val_x, val_y = xt[:cut], yt[:cut], xt[cut:], yt[cut:]
        mu, ym = fit_x.mean(0), fit_y.mean(0)
        scores = [_r2(val_y, (val_x - mu) @ _ridge_fit(fit_x - mu, fit_y - ym, r * lam_unit) + ym) for r in ridges]
        best = ridges[int(np.argmax(scores))]
    mu, ym = xt.mean(0), yt.mean(0)
    w = _ridge_fit(xt - mu, yt - ym, best * lam_unit)
    return _r2(y_test.double(), (x_test.double() - mu) @ w + ym)


@torch.no_grad()
def backbone_features(backbone: DinoVisionTransformer, frames: np.ndarray, size: int,
                      batch: int = 256) -> dict[str, torch.Tensor]:
    """{"cls": (N, D), "patch_mean": (N, D)} of uint8 frames (N, H, W, 3) resized to ``size`` and normalised as in
    training."""
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    cls, patch = [], []
    for start in range(0, len(frames), batch):
        x = torch.from_numpy(np.ascontiguousarray(frames[start:start + batch])).permute(0, 3, 1, 2).float() / 255.0
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out = backbone.forward_features((x - mean) / std)
        cls.append(out.x_norm_clstoken)
        patch.append(out.x_norm_patchtokens.mean(1))
    return {"cls": torch.cat(cls), "patch_mean": torch.cat(patch)}


def linear_probe(backbone: DinoVisionTransformer, pool: FramePool, cfg: DinoPretrainConfig) -> dict[str, float]:
    """Held-out R² of the proprioception from the class token and from the mean patch token; {} without held-out
    frames (too few trajectories for ``val_fraction``) or when the datasets' proprioceptions differ in size.

    Why proprioception: it is what every dataset records and what a world model must be able to read off a frame
    (Wall: the dot's position). Velocities (PointMaze's) are not visible in one frame, which caps its R²."""
    if len(pool.test) == 0 or len({ds.proprio_dim for ds in pool.datasets}) != 1:
        return {}
    tr, te = pool.probe_rows(cfg.probe_train_frames, cfg.probe_test_frames)
    was_training = backbone.training
    backbone.eval()
    f_tr = backbone_features(backbone, pool.gather(tr), cfg.global_crop_size)
    f_te = backbone_features(backbone, pool.gather(te), cfg.global_crop_size)
    backbone.train(was_training)
    y_tr, y_te = torch.from_numpy(pool.proprio(tr)), torch.from_numpy(pool.proprio(te))
    return {f"r2_{name}": ridge_r2(f_tr[name], y_tr, f_te[name], y_te, cfg.probe_ridge) for name in f_tr}


# ---------------------------------------------------------------------------------- the loop


@dataclass
class DinoPretrainResult:
    """What :func:`train` did in this call."""

    run_dir: Path
    step: int
    """Steps done in total (this call and the ones it resumed)."""
    history: list[dict[str, float]] = field(default_factory=list)
    """Per step of this call: step, loss, lr, weight_decay, momentum, teacher_temp, center_norm, entropy_mean,
    entropy_sample, mutual_information (see :func:`teacher_entropies`)."""
    probe: dict[str, float] = field(default_factory=dict)
    """The last linear probe of this call (R² per feature), empty if none ran."""
    teacher_path: Path | None = None
    """The exported teacher backbone (only once ``cfg.steps`` are done)."""
    metadata_path: Path | None = None


def _navkit_version() -> str:
    try:
        return importlib.metadata.version("navkit")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _step_generator(seed: int, step: int) -> torch.Generator:
    """The augmentations' generator of ``step``: a function of (seed, step), so resuming needs no RNG stream."""
    return torch.Generator().manual_seed(int(np.random.SeedSequence([seed, 2, step]).generate_state(1)[0]))


def _load_checkpoint(path: Path, cfg: DinoPretrainConfig) -> dict[str, Any]:
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many types on a damaged file; all mean "cannot resume from it"
        raise DinoPretrainError(str(path), "<file>", f"not a readable checkpoint ({type(exc).__name__}); "
                                                     "use --fresh to start over") from None
    if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT:
        raise DinoPretrainError(str(path), "format", f"not a {CHECKPOINT_FORMAT}; use --fresh or another --out")
    saved = ck.get("config", {})
    current = asdict(cfg)
    for key in RESUME_MUST_MATCH:
        old, new = saved.get(key), current[key]
        if isinstance(old, (list, tuple)):
            old, new = list(old), list(new)
        if old != new:
            raise DinoPretrainError(str(path), key, f"{brief(new)} differs from the checkpoint's {brief(old)}; "
                                                    "use --fresh (or another --run-name) to start over")
    return ck


def _save_checkpoint(path: Path, step: int, student: DinoNetwork, teacher: DinoNetwork, opt: torch.optim.Optimizer,
                     center: torch.Tensor, cfg: DinoPretrainConfig, wall_s: float) -> None:
    """Everything a bit-exact continuation needs; tensors and plain types only (``weights_only`` loads it)."""
    ck = {"format": CHECKPOINT_FORMAT, "step": step, "student": student.state_dict(), "teacher": teacher.state_dict(),
          "optimizer": opt.state_dict(), "center": center.clone(), "torch_rng": torch.get_rng_state(),
          "config": asdict(cfg), "wall_s": wall_s}
    tmp = path.with_suffix(".tmp")
    torch.save(ck, tmp)
    os.replace(tmp, path)


def _trim_csv(path: Path, step: int) -> None:
    """Drop rows at or after ``step`` (written after the checkpoint a resumed run restarts from)."""
    if not path.is_file():
        return
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    keep = rows[:1] + [r for r in rows[1:] if r and int(r[0]) < step]
    with path.open("w", newline="") as fh:
        csv.writer(fh).writerows(keep)


def _append_csv(path: Path, row: dict[str, float]) -> None:
    new = not path.is_file()
    with path.open("a", newline="") as fh:
        w = csv.writer(fh)
        if new:
            w.writerow(list(row))
        w.writerow([int(v) if k == "step" else f"{v:.6g}" for k, v in row.items()])


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def export_teacher(teacher: DinoNetwork, cfg: DinoPretrainConfig, pool: FramePool, step: int,
                   extra: dict[str, Any]) -> tuple[Path, Path]:
    """Write the teacher backbone as the plain state dict of a DINOv2 release (``teacher_backbone.pth``: official
    names, float32; ``load_dinov2(path, variant)`` loads it strictly) and ``teacher_backbone.json`` beside it.

    The teacher, not the student: DINO's teacher is the better network throughout training (the EMA is an
    ensemble over recent students). The head is left out: it only serves the pretext task."""
    run_dir = cfg.directory
    pth, meta = run_dir / "teacher_backbone.pth", run_dir / "teacher_backbone.json"
    state = {k: v.detach().to(torch.float32).clone().contiguous() for k, v in teacher.backbone.state_dict().items()}
    tmp = pth.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, pth)
    doc = {"format": EXPORT_FORMAT, "weights": pth.name, "sha256": _sha256(pth), "variant": cfg.variant,
           "load": f"navkit.perception.dinov2_checkpoint.load_dinov2({pth.name!r}, variant={cfg.variant!r})",
           "network": "teacher backbone (EMA of the student); the DINO head is not included",
           "image_size": cfg.global_crop_size,
           "preprocessing": "RGB / 255, ImageNet mean/std (as navkit.perception.image_encoder.DinoEncoder)",
           "steps": step, "epochs": round(step / pool.steps_per_epoch, 3), "training_frames": int(len(pool.train)),
           "held_out_frames": int(len(pool.test)),
           "datasets": [{"path": str(ds.path), "env": ds.env, "n_traj": ds.n_traj, "traj_len": ds.traj_len,
                         "image_size": list(ds.image_size), "metadata_sha256": ds.metadata.get("metadata_sha256")}
                        for ds in pool.datasets],
           "config": asdict(cfg), "navkit_version": _navkit_version(), "torch_version": torch.__version__,
           "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "citation": CITATION, **extra}
    meta.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return pth, meta


def train(cfg: DinoPretrainConfig, *, until: int | None = None,
          datasets: Sequence[WmDataset] | None = None) -> DinoPretrainResult:
    """Train (or resume) the run ``cfg`` describes up to ``cfg.steps`` (or ``until``, to halt early with a
    checkpoint: for time-sliced runs and the resume test). Exports the teacher when ``cfg.steps`` are done.

    ``datasets``: already loaded datasets instead of ``cfg.data`` (whose paths are still recorded)."""
    from torch.utils.tensorboard import SummaryWriter
    from tqdm import tqdm

    torch.set_num_threads(cfg.torch_threads)
    if datasets is None:
        if not cfg.data:
            raise DinoPretrainError("DinoPretrainConfig", "data", "no dataset given (pass --data DATASET_DIR)")
        datasets = [load_dataset(path) for path in cfg.data]
    pool = FramePool(datasets, cfg.batch_size, cfg.seed, cfg.val_fraction)
    stop = cfg.steps if until is None else min(int(until), cfg.steps)
    run_dir = cfg.directory
    run_dir.mkdir(parents=True, exist_ok=True)
    last, curve, probe_csv = run_dir / "last.pt", run_dir / "curve.csv", run_dir / "probe.csv"

    student, teacher = build_networks(cfg)
    opt = _optimizer(student, cfg)
    center = torch.zeros(1, cfg.out_dim)
    step, wall_before = 0, 0.0
    if cfg.resume and last.is_file():
        ck = _load_checkpoint(last, cfg)
        student.load_state_dict(ck["student"])
        teacher.load_state_dict(ck["teacher"])
        opt.load_state_dict(ck["optimizer"])
        center = ck["center"].clone()
        torch.set_rng_state(ck["torch_rng"])
        step, wall_before = int(ck["step"]), float(ck["wall_s"])
        for path in (curve, probe_csv):
            _trim_csv(path, step)
    else:
        for stale in (last, curve, probe_csv, run_dir / "teacher_backbone.pth", run_dir / "teacher_backbone.json"):
            stale.unlink(missing_ok=True)

    result = DinoPretrainResult(run_dir=run_dir, step=step)
    writer = SummaryWriter(str(run_dir), purge_step=step if step else None)
    bar = tqdm(total=cfg.steps, initial=step, disable=not cfg.progress_bar, desc=f"dino pretrain {cfg.variant}",
               unit="step", dynamic_ncols=True)
    trainable = [p for p in student.parameters() if p.requires_grad]
    t_start = time.perf_counter()
    last_saved = step

    def run_probe(at: int) -> None:
        t0 = time.perf_counter()
        result.probe = linear_probe(teacher.backbone, pool, cfg)
        for key, value in result.probe.items():
            writer.add_scalar(f"probe/{key}", value, at)
        if result.probe:
            _append_csv(probe_csv, {"step": at, **result.probe})
            bar.write(f"{at:>7d} steps: held-out R² of proprio from teacher features: "
                      + ", ".join(f"{k[3:]} {v:.3f}" for k, v in result.probe.items())
                      + f" ({time.perf_counter() - t0:.1f} s)", file=sys.stderr)

    recent_information: list[float] = []
    warned = False
    try:
        if step == 0 and cfg.eval_every:
            run_probe(0)  # the random initialisation's score: the baseline every later probe is compared with
        while step < stop:
            t0 = time.perf_counter()
            sched = schedules(cfg, step)
            for group in opt.param_groups:
                group["lr"] = sched["lr"]
            opt.param_groups[0]["weight_decay"] = sched["weight_decay"]
            views = multi_crop(torch.from_numpy(pool.batch(step)), cfg, _step_generator(cfg.seed, step))
            with torch.no_grad():
                t_out = teacher(views[:GLOBAL_CROPS])
            if step == 0 and cfg.center_warm_start:
                center = t_out.mean(dim=0, keepdim=True)
            s_out = student(views)
            loss = dino_loss(s_out.chunk(cfg.crops), t_out.chunk(GLOBAL_CROPS), center, cfg.student_temp,
                             sched["teacher_temp"])
            if not torch.isfinite(loss):
                raise DinoPretrainError(str(run_dir), "loss", f"became {float(loss)} at step {step} (lr "
                                        f"{sched['lr']:.3g}); the run stops here, last.pt holds step {last_saved}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.clip_grad:
                for p in trainable:
                    if p.grad is not None:
                        torch.nn.utils.clip_grad_norm_([p], cfg.clip_grad)
            if step // pool.steps_per_epoch < cfg.freeze_last_layer_epochs:
                student.head.last_layer_v.grad = None
                student.head.last_layer_g.grad = None
            opt.step()
            ema_update(teacher, student, sched["momentum"])
            h_mean, h_sample = teacher_entropies(t_out, center, sched["teacher_temp"])
            center = update_center(center, t_out, cfg.center_momentum)
            row = {"step": float(step), "loss": loss.item(), **sched, "center_norm": float(center.norm()),
                   "entropy_mean": h_mean, "entropy_sample": h_sample, "mutual_information": h_mean - h_sample}
            result.history.append(row)
            writer.add_scalar("train/loss", row["loss"], step)
            writer.add_scalar("train/lr", sched["lr"], step)
            writer.add_scalar("train/weight_decay", sched["weight_decay"], step)
            writer.add_scalar("train/teacher_momentum", sched["momentum"], step)
            writer.add_scalar("train/teacher_temp", sched["teacher_temp"], step)
            writer.add_scalar("train/center_norm", row["center_norm"], step)
            writer.add_scalar("collapse/entropy_of_mean_teacher", h_mean, step)
            writer.add_scalar("collapse/mean_teacher_entropy", h_sample, step)
            writer.add_scalar("collapse/teacher_mutual_information", h_mean - h_sample, step)
            writer.add_scalar("time/steps_per_s", 1.0 / max(time.perf_counter() - t0, 1e-9), step)
            _append_csv(curve, row)
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{row['loss']:.3f}", MI=f"{h_mean - h_sample:.3f}", refresh=False)
            recent_information = (recent_information + [h_mean - h_sample])[-COLLAPSE_WINDOW:]
            if not warned and len(recent_information) == COLLAPSE_WINDOW \
                    and max(recent_information) < COLLAPSE_INFORMATION:
                warned = True
                bar.write(f"{PROG}: warning: step {step}: the teacher's output has carried < {COLLAPSE_INFORMATION} "
                          f"nats about the image for {COLLAPSE_WINDOW} steps: it has collapsed (see "
                          "collapse/* in TensorBoard)", file=sys.stderr)
            if cfg.eval_every and step % cfg.eval_every == 0 and step < cfg.steps:
                run_probe(step)
            if step % cfg.checkpoint_every == 0 or step == stop:
                _save_checkpoint(last, step, student, teacher, opt, center, cfg,
                                 wall_before + time.perf_counter() - t_start)
                last_saved = step
        result.step = step
        if step >= cfg.steps:
            run_probe(step)
            final = result.history[-1] if result.history else {}
            result.teacher_path, result.metadata_path = export_teacher(
                teacher, cfg, pool, step,
                {"final": {k: final[k] for k in ("loss", "entropy_mean", "entropy_sample", "mutual_information")
                           if k in final},
                 "probe_r2_held_out": result.probe,
                 "wall_seconds": round(wall_before + time.perf_counter() - t_start, 1)})
    finally:
        bar.close()
        writer.close()
    return result


# ---------------------------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    parser = CliParser(
        prog=PROG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Pretrain a DINOv2-shaped ViT on world-model datasets by DINO self-distillation (CPU-sized); "
                    "writes <out>/<run>/teacher_backbone.pth (load_dinov2 loads it) and a JSON of how it was made. "
                    "Resumes from <out>/<run>/last.pt unless --fresh.",
        epilog="Examples:\n  navkit wm collect --env wall --episodes 200 --steps 50 --out data/wall\n"
               "  navkit perception pretrain --data data/wall --steps 2000\n"
               "  navkit perception pretrain --data data/wall --data data/pointmaze --config dino.yaml --fresh")
    parser.add_argument("--data", action="append", type=Path, required=True, metavar="DATASET_DIR",
                        help="a dataset folder from navkit wm collect (repeat to pool several)")
    parser.add_argument("--variant", choices=list(VARIANTS), default=None, help="backbone shape (default: tiny)")
    parser.add_argument("--steps", type=int_in(1, 10**9), default=None, help="optimiser steps (default: 2000)")
    parser.add_argument("--batch-size", type=int_in(2, 65536), default=None, help="images per step (default: 64)")
    parser.add_argument("--seed", type=int_in(0, 2**31 - 1), default=None)
    parser.add_argument("--out", type=Path, default=None, help="parent folder of runs (default: runs/dino_pretrain)")
    parser.add_argument("--run-name", default=None, help="the run's folder under --out (default: <variant>_s<seed>)")
    parser.add_argument("--config", type=Path, default=None, help="YAML with DinoPretrainConfig fields")
    parser.add_argument("--fresh", action="store_true", help="start over instead of resuming from last.pt")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def load_config(path: Path | None, **overrides: Any) -> DinoPretrainConfig:
    """YAML (optional) + command-line overrides -> config; problems raise :class:`ParameterError` naming the key."""
    doc: dict[str, Any] = {}
    source = str(path) if path else "<command line>"
    if path is not None:
        raw = read_yaml_file(path, ParameterError, "pretraining config") or {}
        if not isinstance(raw, dict):
            raise ParameterError(source, "<root>", "expected a mapping of DinoPretrainConfig fields")
        doc = {str(k): v for k, v in raw.items()}
    doc.update({k: v for k, v in overrides.items() if v is not None})
    return config_from_params(DinoPretrainConfig, doc, source)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (0 trained, 2 bad input, 130 interrupted)."""
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        cfg = load_config(args.config, data=[str(p) for p in args.data], variant=args.variant, steps=args.steps,
                          batch_size=args.batch_size, seed=args.seed, out=None if args.out is None else str(args.out),
                          run_name=args.run_name, resume=False if args.fresh else None,
                          progress_bar=False if args.quiet else None)
        result = train(cfg)
    except (NavkitError, OSError) as exc:  # OSError: an --out that is a file, a full disk
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted (resume from the last checkpoint by running the same command)", file=sys.stderr)
        return 130
    probe = ", ".join(f"{k[3:]} {v:.3f}" for k, v in result.probe.items()) or "no held-out frames"
    print(f"wrote {result.teacher_path} after {result.step} steps (held-out R² of proprio: {probe})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
