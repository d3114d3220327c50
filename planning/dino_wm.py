"""DINO-WM: a latent world model over frozen patch features, for planning without a simulator.

After Zhou, Pan, LeCun, Pinto, "DINO-WM: World Models on Pre-trained Visual Features enable
Zero-shot Planning" (ICML 2025, arXiv 2411.04983). An image encoder someone else owns (a
DINOv2-style ViT, :class:`~navkit.common.interfaces.ImageEncoder`) turns each frame into P patch
latents of D dims; this module learns only how those latents move under actions:

* :class:`DinoWmPredictor` is the paper's predictor: a ViT over the patch tokens of the last H
  frames. The action (one model step = ``frameskip`` env actions concatenated) and the
  proprioception are each embedded to 10 dims by one linear map and concatenated onto *every*
  patch token (384 + 10 + 10 = 404 dims in the paper), so each patch sees the control without a
  separate action token to attend to. A frame-level block-causal mask lets every patch of frame t
  attend to all patches of frames <= t: training on H frames then trains the predictions from
  1, 2, ..., H frames of history at once, which is why planning may start from a single frame.
* :func:`latent_mse` / :func:`teacher_forced_loss` are the paper's loss: MSE to the next frame's
  latents, teacher-forced, with detached targets (the encoder is frozen; gradient into a target
  would only let the model move the goalposts).
* :class:`DinoWmModel` wraps an encoder and a predictor into navkit's
  :class:`~navkit.common.interfaces.WorldModel` (numpy ``encode``/``predict``/``cost``) and into
  the torch model the latent planners of :mod:`navkit.planning.latent_planners` optimise
  through (``rollout_latents``/``latent_cost``). The planning cost is the paper's: MSE between
  the last predicted patch latents and the goal's, plus ``proprio_weight`` times the proprio MSE.

Latents cross the numpy boundary *packed*: one frame is a flat vector of P·D patch values
followed by p proprio values (see :func:`pack_frame`), so a goal, an observation and a
prediction are each one array, and a history of frames is one more leading axis.

Two presets (:meth:`PredictorConfig.paper`, :meth:`PredictorConfig.cpu`) size the predictor: the
paper's ~20 M parameters cost ~0.2-0.4 s per sampled model step on a CPU core or two, far too
slow for CEM's thousands of samples on a robot; the ``cpu`` preset is ~400x cheaper (see its
docstring for the measurements behind it).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from navkit.common.errors import FieldError, brief

__all__ = ["DinoWmModel", "DinoWmModelConfig", "DinoWmPredictor", "LatentHistory", "PatchEncoder",
           "PredictorConfig", "block_causal_mask", "latent_mse", "pack_frame", "teacher_forced_loss",
           "unpack_frame"]

PatchEncoder = Callable[[np.ndarray], "Tensor | np.ndarray"]
"""Images (B, H, W, 3) uint8 -> patch latents (B, P, D) float: any frozen backbone (DINOv2 in the paper)."""


# ------------------------------------------------------------------------------------------ config


@dataclass(frozen=True)
class PredictorConfig:
    """Sizes of :class:`DinoWmPredictor`; the token width is ``latent_dim + action_emb_dim + proprio_emb_dim``."""

    num_patches: int = 16
    """P, patches per frame; attention cost grows with (history · P)^2, so this sets CPU latency first."""
    latent_dim: int = 128
    """D, the encoder's feature size per patch (384 for DINOv2 ViT-S/14)."""
    action_dim: int = 2
    """A, one env action; the predictor sees ``frameskip · A`` numbers per model step."""
    frameskip: int = 5
    """Env actions per model step (5 in the paper): fewer, larger model steps make planning horizons short."""
    proprio_dim: int = 4
    """p, proprioception per frame (0: none); it gives the planner a cheap, exact handle on the robot's own state."""
    action_emb_dim: int = 10
    """The action's linear embedding, tiled onto every patch (10 in the paper)."""
    proprio_emb_dim: int = 10
    """The proprio's linear embedding, tiled onto every patch (10 in the paper; unused when proprio_dim is 0)."""
    history: int = 3
    """H, frames the predictor sees (3 for PointMaze, 1 for Wall); also the size of the positional table."""
    depth: int = 3
    """Transformer blocks."""
    heads: int = 4
    """Attention heads."""
    head_dim: int = 32
    """Per-head width; attention's inner width is heads · head_dim, projected back to the token width."""
    mlp_dim: int = 512
    """Hidden width of each block's MLP."""
    dropout: float = 0.0
    """Dropout in attention and MLP while training (0.1 in the paper); planning runs in eval mode."""

    def __post_init__(self) -> None:
        positive = ("num_patches", "latent_dim", "action_dim", "frameskip", "action_emb_dim", "history", "depth",
                    "heads", "head_dim", "mlp_dim")
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected an integer >= 1, got {brief(value)}")
        for name in ("proprio_dim", "proprio_emb_dim"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name}: expected an integer >= 0, got {brief(value)}")
        if self.proprio_dim > 0 and self.proprio_emb_dim < 1:
            raise ValueError(f"proprio_emb_dim: must be >= 1 when proprio_dim > 0, got {self.proprio_emb_dim}")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) \
                or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout: expected a number in [0, 1), got {brief(self.dropout)}")

    @property
    def step_action_dim(self) -> int:
        """Numbers per model-step action: ``frameskip · action_dim``."""
        return self.frameskip * self.action_dim

    @property
    def proprio_slot(self) -> int:
        """Width of the proprio slot in each token (0 without proprio)."""
        return self.proprio_emb_dim if self.proprio_dim > 0 else 0

    @property
    def width(self) -> int:
        """Token width: the patch latent with the action and proprio embeddings concatenated."""
        return self.latent_dim + self.action_emb_dim + self.proprio_slot

    @property
    def frame_dim(self) -> int:
        """Length of one packed frame: P·D patch values then p proprio values."""
        return self.num_patches * self.latent_dim + self.proprio_dim

    @classmethod
    def paper(cls, **overrides: object) -> PredictorConfig:
        """The paper's PointMaze predictor: 196 DINOv2 ViT-S/14 patches of 384, 404-dim tokens, depth 6,
        16 heads x 64, MLP 2048, dropout 0.1, H = 3, frameskip 5, 2-D actions and 4-D proprio (~20 M parameters).
        """
        base = cls(num_patches=196, latent_dim=384, action_dim=2, frameskip=5, proprio_dim=4, action_emb_dim=10,
                   proprio_emb_dim=10, history=3, depth=6, heads=16, head_dim=64, mlp_dim=2048, dropout=0.1)
        return replace(base, **overrides)  # type: ignore[arg-type]

    @classmethod
    def cpu(cls, **overrides: object) -> PredictorConfig:
        """A predictor that plans on a robot's CPU: 16 patches (a 4x4 pooled grid) of 128 dims, 148-dim tokens,
        depth 3, 4 heads x 32, MLP 512, H = 3 (~0.7 M parameters).

        Why these sizes (measured: batch 300, 5-step rollouts from a 3-frame history, 1 / 2 threads): the
        paper's preset costs ~0.4 / ~0.2 s per sampled model step, so the paper's CEM (15 000 sample-steps a
        plan) would take over an hour. Attention and MLP both scale with the H·P tokens, so the patch grid
        is what buys speed: 16 patches cost ~1.0 / ~0.45 ms per sample-step, 36 patches ~2.9 / ~1.5 ms,
        64 patches ~5.9 / ~3.2 ms. A 4x4 grid still tells the planner *where* things are (the paper's
        patch-vs-CLS ablation is about keeping layout at all). Width 128 + 20 keeps room for a linear
        projection of DINOv2's 384 dims, and a fourth block adds ~15 % for little on a 48-token sequence.
        With :meth:`CemConfig.cpu <navkit.planning.latent_planners.CemConfig.cpu>` a replan is ~1 s on one core.
        """
        base = cls(num_patches=16, latent_dim=128, action_dim=2, frameskip=5, proprio_dim=4, action_emb_dim=10,
                   proprio_emb_dim=10, history=3, depth=3, heads=4, head_dim=32, mlp_dim=512, dropout=0.0)
        return replace(base, **overrides)  # type: ignore[arg-type]


# -------------------------------------------------------------------------------------- predictor


def block_causal_mask(frames: int, patches: int) -> Tensor:
    """(frames·P, frames·P) boolean, True where a query token may attend a key token: every patch of
    frame t sees all patches of frames <= t (and none later), so a prediction never peeks at its future."""
    frame_of_token = torch.arange(frames).repeat_interleave(patches)
    return frame_of_token[:, None] >= frame_of_token[None, :]


class _Attention(nn.Module):
    """Multi-head self-attention with an explicit boolean mask (pre-norm, as in the paper's ViT)."""

    def __init__(self, width: int, heads: int, head_dim: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.head_dim, self.dropout = heads, head_dim, dropout
        self.norm = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * heads * head_dim, bias=False)
        self.out = nn.Linear(heads * head_dim, width)
        self.out_drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        b, n, _ = x.shape
        q, k, v = self.qkv(self.norm(x)).view(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        return self.out_drop(self.out(y.transpose(1, 2).reshape(b, n, self.heads * self.head_dim)))


class _Block(nn.Module):
    """One pre-norm transformer block: masked attention then a GELU MLP, each residual."""

    def __init__(self, cfg: PredictorConfig) -> None:
        super().__init__()
        self.attn = _Attention(cfg.width, cfg.heads, cfg.head_dim, cfg.dropout)
        self.mlp = nn.Sequential(nn.LayerNorm(cfg.width), nn.Linear(cfg.width, cfg.mlp_dim), nn.GELU(),
                                 nn.Dropout(cfg.dropout), nn.Linear(cfg.mlp_dim, cfg.width), nn.Dropout(cfg.dropout))

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        x = x + self.attn(x, mask)
        return x + self.mlp(x)


class DinoWmPredictor(nn.Module):
    """The paper's ViT predictor: last H frames of patch latents + actions (+ proprio) -> each frame's successor.

    Output token t is read as frame t+1: its first D dims are the predicted patch latents (as in the
    paper), and the mean over patches of its proprio slot is decoded by one linear map to the next
    proprio. (The paper regresses the proprio *embedding*; decoding to proprio units keeps the target
    fixed, so a jointly trained proprio encoder cannot shrink its own target to zero.)
    """

    block_mask: Tensor

    def __init__(self, config: PredictorConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.action_encoder = nn.Linear(c.step_action_dim, c.action_emb_dim)
        self.proprio_encoder = nn.Linear(c.proprio_dim, c.proprio_emb_dim) if c.proprio_dim > 0 else None
        self.proprio_decoder = nn.Linear(c.proprio_emb_dim, c.proprio_dim) if c.proprio_dim > 0 else None
        # One learned vector per (frame, patch) position, as the paper's ViT (no factorisation).
        self.pos_embedding = nn.Parameter(torch.randn(c.history * c.num_patches, c.width) * 0.02)
        self.blocks = nn.ModuleList(_Block(c) for _ in range(c.depth))
        self.norm = nn.LayerNorm(c.width)
        # Built once for the full history; shorter histories use its top-left corner (same causal rule).
        self.register_buffer("block_mask", block_causal_mask(c.history, c.num_patches), persistent=False)

    def tokens(self, latents: Tensor, actions: Tensor, proprio: Tensor | None = None) -> Tensor:
        """(B, h, P, width) input tokens: each patch latent with the step's action (and proprio) embedding
        concatenated; the same embedding on every patch of a frame, so no patch lacks the control."""
        c = self.config
        b, h, p, d = latents.shape
        if h < 1 or h > c.history or p != c.num_patches or d != c.latent_dim:
            raise ValueError(f"latents: expected (B, 1..{c.history}, {c.num_patches}, {c.latent_dim}), "
                             f"got {tuple(latents.shape)}")
        if tuple(actions.shape) != (b, h, c.step_action_dim):
            raise ValueError(f"actions: expected {(b, h, c.step_action_dim)}, got {tuple(actions.shape)}")
        parts = [latents, self.action_encoder(actions)[:, :, None, :].expand(b, h, p, c.action_emb_dim)]
        if self.proprio_encoder is not None:
            if proprio is None or tuple(proprio.shape) != (b, h, c.proprio_dim):
                got = None if proprio is None else tuple(proprio.shape)
                raise ValueError(f"proprio: expected {(b, h, c.proprio_dim)}, got {got}")
            parts.append(self.proprio_encoder(proprio)[:, :, None, :].expand(b, h, p, c.proprio_emb_dim))
        elif proprio is not None:
            raise ValueError("proprio: this predictor was built with proprio_dim = 0")
        return torch.cat(parts, dim=-1)

    def forward(self, latents: Tensor, actions: Tensor, proprio: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """latents (B, h, P, D), actions (B, h, frameskip·A), proprio (B, h, p) with h <= H ->
        next latents (B, h, P, D) and next proprio (B, h, p) (None without proprio): output h' predicts frame h'+1.
        """
        c = self.config
        b, h, p, _ = latents.shape
        x = self.tokens(latents, actions, proprio).reshape(b, h * p, c.width) + self.pos_embedding[: h * p]
        mask = self.block_mask[: h * p, : h * p]
        for block in self.blocks:
            x = block(x, mask)
        x = self.norm(x).view(b, h, p, c.width)
        next_latents = x[..., : c.latent_dim]
        next_proprio = None
        if self.proprio_decoder is not None:
            slot = x[..., c.latent_dim + c.action_emb_dim:].mean(dim=2)
            next_proprio = self.proprio_decoder(slot)
        return next_latents, next_proprio

    def rollout(self, latents_hist: Tensor, proprio_hist: Tensor | None, actions_seq: Tensor
                ) -> tuple[Tensor, Tensor | None]:
        """Autoregressive prediction of T future frames from h observed ones, keeping the last H frames.

        ``latents_hist`` (B, h, P, D) and ``proprio_hist`` (B, h, p) are the observed frames (h >= 1, any h:
        only the last H are used); ``actions_seq`` (B, h - 1 + T, frameskip·A) holds the h - 1 actions taken
        between those frames, then the T actions to plan. Returns the T predicted frames' latents
        (B, T, P, D) and proprio (B, T, p) (None without proprio). Differentiable in the actions.
        """
        h = latents_hist.shape[1]
        steps = actions_seq.shape[1] - (h - 1)
        if steps < 1:
            raise ValueError(f"actions_seq: {h} observed frames need {h - 1} past actions plus >= 1 future one, "
                             f"got {actions_seq.shape[1]}")
        frames = list(latents_hist.unbind(1))
        props = list(proprio_hist.unbind(1)) if proprio_hist is not None else None
        hist = self.config.history
        out_z: list[Tensor] = []
        out_p: list[Tensor] = []
        for k in range(steps):
            now = h - 1 + k  # index of the newest frame; actions_seq[:, i] acts on frame i
            lo = max(0, now + 1 - hist)
            z_win = torch.stack(frames[lo: now + 1], dim=1)
            p_win = torch.stack(props[lo: now + 1], dim=1) if props is not None else None
            z_next, p_next = self(z_win, actions_seq[:, lo: now + 1], p_win)
            frames.append(z_next[:, -1])
            out_z.append(z_next[:, -1])
            if props is not None and p_next is not None:
                props.append(p_next[:, -1])
                out_p.append(p_next[:, -1])
        return torch.stack(out_z, dim=1), (torch.stack(out_p, dim=1) if out_p else None)


# ------------------------------------------------------------------------------------------- loss


def latent_mse(pred: Tensor, target: Tensor) -> Tensor:
    """Mean squared error to a *detached* target: gradients only move the prediction, never the target
    (the encoder is frozen in the paper; a target that could move would invite collapse)."""
    return F.mse_loss(pred, target.detach())


def teacher_forced_loss(predictor: DinoWmPredictor, latents: Tensor, actions: Tensor, proprio: Tensor | None = None,
                        proprio_weight: float = 1.0) -> Tensor:
    """The paper's training loss on one window of h + 1 frames: feed the true frames 0..h-1 (teacher
    forcing: one forward pass predicts all h successors thanks to the causal mask) and regress frames 1..h.

    ``latents`` (B, h + 1, P, D), ``actions`` (B, h, frameskip·A), ``proprio`` (B, h + 1, p) or None.
    """
    pred_z, pred_p = predictor(latents[:, :-1], actions, None if proprio is None else proprio[:, :-1])
    loss = latent_mse(pred_z, latents[:, 1:])
    if pred_p is not None and proprio is not None:
        loss = loss + proprio_weight * latent_mse(pred_p, proprio[:, 1:])
    return loss


# ------------------------------------------------------------------------------------ packed frames


def pack_frame(patches: Tensor, proprio: Tensor | None) -> Tensor:
    """(..., P, D) patch latents + (..., p) proprio -> (..., P·D + p): one frame as one flat vector."""
    flat = patches.flatten(-2)
    return flat if proprio is None else torch.cat([flat, proprio], dim=-1)


def unpack_frame(frame: Tensor, num_patches: int, latent_dim: int) -> tuple[Tensor, Tensor | None]:
    """Inverse of :func:`pack_frame`: (..., P·D + p) -> (..., P, D) patches and (..., p) proprio (None if p = 0)."""
    n = num_patches * latent_dim
    if frame.shape[-1] < n:
        raise ValueError(f"frame: expected at least {n} values (P·D), got {frame.shape[-1]}")
    patches = frame[..., :n].unflatten(-1, (num_patches, latent_dim))
    return patches, (frame[..., n:] if frame.shape[-1] > n else None)


@dataclass(frozen=True)
class LatentHistory:
    """What the planner starts from: the last observed frames (packed) and the actions between them.

    DINO-WM predicts from up to H frames, so the state of the world is a short history, not one frame.
    """

    frames: Tensor
    """(h, P·D + p) packed frames, oldest first, h >= 1."""
    actions: Tensor
    """(h - 1, frameskip·A) normalised actions taken between consecutive frames."""

    def __post_init__(self) -> None:
        if self.frames.ndim != 2 or self.frames.shape[0] < 1:
            raise ValueError(f"frames: expected (h >= 1, frame_dim), got {tuple(self.frames.shape)}")
        if self.actions.ndim != 2 or self.actions.shape[0] != self.frames.shape[0] - 1:
            raise ValueError(f"actions: expected ({self.frames.shape[0] - 1}, A) for {self.frames.shape[0]} frames, "
                             f"got {tuple(self.actions.shape)}")

    @classmethod
    def single(cls, frame: Tensor, step_action_dim: int) -> LatentHistory:
        """A history of one observed frame (F,) (the start of an episode)."""
        return cls(frame.reshape(1, -1), frame.new_zeros(0, step_action_dim))

    def append(self, action: Tensor, frame: Tensor, max_frames: int) -> LatentHistory:
        """The history after taking ``action`` and observing ``frame``, keeping the last ``max_frames`` frames."""
        if max_frames < 1:
            raise ValueError(f"max_frames: expected >= 1, got {max_frames}")
        frames = torch.cat([self.frames, frame.reshape(1, -1)], dim=0)[-max_frames:]
        actions = torch.cat([self.actions, action.reshape(1, -1)], dim=0)
        return LatentHistory(frames, actions[actions.shape[0] - (frames.shape[0] - 1):])


# ---------------------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class DinoWmModelConfig:
    """How :class:`DinoWmModel` scores plans and maps normalised actions to the robot's."""

    proprio_weight: float = 0.1
    """α in cost = MSE(patches) + α·MSE(proprio); small, so the image (which shows the goal) leads."""
    action_mean: tuple[float, ...] = field(default_factory=tuple)
    """Per env-action-dim mean the predictor's actions were normalised by (empty: 0)."""
    action_std: tuple[float, ...] = field(default_factory=tuple)
    """Per env-action-dim std the predictor's actions were normalised by (empty: 1)."""

    def __post_init__(self) -> None:
        if not np.isfinite(self.proprio_weight) or self.proprio_weight < 0:
            raise ValueError(f"proprio_weight: expected a finite number >= 0, got {brief(self.proprio_weight)}")
        if any(not np.isfinite(s) or s <= 0 for s in self.action_std):
            raise ValueError(f"action_std: expected positive finite numbers, got {brief(self.action_std)}")


class DinoWmModel:
    """An encoder + a :class:`DinoWmPredictor`: navkit's ``world_model`` slot and the planners' latent model.

    numpy (:class:`~navkit.common.interfaces.WorldModel`): ``encode`` images (+ proprio) to packed frames,
    ``predict`` packed frames forward under actions, ``cost`` to a goal frame. torch (for
    :mod:`navkit.planning.latent_planners`): ``rollout_latents`` from a :class:`LatentHistory` and
    ``latent_cost``, differentiable in the actions. Actions are model steps in normalised units
    (``frameskip · A`` numbers, box [-1, 1]); :meth:`env_actions` turns a plan into the robot's units.
    The predictor is put in eval mode: planning must be deterministic (no dropout).
    """

    def __init__(self, encoder: PatchEncoder, predictor: DinoWmPredictor,
                 config: DinoWmModelConfig | None = None) -> None:
        self.encoder = encoder
        self.predictor = predictor.eval()
        self.config = config or DinoWmModelConfig()
        pc = predictor.config
        for name in ("action_mean", "action_std"):
            values = getattr(self.config, name)
            if values and len(values) != pc.action_dim:
                raise ValueError(f"{name}: expected {pc.action_dim} values (one per env action dim), got {len(values)}")
        self.action_dim = pc.step_action_dim

    # ---- numpy: the WorldModel protocol

    def encode(self, images: np.ndarray, proprio: np.ndarray | None = None) -> np.ndarray:
        """Images (B, H, W, 3) (+ proprio (B, p)) -> packed frames (B, P·D + p) float32."""
        with torch.inference_mode():
            return self.encode_frames(images, proprio).numpy()

    def predict(self, latents: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Packed frames (B, F) or histories (B, h, F), actions (B, h - 1 + T, frameskip·A) -> (B, T, F).

        With a history, the first h - 1 actions are those taken between its frames (see
        :meth:`DinoWmPredictor.rollout`)."""
        z = torch.as_tensor(np.asarray(latents, dtype=np.float32))
        if z.ndim == 2:
            z = z[:, None]
        a = torch.as_tensor(np.asarray(actions, dtype=np.float32))
        with torch.inference_mode():
            return self._rollout(z, a).numpy()

    def cost(self, predicted: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """(B,) cost of predicted frames (B, F) or sequences (B, T, F) (the last frame counts) to a goal (F,)/(B, F)."""
        p = torch.as_tensor(np.asarray(predicted, dtype=np.float32))
        if p.ndim == 2:
            p = p[:, None]
        with torch.inference_mode():
            return self.latent_cost(p, torch.as_tensor(np.asarray(goal, dtype=np.float32))).numpy()

    # ---- torch: what the latent planners optimise through

    def encode_frames(self, images: np.ndarray, proprio: np.ndarray | None = None) -> Tensor:
        """Images (B, H, W, 3) (+ proprio (B, p)) -> packed frames (B, P·D + p) as a float32 tensor."""
        pc = self.predictor.config
        out = self.encoder(images)
        z = torch.as_tensor(out).detach().float()
        if z.ndim != 3 or z.shape[1:] != (pc.num_patches, pc.latent_dim) or z.shape[0] != len(images):
            raise FieldError("DinoWmModel.encode", "encoder output",
                             f"expected ({len(images)}, {pc.num_patches}, {pc.latent_dim}), got {tuple(z.shape)}")
        if pc.proprio_dim == 0:
            return pack_frame(z, None)
        if proprio is None:
            raise FieldError("DinoWmModel.encode", "proprio", f"the predictor needs ({len(images)}, {pc.proprio_dim})")
        prop = torch.as_tensor(np.asarray(proprio, dtype=np.float32))
        if tuple(prop.shape) != (len(images), pc.proprio_dim):
            raise FieldError("DinoWmModel.encode", "proprio",
                             f"expected ({len(images)}, {pc.proprio_dim}), got {tuple(prop.shape)}")
        return pack_frame(z, prop)

    def rollout_latents(self, state: LatentHistory, actions: Tensor) -> Tensor:
        """Predicted packed frames (N, T, F) for N action sequences (N, T, frameskip·A) from one history."""
        n = actions.shape[0]
        z = state.frames.to(actions.dtype)[None].expand(n, -1, -1)
        past = state.actions.to(actions.dtype)[None].expand(n, -1, -1)
        return self._rollout(z, torch.cat([past, actions], dim=1))

    def latent_cost(self, predicted: Tensor, goal: Tensor) -> Tensor:
        """(N,) MSE of the last predicted frame's patches to the goal's, + α·MSE of the proprio (the paper's cost)."""
        pc = self.predictor.config
        z, p = unpack_frame(predicted[:, -1], pc.num_patches, pc.latent_dim)
        gz, gp = unpack_frame(goal.reshape(-1, predicted.shape[-1]), pc.num_patches, pc.latent_dim)
        cost = (z - gz).pow(2).mean(dim=(-2, -1))
        if p is not None and gp is not None and self.config.proprio_weight > 0:
            cost = cost + self.config.proprio_weight * (p - gp).pow(2).mean(dim=-1)
        return cost

    def env_actions(self, plan: Tensor) -> np.ndarray:
        """A plan (T, frameskip·A) in normalised units -> (T·frameskip, A) env actions in the robot's units."""
        pc = self.predictor.config
        a = plan.detach().reshape(-1, pc.action_dim).cpu().numpy().astype(np.float64)
        std = np.asarray(self.config.action_std or (1.0,) * pc.action_dim)
        mean = np.asarray(self.config.action_mean or (0.0,) * pc.action_dim)
        return a * std + mean

    def model_actions(self, env: np.ndarray) -> Tensor:
        """The inverse of :meth:`env_actions`: env actions (T·frameskip, A) in the robot's units -> (T,
        frameskip·A) normalised model-step actions (what a history records for what was executed)."""
        pc = self.predictor.config
        a = np.asarray(env, dtype=np.float64).reshape(-1, pc.action_dim)
        std = np.asarray(self.config.action_std or (1.0,) * pc.action_dim)
        mean = np.asarray(self.config.action_mean or (0.0,) * pc.action_dim)
        return torch.as_tensor((a - mean) / std, dtype=torch.float32).reshape(-1, pc.step_action_dim)

    def _rollout(self, frames: Tensor, actions: Tensor) -> Tensor:
        pc = self.predictor.config
        if frames.ndim != 3 or frames.shape[-1] != pc.frame_dim:
            raise ValueError(f"latents: expected packed frames (B, h, {pc.frame_dim}), got {tuple(frames.shape)}")
        patches, proprio = unpack_frame(frames, pc.num_patches, pc.latent_dim)
        z, p = self.predictor.rollout(patches, proprio, actions)
        return pack_frame(z, p)
