"""World-model datasets: collect -> load round trip, determinism, refusal to clobber, every kind of corrupt
file as one NavkitError line naming the file, and training windows that align frames with actions."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import navkit.learning.wm_dataset as wm_dataset
from navkit.common.errors import NavkitError
from navkit.learning.wm_collect_cli import main as collect_main
from navkit.learning.wm_dataset import WmDatasetError, collect, load_dataset, write_dataset
from navkit.sim.wm_envs import make_wm_env


@pytest.fixture(scope="module")
def wall_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wm") / "wall"
    return collect("wall", 6, 12, out, seed=3, progress=False, image_size=16)


def _copy(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def _one_line_error(path: Path, *fragments: str, verify: bool = True) -> str:
    with pytest.raises(WmDatasetError) as info:
        load_dataset(path, verify_checksums=verify)
    message = str(info.value)
    assert "\n" not in message and len(message) < 400, message
    for fragment in fragments:
        assert fragment in message, message
    return message


# ---------------------------------------------------------------- round trip


@pytest.mark.parametrize("env_name,n,t", [("wall", 3, 10), ("pointmaze", 2, 6), ("warehouse", 1, 4)])
def test_collect_then_load_gives_the_rollouts_and_metadata(tmp_path: Path, env_name: str, n: int, t: int) -> None:
    out = collect(env_name, n, t, tmp_path / env_name, seed=5, progress=False, image_size=16)
    ds = load_dataset(out, verify_checksums=True)
    assert (ds.n_traj, ds.traj_len, ds.image_size) == (n, t, (16, 16))
    assert ds.frames.shape == (n, t + 1, 16, 16, 3) and ds.frames.dtype == np.uint8
    assert ds.actions.shape == (n, t, 2) and ds.actions.dtype == np.float32
    assert ds.proprio.dtype == np.float32 and ds.states.dtype == np.float64
    assert isinstance(ds.frames, np.memmap), "not memory-mapped"
    meta = ds.metadata
    assert meta["env"] == env_name and meta["seed"] == 5 and meta["n_traj"] == n and meta["traj_len"] == t
    assert meta["image_size"] == [16, 16] and meta["frameskip"] == 1 and len(meta["episode_seeds"]) == n
    assert meta["navkit_version"] and meta["created"] and isinstance(meta["env_config"], dict)
    # Replaying the stored actions from each recorded seed reproduces every stored frame, proprio and state:
    # frame t+1 is what action t led to.
    env = make_wm_env(env_name, image_size=16)
    try:
        for i in range(n):
            obs = env.reset(meta["episode_seeds"][i])
            np.testing.assert_array_equal(obs.visual, ds.frames[i, 0])
            for k in range(t):
                obs = env.step(ds.actions[i, k])
                np.testing.assert_array_equal(obs.visual, ds.frames[i, k + 1])
                np.testing.assert_array_equal(obs.proprio, ds.proprio[i, k + 1])
                np.testing.assert_array_equal(env.state(), ds.states[i, k + 1])
    finally:
        env.close()
    assert not list(tmp_path.glob(".*partial*")), "a temporary folder was left behind"


def test_collect_is_deterministic_per_seed(tmp_path: Path, wall_dataset: Path) -> None:
    again = load_dataset(collect("wall", 6, 12, tmp_path / "again", seed=3, progress=False, image_size=16))
    first = load_dataset(wall_dataset)
    for name in ("frames", "proprio", "actions", "states"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    other = load_dataset(collect("wall", 6, 12, tmp_path / "other", seed=4, progress=False, image_size=16))
    assert not np.array_equal(first.states, other.states)


def test_collect_refuses_to_overwrite_unless_asked(tmp_path: Path) -> None:
    out = collect("wall", 1, 3, tmp_path / "d", progress=False, image_size=16)
    with pytest.raises(WmDatasetError, match="already exists"):
        collect("wall", 1, 3, out, progress=False, image_size=16)
    collect("wall", 2, 3, out, progress=False, image_size=16, overwrite=True)
    assert load_dataset(out).n_traj == 2
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("...")
    with pytest.raises(WmDatasetError, match="not a navkit world-model dataset"):
        collect("wall", 1, 3, precious, progress=False, image_size=16, overwrite=True)
    assert (precious / "thesis.tex").exists()


def test_an_interrupted_collection_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def interrupted(*args: object) -> bool:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return True

    monkeypatch.setattr(wm_dataset, "_rollout", interrupted)
    with pytest.raises(KeyboardInterrupt):
        collect("wall", 3, 3, tmp_path / "d", progress=False, image_size=16)
    assert list(tmp_path.iterdir()) == []


def test_bad_collect_arguments_are_navkit_errors(tmp_path: Path) -> None:
    for kwargs in ({"env_name": "cartpole"}, {"n_traj": 0}, {"traj_len": -1}, {"image_size": 4}, {"seed": -1}):
        args = {"env_name": "wall", "n_traj": 1, "traj_len": 2, "out": tmp_path / "x", "progress": False} | kwargs
        with pytest.raises(NavkitError):
            collect(**args)


# ---------------------------------------------------------------- corruption


def test_missing_dataset_and_missing_files(tmp_path: Path, wall_dataset: Path) -> None:
    _one_line_error(tmp_path / "nope", "no such dataset folder")
    (tmp_path / "file").write_text("x")
    _one_line_error(tmp_path / "file", "is a file")
    d = _copy(wall_dataset, tmp_path / "d")
    (d / "actions.npy").unlink()
    _one_line_error(d, "actions.npy", "missing file")
    (d / "metadata.json").unlink()
    _one_line_error(d, "metadata.json", "missing")


@pytest.mark.parametrize("name", ["frames", "proprio", "actions", "states"])
def test_truncated_array_is_named(tmp_path: Path, wall_dataset: Path, name: str) -> None:
    d = _copy(wall_dataset, tmp_path / "d")
    raw = (d / f"{name}.npy").read_bytes()
    (d / f"{name}.npy").write_bytes(raw[: len(raw) - 37])
    _one_line_error(d, f"{name}.npy", "truncated")
    (d / f"{name}.npy").write_bytes(raw[:40])  # inside the header
    _one_line_error(d, f"{name}.npy", "not a readable .npy file")
    (d / f"{name}.npy").write_bytes(raw + b"junk")
    _one_line_error(d, f"{name}.npy", "unexpected bytes")


@pytest.mark.parametrize("offset", [0.1, 0.35, 0.5, 0.8, 0.97])
def test_flipped_bytes_in_metadata_are_caught(tmp_path: Path, wall_dataset: Path, offset: float) -> None:
    d = _copy(wall_dataset, tmp_path / "d")
    raw = bytearray((d / "metadata.json").read_bytes())
    i = int(offset * len(raw))
    while chr(raw[i]).isspace():  # a flipped space would be harmless (and is rightly accepted)
        i += 1
    raw[i] ^= 0x5A
    (d / "metadata.json").write_bytes(bytes(raw))
    _one_line_error(d, "metadata.json")


def test_invalid_utf8_and_edited_metadata(tmp_path: Path, wall_dataset: Path) -> None:
    d = _copy(wall_dataset, tmp_path / "d")
    raw = (d / "metadata.json").read_bytes()
    (d / "metadata.json").write_bytes(raw[:10] + b"\xff\xfe" + raw[12:])
    _one_line_error(d, "metadata.json", "UTF-8")
    doc = json.loads(raw)
    doc["traj_len"] = 13
    (d / "metadata.json").write_text(json.dumps(doc))
    _one_line_error(d, "metadata.json", "checksum")
    del doc["metadata_sha256"]  # an honest hand edit: no checksum, so the shapes must catch it
    (d / "metadata.json").write_text(json.dumps(doc))
    _one_line_error(d, "frames.npy", "wrong shape", "(6, 14, 16, 16, 3)")
    doc["n_traj"] = "six"
    (d / "metadata.json").write_text(json.dumps(doc))
    _one_line_error(d, "metadata.json", "n_traj")


def test_wrong_shape_dtype_and_values(tmp_path: Path, wall_dataset: Path) -> None:
    d = _copy(wall_dataset, tmp_path / "d")
    actions = np.load(d / "actions.npy")
    np.save(d / "actions.npy", actions[:, :-1])  # one action short per trajectory
    _one_line_error(d, "actions.npy", "wrong shape", "(6, 12, 2)", "(6, 11, 2)")
    np.save(d / "actions.npy", actions.astype(np.float64))
    _one_line_error(d, "actions.npy", "wrong dtype", "float32", "float64")
    bad = actions.copy()
    bad[2, 5, 1] = np.nan
    np.save(d / "actions.npy", bad)
    _one_line_error(d, "actions.npy", "non-finite", "[2, 5, 1]", verify=False)
    bad[2, 5, 1] = 3.0
    np.save(d / "actions.npy", bad)
    _one_line_error(d, "actions.npy", "outside", verify=False)
    np.save(d / "actions.npy", actions)
    frames = np.load(d / "frames.npy")
    frames[0, 0, 0, 0, 0] ^= 0xFF  # flipped image byte: only the checksum can see it
    np.save(d / "frames.npy", frames)
    load_dataset(d)
    _one_line_error(d, "frames.npy", "sha256")


def test_cli_reports_bad_data_and_bad_options_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "w"
    assert collect_main(["--env", "wall", "--episodes", "2", "--steps", "5", "--out", str(out), "--size", "16",
                         "--quiet"]) == 0
    assert load_dataset(out).n_traj == 2
    assert "wrote" in capsys.readouterr().out
    assert collect_main(["--env", "wall", "--episodes", "2", "--steps", "5", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already exists" in err
    assert collect_main(["--env", "wall", "--episodes", "1", "--steps", "5", "--out", str(tmp_path / "m"),
                         "--maze", "medium"]) == 2
    assert "--maze" in capsys.readouterr().err
    assert collect_main(["--env", "warehouse", "--episodes", "1", "--steps", "5", "--out", str(tmp_path / "s"),
                         "--scenario", str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing.yaml" in err
    for argv in (["--env", "wall", "--episodes", "0", "--steps", "5", "--out", "x"],
                 ["--env", "nope", "--episodes", "1", "--steps", "5", "--out", "x"],
                 ["--env", "wall", "--steps", "5", "--out", "x"]):
        with pytest.raises(SystemExit) as info:
            collect_main(argv)
        assert info.value.code == 2
        assert capsys.readouterr().err.count("\n") == 1


# ---------------------------------------------------------------- windows


@pytest.fixture(scope="module")
def numbered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Frame (i, t) is filled with 50 i + t; proprio (i, t) = (i, t); action (i, t) = (t, 100 + i)."""
    n, t = 3, 30
    ii, tt = np.meshgrid(np.arange(n), np.arange(t + 1), indexing="ij")
    frames = np.broadcast_to((50 * ii + tt).astype(np.uint8)[..., None, None, None], (n, t + 1, 4, 5, 3))
    proprio = np.stack([ii, tt], axis=-1).astype(np.float32)
    ia, ta = np.meshgrid(np.arange(n), np.arange(t), indexing="ij")
    actions = np.stack([ta, 100 + ia], axis=-1).astype(np.float32)
    states = np.stack([ii, tt, -tt], axis=-1).astype(np.float64)
    return write_dataset(tmp_path_factory.mktemp("wm") / "numbered", frames=frames, proprio=proprio,
                         actions=actions, states=states, env="synthetic", action_low=[0, 0], action_high=[200, 200])


@pytest.mark.parametrize("num_hist,num_pred,frameskip", [(3, 1, 5), (1, 1, 1), (2, 2, 3)])
def test_windows_align_frames_with_the_actions_between_them(numbered: Path, num_hist: int, num_pred: int,
                                                           frameskip: int) -> None:
    ds = load_dataset(numbered)
    assert ds.image_size == (4, 5)
    windows = ds.windows(num_hist, num_pred, frameskip)
    n, k = num_hist + num_pred, frameskip
    assert len(windows) == 3 * (30 - n * k + 1)
    seen_last = False
    for index in range(len(windows)):
        w = windows[index]
        i, t0 = windows.locate(index)
        assert w["visual"].shape == (n, 4, 5, 3) and w["visual"].dtype == np.uint8
        assert w["proprio"].shape == (n, 2) and w["action"].shape == (n, 2 * k) and w["state"].shape == (n, 3)
        steps = t0 + k * np.arange(n)
        np.testing.assert_array_equal(w["visual"][:, 0, 0, 0], 50 * i + steps)
        np.testing.assert_array_equal(w["proprio"], np.stack([np.full(n, i), steps], axis=1))
        np.testing.assert_array_equal(w["state"][:, 1], steps)
        # Row j: actions t0+jk ... t0+jk+k-1 (each (t, 100 + i)), concatenated.
        expected = np.stack([np.stack([steps + m, np.full(n, 100 + i)], axis=1) for m in range(k)], axis=1)
        np.testing.assert_array_equal(w["action"], expected.reshape(n, 2 * k))
        seen_last |= bool(steps[-1] + k - 1 == 29)
    assert seen_last, "the last action of a trajectory was never in a window"


def test_window_selection_split_and_limits(numbered: Path) -> None:
    ds = load_dataset(numbered)
    train, val = ds.split(val_fraction=0.34, seed=0)
    assert len(val) == 1 and sorted([*train, *val]) == [0, 1, 2]
    windows = ds.windows(3, 1, 5, trajectories=val)
    assert {windows.locate(j)[0] for j in range(len(windows))} == {int(val[0])}
    assert len(list(iter(windows))) == len(windows) == 30 - 4 * 5 + 1
    with pytest.raises(IndexError):
        windows[len(windows)]
    with pytest.raises(WmDatasetError, match="need 32 actions"):
        ds.windows(3, 1, 8)
    with pytest.raises(WmDatasetError, match="trajectories"):
        ds.windows(1, 1, 1, trajectories=[3])
    stats = ds.statistics()
    assert stats["action_mean"].shape == (2,) and stats["proprio_std"].min() > 0
