"""DINOv2 ViT (Oquab et al. 2023; registers: Darcet et al. 2023): the released parameter names and shapes,
strict checkpoint loading with one-line errors, position-embedding resampling, the forward arithmetic
(against an independent re-implementation), and the ``dinov2`` image encoder's preprocessing."""
from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from navkit.common.errors import NavkitError
from navkit.perception import image_encoder as image_encoder_module
from navkit.perception.dinov2_checkpoint import CheckpointError, check_state_dict, load_dinov2
from navkit.perception.image_encoder import (IMAGENET_MEAN, IMAGENET_STD, DinoEncoder, DinoEncoderConfig,
                                             ImageFileError, encode_image_file)
from navkit.perception.vit import PRESETS, DinoVisionTransformer, ViTConfig, expected_state_dict_shapes

# The released dinov2_vits14_pretrain.pth, written out from its published layout: 5 + 12 x 14 + 2 = 175 tensors.
D, HIDDEN = 384, 1536
OFFICIAL_TOP = {"cls_token": (1, 1, D), "pos_embed": (1, 37 * 37 + 1, D), "mask_token": (1, D),
                "patch_embed.proj.weight": (D, 3, 14, 14), "patch_embed.proj.bias": (D,)}
OFFICIAL_BLOCK = {"norm1.weight": (D,), "norm1.bias": (D,), "attn.qkv.weight": (3 * D, D), "attn.qkv.bias": (3 * D,),
                  "attn.proj.weight": (D, D), "attn.proj.bias": (D,), "ls1.gamma": (D,), "norm2.weight": (D,),
                  "norm2.bias": (D,), "mlp.fc1.weight": (HIDDEN, D), "mlp.fc1.bias": (HIDDEN,),
                  "mlp.fc2.weight": (D, HIDDEN), "mlp.fc2.bias": (D,), "ls2.gamma": (D,)}
OFFICIAL_VITS14 = {**OFFICIAL_TOP, **{f"blocks.{i}.{k}": s for i in range(12) for k, s in OFFICIAL_BLOCK.items()},
                   "norm.weight": (D,), "norm.bias": (D,)}


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    """Two shared CPU cores: torch must not spawn a thread per core for these small forwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def vits14() -> DinoVisionTransformer:
    return DinoVisionTransformer(PRESETS["vits14"], seed=1).eval()


@pytest.fixture(scope="module")
def vits14_reg() -> DinoVisionTransformer:
    return DinoVisionTransformer(PRESETS["vits14_reg"], seed=2).eval()


def _shapes(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _image(seed: int, b: int, h: int, w: int) -> torch.Tensor:
    return torch.randn(b, 3, h, w, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------ parameter names


def test_vits14_has_exactly_the_official_names_shapes_and_order(vits14: DinoVisionTransformer) -> None:
    assert len(OFFICIAL_VITS14) == 175
    assert _shapes(vits14) == OFFICIAL_VITS14
    assert list(vits14.state_dict()) == list(OFFICIAL_VITS14)  # the release's order, too
    assert expected_state_dict_shapes(PRESETS["vits14"]) == OFFICIAL_VITS14


def test_reg_variant_adds_only_register_tokens(vits14_reg: DinoVisionTransformer) -> None:
    shapes = _shapes(vits14_reg)
    assert len(shapes) == 176
    assert shapes.pop("register_tokens") == (1, 4, D)
    assert shapes == OFFICIAL_VITS14


@pytest.mark.parametrize(("preset", "dim", "depth"), [("vitb14", 768, 12), ("vitl14", 1024, 24)])
def test_larger_presets_follow_the_same_layout(preset: str, dim: int, depth: int) -> None:
    shapes = expected_state_dict_shapes(PRESETS[preset])
    assert len(shapes) == 5 + 14 * depth + 2
    assert shapes["pos_embed"] == (1, 1370, dim) and shapes[f"blocks.{depth - 1}.mlp.fc1.weight"] == (4 * dim, dim)
    reg = expected_state_dict_shapes(PRESETS[f"{preset}_reg"])
    assert reg.pop("register_tokens") == (1, 4, dim) and reg == shapes


def test_random_init_is_seeded_and_leaves_global_rng_alone() -> None:
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    a = DinoVisionTransformer(PRESETS["tiny"], seed=5)
    assert torch.equal(torch.rand(3), expected_next)
    b = DinoVisionTransformer(PRESETS["tiny"], seed=5)
    c = DinoVisionTransformer(PRESETS["tiny"], seed=6)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.pos_embed, c.pos_embed)


def test_config_rejects_impossible_shapes() -> None:
    with pytest.raises(ValueError, match="not divisible by num_heads"):
        ViTConfig(embed_dim=100, num_heads=3)
    with pytest.raises(ValueError, match="patch_size"):
        ViTConfig(patch_size=0)


# ------------------------------------------------------------------------------------ strict loading


def _save(state: dict[str, torch.Tensor], path: Path) -> Path:
    torch.save(state, path)
    return path


def test_strict_load_round_trips(vits14: DinoVisionTransformer, tmp_path: Path) -> None:
    path = _save(vits14.state_dict(), tmp_path / "dinov2_vits14_pretrain.pth")
    loaded = load_dinov2(path, "dinov2_vits14")
    assert not loaded.training
    assert list(loaded.state_dict()) == list(OFFICIAL_VITS14)
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in vits14.state_dict().items())
    x = _image(0, 1, 224, 224)
    with torch.no_grad():
        ours, theirs = vits14(x), loaded(x)
    assert torch.equal(ours.x_prenorm, theirs.x_prenorm)
    assert theirs.x_norm_patchtokens.shape == (1, 256, D) and theirs.x_norm_clstoken.shape == (1, D)
    assert theirs.x_norm_regtokens.shape == (1, 0, D) and theirs.grid == (16, 16)


@pytest.mark.parametrize("case", ["missing", "extra", "shape"])
def test_bad_state_dict_file_is_one_line_naming_file_and_key(vits14: DinoVisionTransformer, tmp_path: Path,
                                                             case: str) -> None:
    state = dict(vits14.state_dict())
    if case == "missing":
        del state["blocks.11.ls2.gamma"]
        expected = "blocks.11.ls2.gamma: missing (dinov2_vits14 expects shape (384,))"
    elif case == "extra":
        state["head.weight"] = torch.zeros(1000, D)
        expected = "head.weight: unexpected parameter (not part of dinov2_vits14)"
    else:
        state["pos_embed"] = torch.zeros(1, 257, D)  # a 224-px grid: not the release's 518-px one
        expected = "pos_embed: shape (1, 257, 384) where dinov2_vits14 expects (1, 1370, 384)"
    path = _save(state, tmp_path / f"{case}.pth")
    with pytest.raises(CheckpointError) as err:
        load_dinov2(path)
    path.unlink()
    assert str(err.value) == f"{path}: {expected}"
    assert isinstance(err.value, NavkitError) and err.value.field in expected


def test_wrong_variant_names_the_variant_the_file_fits(vits14: DinoVisionTransformer,
                                                       vits14_reg: DinoVisionTransformer) -> None:
    with pytest.raises(CheckpointError) as err:
        check_state_dict(vits14_reg.state_dict(), "dinov2_vits14", "reg.pth")
    assert str(err.value) == ("reg.pth: register_tokens: unexpected parameter (not part of dinov2_vits14); "
                              "the file fits dinov2_vits14_reg")
    with pytest.raises(CheckpointError) as err:
        check_state_dict(vits14.state_dict(), "dinov2_vits14_reg", "plain.pth")
    assert str(err.value) == ("plain.pth: register_tokens: missing (dinov2_vits14_reg expects shape (1, 4, 384)); "
                              "the file fits dinov2_vits14")


def test_every_problem_is_counted_and_bad_values_refused(vits14: DinoVisionTransformer) -> None:
    state = dict(vits14.state_dict())
    del state["norm.weight"], state["norm.bias"]
    with pytest.raises(CheckpointError, match=r"^x: norm.weight: missing .*; and 1 more problem$"):
        check_state_dict(state, "dinov2_vits14", "x")
    for key, value, problem in [
        ("blocks.3.attn.qkv.bias", torch.full((3 * D,), math.nan), "contains NaN or Inf"),
        ("cls_token", torch.zeros(1, 1, D, dtype=torch.int64), "dtype torch.int64 is not a floating-point type"),
        ("mask_token", [0.0] * D, "expected a tensor, got list"),
    ]:
        with pytest.raises(CheckpointError) as err:
            check_state_dict({**vits14.state_dict(), key: value}, "dinov2_vits14", "x")
        assert str(err.value) == f"x: {key}: {problem}"
    half = {k: v.half() for k, v in vits14.state_dict().items()}
    assert check_state_dict(half, "dinov2_vits14").keys() == OFFICIAL_VITS14.keys()  # half precision is fine


def test_wrappers_are_refused_with_what_was_found(vits14: DinoVisionTransformer) -> None:
    teacher = {"teacher": {f"backbone.{k}": v for k, v in vits14.state_dict().items()}}
    with pytest.raises(CheckpointError, match=r"^t.pth: teacher: a training/export wrapper \('teacher' holds"):
        check_state_dict(teacher, "dinov2_vits14", "t.pth")
    ddp = {f"module.{k}": v for k, v in vits14.state_dict().items()}
    with pytest.raises(CheckpointError, match=r"^d.pth: module.cls_token: every name carries the prefix 'module.'"):
        check_state_dict(ddp, "dinov2_vits14", "d.pth")
    with pytest.raises(CheckpointError, match=r"^l.pth: <root>: expected a state dict \(names -> tensors\), got list$"):
        check_state_dict([1, 2], "dinov2_vits14", "l.pth")


class _NotATensor:
    """A pickled Python object: what weights-only loading must refuse before it can run anything."""


@pytest.mark.parametrize("case", ["garbage", "text", "empty", "pickled object", "missing", "truncated"])
def test_a_file_that_is_not_a_checkpoint_is_one_line(tmp_path: Path, case: str) -> None:
    path = tmp_path / f"{case.replace(' ', '_')}.pth"
    if case == "garbage":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
        problem = r"not a readable PyTorch checkpoint \(UnpicklingError: .+\)"
    elif case == "text":
        path.write_text("these are not the weights you are looking for\n" * 20)
        problem = r"not a readable PyTorch checkpoint \(.+\)"
    elif case == "empty":
        path.write_bytes(b"")
        problem = "empty file, not a PyTorch checkpoint"
    elif case == "pickled object":
        torch.save({"cls_token": _NotATensor()}, path)
        problem = r"refused: it pickles Python objects, not only tensors \(weights-only loading blocks \S*_NotATensor\)"
    elif case == "truncated":
        torch.save({"cls_token": torch.zeros(1, 1, D)}, path)
        path.write_bytes(path.read_bytes()[:300])
        problem = r"not a readable PyTorch checkpoint \(.+\)"
    else:
        problem = "not found"
    with pytest.raises(CheckpointError) as err:
        load_dinov2(path)
    message = str(err.value)
    assert "\n" not in message and len(message) < 300, message
    assert re.fullmatch(f"{re.escape(str(path))}: <file>: {problem}", message), message


def test_unknown_variant_is_a_navkit_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"variant: unknown DINOv2 variant 'dinov2_vitz14' \(known: dinov2_vits14"):
        load_dinov2(tmp_path / "w.pth", "dinov2_vitz14")


# ------------------------------------------------------------------------- position-embedding resampling


def test_pos_embed_is_the_identity_at_the_native_grid(vits14: DinoVisionTransformer,
                                                      vits14_reg: DinoVisionTransformer) -> None:
    for model in (vits14, vits14_reg):
        assert model.interpolate_pos_encoding(37, 37) is model.pos_embed  # 518 px -> 37 x 37: untouched


def test_pos_embed_resampling_follows_each_release(vits14: DinoVisionTransformer,
                                                   vits14_reg: DinoVisionTransformer) -> None:
    """Without registers: scale factor (16 + 0.1) / 37; with registers: output size 16 with antialiasing.
    The two rules give different embeddings from the same grid, so the rule a model follows matters."""
    by_offset = F.interpolate(_native_grid(vits14), scale_factor=16.1 / 37, mode="bicubic")
    by_size = F.interpolate(_native_grid(vits14_reg), size=(16, 16), mode="bicubic", antialias=True)
    for model, spec in [(vits14, by_offset), (vits14_reg, by_size)]:
        out = model.interpolate_pos_encoding(16, 16)
        assert out.shape == (1, 257, D)
        assert torch.equal(out[:, 0], model.pos_embed[:, 0])
        assert torch.equal(out[:, 1:], spec.permute(0, 2, 3, 1).reshape(1, 256, D))
    grid = _native_grid(vits14)
    assert (F.interpolate(grid, scale_factor=16.1 / 37, mode="bicubic")
            - F.interpolate(grid, size=(16, 16), mode="bicubic")).abs().max() > 1e-3


def _native_grid(model: DinoVisionTransformer) -> torch.Tensor:
    """The patch part of the stored position embedding as a (1, D, 37, 37) image."""
    return model.pos_embed[0, 1:].reshape(1, 37, 37, D).permute(0, 3, 1, 2)


@pytest.mark.parametrize("preset", ["vits14", "vits14_reg"])
def test_resampling_keeps_a_constant_embedding_constant(preset: str) -> None:
    """Bicubic weights sum to one: a position embedding equal at every patch stays so on any grid."""
    model = DinoVisionTransformer(replace(PRESETS[preset], depth=1), seed=0)
    with torch.no_grad():
        model.pos_embed[:, 1:] = torch.linspace(-1.0, 1.0, D)
    out = model.interpolate_pos_encoding(12, 18)
    assert out.shape == (1, 1 + 12 * 18, D)
    torch.testing.assert_close(out[0, 1:], torch.linspace(-1.0, 1.0, D).expand(12 * 18, D), atol=1e-5, rtol=0)


# ------------------------------------------------------------------------------------ forward


def test_forward_at_224_has_16x16_patches_and_registers(vits14: DinoVisionTransformer,
                                                        vits14_reg: DinoVisionTransformer) -> None:
    x = _image(1, 2, 224, 224)
    with torch.no_grad():
        plain, reg = vits14(x), vits14_reg(x)
    assert plain.x_norm_patchtokens.shape == (2, 256, D) and plain.x_prenorm.shape == (2, 257, D)
    assert reg.x_norm_regtokens.shape == (2, 4, D) and reg.x_norm_patchtokens.shape == (2, 256, D)
    assert reg.x_norm_clstoken.shape == (2, D) and reg.x_prenorm.shape == (2, 261, D) and reg.grid == (16, 16)
    assert torch.isfinite(reg.x_prenorm).all()


def _zero_layerscale(model: DinoVisionTransformer) -> None:
    with torch.no_grad():
        for block in model.blocks:
            block.ls1.gamma.zero_()
            block.ls2.gamma.zero_()


def test_zero_layerscale_makes_every_block_the_identity() -> None:
    model = DinoVisionTransformer(PRESETS["tiny"], seed=3).eval()
    _zero_layerscale(model)
    tokens = torch.randn(2, 65, 96)
    with torch.no_grad():
        for block in model.blocks:
            assert torch.equal(block(tokens), tokens)


def test_registers_enter_after_the_position_embedding() -> None:
    """With every block the identity, the last block's output is the prepared token sequence: [cls + pos_0,
    registers (no position), patches + pos_1..P] — the order and the missing position of Darcet et al.'s registers."""
    model = DinoVisionTransformer(replace(PRESETS["tiny"], num_register_tokens=4), seed=4).eval()
    _zero_layerscale(model)
    with torch.no_grad():
        model.register_tokens.normal_()
        x = _image(2, 2, 64, 64)  # the native 8 x 8 grid: the position embedding enters unresampled
        out = model(x)
        patches = model.patch_embed(x)
    pos = model.pos_embed[0]
    assert torch.equal(out.x_prenorm[:, 0], (model.cls_token[0, 0] + pos[0]).expand(2, -1))
    assert torch.equal(out.x_prenorm[:, 1:5], model.register_tokens.expand(2, -1, -1))
    assert torch.equal(out.x_prenorm[:, 5:], patches + pos[1:])
    torch.testing.assert_close(out.x_norm_regtokens, model.norm(model.register_tokens).expand(2, -1, -1))


def test_masked_patches_become_the_mask_token() -> None:
    model = DinoVisionTransformer(PRESETS["tiny"], seed=5).eval()
    masks = torch.ones(1, 64, dtype=torch.bool)
    with torch.no_grad():
        a, b = model(_image(3, 1, 64, 64), masks), model(_image(4, 1, 64, 64), masks)
    assert torch.equal(a.x_prenorm, b.x_prenorm)  # nothing of either image is left


def _reference_features(model: DinoVisionTransformer, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """DINOv2's forward written out from the paper's equations in float64, sharing only the parameters
    (and torch's bicubic resampling of the position grid) with the module under test."""
    cfg = model.config
    sd = {k: v.double() for k, v in model.state_dict().items()}
    x = x.double()
    p, d, heads, r = cfg.patch_size, cfg.embed_dim, cfg.num_heads, cfg.num_register_tokens
    b, _, h, w = x.shape
    gh, gw, n = h // p, w // p, cfg.native_grid
    patches = x.reshape(b, 3, gh, p, gw, p).permute(0, 2, 4, 1, 3, 5).reshape(b, gh * gw, 3 * p * p)
    tokens = patches @ sd["patch_embed.proj.weight"].reshape(d, -1).T + sd["patch_embed.proj.bias"]
    grid = sd["pos_embed"][0, 1:].T.reshape(1, d, n, n)
    if cfg.interpolate_offset:
        scale = ((gh + cfg.interpolate_offset) / n, (gw + cfg.interpolate_offset) / n)
        grid = F.interpolate(grid, scale_factor=scale, mode="bicubic", antialias=cfg.interpolate_antialias)
    else:
        grid = F.interpolate(grid, size=(gh, gw), mode="bicubic", antialias=cfg.interpolate_antialias)
    pos = grid.reshape(d, gh * gw).T
    cls = (sd["cls_token"][0, 0] + sd["pos_embed"][0, 0]).expand(b, 1, d)
    regs = sd["register_tokens"].expand(b, r, d) if r else x.new_zeros(b, 0, d)
    t = torch.cat([cls, regs, tokens + pos], dim=1)

    def layer_norm(v: torch.Tensor, name: str) -> torch.Tensor:
        mu = v.mean(-1, keepdim=True)
        var = ((v - mu) ** 2).mean(-1, keepdim=True)
        return (v - mu) / torch.sqrt(var + cfg.norm_eps) * sd[f"{name}.weight"] + sd[f"{name}.bias"]

    for i in range(cfg.depth):
        pre = f"blocks.{i}."
        y = layer_norm(t, pre + "norm1")
        qkv = y @ sd[pre + "attn.qkv.weight"].T + sd[pre + "attn.qkv.bias"]
        q, k, v = (z.reshape(b, -1, heads, d // heads).transpose(1, 2) for z in qkv.split(d, dim=-1))
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // heads), dim=-1)
        o = (att @ v).transpose(1, 2).reshape(b, -1, d)
        t = t + sd[pre + "ls1.gamma"] * (o @ sd[pre + "attn.proj.weight"].T + sd[pre + "attn.proj.bias"])
        z = layer_norm(t, pre + "norm2") @ sd[pre + "mlp.fc1.weight"].T + sd[pre + "mlp.fc1.bias"]
        z = 0.5 * z * (1.0 + torch.erf(z / math.sqrt(2.0)))
        t = t + sd[pre + "ls2.gamma"] * (z @ sd[pre + "mlp.fc2.weight"].T + sd[pre + "mlp.fc2.bias"])
    t = layer_norm(t, "norm")
    return {"cls": t[:, 0], "reg": t[:, 1:r + 1], "patch": t[:, r + 1:]}


@pytest.mark.parametrize("registers", [0, 4])
def test_forward_matches_an_independent_reimplementation(registers: int) -> None:
    """A tiny network with full-strength residual branches (LayerScale 1, not the near-silent 1e-5 of fresh
    weights) on a non-square image that needs a resampled position embedding (5 x 7 patches)."""
    base = PRESETS["tiny"] if registers == 0 else replace(PRESETS["tiny"], num_register_tokens=4,
                                                         interpolate_offset=0.0, interpolate_antialias=True)
    model = DinoVisionTransformer(replace(base, layerscale_init=1.0), seed=6).eval()
    with torch.no_grad():
        model.cls_token.normal_()
        model.pos_embed.normal_()
        if registers:
            model.register_tokens.normal_()
        for name, param in model.named_parameters():
            if name.endswith("bias") or (".norm" in name and name.endswith("weight")):
                param.add_(0.1 * torch.randn_like(param))
    x = _image(7, 2, 40, 56)
    with torch.no_grad():
        out = model(x)
    ref = _reference_features(model, x)
    assert out.grid == (5, 7) and out.x_norm_regtokens.shape == (2, registers, 96)
    assert ref["patch"].abs().max() > 0.5  # not a trivially small output
    for ours, key in [(out.x_norm_clstoken, "cls"), (out.x_norm_regtokens, "reg"), (out.x_norm_patchtokens, "patch")]:
        torch.testing.assert_close(ours.double(), ref[key], atol=2e-5, rtol=0)


# ------------------------------------------------------------------------------------ image encoder


def _normalised(images: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    return (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


def _no_resize(*_: object) -> torch.Tensor:
    raise AssertionError("the encoder resized an image it must encode at its own size")


def test_encoder_at_224_does_not_resize_and_matches_the_backbone(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    encoder = DinoEncoder(DinoEncoderConfig(variant="dinov2_vits14", random_init_seed=1))
    assert not encoder.pretrained and encoder.patch_size == 14 and encoder.embed_dim == D
    images = np.random.default_rng(0).integers(0, 256, (1, 224, 224, 3), dtype=np.uint8)
    monkeypatch.setattr(image_encoder_module, "_resize_images", _no_resize)
    encoded = encoder.encode(images)
    assert encoded.patch_tokens.shape == (1, 256, D) and encoded.patch_tokens.dtype == np.float32
    assert encoded.global_descriptor.shape == (1, D) and encoded.grid == (16, 16)
    np.testing.assert_allclose(np.linalg.norm(encoded.global_descriptor, axis=1), 1.0, rtol=1e-5)
    with torch.no_grad():
        direct = encoder.model(_normalised(images))
    assert np.array_equal(encoded.patch_tokens, direct.x_norm_patchtokens.numpy())
    png = tmp_path / "frame.png"
    iio.imwrite(png, images[0])
    tokens = encode_image_file(encoder, png)
    assert tokens.shape == (256, D) and np.array_equal(tokens, encoded.patch_tokens[0])


def test_encoder_resizes_only_sizes_the_patches_do_not_tile(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, int]] = []
    original = image_encoder_module._resize_images

    def spy(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        calls.append(size)
        return original(x, size)

    monkeypatch.setattr(image_encoder_module, "_resize_images", spy)
    encoder = DinoEncoder(DinoEncoderConfig(variant="tiny"))
    rng = np.random.default_rng(1)
    assert encoder.encode(rng.integers(0, 256, (2, 48, 80, 3), dtype=np.uint8)).grid == (6, 10)
    assert calls == []
    assert encoder.encode(rng.integers(0, 256, (1, 60, 70, 3), dtype=np.uint8)).grid == (8, 9)  # 64 x 72
    assert calls == [(64, 72)]
    fixed = DinoEncoder(DinoEncoderConfig(variant="tiny", resize_to=32))
    assert fixed.encode(rng.integers(0, 256, (1, 64, 64, 3), dtype=np.uint8)).patch_tokens.shape == (1, 16, 96)
    assert calls[-1] == (32, 32)


def test_encoder_normalises_with_imagenet_statistics() -> None:
    encoder = DinoEncoder(DinoEncoderConfig(variant="tiny"))
    images = np.zeros((1, 16, 16, 3), dtype=np.uint8)
    images[..., 0], images[..., 1], images[..., 2] = 255, 128, 0
    x = encoder.preprocess(images)
    expected = [(1.0 - 0.485) / 0.229, (128 / 255 - 0.456) / 0.224, (0.0 - 0.406) / 0.225]
    torch.testing.assert_close(x[0, :, 0, 0], torch.tensor(expected), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match=r"expected uint8 RGB images \(B, H, W, 3\), got float32"):
        encoder.encode(np.zeros((1, 16, 16, 3), dtype=np.float32))


def test_encoder_with_weights_file_uses_them(tmp_path: Path) -> None:
    source = DinoVisionTransformer(PRESETS["tiny"], seed=11).eval()
    path = _save(source.state_dict(), tmp_path / "tiny.pth")
    encoder = DinoEncoder(DinoEncoderConfig(variant="tiny", weights=str(path), random_init_seed=0))
    assert encoder.pretrained
    images = np.random.default_rng(2).integers(0, 256, (1, 64, 64, 3), dtype=np.uint8)
    with torch.no_grad():
        expected = F.normalize(source(_normalised(images)).x_norm_clstoken, dim=-1).numpy()
    assert np.array_equal(encoder.encode(images).global_descriptor, expected)
    torch.save({}, path)
    with pytest.raises(CheckpointError, match=r"^.*tiny.pth: cls_token: missing"):
        DinoEncoder(DinoEncoderConfig(variant="tiny", weights=str(path)))


def test_encoder_config_is_validated() -> None:
    with pytest.raises(ValueError, match="variant: unknown 'dinov2_vitz14'"):
        DinoEncoderConfig(variant="dinov2_vitz14")
    with pytest.raises(ValueError, match="resize_to: must be 0 or a positive multiple of the patch size 14, got 100"):
        DinoEncoderConfig(resize_to=100)
    with pytest.raises(ValueError, match="device: not a torch device"):
        DinoEncoderConfig(device="banana")


def test_image_files_grey_rgba_and_bad(tmp_path: Path) -> None:
    encoder = DinoEncoder(DinoEncoderConfig(variant="tiny"))
    rgb = np.random.default_rng(3).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    iio.imwrite(tmp_path / "rgba.png", np.concatenate([rgb, np.full((64, 64, 1), 7, np.uint8)], axis=2))
    iio.imwrite(tmp_path / "grey.png", rgb[..., 0])
    expected = encoder.encode(rgb[None]).patch_tokens[0]
    assert np.array_equal(encode_image_file(encoder, tmp_path / "rgba.png"), expected)  # alpha is dropped
    grey = np.repeat(rgb[None, ..., :1], 3, axis=3)
    assert np.array_equal(encode_image_file(encoder, tmp_path / "grey.png"), encoder.encode(grey).patch_tokens[0])
    (tmp_path / "bad.png").write_bytes(b"\x89PNG not really")
    for name, problem in [("bad.png", r"not a readable image \(\w+\)"), ("none.png", "image not found")]:
        with pytest.raises(ImageFileError) as err:
            encode_image_file(encoder, tmp_path / name)
        assert re.fullmatch(f"{re.escape(str(tmp_path / name))}: <file>: {problem}", str(err.value)), str(err.value)
