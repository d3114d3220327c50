"""``navkit perception encode`` and ``navkit wm collect`` from the command line: outputs and one-line errors."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np


def _navkit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "navkit.cli.main", *args], capture_output=True, text=True,
                          timeout=300)


def test_encode_writes_patch_tokens_and_refuses_a_bad_checkpoint(tmp_path: Path) -> None:
    import imageio.v3 as iio

    image = tmp_path / "img.png"
    iio.imwrite(image, (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8))
    out = tmp_path / "feats.npy"
    done = _navkit("perception", "encode", "--encoder", "tiny", "--image", str(image), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert np.load(out).shape == (64, 96)  # tiny: patch 8 on 64 px, 96 dims
    assert "RANDOM weights" in done.stderr
    bad = _navkit("perception", "encode", "--weights", str(image), "--image", str(image), "--out", str(out))
    lines = [line for line in bad.stderr.splitlines() if line.startswith("navkit: error")]
    assert bad.returncode == 2 and len(lines) == 1 and str(image) in lines[0], bad.stderr
    assert "Traceback" not in bad.stderr


def test_wm_collect_writes_a_dataset_and_refuses_bad_input(tmp_path: Path) -> None:
    from navkit.learning.wm_dataset import load_dataset

    out = tmp_path / "wall"
    done = _navkit("wm", "collect", "--env", "wall", "--episodes", "3", "--steps", "10", "--out", str(out),
                   "--quiet")
    assert done.returncode == 0, done.stderr
    data = load_dataset(out)
    assert data.frames.shape[:2] == (3, 11)
    again = _navkit("wm", "collect", "--env", "wall", "--episodes", "3", "--steps", "10", "--out", str(out))
    assert again.returncode == 2 and "Traceback" not in again.stderr  # no overwrite without --overwrite
    assert _navkit("wm").returncode == 2
    assert _navkit("wm", "collect", "--env", "nope", "--out", str(tmp_path / "x")).returncode == 2
