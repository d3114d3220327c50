"""Strict loading of released DINOv2 backbone weights (``dinov2_vits14_pretrain.pth`` and its siblings).

The released files (Oquab et al. 2023) are plain state dicts: parameter name -> tensor, names and shapes
as :func:`navkit.perception.vit.expected_state_dict_shapes` lists them. Loading is strict because a
partly loaded backbone still runs and still gives features of the right shape — just wrong ones, which
nothing downstream could notice. So every missing name, extra name, wrong shape, non-float or non-finite
tensor is a :class:`CheckpointError` naming the file and the parameter, and a file that is not a
weights-only PyTorch checkpoint at all is one line too, never a torch traceback.

Files are read with ``torch.load(weights_only=True)``: a checkpoint is data, and a pickle that would
run code is refused before anything in it executes.

Wrappers are refused, not unwrapped: a DINOv2 *training* checkpoint (``{"teacher": {"backbone.…": …,
"dino_head.…": …}}``) or a DDP/fine-tuning export (``module.`` / ``backbone.`` prefixes, ``{"model": …}``)
carries heads a strict loader would have to drop silently and a student/teacher choice it should not
make for the user. The error says which wrapper it found; extract the backbone once, e.g.
``torch.save({k[9:]: v for k, v in ckpt["teacher"].items() if k.startswith("backbone.")}, out)``.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from navkit.common.errors import FieldError, brief
from navkit.perception.vit import PRESETS, DinoVisionTransformer, ViTConfig, expected_state_dict_shapes

__all__ = ["VARIANTS", "CheckpointError", "check_state_dict", "load_dinov2", "read_checkpoint", "variant_config"]

VARIANTS: dict[str, ViTConfig] = {
    "dinov2_vits14": PRESETS["vits14"],
    "dinov2_vits14_reg": PRESETS["vits14_reg"],
    "dinov2_vitb14": PRESETS["vitb14"],
    "dinov2_vitb14_reg": PRESETS["vitb14_reg"],
    "dinov2_vitl14": PRESETS["vitl14"],
    "dinov2_vitl14_reg": PRESETS["vitl14_reg"],
    "tiny": PRESETS["tiny"],
}
"""Loadable variants: the ``torch.hub`` names of the released backbones, plus navkit's ``tiny`` test network."""

_WRAPPER_KEYS = ("teacher", "student", "model", "state_dict", "module")


class CheckpointError(FieldError):
    """A DINOv2 weights file is unreadable or does not fit the variant; names the file and the parameter."""


def variant_config(variant: str, source: str = "<code>") -> ViTConfig:
    """The network shape of ``variant``; an unknown name is a :class:`CheckpointError` listing the known ones."""
    try:
        return VARIANTS[variant]
    except (KeyError, TypeError):
        raise CheckpointError(source, "variant", f"unknown DINOv2 variant {brief(variant)} "
                                                 f"(known: {', '.join(VARIANTS)})") from None


def _one_line(exc: BaseException) -> str:
    """The informative line of a torch.load error (its messages run to several paragraphs of advice)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))  # torch colours parts of its advice
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    detail = next((line for line in lines if line.startswith(("Unsupported", "Trying to load"))),
                  lines[0] if lines else "")
    return f"{type(exc).__name__}: {brief(detail, 100)}" if detail else type(exc).__name__


def read_checkpoint(path: str | Path) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, with every way a file can fail to be a checkpoint
    turned into one :class:`CheckpointError` line (missing, empty, garbage, text, truncated, pickled code)."""
    src = str(path)
    path = Path(path)
    if not path.exists():
        raise CheckpointError(src, "<file>", "not found")
    if not path.is_file():
        raise CheckpointError(src, "<file>", "not a regular file")
    if path.stat().st_size == 0:
        raise CheckpointError(src, "<file>", "empty file, not a PyTorch checkpoint")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many types on bad bytes (measured: UnpicklingError, KeyError,
        # RuntimeError, EOFError, OSError, ValueError); every one means "not a usable checkpoint here".
        refused = re.search(r"\bGLOBAL ([\w.]+)", str(exc))
        if refused:
            raise CheckpointError(src, "<file>", f"refused: it pickles Python objects, not only tensors "
                                                 f"(weights-only loading blocks {refused.group(1)[:80]})"
                                  ) from None
        raise CheckpointError(src, "<file>", f"not a readable PyTorch checkpoint ({_one_line(exc)})") from None


def _shapes(state: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}


def _fitting_variant(state: Mapping[str, Any], exclude: str) -> str | None:
    """The variant whose names and shapes ``state`` matches exactly, if any (a hint for the error line)."""
    shapes = _shapes(state)
    for name, config in VARIANTS.items():
        if name != exclude and shapes == expected_state_dict_shapes(config):
            return name
    return None


def _wrapper_problem(state: Mapping[Any, Any], expected: Mapping[str, Any]) -> tuple[str, str] | None:
    """(field, problem) when ``state`` looks like a wrapper around a backbone rather than the backbone."""
    if any(key in expected for key in state):
        return None
    for key in _WRAPPER_KEYS:
        if isinstance(state.get(key), Mapping):
            return key, (f"a training/export wrapper ({key!r} holds a nested state dict), not the plain state "
                         "dict of a DINOv2 release; save the backbone's own weights and load that file")
    keys = [k for k in state if isinstance(k, str)]
    if keys and "." in keys[0]:
        prefix = keys[0].split(".", 1)[0] + "."
        if all(k.startswith(prefix) for k in keys) and any(k[len(prefix):] in expected for k in keys):
            return keys[0], (f"every name carries the prefix {prefix!r} (a training or DDP wrapper); "
                             "save the backbone's weights without it")
    return None


def check_state_dict(state: Any, variant: str, source: str = "<state_dict>") -> dict[str, torch.Tensor]:
    """``state`` as a ``{name: tensor}`` dict if it fits ``variant`` exactly; otherwise :class:`CheckpointError`
    naming the first parameter at fault (how many more problems there are, and the variant the file does fit
    when it fits another one).

    Half-precision tensors are accepted (the network converts them to float32); integer, complex, NaN or Inf
    tensors are not: they cannot be weights of a trained network."""
    expected = expected_state_dict_shapes(variant_config(variant, source))
    if not isinstance(state, Mapping):
        raise CheckpointError(source, "<root>", f"expected a state dict (names -> tensors), got "
                                                f"{type(state).__name__}")
    for key in state:
        if not isinstance(key, str):
            raise CheckpointError(source, "<root>", f"parameter name {brief(key)} is not a string")
    wrapped = _wrapper_problem(state, expected)
    if wrapped is not None:
        raise CheckpointError(source, *wrapped)
    problems: list[tuple[str, str]] = []
    for key, shape in expected.items():
        if key not in state:
            problems.append((key, f"missing ({variant} expects shape {shape})"))
            continue
        value = state[key]
        if not isinstance(value, torch.Tensor):
            problems.append((key, f"expected a tensor, got {type(value).__name__}"))
        elif tuple(value.shape) != shape:
            problems.append((key, f"shape {tuple(value.shape)} where {variant} expects {shape}"))
        elif not value.is_floating_point():
            problems.append((key, f"dtype {value.dtype} is not a floating-point type"))
        elif not bool(torch.isfinite(value).all()):
            problems.append((key, "contains NaN or Inf"))
    problems += [(key, f"unexpected parameter (not part of {variant})") for key in state if key not in expected]
    if problems:
        key, problem = problems[0]
        if len(problems) > 1:
            problem += f"; and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''}"
        fits = _fitting_variant(state, variant)
        if fits is not None:
            problem += f"; the file fits {fits}"
        raise CheckpointError(source, key, problem)
    return dict(state)


def load_dinov2(path: str | Path, variant: str = "dinov2_vits14") -> DinoVisionTransformer:
    """The ``variant`` backbone with the weights of the ``.pth`` at ``path``, in eval mode on the CPU.

    The file must be the plain state dict of that variant (what the DINOv2 release publishes and
    ``torch.save(model.state_dict())`` writes); anything else is a :class:`CheckpointError` naming the file
    and the parameter at fault, checked before the network is built."""
    src = str(path)
    config = variant_config(variant, src)
    state = check_state_dict(read_checkpoint(path), variant, src)
    return DinoVisionTransformer.from_state_dict(config, state).eval()
