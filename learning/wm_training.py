"""``navkit wm train``: fit the DINO-WM predictor on frozen encoder features of an offline dataset.

    navkit wm train --data /tmp/wm_wall --encoder tiny --history 1 --frameskip 5 --steps 3000

After Zhou, Pan, LeCun, Pinto, "DINO-WM: World Models on Pre-trained Visual Features enable Zero-shot
Planning" (ICML 2025, arXiv 2411.04983): the encoder is frozen, so every frame of the dataset is encoded
exactly ONCE into a feature cache (a memory-mapped ``.npy`` under ``<out>/feature_cache``, keyed by a hash
of the encoder's weights, the feature kind and the dataset's identity). Training then never touches an
image: on two CPU cores the encoder would otherwise cost more than the predictor many times over. A cache
built by other weights is never reused (the key changes), and it is written to a temporary name and
renamed, so an interrupted encoding leaves no half cache behind.

The predictor (:class:`~navkit.planning.dino_wm.DinoWmPredictor`) is trained with the paper's
teacher-forced latent MSE (targets detached) plus the proprio MSE, AdamW at 5e-4. Actions are normalised
by the env's action *box* (so the planners' normalised box [-1, 1] is exactly the robot's box) and proprio
by the training split's mean/std. TensorBoard logs train/val loss under the run folder; ``last.pt`` holds
everything needed to continue bit for bit (weights, optimiser, sampler and torch RNG states, history), and
``best.pt`` the lowest-validation-loss predictor with everything :mod:`navkit.stack.world_model_loader` needs
to rebuild the model (configs, normalisation, encoder identity). ``val_loss.png`` is drawn at the end.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from navkit.common.cli_args import CliParser, int_in
from navkit.common.errors import FieldError, NavkitError, brief
from navkit.learning.wm_dataset import WmDataset, load_dataset
from navkit.perception.dinov2_checkpoint import VARIANTS, read_checkpoint
from navkit.perception.image_encoder import DinoEncoder
from navkit.perception.wm_features import FEATURE_KINDS, build_encoder, encode_features
from navkit.planning.dino_wm import DinoWmPredictor, PredictorConfig, teacher_forced_loss

__all__ = ["FEATURE_KINDS", "PREDICTOR_PRESETS", "FeatureCache", "TrainResult", "WmTrainConfig", "WmTrainError",
           "build_encoder", "encode_features", "encoder_fingerprint", "feature_cache", "main", "train"]
# FEATURE_KINDS, build_encoder and encode_features live in navkit.perception.wm_features (the stack rebuilds a
# run's encoder with them too); they are re-exported here for existing callers.

PROG = "navkit wm train"
PREDICTOR_PRESETS = ("cpu", "paper")
RESUME_MUST_MATCH = ("data", "encoder", "weights", "encoder_seed", "feature", "image_size", "history", "frameskip",
                     "predictor", "depth", "heads", "head_dim", "mlp_dim", "batch_size", "lr", "weight_decay",
                     "val_fraction", "seed", "proprio_loss_weight")
"""Config fields a run can only be resumed with unchanged (they shape the model, the data or the sampler)."""
CITATION = "Zhou et al., DINO-WM, ICML 2025, arXiv 2411.04983"


class WmTrainError(FieldError):
    """A training request cannot be honoured (bad config, mismatched resume); names the source and field."""


@dataclass
class WmTrainConfig:
    """Every knob of ``navkit wm train`` and why it matters."""

    data: str = ""
    """Dataset folder written by ``navkit wm collect``."""
    env: str = ""
    """If set, the dataset must come from this env (guards against training a Wall model on PointMaze data)."""
    encoder: str = "tiny"
    """Encoder variant (``tiny`` or a DINOv2 name); its patch grid and width set the predictor's P and D."""
    weights: str = ""
    """Encoder ``.pth``; empty = random init from ``encoder_seed`` (features carry layout but no semantics)."""
    encoder_seed: int = 0
    """Seed of the random encoder when ``weights`` is empty."""
    feature: str = "patch"
    """``patch`` (the paper) or ``cls`` (one global token: the paper's ablation, which loses layout)."""
    image_size: int = 0
    """Resize frames to this square before encoding (a multiple of the patch size); 0 keeps the dataset's."""
    history: int = 1
    """H, frames the predictor sees (1 for Wall, 3 for PointMaze in the paper)."""
    frameskip: int = 5
    """Env steps per model step (5 in the paper): short planning horizons in model steps."""
    predictor: str = "cpu"
    """Predictor preset (``cpu`` or ``paper``); P, D, A, p, H and frameskip always come from data and encoder."""
    depth: int = 0
    """Override of the preset's transformer depth (0: the preset's)."""
    heads: int = 0
    """Override of the preset's attention heads (0: the preset's)."""
    head_dim: int = 0
    """Override of the preset's per-head width (0: the preset's)."""
    mlp_dim: int = 0
    """Override of the preset's MLP width (0: the preset's)."""
    batch_size: int = 32
    lr: float = 5e-4
    """AdamW learning rate (the paper's 5e-4)."""
    weight_decay: float = 0.01
    proprio_loss_weight: float = 1.0
    """Weight of the (normalised) proprio MSE next to the latent MSE."""
    steps: int = 2000
    """Optimiser steps in total (a resumed run continues up to this number)."""
    epochs: float = 0.0
    """If > 0, overrides ``steps``: this many passes over the training windows."""
    val_fraction: float = 0.1
    """Share of trajectories held out for the validation loss (split by trajectory, never by window)."""
    val_windows: int = 512
    """Validation windows scored each evaluation (a fixed, seeded subset: comparable across evaluations)."""
    seed: int = 0
    out: str = "runs/wm"
    """Parent folder of the runs and of the shared feature cache."""
    run_name: str = ""
    """Run folder name under ``out``; empty -> ``<env>_<encoder>_<feature>_h<H>_s<seed>``."""
    eval_every: int = 200
    """Steps between validation losses (and checkpoints); 0 = only at the end."""
    fresh: bool = False
    """Ignore an existing ``last.pt`` and start over."""
    progress: bool = True
    torch_threads: int = 1
    """Torch CPU threads: 1 by default, the machine is shared."""
    encode_batch: int = 256
    """Frames per encoder call while building the feature cache."""

    def __post_init__(self) -> None:
        if self.encoder not in VARIANTS:
            raise ValueError(f"encoder: unknown {self.encoder!r} (known: {', '.join(VARIANTS)})")
        if self.feature not in FEATURE_KINDS:
            raise ValueError(f"feature: expected one of {', '.join(FEATURE_KINDS)}, got {brief(self.feature)}")
        if self.predictor not in PREDICTOR_PRESETS:
            raise ValueError(f"predictor: expected one of {', '.join(PREDICTOR_PRESETS)}, got {brief(self.predictor)}")
        ints = {"encoder_seed": (0, 2**31 - 1), "image_size": (0, 4096), "history": (1, 64), "frameskip": (1, 1000),
                "depth": (0, 64), "heads": (0, 64), "head_dim": (0, 1024), "mlp_dim": (0, 65536),
                "batch_size": (1, 65536), "steps": (1, 10**9), "val_windows": (1, 10**7), "seed": (0, 2**31 - 1),
                "eval_every": (0, 10**9), "torch_threads": (1, 256), "encode_batch": (1, 65536)}
        for name, (low, high) in ints.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"{name}: expected an integer in [{low}, {high}], got {brief(value)}")
        floats = {"lr": (1e-9, 1.0), "weight_decay": (0.0, 10.0), "proprio_loss_weight": (0.0, 1e3),
                  "epochs": (0.0, 1e6), "val_fraction": (0.0, 0.9)}
        for name, (lo, hi) in floats.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or not lo <= value <= hi:
                raise ValueError(f"{name}: expected a number in [{lo:g}, {hi:g}], got {brief(value)}")
        patch = VARIANTS[self.encoder].patch_size
        if self.image_size % patch:
            raise ValueError(f"image_size: must be 0 or a multiple of the {self.encoder} patch size {patch}, "
                             f"got {self.image_size}")

    def run_dir(self, env_name: str) -> Path:
        name = self.run_name or f"{env_name}_{self.encoder}_{self.feature}_h{self.history}_s{self.seed}"
        return Path(self.out) / name


# ------------------------------------------------------------------------------------------ encoder


def encoder_fingerprint(encoder: DinoEncoder, feature: str) -> str:
    """sha256 of the encoder's weights (every tensor's bytes, in name order), its input size rule and the
    feature kind: the cache key that makes features from other weights impossible to reuse by mistake."""
    h = hashlib.sha256()
    h.update(f"{encoder.config.variant}|{encoder.config.resize_to}|{feature}".encode())
    for name, tensor in sorted(encoder.model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class FeatureCache:
    """A dataset's frames encoded once: ``features`` (N, T+1, P, D) float32, memory-mapped read-only."""

    path: Path
    features: np.ndarray
    key: str
    built: bool
    """True when this call encoded the frames; False when an existing cache was reused."""


def _dataset_identity(ds: WmDataset) -> str:
    meta = ds.metadata
    if isinstance(meta.get("metadata_sha256"), str):
        return str(meta["metadata_sha256"])
    return hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()


def feature_cache(ds: WmDataset, encoder: DinoEncoder, feature: str, cache_dir: Path, batch: int = 256,
                  progress: bool = False) -> FeatureCache:
    """Encode every frame of ``ds`` once (or reuse the cache for the same encoder weights and dataset)."""
    key = hashlib.sha256(f"{encoder_fingerprint(encoder, feature)}|{_dataset_identity(ds)}".encode()).hexdigest()
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"{ds.path.name}-{feature}-{key[:20]}.npy"
    n, t1 = ds.frames.shape[:2]
    if path.is_file():
        try:
            arr = np.load(path, mmap_mode="r")
            if arr.shape[:2] == (n, t1) and arr.dtype == np.float32:
                return FeatureCache(path, arr, key, built=False)
        except (ValueError, OSError):
            pass  # unreadable: rebuilt below
    from tqdm import tqdm

    probe = encode_features(encoder, np.array(ds.frames[0, :1]), feature)
    shape = (n, t1, *probe.shape[1:])
    tmp = cache_dir / f".{path.name}.partial-{os.getpid()}"
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=shape)
    try:
        flat_frames = ds.frames.reshape(n * t1, *ds.frames.shape[2:])
        flat_out = out.reshape(n * t1, *shape[2:])
        with tqdm(total=n * t1, unit="frame", desc="encode frames (once)", disable=not progress) as bar:
            for lo in range(0, n * t1, batch):
                hi = min(lo + batch, n * t1)
                flat_out[lo:hi] = encode_features(encoder, np.array(flat_frames[lo:hi]), feature)
                bar.update(hi - lo)
        out.flush()
        del out, flat_out
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return FeatureCache(path, np.load(path, mmap_mode="r"), key, built=True)


# ------------------------------------------------------------------------------------------ data


@dataclass
class _Windows:
    """Training windows as index arrays into the cache: (trajectory, first step) pairs."""

    traj: np.ndarray
    start: np.ndarray


def _windows(trajectories: np.ndarray, traj_len: int, span: int) -> _Windows:
    per = traj_len - span + 1
    traj = np.repeat(trajectories.astype(np.int64), per)
    start = np.tile(np.arange(per, dtype=np.int64), len(trajectories))
    return _Windows(traj, start)


class _Batches:
    """Gathers (latents, actions, proprio) batches of H + 1 frames every ``frameskip`` steps from the cache.

    Actions and proprio are small and normalised once in memory; features stay memory-mapped."""

    def __init__(self, ds: WmDataset, features: np.ndarray, history: int, frameskip: int,
                 proprio_mean: np.ndarray, proprio_std: np.ndarray) -> None:
        self.features, self.h, self.k = features, history, frameskip
        low = np.asarray(ds.metadata["action_low"], dtype=np.float32)
        high = np.asarray(ds.metadata["action_high"], dtype=np.float32)
        self.actions = ((np.asarray(ds.actions, dtype=np.float32) - (high + low) / 2) / ((high - low) / 2))
        self.proprio = ((np.asarray(ds.proprio, dtype=np.float32) - proprio_mean) / proprio_std).astype(np.float32)

    def __call__(self, traj: np.ndarray, start: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        offsets = np.arange(self.h + 1) * self.k
        ti, fi = traj[:, None], start[:, None] + offsets[None, :]
        order = np.lexsort((fi[:, 0], ti[:, 0]))  # memmap gathers read faster in file order
        inv = np.empty_like(order)
        inv[order] = np.arange(len(order))
        z = np.asarray(self.features[ti[order], fi[order]])[inv]
        steps = start[:, None] + np.arange(self.h * self.k)[None, :]
        a = self.actions[traj[:, None], steps].reshape(len(traj), self.h, -1)
        p = self.proprio[ti, fi]
        return torch.from_numpy(np.ascontiguousarray(z)), torch.from_numpy(a), torch.from_numpy(p)


# ------------------------------------------------------------------------------------------ training


@dataclass
class TrainResult:
    """What :func:`train` did: where things are and how the losses went."""

    run_dir: Path
    best_path: Path
    last_path: Path
    steps: int
    train_loss: list[tuple[int, float]] = field(default_factory=list)
    """(step, mean train loss since the previous evaluation)."""
    val_loss: list[tuple[int, float]] = field(default_factory=list)
    best_val: float = math.inf
    cache: Path | None = None
    cache_built: bool = False
    seconds: float = 0.0


def _predictor_config(cfg: WmTrainConfig, ds: WmDataset, num_patches: int, latent_dim: int) -> PredictorConfig:
    preset: Callable[..., PredictorConfig] = PredictorConfig.cpu if cfg.predictor == "cpu" else PredictorConfig.paper
    pc = preset(num_patches=num_patches, latent_dim=latent_dim, action_dim=ds.action_dim, frameskip=cfg.frameskip,
                proprio_dim=ds.proprio_dim, history=cfg.history)
    overrides = {k: getattr(cfg, k) for k in ("depth", "heads", "head_dim", "mlp_dim") if getattr(cfg, k)}
    return replace(pc, **overrides)


def _atomic_save(obj: dict[str, Any], path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _val_loss(predictor: DinoWmPredictor, batches: _Batches, val: _Windows, weight: float, batch: int) -> float:
    predictor.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for lo in range(0, len(val.traj), batch):
            z, a, p = batches(val.traj[lo: lo + batch], val.start[lo: lo + batch])
            total += float(teacher_forced_loss(predictor, z, a, p, weight)) * len(z)
            count += len(z)
    predictor.train()
    return total / max(count, 1)


def _plot(run_dir: Path, train_hist: list[tuple[int, float]], val_hist: list[tuple[int, float]]) -> Path | None:
    """val_loss.png (with the train loss for reference); None when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    if train_hist:
        ax.plot(*zip(*train_hist), label="train", alpha=0.7)
    if val_hist:
        ax.plot(*zip(*val_hist), marker="o", label="validation")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("teacher-forced loss")
    ax.set_yscale("log")
    ax.set_title("DINO-WM predictor")
    ax.legend()
    fig.tight_layout()
    path = run_dir / "val_loss.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def train(cfg: WmTrainConfig) -> TrainResult:
    """Train (or resume) the predictor described by ``cfg``; returns paths and loss histories."""
    from torch.utils.tensorboard import SummaryWriter
    from tqdm import tqdm

    torch.set_num_threads(cfg.torch_threads)
    t_start = time.perf_counter()
    ds = load_dataset(cfg.data)
    if cfg.env and ds.env != cfg.env:
        raise WmTrainError(str(ds.path), "env", f"the dataset is from {ds.env!r}, not {cfg.env!r}")
    span = (cfg.history + 1) * cfg.frameskip
    if span > ds.traj_len:
        raise WmTrainError(str(ds.path), "frameskip", f"{cfg.history + 1} frames every {cfg.frameskip} steps need "
                                                      f"{span} actions; the trajectories have {ds.traj_len}")
    run_dir = cfg.run_dir(ds.env)
    run_dir.mkdir(parents=True, exist_ok=True)
    last_path, best_path = run_dir / "last.pt", run_dir / "best.pt"

    encoder = build_encoder(cfg.encoder, cfg.weights, cfg.encoder_seed, cfg.image_size)
    cache = feature_cache(ds, encoder, cfg.feature, Path(cfg.out) / "feature_cache", cfg.encode_batch, cfg.progress)
    num_patches, latent_dim = cache.features.shape[2], cache.features.shape[3]
    pc = _predictor_config(cfg, ds, num_patches, latent_dim)

    train_idx, val_idx = ds.split(cfg.val_fraction, cfg.seed)
    if len(val_idx) == 0:
        val_idx = train_idx[-1:]  # a tiny dataset: score on a training trajectory rather than not at all
    p_all = np.asarray(ds.proprio, dtype=np.float64)[train_idx].reshape(-1, ds.proprio_dim)
    proprio_mean = p_all.mean(0).astype(np.float32)
    proprio_std = np.maximum(p_all.std(0), 1e-6).astype(np.float32)
    batches = _Batches(ds, cache.features, cfg.history, cfg.frameskip, proprio_mean, proprio_std)
    tr = _windows(train_idx, ds.traj_len, span)
    val_all = _windows(val_idx, ds.traj_len, span)
    pick = np.sort(np.random.default_rng([cfg.seed, 1]).permutation(len(val_all.traj))[: cfg.val_windows])
    val = _Windows(val_all.traj[pick], val_all.start[pick])
    total_steps = cfg.steps
    if cfg.epochs > 0:
        total_steps = max(1, int(math.ceil(cfg.epochs * len(tr.traj) / cfg.batch_size)))

    torch.manual_seed(cfg.seed)
    predictor = DinoWmPredictor(pc).train()
    opt = torch.optim.AdamW(predictor.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sampler = torch.Generator().manual_seed(cfg.seed)
    step, best_val = 0, math.inf
    train_hist: list[tuple[int, float]] = []
    val_hist: list[tuple[int, float]] = []
    if last_path.is_file() and not cfg.fresh:
        ck = read_checkpoint(last_path)  # weights only: a damaged or foreign file is one line, not a traceback
        saved = ck.get("train_config", {})
        for key in RESUME_MUST_MATCH:
            if key in saved and saved[key] != getattr(cfg, key):
                raise WmTrainError(str(run_dir), key, f"{brief(getattr(cfg, key))} differs from the checkpoint's "
                                                      f"{brief(saved[key])}; use --fresh or another --run-name")
        if ck.get("cache_key") != cache.key:
            raise WmTrainError(str(run_dir), "encoder", "the checkpoint was trained on other encoder features "
                                                        "(weights or dataset changed); use --fresh")
        predictor.load_state_dict(ck["predictor"])
        opt.load_state_dict(ck["optimizer"])
        sampler.set_state(ck["sampler_rng"])
        torch.set_rng_state(ck["torch_rng"])
        step, best_val = int(ck["step"]), float(ck["best_val"])
        train_hist = [tuple(x) for x in ck["train_hist"]]
        val_hist = [tuple(x) for x in ck["val_hist"]]
    elif cfg.fresh:
        for stale in (last_path, best_path, run_dir / "val_loss.png"):
            stale.unlink(missing_ok=True)

    extra = {"train_config": asdict(cfg), "predictor_config": asdict(pc), "cache_key": cache.key, "env": ds.env,
             "env_config": ds.metadata.get("env_config", {}), "image_size": list(ds.image_size),
             "proprio_mean": proprio_mean.tolist(), "proprio_std": proprio_std.tolist(),
             "action_low": list(ds.metadata["action_low"]), "action_high": list(ds.metadata["action_high"]),
             "episode_seeds": ds.metadata.get("episode_seeds", []), "dataset": str(ds.path), "citation": CITATION}

    def checkpoint() -> None:
        _atomic_save({**extra, "predictor": predictor.state_dict(), "optimizer": opt.state_dict(),
                      "sampler_rng": sampler.get_state(), "torch_rng": torch.get_rng_state(), "step": step,
                      "best_val": best_val, "train_hist": train_hist, "val_hist": val_hist}, last_path)

    writer = SummaryWriter(str(run_dir))
    bar = tqdm(total=total_steps, initial=step, disable=not cfg.progress, desc=f"wm train {ds.env}", unit="step")
    running: list[float] = []
    try:
        while step < total_steps:
            idx = torch.randint(len(tr.traj), (cfg.batch_size,), generator=sampler).numpy()
            z, a, p = batches(tr.traj[idx], tr.start[idx])
            loss = teacher_forced_loss(predictor, z, a, p, cfg.proprio_loss_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            value = loss.item()
            if not math.isfinite(value):
                raise WmTrainError(str(run_dir), "loss", f"non-finite training loss at step {step}; lower --lr")
            running.append(value)
            writer.add_scalar("train/loss", value, step)
            bar.update(1)
            if (cfg.eval_every and step % cfg.eval_every == 0) or step == total_steps:
                train_hist.append((step, float(np.mean(running))))
                running = []
                v = _val_loss(predictor, batches, val, cfg.proprio_loss_weight, 256)
                val_hist.append((step, v))
                writer.add_scalar("val/loss", v, step)
                bar.set_postfix(train=f"{train_hist[-1][1]:.4f}", val=f"{v:.4f}", refresh=False)
                if v < best_val:
                    best_val = v
                    _atomic_save({**extra, "predictor": predictor.state_dict(), "step": step, "val_loss": v},
                                 best_path)
                checkpoint()
    finally:
        bar.close()
        writer.close()
    if not best_path.is_file():  # resumed a finished run whose best.pt was removed
        _atomic_save({**extra, "predictor": predictor.state_dict(), "step": step, "val_loss": best_val}, best_path)
    _plot(run_dir, train_hist, val_hist)
    return TrainResult(run_dir=run_dir, best_path=best_path, last_path=last_path, steps=step, train_loss=train_hist,
                       val_loss=val_hist, best_val=best_val, cache=cache.path, cache_built=cache.built,
                       seconds=time.perf_counter() - t_start)


# ------------------------------------------------------------------------------------------ CLI


def build_parser() -> argparse.ArgumentParser:
    d = WmTrainConfig()
    p = CliParser(prog=PROG, description="Train the DINO-WM predictor on frozen encoder features of a dataset "
                                       "(encoded once into a cache). " + CITATION)
    p.add_argument("--data", type=Path, required=True, metavar="DIR", help="dataset folder (navkit wm collect)")
    p.add_argument("--env", default=None, help="refuse a dataset from another env")
    p.add_argument("--encoder", default=d.encoder, choices=sorted(VARIANTS), help="(default: %(default)s)")
    p.add_argument("--weights", default=d.weights, metavar="PATH", help="encoder .pth (default: random init)")
    p.add_argument("--encoder-seed", type=int_in(0, 2**31 - 1), default=d.encoder_seed)
    p.add_argument("--feature", choices=FEATURE_KINDS, default=d.feature, help="(default: %(default)s)")
    p.add_argument("--size", type=int_in(0, 4096), default=d.image_size, metavar="PX",
                   help="resize frames before encoding (default: the dataset's size)")
    p.add_argument("--history", type=int_in(1, 64), default=d.history, help="(default: %(default)s)")
    p.add_argument("--frameskip", type=int_in(1, 1000), default=d.frameskip, help="(default: %(default)s)")
    p.add_argument("--predictor", choices=PREDICTOR_PRESETS, default=d.predictor, help="(default: %(default)s)")
    p.add_argument("--depth", type=int_in(0, 64), default=0, help="override the preset's depth")
    p.add_argument("--batch", type=int_in(1, 65536), default=d.batch_size, help="(default: %(default)s)")
    p.add_argument("--lr", type=float, default=d.lr, help="(default: %(default)s)")
    p.add_argument("--steps", type=int_in(1, 10**9), default=d.steps, help="(default: %(default)s)")
    p.add_argument("--epochs", type=float, default=0.0, help="passes over the data (overrides --steps)")
    p.add_argument("--val-fraction", type=float, default=d.val_fraction, help="(default: %(default)s)")
    p.add_argument("--seed", type=int_in(0, 2**31 - 1), default=d.seed)
    p.add_argument("--out", default=d.out, metavar="DIR", help="(default: %(default)s)")
    p.add_argument("--run-name", default="", help="run folder under --out")
    p.add_argument("--eval-every", type=int_in(0, 10**9), default=d.eval_every, help="(default: %(default)s)")
    p.add_argument("--fresh", action="store_true", help="ignore an existing last.pt and start over")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def config_from_args(args: argparse.Namespace) -> WmTrainConfig:
    """The :class:`WmTrainConfig` a parsed command line asks for (ValueError on a bad combination)."""
    return WmTrainConfig(data=str(args.data), env=args.env or "", encoder=args.encoder, weights=args.weights,
                         encoder_seed=args.encoder_seed, feature=args.feature, image_size=args.size,
                         history=args.history, frameskip=args.frameskip, predictor=args.predictor, depth=args.depth,
                         batch_size=args.batch, lr=args.lr, steps=args.steps, epochs=args.epochs,
                         val_fraction=args.val_fraction, seed=args.seed, out=args.out, run_name=args.run_name,
                         eval_every=args.eval_every, fresh=args.fresh, progress=not args.quiet)


def main(argv: Sequence[str] | None = None) -> int:
    """``navkit wm train``; returns the exit code (0 trained, 2 bad input, 130 interrupted)."""
    try:
        args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:  # argparse: --help (0) or a one-line usage error (2); returned, not raised
        return exc.code if isinstance(exc.code, int) else 2
    try:
        cfg = config_from_args(args)
        result = train(cfg)
    except (NavkitError, ValueError, OSError) as exc:
        print(f"{PROG}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted (resume with the same command)", file=sys.stderr)
        return 130
    last_train = result.train_loss[-1][1] if result.train_loss else math.nan
    print(f"trained {result.steps} steps in {result.seconds:.0f} s: train loss {last_train:.4f}, best val loss "
          f"{result.best_val:.4f}; best checkpoint {result.best_path}"
          f"{' (features encoded)' if result.cache_built else ' (feature cache reused)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
