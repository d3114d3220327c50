"""The DINOv2 Vision Transformer, written for navkit with the parameter names of the official release.

DINOv2 (Oquab et al. 2023, "DINOv2: Learning Robust Visual Features without Supervision") is a plain
ViT trained by self-distillation; its patch tokens are the features DINO-WM-style world models and
place recognition build on. Registers (Darcet et al. 2023, "Vision Transformers Need Registers") are
a few extra learned tokens that soak up the global computation which otherwise hijacks background
patches and leaves artefacts in their features.

Why a re-implementation and not the official package: that package pulls xFormers/torchvision
paths navkit cannot install on a CPU-only torch, and it builds the model through ``torch.hub``.
What must be identical is (1) every ``state_dict()`` name and shape, so the released ``.pth`` files
load strictly, and (2) the forward arithmetic, so those weights give the published features. Both
follow the paper's architecture and the released checkpoints:

* patch embedding: a ``patch_size``-strided convolution (``patch_embed.proj``);
* a class token is prepended and the learned position embedding is added to class and patch tokens.
  The embedding is stored for the 518 px training grid (37 x 37) and bicubically resampled to other
  grids; that resampling has two historical variants (see :meth:`DinoVisionTransformer.interpolate_pos_encoding`)
  and each released model uses one, so both are config fields;
* registers (when configured) are inserted between the class token and the patches *after* the
  position embedding is added: they carry no position;
* pre-norm blocks ``x + ls1(attn(norm1(x)))`` then ``x + ls2(mlp(norm2(x)))`` with LayerScale
  (a learned per-channel gain on each residual branch), LayerNorm eps 1e-6, exact (erf) GELU;
* a final LayerNorm whose output is split into class, register and patch tokens.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["PRESETS", "DinoVisionTransformer", "ViTConfig", "ViTFeatures", "expected_state_dict_shapes"]


@dataclass(frozen=True)
class ViTConfig:
    """Shape of a DINOv2-style ViT. The defaults are ViT-S/14 as released (``dinov2_vits14``)."""

    patch_size: int = 14
    """Side of a square patch in pixels; images must be a multiple of it (the encoder resizes otherwise)."""
    embed_dim: int = 384
    """Token width D; the features every consumer sees."""
    depth: int = 12
    """Number of transformer blocks."""
    num_heads: int = 6
    """Attention heads; ``embed_dim`` must divide evenly (64 channels per head in every released model)."""
    mlp_ratio: float = 4.0
    """Hidden width of each block's MLP, as a multiple of ``embed_dim``."""
    num_register_tokens: int = 0
    """Registers (Darcet et al. 2023): 4 in the ``_reg`` releases, 0 otherwise."""
    layerscale_init: float = 1e-5
    """Initial LayerScale gain of fresh (random) weights. The training recipe's value: residual branches start
    nearly silent, so a randomly initialised network is close to its patch embedding. Loaded weights replace it."""
    img_size: int = 518
    """Image side the position embedding was trained for: its grid is ``img_size // patch_size`` squared
    (518 px -> 37 x 37 for the released models). Other image sizes get an interpolated embedding."""
    qkv_bias: bool = True
    """Bias on the query/key/value projection (present in every released model)."""
    in_chans: int = 3
    """Input channels (RGB)."""
    norm_eps: float = 1e-6
    """LayerNorm epsilon of every norm in the network (the release uses 1e-6, not PyTorch's 1e-5)."""
    interpolate_offset: float = 0.1
    """Resample the position embedding with a scale factor of ``(grid + offset) / native_grid`` instead of
    an output size (0 = use the output size). The releases without registers were trained with 0.1 (a
    work-around inherited from DINO) and their features depend on it; the ``_reg`` releases use 0."""
    interpolate_antialias: bool = False
    """Antialias the bicubic resampling of the position embedding (``_reg`` releases: True)."""

    def __post_init__(self) -> None:
        for name in ("patch_size", "embed_dim", "depth", "num_heads", "img_size", "in_chans"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: must be a positive integer, got {value!r}")
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim: {self.embed_dim} is not divisible by num_heads={self.num_heads}")
        if self.num_register_tokens < 0:
            raise ValueError(f"num_register_tokens: must be >= 0, got {self.num_register_tokens}")
        if self.img_size < self.patch_size:
            raise ValueError(f"img_size: {self.img_size} is smaller than one patch ({self.patch_size} px)")
        if not (self.mlp_ratio > 0.0 and math.isfinite(self.mlp_ratio)):
            raise ValueError(f"mlp_ratio: must be a positive number, got {self.mlp_ratio}")
        if not (self.layerscale_init >= 0.0 and math.isfinite(self.layerscale_init)):
            raise ValueError(f"layerscale_init: must be a finite number >= 0, got {self.layerscale_init}")
        if not (self.norm_eps > 0.0 and self.interpolate_offset >= 0.0):
            raise ValueError("norm_eps must be > 0 and interpolate_offset >= 0")

    @property
    def native_grid(self) -> int:
        """Side of the patch grid the position embedding is stored for (37 for the releases)."""
        return self.img_size // self.patch_size

    @property
    def mlp_hidden_dim(self) -> int:
        return int(self.embed_dim * self.mlp_ratio)


_VITS = ViTConfig()
_VITB = ViTConfig(embed_dim=768, num_heads=12)
_VITL = ViTConfig(embed_dim=1024, depth=24, num_heads=16)


def _with_registers(config: ViTConfig) -> ViTConfig:
    """The ``_reg`` release of a shape: 4 registers, and position embeddings resampled to the output size
    with antialiasing (no 0.1 offset), as those models were trained."""
    return replace(config, num_register_tokens=4, interpolate_offset=0.0, interpolate_antialias=True)


PRESETS: dict[str, ViTConfig] = {
    "vits14": _VITS,
    "vits14_reg": _with_registers(_VITS),
    "vitb14": _VITB,
    "vitb14_reg": _with_registers(_VITB),
    "vitl14": _VITL,
    "vitl14_reg": _with_registers(_VITL),
    # Not a DINOv2 release: a ~0.45 M-parameter ViT for CPU tests and pipelines that need fast random
    # features. Patch 8 on a 64 px grid gives 8 x 8 tokens for the small frames of simulated cameras;
    # 3 heads of 32 channels keep real multi-head attention; depth 4 is enough to exercise stacking.
    "tiny": ViTConfig(patch_size=8, embed_dim=96, depth=4, num_heads=3, img_size=64),
}
"""Named shapes. ``vit{s,b,l}14`` and their ``_reg`` twins are the released DINOv2 backbones (ViT-g/14 is
left out: it uses a SwiGLU MLP with other parameter names)."""


def expected_state_dict_shapes(config: ViTConfig) -> dict[str, tuple[int, ...]]:
    """Every ``state_dict()`` name of a :class:`DinoVisionTransformer` with ``config`` and its shape, in order.

    The checkpoint loader compares a file against this before building a network, so a file for the wrong
    variant is refused without allocating the model."""
    d, h, p, c = config.embed_dim, config.mlp_hidden_dim, config.patch_size, config.in_chans
    shapes: dict[str, tuple[int, ...]] = {"cls_token": (1, 1, d), "pos_embed": (1, config.native_grid ** 2 + 1, d)}
    if config.num_register_tokens:
        shapes["register_tokens"] = (1, config.num_register_tokens, d)
    shapes["mask_token"] = (1, d)
    shapes["patch_embed.proj.weight"] = (d, c, p, p)
    shapes["patch_embed.proj.bias"] = (d,)
    for i in range(config.depth):
        block = {"norm1.weight": (d,), "norm1.bias": (d,), "attn.qkv.weight": (3 * d, d)}
        if config.qkv_bias:
            block["attn.qkv.bias"] = (3 * d,)
        block.update({"attn.proj.weight": (d, d), "attn.proj.bias": (d,), "ls1.gamma": (d,),
                      "norm2.weight": (d,), "norm2.bias": (d,), "mlp.fc1.weight": (h, d), "mlp.fc1.bias": (h,),
                      "mlp.fc2.weight": (d, h), "mlp.fc2.bias": (d,), "ls2.gamma": (d,)})
        shapes.update({f"blocks.{i}.{name}": shape for name, shape in block.items()})
    shapes["norm.weight"] = (d,)
    shapes["norm.bias"] = (d,)
    return shapes


@dataclass(frozen=True)
class ViTFeatures:
    """What :meth:`DinoVisionTransformer.forward_features` returns (the official names, plus the grid)."""

    x_norm_clstoken: torch.Tensor
    """(B, D) class token after the final norm."""
    x_norm_regtokens: torch.Tensor
    """(B, R, D) registers after the final norm (R = 0 without registers)."""
    x_norm_patchtokens: torch.Tensor
    """(B, P, D) patch tokens after the final norm, row-major over the grid."""
    x_prenorm: torch.Tensor
    """(B, 1 + R + P, D) all tokens out of the last block, before the final norm."""
    grid: tuple[int, int]
    """(grid_h, grid_w): P = grid_h * grid_w."""


class PatchEmbed(nn.Module):
    """(B, C, H, W) image -> (B, P, D) tokens: one linear map per non-overlapping patch, as a strided conv."""

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.patch_size = config.patch_size
        self.proj = nn.Conv2d(config.in_chans, config.embed_dim, kernel_size=config.patch_size,
                              stride=config.patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h % self.patch_size or w % self.patch_size:
            raise ValueError(f"image size {h}x{w} is not a multiple of the patch size {self.patch_size}")
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention; ``qkv`` packs [query; key; value], each split into heads of D / heads."""

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.num_heads = config.num_heads
        self.qkv = nn.Linear(config.embed_dim, 3 * config.embed_dim, bias=config.qkv_bias)
        self.proj = nn.Linear(config.embed_dim, config.embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        # (B, N, 3D) -> (3, B, heads, N, D / heads): the packing the released weights were trained with.
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v)  # softmax(q k^T / sqrt(D / heads)) v
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class LayerScale(nn.Module):
    """A learned per-channel gain on a residual branch (``gamma``); small at init so deep ViTs train stably."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.empty(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Mlp(nn.Module):
    """fc1 -> exact GELU -> fc2."""

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.fc1 = nn.Linear(config.embed_dim, config.mlp_hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(config.mlp_hidden_dim, config.embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block with LayerScale on both residual branches."""

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(config.embed_dim, eps=config.norm_eps)
        self.attn = Attention(config)
        self.ls1 = LayerScale(config.embed_dim)
        self.norm2 = nn.LayerNorm(config.embed_dim, eps=config.norm_eps)
        self.mlp = Mlp(config)
        self.ls2 = LayerScale(config.embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class DinoVisionTransformer(nn.Module):
    """A DINOv2 backbone whose ``state_dict()`` has exactly the released names and shapes.

    Built with random weights drawn from ``seed`` (a private generator: constructing a network never
    moves torch's global random state), or from a state dict by :meth:`from_state_dict` (which
    :func:`navkit.perception.dinov2_checkpoint.load_dinov2` uses for released weights). Call
    :meth:`forward_features` (or the module) on normalised images (B, 3, H, W) whose sides are multiples
    of ``config.patch_size``.
    """

    def __init__(self, config: ViTConfig | None = None, *, seed: int | None = 0) -> None:
        """``seed=None`` leaves every parameter on the meta device (no storage, nothing drawn): a skeleton
        for :meth:`from_state_dict`, which cannot run until all its parameters are assigned."""
        super().__init__()
        self.config = config = config or ViTConfig()
        d = config.embed_dim
        # Build on the meta device (no memory, no RNG draws), then allocate and initialise once.
        with torch.device("meta"):
            self.cls_token = nn.Parameter(torch.empty(1, 1, d))
            self.pos_embed = nn.Parameter(torch.empty(1, config.native_grid ** 2 + 1, d))
            self.register_tokens = (nn.Parameter(torch.empty(1, config.num_register_tokens, d))
                                    if config.num_register_tokens else None)
            self.mask_token = nn.Parameter(torch.empty(1, d))
            self.patch_embed = PatchEmbed(config)
            self.blocks = nn.ModuleList(Block(config) for _ in range(config.depth))
            self.norm = nn.LayerNorm(d, eps=config.norm_eps)
        if seed is not None:
            self.to_empty(device="cpu")
            self.reset_parameters(torch.Generator().manual_seed(seed))

    @classmethod
    def from_state_dict(cls, config: ViTConfig, state: dict[str, torch.Tensor]) -> DinoVisionTransformer:
        """A network holding ``state``'s tensors (converted to float32), loaded strictly: every name present,
        none extra, every shape equal, or torch raises (callers check first to give a better message).

        The tensors are assigned, not copied into random weights: loading a ViT-L costs no initialisation."""
        model = cls(config, seed=None)
        model.load_state_dict({k: v.to(torch.float32) for k, v in state.items()}, strict=True, assign=True)
        return model

    @property
    def patch_size(self) -> int:
        return self.config.patch_size

    @property
    def embed_dim(self) -> int:
        return self.config.embed_dim

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Random weights in the usual ViT convention: truncated normal (sigma 0.02) for position embedding,
        linear and patch projections, zero biases, tiny class/register tokens, LayerScale at
        ``config.layerscale_init``. Only for tests, timing and training from scratch; features are meaningless."""
        nn.init.trunc_normal_(self.pos_embed, std=0.02, generator=generator)
        nn.init.normal_(self.cls_token, std=1e-6, generator=generator)
        if self.register_tokens is not None:
            nn.init.normal_(self.register_tokens, std=1e-6, generator=generator)
        nn.init.zeros_(self.mask_token)
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                nn.init.trunc_normal_(module.weight, std=0.02, generator=generator)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, LayerScale):
                nn.init.constant_(module.gamma, self.config.layerscale_init)

    def interpolate_pos_encoding(self, grid_h: int, grid_w: int) -> torch.Tensor:
        """The position embedding (1, 1 + grid_h * grid_w, D) for a grid_h x grid_w patch grid.

        At the native square grid it is the stored parameter itself. Elsewhere the patch part is resampled
        bicubically as a (D, native, native) image, in float32, the class position untouched. With
        ``interpolate_offset`` > 0 the resampling is given the scale factor ``(grid + offset) / native`` rather
        than the output size: the output size is the same (floor), but the source sampling positions
        differ slightly, and the released non-register models were trained with exactly that.
        """
        cfg = self.config
        native = cfg.native_grid
        if grid_h == native and grid_w == native:
            return self.pos_embed
        pos = self.pos_embed.float()
        dim = pos.shape[-1]
        patch_pos = pos[:, 1:].reshape(1, native, native, dim).permute(0, 3, 1, 2)
        if cfg.interpolate_offset:
            scale = ((grid_h + cfg.interpolate_offset) / native, (grid_w + cfg.interpolate_offset) / native)
            patch_pos = F.interpolate(patch_pos, scale_factor=scale, mode="bicubic",
                                      antialias=cfg.interpolate_antialias)
        else:
            patch_pos = F.interpolate(patch_pos, size=(grid_h, grid_w), mode="bicubic",
                                      antialias=cfg.interpolate_antialias)
        if patch_pos.shape[-2:] != (grid_h, grid_w):  # floor((g + offset) / n * n) == g unless offset >= 1
            raise ValueError(f"position embedding resampled to {tuple(patch_pos.shape[-2:])}, "
                             f"wanted {(grid_h, grid_w)} (interpolate_offset={cfg.interpolate_offset})")
        patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, grid_h * grid_w, dim)
        return torch.cat((pos[:, :1], patch_pos), dim=1).to(self.pos_embed.dtype)

    def prepare_tokens(self, images: torch.Tensor, masks: torch.Tensor | None = None) -> torch.Tensor:
        """Images (B, C, H, W) -> tokens (B, 1 + R + P, D) entering the first block.

        ``masks`` (B, P) bool replaces those patches' embeddings by ``mask_token`` (the iBOT objective's
        masked-image input); the position embedding is then added to them as to any patch.
        """
        grid_h, grid_w = images.shape[-2] // self.patch_size, images.shape[-1] // self.patch_size
        x = self.patch_embed(images)
        if masks is not None:
            x = torch.where(masks.unsqueeze(-1), self.mask_token.to(x.dtype).unsqueeze(0), x)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        x = x + self.interpolate_pos_encoding(grid_h, grid_w)
        if self.register_tokens is not None:
            x = torch.cat((x[:, :1], self.register_tokens.expand(x.shape[0], -1, -1), x[:, 1:]), dim=1)
        return x

    def forward_features(self, images: torch.Tensor, masks: torch.Tensor | None = None) -> ViTFeatures:
        """Run the backbone; the outputs mean what the official ``forward_features`` dictionary's entries mean."""
        if images.ndim != 4 or images.shape[1] != self.config.in_chans:
            raise ValueError(f"expected images (B, {self.config.in_chans}, H, W), got {tuple(images.shape)}")
        x = self.prepare_tokens(images, masks)
        for block in self.blocks:
            x = block(x)
        x_norm = self.norm(x)
        r = self.config.num_register_tokens
        grid = (images.shape[-2] // self.patch_size, images.shape[-1] // self.patch_size)
        return ViTFeatures(x_norm_clstoken=x_norm[:, 0], x_norm_regtokens=x_norm[:, 1:r + 1],
                           x_norm_patchtokens=x_norm[:, r + 1:], x_prenorm=x, grid=grid)

    def forward(self, images: torch.Tensor, masks: torch.Tensor | None = None) -> ViTFeatures:
        return self.forward_features(images, masks)
