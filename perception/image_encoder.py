"""Camera images -> DINOv2 features: the ``dinov2`` plugin of the ``image_encoder`` slot.

DINOv2 patch tokens (Oquab et al. 2023) are the frozen visual features DINO-WM-style world models plan
in, and the normalised class token is a usable global descriptor for place recognition. This module is
the numpy boundary around :class:`~navkit.perception.vit.DinoVisionTransformer`: uint8 RGB in, float32
features out, with exactly the preprocessing the released weights expect (ImageNet mean/std).

Resizing is deliberately minimal, because every resize changes the features: an image whose sides are
multiples of the patch size (224 x 224 for the /14 models) goes in untouched; other sizes are resized to
the nearest multiple of the patch size on each side (at most half a patch of distortion); a configured
``resize_to`` resizes every image to that square, as DINO-WM does for its 224 x 224 frames. Resizing is
bicubic with antialiasing on [0, 1] intensities, clamped back to [0, 1] (bicubic overshoots at edges).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from navkit.common.errors import FieldError
from navkit.common.interfaces import EncodedImages
from navkit.perception.dinov2_checkpoint import VARIANTS, load_dinov2
from navkit.perception.vit import DinoVisionTransformer, ViTFeatures

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "DinoEncoder", "DinoEncoderConfig", "ImageFileError",
           "encode_image_file"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
"""Per-channel RGB mean the DINOv2 weights were trained to see subtracted (ImageNet statistics)."""
IMAGENET_STD = (0.229, 0.224, 0.225)
"""Per-channel RGB standard deviation the inputs are divided by."""


class ImageFileError(FieldError):
    """An image file is missing, unreadable or not an 8/16-bit grey, RGB or RGBA picture; names the file."""


@dataclass(frozen=True)
class DinoEncoderConfig:
    """Plugin ``dinov2`` of the ``image_encoder`` slot."""

    variant: str = "dinov2_vits14"
    """Backbone shape: a released DINOv2 name (``dinov2_vits14``, ``dinov2_vits14_reg``, ``dinov2_vitb14``, ...)
    or navkit's ``tiny`` test network."""
    weights: str = ""
    """The variant's released ``.pth`` (a plain state dict, loaded strictly). Empty: RANDOM weights drawn from
    ``random_init_seed`` — correct shapes and timing, meaningless features; for tests and benchmarks only."""
    random_init_seed: int = 0
    """Seed of the random weights when ``weights`` is empty (ignored otherwise)."""
    resize_to: int = 0
    """Resize every image to ``resize_to`` x ``resize_to`` pixels (a multiple of the patch size) before encoding.
    0: keep the image's size, rounding each side to the nearest multiple of the patch size only when needed."""
    device: str = "cpu"
    """Torch device to run on (``cpu``, ``cuda``, ``cuda:1``)."""

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"variant: unknown {self.variant!r} (known: {', '.join(VARIANTS)})")
        patch = VARIANTS[self.variant].patch_size
        if self.resize_to < 0 or self.resize_to % patch:
            raise ValueError(f"resize_to: must be 0 or a positive multiple of the patch size {patch}, "
                             f"got {self.resize_to}")
        try:
            torch.device(self.device)
        except RuntimeError:
            raise ValueError(f"device: not a torch device: {self.device!r}") from None


def _resize_images(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> (B, 3, *size) in [0, 1]: bicubic, antialiased when shrinking."""
    return F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False).clamp_(0.0, 1.0)


class DinoEncoder:
    """Implements :class:`~navkit.common.interfaces.ImageEncoder` with a DINOv2 backbone (frozen, eval mode).

    ``encode`` gives the final-norm patch tokens (B, P, D) and the L2-normalised class token (B, D) as the
    global descriptor. :meth:`features` gives the backbone's full output as tensors, for torch consumers.
    """

    def __init__(self, config: DinoEncoderConfig | None = None) -> None:
        self.config = config = config or DinoEncoderConfig()
        self.pretrained = bool(config.weights)
        """False when the weights are random (``config.weights`` empty): the features mean nothing."""
        if config.weights:
            model = load_dinov2(config.weights, config.variant)
        else:
            model = DinoVisionTransformer(VARIANTS[config.variant], seed=config.random_init_seed)
        self.device = torch.device(config.device)
        self.model = model.to(self.device).eval().requires_grad_(False)
        self.patch_size: int = model.patch_size
        self.embed_dim: int = model.embed_dim
        self._mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        """The (H, W) an image of ``height`` x ``width`` is encoded at (equal to it when no resize is needed)."""
        if self.config.resize_to:
            return self.config.resize_to, self.config.resize_to
        p = self.patch_size
        return max(p, (height + p // 2) // p * p), max(p, (width + p // 2) // p * p)

    def preprocess(self, images: np.ndarray) -> torch.Tensor:
        """uint8 RGB (B, H, W, 3) -> normalised float32 (B, 3, H', W') on the encoder's device."""
        if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4 \
                or images.shape[-1] != 3:
            got = f"{images.dtype} {images.shape}" if isinstance(images, np.ndarray) else type(images).__name__
            raise ValueError(f"expected uint8 RGB images (B, H, W, 3), got {got}")
        if 0 in images.shape:
            raise ValueError(f"expected at least one non-empty image, got shape {images.shape}")
        x = torch.from_numpy(np.ascontiguousarray(images)).to(self.device).permute(0, 3, 1, 2).float().div_(255.0)
        size = self.input_size(images.shape[1], images.shape[2])
        if size != (images.shape[1], images.shape[2]):
            x = _resize_images(x, size)
        return (x - self._mean) / self._std

    @torch.no_grad()
    def features(self, images: np.ndarray) -> ViTFeatures:
        """The backbone's output (class, register, patch tokens) for uint8 RGB images (B, H, W, 3)."""
        return self.model.forward_features(self.preprocess(images))

    def encode(self, images: np.ndarray) -> EncodedImages:
        """uint8 RGB (B, H, W, 3) -> patch tokens (B, P, D) float32, unit-norm class tokens (B, D), grid."""
        out = self.features(images)
        descriptor = F.normalize(out.x_norm_clstoken, dim=-1)
        return EncodedImages(patch_tokens=out.x_norm_patchtokens.float().contiguous().cpu().numpy(),
                             global_descriptor=descriptor.float().cpu().numpy(), grid=out.grid)


def read_rgb_image(path: str | Path) -> np.ndarray:
    """An image file as uint8 RGB (H, W, 3): grey is replicated to three channels, alpha dropped, 16-bit
    scaled to 8-bit. :class:`ImageFileError` for a missing, unreadable or otherwise shaped file."""
    import imageio.v3 as iio  # only this helper needs imageio; encoders in a node never read files

    src = str(path)
    if not Path(path).is_file():
        raise ImageFileError(src, "<file>", "image not found")
    try:
        with warnings.catch_warnings():  # imageio's legacy plugins warn about themselves while probing a file
            warnings.simplefilter("ignore", DeprecationWarning)
            image = np.asarray(iio.imread(path))
    except Exception as exc:  # imageio's plugins raise many types on bad bytes; all mean "not an image"
        raise ImageFileError(src, "<file>", f"not a readable image ({type(exc).__name__})") from None
    if image.dtype == np.uint16:
        image = ((image.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    if image.dtype != np.uint8:
        raise ImageFileError(src, "<pixels>", f"expected 8- or 16-bit pixels, got {image.dtype}")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
    if image.ndim != 3 or image.shape[2] != 3:
        raise ImageFileError(src, "<pixels>", f"expected a grey, RGB or RGBA image, got shape {image.shape}")
    return image


def encode_image_file(encoder: DinoEncoder, path: str | Path) -> np.ndarray:
    """The final-norm patch tokens (P, D) float32 of one image file (a 224 x 224 PNG through ViT-S/14:
    (256, 384)). What ``navkit perception encode`` saves."""
    return encoder.encode(read_rgb_image(path)[None]).patch_tokens[0]
