"""Faster CPU paths for the DINOv2 backbone, behind one interface, each checked against eager PyTorch.

Why: the image encoder is the costliest step of a DINO-WM-style planner on a CPU robot, and eager PyTorch
leaves speed on the table (per-op dispatch, unfused LayerNorm/GELU/attention, weights re-laid-out every call).
Graph compilers remove that overhead without changing the arithmetic much, so the planner can see more frames
per second from the same weights. Every path here must produce the same patch tokens as
:meth:`DinoVisionTransformer.forward_features` (``x_norm_patchtokens``); the encoder benchmark measures how far
each one is off, and a path that is fast but off by more than the tolerance is reported, never chosen.

:func:`build_runner` returns a callable ``images (B, 3, H, W) float32 -> patch tokens (B, P, D) float32``:

* ``eager``: the network as written, under ``torch.inference_mode`` (the reference);
* ``compile`` / ``compile-freeze``: ``torch.compile`` (Inductor, C++ kernels built with the system compiler);
  ``-freeze`` also turns on Inductor's *freezing*, which treats the weights as constants so it can fold them
  and pre-pack them into the layout oneDNN's matrix multiplications want;
* ``onnxruntime``: exported with ``torch.onnx.export`` and run by ONNX Runtime at graph optimisation level
  ALL (fused attention, LayerNorm and GELU kernels);
* ``openvino``: the same ONNX file compiled by OpenVINO for the CPU, with f32 inference precision forced
  (OpenVINO silently computes in bf16 on CPUs that have it, which would break the tolerance);
* ``onnxruntime-int8``: ONNX Runtime after dynamic int8 quantisation of the weights (activations quantised
  per call): smaller and often faster, but NOT numerically equal — kept to be measured and reported;
* ``eager-bf16``: eager under ``torch.autocast(bfloat16)``: bf16 keeps 8 bits of mantissa, so tokens move by
  about 1e-2; kept to be measured and reported, not to be used where 1e-3 matters.

Every non-eager path runs :class:`FrozenPatchTokens`: the same submodules and weights, specialised to one image
size. Its position embedding is resampled once at build time instead of every call (the released embedding is
stored for 518 px, so at 224 px eager re-runs a bicubic resampling per forward), and the final LayerNorm is
applied to the patch tokens only (it is per-token, so the patch tokens are unchanged). That also keeps the
bicubic resampling out of the exported graph. A runner is therefore a snapshot: built for one batch size, one
image size, the weights as they were, and torch's intra-op thread count at build time (ONNX Runtime, OpenVINO
and Inductor's C++ kernels all fix their thread count then). Rebuild it after loading other weights.

Export artefacts (ONNX files) are cached under ``cache_dir`` (default ``out/encoder_cache``: the run's output
folder, never the source tree), in a folder named after a hash of the weights, the config, the image size,
the batch and the torch version: changed weights get a new folder, so a stale export is never reused.
Optional packages (onnxruntime, onnx, onnxscript, openvino) are imported only when their backend is built;
a missing one raises :class:`BackendUnavailable` with a one-line message naming the package to install.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import io
import json
import logging
import os
import shutil
import tempfile
import time
import types
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import nn

from navkit.common.errors import NavkitError
from navkit.perception.vit import DinoVisionTransformer

__all__ = ["BACKENDS", "DEFAULT_CACHE_DIR", "BackendUnavailable", "EncoderRunner", "FrozenPatchTokens",
           "available_backends", "backend_requirements", "build_runner", "weights_hash"]

DEFAULT_CACHE_DIR = Path("out/encoder_cache")
"""Where export artefacts go when the caller names no folder: under the working directory's ``out/``
(git-ignored run output), like every other navkit run."""

_PINS = {"onnxruntime": "onnxruntime==1.31.1", "onnx": "onnx==1.23.2", "onnxscript": "onnxscript==0.7.2",
         "openvino": "openvino==2026.4.1"}
"""Versions this module was measured with; named in the missing-package message so the fix is one command."""

BACKENDS: dict[str, str] = {
    "eager": "PyTorch eager under inference_mode (the reference)",
    "compile": "torch.compile (Inductor C++ kernels)",
    "compile-freeze": "torch.compile with Inductor freezing (weights folded and pre-packed)",
    "onnxruntime": "ONNX Runtime, graph optimisation ALL",
    "openvino": "OpenVINO CPU plugin, f32 precision forced",
    "onnxruntime-int8": "ONNX Runtime after dynamic int8 quantisation (not exact)",
    "eager-bf16": "PyTorch eager under bfloat16 autocast (not exact)",
}
"""Every backend name :func:`build_runner` accepts, with a one-line description for tables."""

_REQUIRES: dict[str, tuple[str, ...]] = {
    "eager": (),
    "compile": (),
    "compile-freeze": (),
    "onnxruntime": ("onnx", "onnxscript", "onnxruntime"),
    "openvino": ("onnx", "onnxscript", "openvino"),
    "onnxruntime-int8": ("onnx", "onnxscript", "onnxruntime"),
    "eager-bf16": (),
}

COMPILE_MODES = ("default", "max-autotune-no-cudagraphs")
"""``torch.compile`` modes that make sense on a CPU (the others only add CUDA graphs)."""

EXPORTERS = ("dynamo", "legacy")
"""``torch.onnx.export`` front ends: ``dynamo`` (torch.export, the default since torch 2.9) or ``legacy``
(TorchScript tracing). Both export ``scaled_dot_product_attention`` of this network correctly."""


class BackendUnavailable(NavkitError):
    """A backend's optional Python package is not installed (the message names it and the pip command)."""


def backend_requirements(backend: str) -> tuple[str, ...]:
    """The optional packages ``backend`` imports; ValueError for an unknown name."""
    _check_backend(backend)
    return _REQUIRES[backend]


def _check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"backend: unknown {backend!r} (known: {', '.join(BACKENDS)})")


def _has_package(name: str) -> bool:
    """Whether an optional package is installed, without importing it (importing openvino takes seconds)."""
    return importlib.util.find_spec(name) is not None


def _missing_packages(backend: str) -> list[str]:
    return [name for name in backend_requirements(backend) if not _has_package(name)]


def available_backends() -> list[str]:
    """The backends whose optional packages are installed, in :data:`BACKENDS` order (finds, never imports)."""
    return [name for name in BACKENDS if not _missing_packages(name)]


def _require(backend: str, package: str) -> ModuleType:
    """Import an optional package lazily; one clear line when it is missing, instead of a deep traceback."""
    if not _has_package(package):
        raise BackendUnavailable(f"backend {backend!r} needs the Python package {package!r}: "
                                 f"pip install -c constraints.txt {_PINS.get(package, package)}")
    return importlib.import_module(package)


def weights_hash(model: nn.Module) -> str:
    """SHA-256 over every ``state_dict`` entry (name, dtype, shape, bytes), in order.

    The export cache is keyed on it: an export built from other weights must never be run by mistake, and
    comparing file dates or object identity cannot tell that the weights changed."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        t = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


class FrozenPatchTokens(nn.Module):
    """``model``'s patch tokens for one image size, with the image-size-only work done once at build time.

    Shares ``model``'s patch projection, blocks and final norm (no copy of the big weights). The position
    embedding for this grid and the class token plus its position are computed once and stored as buffers;
    that is the same arithmetic eager does per call, so results agree to rounding. The final LayerNorm runs on
    the patch tokens only: it normalises each token by itself, so the class/register tokens it skips do not
    affect the patch tokens.
    """

    prefix: torch.Tensor
    """(1, 1 + R, D): class token plus its position, then the registers."""
    patch_pos: torch.Tensor
    """(1, P, D): the position embedding of the patches on this image size's grid."""

    def __init__(self, model: DinoVisionTransformer, img_size: int) -> None:
        super().__init__()
        cfg = model.config
        if img_size < cfg.patch_size or img_size % cfg.patch_size:
            raise ValueError(f"img_size: must be a positive multiple of the patch size {cfg.patch_size}, "
                             f"got {img_size}")
        grid = img_size // cfg.patch_size
        self.img_size = img_size
        self.proj = model.patch_embed.proj
        self.blocks = model.blocks
        self.norm = model.norm
        with torch.no_grad():
            pos = model.interpolate_pos_encoding(grid, grid).detach()
            prefix = model.cls_token.detach() + pos[:, :1]
            if model.register_tokens is not None:  # registers carry no position (see vit.py)
                prefix = torch.cat((prefix, model.register_tokens.detach()), dim=1)
        self.register_buffer("prefix", prefix.clone(), persistent=False)
        self.register_buffer("patch_pos", pos[:, 1:].clone(), persistent=False)
        self.n_prefix = prefix.shape[1]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.proj(images).flatten(2).transpose(1, 2) + self.patch_pos
        x = torch.cat((self.prefix.expand(x.shape[0], -1, -1), x), dim=1)
        for block in self.blocks:
            x = block(x)
        return self.norm(x[:, self.n_prefix:])


@dataclass
class EncoderRunner:
    """A built backend: call it on images of exactly (batch, in_chans, img_size, img_size), float32.

    Returns the patch tokens (batch, P, D) as a float32 torch tensor that the caller owns (never a view
    of a runtime's reusable output buffer)."""

    backend: str
    batch: int
    img_size: int
    threads: int
    """torch's intra-op thread count when the runner was built: the count this runner computes with."""
    build_s: float
    """Seconds spent exporting/compiling/loading (includes the first, compiling call for torch.compile)."""
    artefact: Path | None
    """The export file this runner loaded (ONNX backends), None for the PyTorch ones."""
    in_chans: int
    _fn: Callable[[torch.Tensor], torch.Tensor] = field(repr=False)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        want = (self.batch, self.in_chans, self.img_size, self.img_size)
        if tuple(images.shape) != want or images.dtype != torch.float32:
            raise ValueError(f"{self.backend} runner: built for images {want} float32, "
                             f"got {tuple(images.shape)} {images.dtype}")
        return self._fn(images)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporters' progress prints, deprecation warnings and 'torchvision not installed' logs:
    they are not errors, and a benchmark table must not drown in them. Real failures still raise."""
    # "": the root logger, where ONNX Runtime's quantiser writes its pre-processing advice.
    names = ("torch.onnx", "torch._dynamo", "torch._inductor", "onnxscript", "")
    loggers = [logging.getLogger(name) for name in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _artefact_dir(model: DinoVisionTransformer, cache_dir: Path, batch: int, img_size: int, exporter: str) -> Path:
    """Cache folder named by everything the export depends on; the weights hash is first, so a listing shows
    which exports belong to which weights."""
    key = json.dumps({"config": repr(model.config), "batch": batch, "img_size": img_size, "exporter": exporter,
                      "torch": torch.__version__}, sort_keys=True)
    key_hash = hashlib.sha256(key.encode()).hexdigest()[:12]
    return cache_dir / f"{weights_hash(model)[:16]}-{key_hash}-b{batch}-{img_size}px"


def _publish(tmp: Path, final: Path) -> None:
    """Move a finished export folder into place atomically, so a crash mid-export leaves no half file that a
    later run would trust; a concurrent builder that got there first wins."""
    try:
        os.replace(tmp, final)
    except OSError:
        if not (final / "model.onnx").is_file():
            raise
        shutil.rmtree(tmp, ignore_errors=True)


def export_onnx(model: DinoVisionTransformer, batch: int, img_size: int, cache_dir: Path,
                exporter: str = "dynamo") -> Path:
    """The fp32 ONNX file of :class:`FrozenPatchTokens` for (batch, img_size), exported once per weights hash.

    Static shapes: ONNX Runtime and OpenVINO plan memory and fuse attention better when every dimension is
    known, and a runner is built per batch size anyway."""
    if exporter not in EXPORTERS:
        raise ValueError(f"exporter: unknown {exporter!r} (known: {', '.join(EXPORTERS)})")
    for package in ("onnx", "onnxscript") if exporter == "dynamo" else ("onnx",):
        _require("onnx export", package)
    final = _artefact_dir(model, cache_dir, batch, img_size, exporter)
    path = final / "model.onnx"
    if path.is_file():
        return path
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=cache_dir))
    try:
        frozen = FrozenPatchTokens(model, img_size).eval()
        example = torch.zeros(batch, model.config.in_chans, img_size, img_size)
        with _quiet(), torch.no_grad():
            if exporter == "dynamo":
                torch.onnx.export(frozen, (example,), str(tmp / "model.onnx"), dynamo=True, external_data=False,
                                  input_names=["images"], output_names=["patch_tokens"], verbose=False)
            else:
                torch.onnx.export(frozen, (example,), str(tmp / "model.onnx"), dynamo=False, opset_version=17,
                                  input_names=["images"], output_names=["patch_tokens"], do_constant_folding=True)
        (tmp / "meta.json").write_text(json.dumps({"weights_sha256": weights_hash(model), "batch": batch,
                                                   "img_size": img_size, "exporter": exporter,
                                                   "torch": torch.__version__}, indent=2) + "\n")
        _publish(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def _quantized_onnx(fp32_path: Path) -> Path:
    """Dynamic int8 quantisation of an exported file (weights int8 per output channel, activations per call)."""
    out = fp32_path.with_name("model.int8.onnx")
    if out.is_file():
        return out
    _require("onnxruntime-int8", "onnxruntime")
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = fp32_path.with_name(f".model.int8.{os.getpid()}.onnx")
    with _quiet():
        quantize_dynamic(str(fp32_path), str(tmp), weight_type=QuantType.QInt8, per_channel=True)
    os.replace(tmp, out)
    return out


def _ort_runner(path: Path, threads: int) -> Callable[[torch.Tensor], torch.Tensor]:
    ort = _require("onnxruntime", "onnxruntime")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads  # the same core budget torch gets, or the comparison is unfair
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def run(images: torch.Tensor) -> torch.Tensor:
        out = session.run(None, {name: images.detach().contiguous().numpy()})[0]
        return torch.from_numpy(out)  # ORT returns a fresh array: no copy needed

    return run


def _openvino_runner(path: Path, threads: int) -> Callable[[torch.Tensor], torch.Tensor]:
    ov = _require("openvino", "openvino")
    core = ov.Core()
    config = {"INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY",
              "INFERENCE_PRECISION_HINT": "f32"}  # f32: on bf16/AMX CPUs OpenVINO would otherwise drop to bf16
    compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
    request = compiled.create_infer_request()

    def run(images: torch.Tensor) -> torch.Tensor:
        request.infer({0: images.detach().contiguous().numpy()})
        # The output tensor is the request's buffer, overwritten by the next call: copy it out.
        return torch.from_numpy(np.array(request.get_output_tensor(0).data, copy=True))

    return run


def _private_forward(frozen: FrozenPatchTokens) -> Callable[[torch.Tensor], torch.Tensor]:
    """``frozen.forward`` bound through a code object of its own.

    Dynamo keeps its compiled graphs on the Python code object, which every :class:`FrozenPatchTokens` shares,
    and its guards check shapes and module structure, not torch's thread count. Inductor's C++ kernels bake the
    thread count in, so a runner built at 1 thread could silently reuse kernels compiled for 2 (seen with torch
    2.13: eleven runners alternating 1 and 2 threads produced two graphs), and the ninth runner would hit
    Dynamo's recompile limit. A private code object gives each runner its own compile, without
    ``torch._dynamo.reset()``, which would throw away every other compiled function in the process."""
    code = FrozenPatchTokens.forward.__code__.replace(co_name=f"frozen_patch_tokens_{id(frozen):x}")
    function = types.FunctionType(code, FrozenPatchTokens.forward.__globals__, code.co_name)
    return types.MethodType(function, frozen)


def _compile_runner(frozen: FrozenPatchTokens, mode: str, freeze: bool,
                    example: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    if mode not in COMPILE_MODES:
        raise ValueError(f"compile_mode: unknown {mode!r} (known: {', '.join(COMPILE_MODES)})")
    from torch._inductor import list_mode_options

    # The options travel with this compiled function (a later recompile keeps freezing), unlike a global
    # inductor config patch; ``mode`` is spelled as its options because torch.compile takes one or the other.
    options = {**list_mode_options(mode), "freezing": freeze}
    compiled = torch.compile(_private_forward(frozen), options=options, dynamic=False, fullgraph=True)
    with torch.inference_mode(), _quiet():
        compiled(example)  # compile now, with this runner's thread count; later calls only check guards

    def run(images: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return compiled(images).clone()  # clone: Inductor may reuse its output buffer's storage

    return run


def build_runner(model: DinoVisionTransformer, backend: str, batch: int, img_size: int, *,
                 cache_dir: Path | None = None, compile_mode: str = "default",
                 exporter: str = "dynamo") -> EncoderRunner:
    """A callable computing ``model``'s patch tokens with ``backend`` for images (batch, 3, img_size, img_size).

    Uses ``torch.get_num_threads()`` threads (set it before building). ``cache_dir`` holds ONNX exports
    (default :data:`DEFAULT_CACHE_DIR`). ``compile_mode`` applies to the ``compile*`` backends, ``exporter``
    to the ONNX-based ones. Raises :class:`BackendUnavailable` when the backend's package is missing and
    ValueError for an unknown backend or bad sizes."""
    _check_backend(backend)
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch: must be a positive integer, got {batch!r}")
    for package in backend_requirements(backend):
        _require(backend, package)
    cfg = model.config
    if img_size < cfg.patch_size or img_size % cfg.patch_size:
        raise ValueError(f"img_size: must be a positive multiple of the patch size {cfg.patch_size}, got {img_size}")
    threads = torch.get_num_threads()
    cache_dir = DEFAULT_CACHE_DIR if cache_dir is None else Path(cache_dir)
    example = torch.zeros(batch, cfg.in_chans, img_size, img_size)
    artefact: Path | None = None
    t0 = time.perf_counter()
    fn: Callable[[torch.Tensor], torch.Tensor]
    if backend == "eager":
        def fn(images: torch.Tensor) -> torch.Tensor:
            with torch.inference_mode():
                return model.forward_features(images).x_norm_patchtokens.clone()
    elif backend == "eager-bf16":
        def fn(images: torch.Tensor) -> torch.Tensor:
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
                return model.forward_features(images).x_norm_patchtokens.float()
    elif backend in ("compile", "compile-freeze"):
        fn = _compile_runner(FrozenPatchTokens(model, img_size).eval(), compile_mode,
                             backend == "compile-freeze", example)
    else:
        artefact = export_onnx(model, batch, img_size, cache_dir, exporter)
        if backend == "onnxruntime-int8":
            artefact = _quantized_onnx(artefact)
        fn = _openvino_runner(artefact, threads) if backend == "openvino" else _ort_runner(artefact, threads)
    build_s = time.perf_counter() - t0
    return EncoderRunner(backend=backend, batch=batch, img_size=img_size, threads=threads, build_s=build_s,
                         artefact=artefact, in_chans=cfg.in_chans, _fn=fn)


def describe(backend: str) -> dict[str, Any]:
    """Name, description and the optional packages of a backend (for tables and ``--list`` output)."""
    return {"backend": backend, "description": BACKENDS[backend], "requires": list(backend_requirements(backend)),
            "missing": _missing_packages(backend)}
