"""DINO self-distillation pretraining: augmentations (shapes, dtypes, geometry, determinism), the loss and its
skipped same-view pairs, EMA and centring, the collapse monitor on hand-built collapsed and healthy teachers,
a short run that learns without collapsing, bit-exact resume, a strictly loadable export, one-line CLI errors.

Every test runs torch on one thread (a training run is bit-reproducible only there, and CI shares two cores).
The training data is synthetic: discs of random colours and sizes drifting over random backgrounds, so that
images differ in content, which is what DINO's objective assumes (Caron et al. 2021). On Wall frames, which
differ only by a dot of a few pixels, a random network gives every image the same output and the teacher
collapses at once (see the module docstring of navkit.learning.dino_pretrain and the lead's report)."""
from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

import navkit.learning.dino_pretrain as dino_pretrain
from navkit.learning.dino_pretrain import (
    DinoHead,
    DinoNetwork,
    DinoPretrainConfig,
    DinoPretrainError,
    DinoPretrainResult,
    color_jitter,
    dino_loss,
    ema_update,
    gaussian_blur,
    main,
    multi_crop,
    random_grayscale,
    random_resized_crop,
    ridge_r2,
    schedules,
    solarize,
    teacher_entropies,
    train,
    update_center,
)
from navkit.learning.wm_dataset import write_dataset
from navkit.perception.dinov2_checkpoint import load_dinov2
from navkit.perception.vit import PRESETS, DinoVisionTransformer

SIZE = 32


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _synthetic_frames(n: int, t: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(frames (n, t+1, S, S, 3) uint8, proprio (n, t+1, 2) = the disc's centre in [0, 1])."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] + 0.5
    frames = np.empty((n, t + 1, SIZE, SIZE, 3), np.uint8)
    proprio = np.empty((n, t + 1, 2), np.float32)
    for i in range(n):
        background, colour, radius = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3), rng.uniform(3, 7)
        p, v = rng.uniform(radius, SIZE - radius, 2), rng.normal(0, 1.5, 2)
        for k in range(t + 1):
            p = np.clip(p + v, radius, SIZE - radius)
            img = np.broadcast_to(background, (SIZE, SIZE, 3)).copy()
            img[(xx - p[0]) ** 2 + (yy - p[1]) ** 2 <= radius ** 2] = colour
            frames[i, k], proprio[i, k] = img.astype(np.uint8), p / SIZE
    return frames, proprio


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    frames, proprio = _synthetic_frames(12, 15, seed=1)
    n, t1 = frames.shape[:2]
    return write_dataset(tmp_path_factory.mktemp("dino") / "discs", frames=frames, proprio=proprio,
                         actions=np.zeros((n, t1 - 1, 2), np.float32), states=proprio.astype(np.float64),
                         env="synthetic")


def _cfg(data: Path, out: Path, **overrides: object) -> DinoPretrainConfig:
    """A CPU-test-sized run: 32 px global and 16 px local crops of the tiny ViT (patch 8), a 256-way head."""
    kwargs: dict[str, object] = dict(
        data=(str(data),), out=str(out), batch_size=16, global_crop_size=32, local_crop_size=16, local_crops=2,
        out_dim=256, head_hidden_dim=128, head_bottleneck_dim=64, lr=0.05, momentum_teacher=0.99,
        progress_bar=False, eval_every=0, val_fraction=0.25, checkpoint_every=1000)
    kwargs.update(overrides)
    return DinoPretrainConfig(**kwargs)  # type: ignore[arg-type]


def _images(seed: int, b: int = 4) -> torch.Tensor:
    return torch.rand(b, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- augmentations


def test_multi_crop_gives_normalised_float_views_of_the_configured_sizes_deterministically(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, tmp_path, local_crops=3)
    frames = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (5, 40, 40, 3), dtype=np.uint8))
    before = frames.clone()
    views = multi_crop(frames, cfg, torch.Generator().manual_seed(7))
    assert [tuple(v.shape) for v in views] == [(5, 3, 32, 32)] * 2 + [(5, 3, 16, 16)] * 3
    assert all(v.dtype == torch.float32 and bool(torch.isfinite(v).all()) for v in views)
    assert torch.equal(frames, before), "the input frames were modified"
    again = multi_crop(frames, cfg, torch.Generator().manual_seed(7))
    assert all(torch.equal(a, b) for a, b in zip(views, again)), "same seed, different views"
    other = multi_crop(frames, cfg, torch.Generator().manual_seed(8))
    assert all(not torch.equal(a, b) for a, b in zip(views, other)), "another seed gave an identical view"
    # Normalised with ImageNet statistics: a mid-grey frame lands near 0, not near 0.5.
    assert abs(float(views[0].mean())) < 1.0
    with pytest.raises(ValueError, match="uint8"):
        multi_crop(frames.float(), cfg, torch.Generator())


@pytest.mark.parametrize("name", ["crop", "jitter", "gray", "blur", "solarize"])
def test_each_augmentation_keeps_shape_dtype_range_and_is_deterministic(name: str) -> None:
    ops = {"crop": lambda x, g: random_resized_crop(x, 24, (0.2, 1.0), g),
           "jitter": lambda x, g: color_jitter(x, g, p=1.0),
           "gray": lambda x, g: random_grayscale(x, g, p=0.5),
           "blur": lambda x, g: gaussian_blur(x, g, p=1.0, sigma=(0.5, 2.0)),
           "solarize": lambda x, g: solarize(x, g, p=0.5)}
    op = ops[name]
    x = _images(0, b=16)
    out = op(x, torch.Generator().manual_seed(3))
    size = 24 if name == "crop" else SIZE
    assert out.shape == (16, 3, size, size) and out.dtype == torch.float32
    assert float(out.min()) >= -1e-6 and float(out.max()) <= 1.0 + 1e-6
    assert torch.equal(out, op(x, torch.Generator().manual_seed(3)))
    assert not torch.equal(out, op(x, torch.Generator().manual_seed(4)))
    assert not torch.equal(out[:, :, :SIZE, :SIZE], x[:, :, :size, :size]), "the augmentation did nothing"


def test_augmentation_geometry_and_photometry_are_what_they_claim() -> None:
    x = _images(1)
    g = torch.Generator().manual_seed(0)
    whole = random_resized_crop(x, SIZE, (1.0, 1.0), g, flip_p=0.0, ratio=(1.0, 1.0))
    assert torch.allclose(whole, x, atol=1e-5), "a full-frame crop at the same size must be the frame"
    flipped = random_resized_crop(x, SIZE, (1.0, 1.0), g, flip_p=1.0, ratio=(1.0, 1.0))
    assert torch.allclose(flipped, x.flip(-1), atol=1e-5), "flip must mirror left-right"
    gray = random_grayscale(x, g, p=1.0)
    assert torch.equal(gray[:, 0], gray[:, 1]) and torch.equal(gray[:, 1], gray[:, 2])
    solar = solarize(x, g, p=1.0)
    assert torch.equal(solar, torch.where(x >= 0.5, 1.0 - x, x))
    flat = torch.full((2, 3, SIZE, SIZE), 0.3)
    assert torch.allclose(gaussian_blur(flat, g, p=1.0), flat, atol=1e-6), "blur must keep a flat image flat"
    blurred = gaussian_blur(x, g, p=1.0, sigma=(1.5, 1.5))
    assert float(blurred.std()) < 0.7 * float(x.std()), "blur must smooth noise"
    for op in (lambda t: color_jitter(t, g, p=0.0), lambda t: random_grayscale(t, g, p=0.0),
               lambda t: gaussian_blur(t, g, p=0.0), lambda t: solarize(t, g, p=0.0)):
        assert torch.equal(op(x), x), "probability 0 must leave images untouched"


# ---------------------------------------------------------------- loss, EMA, centring, monitor


def _peaked(classes: list[int], k: int = 16, height: float = 1.0) -> torch.Tensor:
    """Logits in [-1, 1] like the head's (cosines): ``height`` at each row's class, 0 elsewhere."""
    out = torch.zeros(len(classes), k)
    out[torch.arange(len(classes)), torch.tensor(classes)] = height
    return out


def test_dino_loss_is_lower_when_student_agrees_with_teacher_and_skips_same_view_pairs() -> None:
    a, b = [0, 3, 5, 7], [1, 4, 6, 2]
    teacher = [_peaked(a), _peaked(a)]
    center = torch.zeros(1, 16)
    agree = dino_loss([_peaked(a)] * 4, teacher, center, 0.1, 0.04)
    disagree = dino_loss([_peaked(b)] * 4, teacher, center, 0.1, 0.04)
    assert float(agree) < float(disagree) - 5.0, (float(agree), float(disagree))
    # Each student view equal to the teacher on the SAME view but not on the other one: only cross-view pairs
    # count, so this is as bad as disagreeing, and swapping the student's views makes it as good as agreeing.
    teacher_ab = [_peaked(a), _peaked(b)]
    own_view = dino_loss([_peaked(a), _peaked(b)], teacher_ab, center, 0.1, 0.04)
    cross_view = dino_loss([_peaked(b), _peaked(a)], teacher_ab, center, 0.1, 0.04)
    assert float(cross_view) < float(own_view) - 5.0
    assert math.isclose(float(cross_view), float(dino_loss([_peaked(a)] * 2, [_peaked(a)] * 2, center, 0.1, 0.04)),
                        rel_tol=1e-6)
    with pytest.raises(ValueError, match="two views"):
        dino_loss([_peaked(a)], [_peaked(a)], center, 0.1, 0.04)


def _network(seed: int) -> DinoNetwork:
    backbone = DinoVisionTransformer(PRESETS["tiny"], seed=seed)
    return DinoNetwork(backbone, DinoHead(backbone.embed_dim, 32, 16, 8, seed=seed))


def test_ema_with_momentum_one_keeps_the_teacher_and_with_zero_copies_the_student() -> None:
    student, teacher = _network(0), _network(1)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    ema_update(teacher, student, 1.0)
    assert all(torch.equal(v, before[k]) for k, v in teacher.state_dict().items())
    ema_update(teacher, student, 0.0)
    assert all(torch.equal(v, student.state_dict()[k]) for k, v in teacher.state_dict().items())
    half = _network(1)
    ema_update(half, student, 0.5)
    key = "backbone.blocks.0.attn.qkv.weight"
    assert torch.allclose(half.state_dict()[key], 0.5 * (before[key] + student.state_dict()[key]))


def test_centring_moves_the_centre_towards_the_batch_mean() -> None:
    logits = torch.randn(64, 16, generator=torch.Generator().manual_seed(0)) + torch.linspace(-2, 2, 16)
    target = logits.mean(0, keepdim=True)
    center = torch.zeros(1, 16)
    new = update_center(center, logits, 0.9)
    assert torch.allclose(new, 0.1 * target)
    assert float((new - target).norm()) < float((center - target).norm())
    for _ in range(200):
        new = update_center(new, logits, 0.9)
    assert torch.allclose(new, target, atol=1e-5)
    assert torch.equal(update_center(center, logits, 1.0), center)


def test_collapse_monitor_tells_both_collapses_from_a_healthy_teacher() -> None:
    k, center = 16, torch.zeros(1, 16)
    one_dim = teacher_entropies(_peaked([3] * 8, k), center, 0.04)  # every image -> prototype 3
    uniform = teacher_entropies(torch.zeros(8, k), center, 0.04)  # every output uniform
    healthy = teacher_entropies(_peaked(list(range(8)), k), center, 0.04)  # 8 images, 8 sharp prototypes
    assert one_dim[0] < 0.01 and one_dim[0] - one_dim[1] < 0.01
    assert math.isclose(uniform[1], math.log(k), rel_tol=1e-5) and uniform[0] - uniform[1] < 1e-5
    assert healthy[0] - healthy[1] > math.log(8) - 0.01, healthy


def test_schedules_follow_dino() -> None:
    cfg = DinoPretrainConfig(steps=1000, batch_size=256, lr=5e-4)
    at = [schedules(cfg, s) for s in (0, 50, 100, 300, 999)]
    assert at[0]["lr"] == 0.0 and math.isclose(at[1]["lr"], 2.5e-4) and math.isclose(at[2]["lr"], 5e-4)
    assert math.isclose(at[4]["lr"], 1e-6, rel_tol=1e-3)
    assert math.isclose(at[0]["momentum"], 0.996) and math.isclose(at[4]["momentum"], 1.0)
    assert math.isclose(at[0]["weight_decay"], 0.04) and math.isclose(at[4]["weight_decay"], 0.4)
    assert at[0]["teacher_temp"] == 0.04 and math.isclose(at[1]["teacher_temp"], 0.04 + 0.03 * 50 / 300)
    assert at[3]["teacher_temp"] == at[4]["teacher_temp"] == 0.07


def test_ridge_probe_scores_a_linear_target_near_one_and_noise_near_zero() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(600, 20, generator=g)
    y = x @ torch.randn(20, 2, generator=g)
    assert ridge_r2(x[:400], y[:400], x[400:], y[400:]) > 0.99
    noise = torch.randn(600, 2, generator=g)
    assert abs(ridge_r2(x[:400], noise[:400], x[400:], noise[400:])) < 0.1
    # More features than frames (the dual form), low-rank like pixels of a rendered scene.
    wide = x @ torch.randn(20, 1000, generator=g) + 0.01 * torch.randn(600, 1000, generator=g)
    assert ridge_r2(wide[:400], y[:400], wide[400:], y[400:]) > 0.95


# ---------------------------------------------------------------- training


@pytest.fixture(scope="module")
def trained(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[DinoPretrainConfig, DinoPretrainResult]:
    # Teacher temperature held at 0.04: its warm-up raises the loss's floor (the teacher's entropy) on purpose,
    # which would hide whether the student learns in so short a run.
    cfg = _cfg(dataset, tmp_path_factory.mktemp("run"), steps=40, teacher_temp=0.04)
    return cfg, train(cfg)


def test_a_short_run_lowers_the_loss_and_does_not_collapse(trained: tuple[DinoPretrainConfig,
                                                                         DinoPretrainResult]) -> None:
    cfg, result = trained
    losses = [h["loss"] for h in result.history]
    assert len(losses) == 40 and all(math.isfinite(v) for v in losses)
    # Start: the centre is warm-started, so the targets are near uniform and the loss near log K = 5.55 (measured
    # 5.1-5.3 over seeds 0-2); 40 steps later it is 2.8-3.8.
    start, end = float(np.mean(losses[:3])), float(np.mean(losses[-10:]))
    assert start > 4.5 and end < start - 0.5, (start, end)
    # Not collapsed. A one-prototype collapse drives the entropy of the batch-mean teacher distribution to 0; a
    # uniform collapse lifts the mean per-image entropy up to it; both drive their difference, the mutual
    # information between image and prototype, to 0 (on Wall frames, where the teacher does collapse, it is
    # < 0.01 nats). A batch holds 16 images, so a sharp, healthy teacher has a mean-distribution entropy near
    # log 16 = 2.8 and at most that much information (measured 2.5-3.6 and 0.8-1.1 over seeds 0-2). Required at
    # each of the last 10 steps: the spread of >= 4 equally used prototypes and >= 0.3 nats about the image.
    for h in result.history[-10:]:
        assert h["entropy_mean"] >= math.log(4), h
        assert h["mutual_information"] >= 0.3, h
    assert result.step == cfg.steps and (result.run_dir / "curve.csv").is_file()
    assert len((result.run_dir / "curve.csv").read_text().splitlines()) == 41
    assert any(p.name.startswith("events.out.tfevents") for p in result.run_dir.iterdir()), "no TensorBoard log"


def test_a_teacher_that_cannot_tell_images_apart_is_reported_as_collapsed(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """The negative control of the test above: identical frames without photometric augmentation give identical
    views, so the teacher's output cannot depend on the image; the monitor must say so and the run must warn."""
    frames = np.full((4, 10, SIZE, SIZE, 3), 90, np.uint8)
    proprio = np.zeros((4, 10, 2), np.float32)
    data = write_dataset(tmp_path / "same", frames=frames, proprio=proprio, actions=np.zeros((4, 9, 2), np.float32),
                         states=proprio.astype(np.float64), env="synthetic")
    monkeypatch.setattr(dino_pretrain, "COLLAPSE_WINDOW", 3)
    result = train(_cfg(data, tmp_path / "runs", steps=4, jitter_p=0.0, grayscale_p=0.0, solarize_p=0.0))
    assert max(h["mutual_information"] for h in result.history) < 1e-3
    err = capsys.readouterr().err
    assert "collapsed" in err and len([line for line in err.splitlines() if "warning" in line]) == 1, err


def test_the_exported_teacher_loads_strictly_as_the_tiny_variant(trained: tuple[DinoPretrainConfig,
                                                                                DinoPretrainResult]) -> None:
    cfg, result = trained
    assert result.teacher_path is not None and result.metadata_path is not None
    model = load_dinov2(result.teacher_path, variant="tiny")
    teacher = torch.load(result.run_dir / "last.pt", weights_only=True)["teacher"]
    for name, value in model.state_dict().items():
        assert torch.equal(value, teacher[f"backbone.{name}"]), name
    student = torch.load(result.run_dir / "last.pt", weights_only=True)["student"]
    assert not torch.equal(teacher["backbone.blocks.0.attn.qkv.weight"], student["backbone.blocks.0.attn.qkv.weight"])
    doc = json.loads(result.metadata_path.read_text())
    assert doc["variant"] == "tiny" and doc["steps"] == 40 and doc["image_size"] == 32
    assert doc["datasets"][0]["env"] == "synthetic" and "Caron" in doc["citation"] and "Oquab" in doc["citation"]
    assert set(doc["probe_r2_held_out"]) == {"r2_cls", "r2_patch_mean"}
    assert "load_dinov2" in doc["load"] and doc["config"]["seed"] == cfg.seed


def test_resume_is_exact(dataset: Path, tmp_path: Path) -> None:
    # Batch 32 of 144 training frames: 4 steps per epoch, so the resumed half crosses an epoch boundary and
    # unfreezes the last layer (whose optimiser state starts after the resume).
    common = dict(steps=6, batch_size=32, teacher_temp_warmup_fraction=0.5, warmup_fraction=0.5)
    whole = train(_cfg(dataset, tmp_path / "whole", **common))
    first = train(_cfg(dataset, tmp_path / "halves", **common), until=3)
    assert first.step == 3 and first.teacher_path is None
    assert torch.load(first.run_dir / "last.pt", weights_only=True)["step"] == 3
    second = train(_cfg(dataset, tmp_path / "halves", **common))
    assert second.step == 6 and second.teacher_path is not None and whole.teacher_path is not None
    assert [h["loss"] for h in first.history + second.history] == [h["loss"] for h in whole.history]
    a = torch.load(whole.run_dir / "last.pt", weights_only=True)
    b = torch.load(second.run_dir / "last.pt", weights_only=True)
    for part in ("student", "teacher"):
        assert all(torch.equal(v, b[part][k]) for k, v in a[part].items()), part
    assert torch.equal(a["center"], b["center"])
    exported_a = torch.load(whole.teacher_path, weights_only=True)
    exported_b = torch.load(second.teacher_path, weights_only=True)
    assert all(torch.equal(v, exported_b[k]) for k, v in exported_a.items())
    assert (whole.run_dir / "curve.csv").read_text() == (second.run_dir / "curve.csv").read_text()
    with pytest.raises(DinoPretrainError, match="batch_size"):
        train(_cfg(dataset, tmp_path / "halves", **dict(common, batch_size=16)))


# ---------------------------------------------------------------- command line


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's errors
        code = int(exc.code or 0)
    err = capsys.readouterr().err.strip()
    return code, err


@pytest.mark.parametrize("argv,fragment", [
    (["--data", "{missing}"], "missing"),
    (["--data", "{data}", "--steps", "0"], "--steps"),
    (["--steps", "5"], "--data"),
    (["--data", "{data}", "--variant", "vitz"], "--variant"),
    (["--data", "{data}", "--batch-size", "4096"], "batch_size"),
    (["--data", "{data}", "--config", "{bad_yaml}"], "nonsense"),
])
def test_bad_input_is_one_line_and_exit_2(argv: list[str], fragment: str, dataset: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("nonsense: 3\n")
    names = {"missing": str(tmp_path / "missing"), "data": str(dataset), "bad_yaml": str(bad_yaml)}
    argv = [a.format(**names) for a in argv] + ["--out", str(tmp_path / "runs"), "--quiet"]
    code, err = _cli(argv, capsys)
    assert code == 2, err
    assert len(err.splitlines()) == 1 and fragment in err and "Traceback" not in err, err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("*.pth"))


def test_cli_trains_exports_and_resumes_with_a_config_file(dataset: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "dino.yaml"
    config.write_text("batch_size: 16\nglobal_crop_size: 32\nlocal_crop_size: 16\nlocal_crops: 2\nout_dim: 64\n"
                      "head_hidden_dim: 32\nhead_bottleneck_dim: 16\nval_fraction: 0.25\n")
    argv = ["--data", str(dataset), "--steps", "2", "--out", str(tmp_path / "runs"), "--config", str(config),
            "--quiet"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    weights = tmp_path / "runs" / "tiny_s0" / "teacher_backbone.pth"
    assert f"wrote {weights}" in out and "cls" in out
    load_dinov2(weights, "tiny")
    assert main(argv) == 0, "running the finished run again must resume (and re-export), not fail"
    assert main(argv + ["--fresh"]) == 0
