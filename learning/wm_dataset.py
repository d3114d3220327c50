"""Offline random-trajectory datasets for a DINO-WM world model: collect, store, validate, slice.

DINO-WM (Zhou et al. 2025, "DINO-WM: World Models on Pre-trained Visual Features enable
Zero-shot Planning", arXiv 2411.04983) trains its predictor on trajectories of random
actions (PointMaze: 2,000 x 100 steps; Wall: 1,920 x 50), each a sequence of images,
proprioception and actions, sliced into windows of ``num_hist + num_pred`` frames taken
every ``frameskip`` steps with the actions in between concatenated. This module writes such
datasets from the environments of :mod:`navkit.sim.wm_envs` (:func:`collect`, behind
``navkit wm collect``) and reads them back (:func:`load_dataset`) as a :class:`WmDataset`.

Format: a folder, chosen so that a 2.5 GB dataset (2,000 x 101 frames of 64 x 64 x 3) opens in
milliseconds and is read lazily by the training loop (``np.load(mmap_mode="r")``)::

    metadata.json   format, env and its config, counts, image size, seeds, navkit version,
                    creation time, per-file dtype/shape/sha256, and a sha256 of itself
    frames.npy      uint8   (N, T+1, H, W, 3)   frame t is observed before action t
    proprio.npy     float32 (N, T+1, P)
    actions.npy     float32 (N, T, A)           action t leads from frame t to frame t+1
    states.npy      float64 (N, T+1, S)         simulator states (planner evaluation, debugging)

Robustness: arrays are streamed into a hidden sibling folder and renamed into place only when
complete (an interrupted run leaves no half dataset under the real name); an existing dataset
is replaced only when asked, and a folder that is not a dataset never. Loading checks every
file against the metadata (missing, truncated, wrong dtype or shape, non-finite numbers,
metadata edited or corrupted) and reports a problem as one :class:`WmDatasetError` line
naming the file and field, never a traceback.
"""
from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import json
import math
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from navkit.common.errors import FieldError, brief
from navkit.sim.wm_envs import MAX_IMAGE_SIZE, MIN_IMAGE_SIZE, WM_ENV_NAMES, WmEnv, make_wm_env

FORMAT = "navkit-wm-dataset"
FORMAT_VERSION = 1
METADATA_FILE = "metadata.json"
ARRAY_DTYPES: dict[str, np.dtype[Any]] = {
    "frames": np.dtype(np.uint8), "proprio": np.dtype(np.float32), "actions": np.dtype(np.float32),
    "states": np.dtype(np.float64)}
"""The arrays of a dataset (each ``<name>.npy``) and their dtypes."""
MAX_TRAJECTORIES = 1_000_000
MAX_TRAJ_LEN = 100_000
MAX_ATTEMPTS = 20
"""Draws of one trajectory before collection gives up (the warehouse AGV redraws after a collision)."""
CITATION = "Zhou et al. 2025, DINO-WM: World Models on Pre-trained Visual Features enable Zero-shot Planning, " \
           "arXiv 2411.04983"


class WmDatasetError(FieldError):
    """A dataset (or a request to write one) is unusable; names the file and the field at fault."""


def _one_line(exc: BaseException) -> str:
    """An exception's message on one line (numpy's can span several)."""
    return " ".join(str(exc).split()) or type(exc).__name__


# ---------------------------------------------------------------- the dataset


class WmWindow(TypedDict):
    """One training window (``n = num_hist + num_pred`` frames): torch's default collate stacks these."""

    visual: np.ndarray
    """(n, H, W, 3) uint8: frames t, t+k, ..., t+(n-1)k."""
    proprio: np.ndarray
    """(n, P) float32 at the same instants."""
    action: np.ndarray
    """(n, k*A) float32: row j is actions t+jk .. t+jk+k-1 concatenated, the ones that lead from frame j to
    frame j+1 (the last row leads beyond the window, as in DINO-WM)."""
    state: np.ndarray
    """(n, S) float64 at the frames' instants."""


class WmWindows(Sequence[WmWindow]):
    """Every window of every selected trajectory (map-style: a torch ``DataLoader`` can shuffle it)."""

    def __init__(self, dataset: WmDataset, num_hist: int, num_pred: int, frameskip: int,
                 trajectories: np.ndarray) -> None:
        self.dataset = dataset
        self.num_hist, self.num_pred, self.frameskip = num_hist, num_pred, frameskip
        self.num_frames = num_hist + num_pred
        self.trajectories = trajectories
        self.span = self.num_frames * frameskip
        """Actions one window covers; a trajectory of T actions has T - span + 1 windows."""
        self.per_trajectory = dataset.traj_len - self.span + 1

    def __len__(self) -> int:
        return len(self.trajectories) * self.per_trajectory

    def locate(self, index: int) -> tuple[int, int]:
        """(trajectory, first step) of window ``index``."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"window {index} out of range ({len(self)} windows)")
        index %= len(self)
        return int(self.trajectories[index // self.per_trajectory]), index % self.per_trajectory

    def __getitem__(self, index: int) -> WmWindow:  # type: ignore[override]
        i, t = self.locate(int(index))
        d, k, n = self.dataset, self.frameskip, self.num_frames
        stop = t + self.span
        return WmWindow(
            visual=np.ascontiguousarray(d.frames[i, t:stop:k]),
            proprio=np.ascontiguousarray(d.proprio[i, t:stop:k]),
            action=np.ascontiguousarray(d.actions[i, t:stop]).reshape(n, k * d.action_dim),
            state=np.ascontiguousarray(d.states[i, t:stop:k]))

    def __iter__(self) -> Iterator[WmWindow]:
        for index in range(len(self)):
            yield self[index]


@dataclass(frozen=True)
class WmDataset:
    """A loaded, validated dataset; the arrays are read-only memory maps."""

    path: Path
    metadata: dict[str, Any]
    frames: np.ndarray
    proprio: np.ndarray
    actions: np.ndarray
    states: np.ndarray

    @property
    def env(self) -> str:
        return str(self.metadata["env"])

    @property
    def n_traj(self) -> int:
        return int(self.frames.shape[0])

    @property
    def traj_len(self) -> int:
        """Actions per trajectory (T); each trajectory has T + 1 frames."""
        return int(self.actions.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.frames.shape[2]), int(self.frames.shape[3])

    @property
    def action_dim(self) -> int:
        return int(self.actions.shape[2])

    @property
    def proprio_dim(self) -> int:
        return int(self.proprio.shape[2])

    def __len__(self) -> int:
        return self.n_traj

    def windows(self, num_hist: int = 3, num_pred: int = 1, frameskip: int = 5,
                trajectories: Sequence[int] | np.ndarray | None = None) -> WmWindows:
        """Training windows (DINO-WM's defaults: 3 history frames, 1 predicted, frameskip 5).

        ``trajectories`` selects a subset (e.g. one side of :meth:`split`); every window lies inside one
        trajectory, so a split by trajectory never leaks frames between train and validation.
        """
        for name, value, low in (("num_hist", num_hist, 1), ("num_pred", num_pred, 0), ("frameskip", frameskip, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise WmDatasetError(str(self.path), name, f"must be an integer >= {low}, got {value!r}")
        span = (num_hist + num_pred) * frameskip
        if span > self.traj_len:
            raise WmDatasetError(str(self.path), "frameskip",
                                 f"{num_hist + num_pred} frames every {frameskip} steps need {span} actions; the "
                                 f"trajectories have {self.traj_len}")
        chosen = np.arange(self.n_traj) if trajectories is None else np.asarray(trajectories, dtype=np.int64)
        if chosen.ndim != 1 or (len(chosen) and (chosen.min() < 0 or chosen.max() >= self.n_traj)):
            raise WmDatasetError(str(self.path), "trajectories", f"indices must lie in [0, {self.n_traj})")
        return WmWindows(self, num_hist, num_pred, frameskip, chosen)

    def split(self, val_fraction: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(train, validation) trajectory indices, a seeded shuffle; at least one trajectory in train."""
        if not 0.0 <= val_fraction < 1.0:
            raise WmDatasetError(str(self.path), "val_fraction", f"must be in [0, 1), got {val_fraction!r}")
        order = np.random.default_rng(seed).permutation(self.n_traj)
        n_val = min(int(round(val_fraction * self.n_traj)), self.n_traj - 1)
        return np.sort(order[n_val:]), np.sort(order[:n_val])

    def statistics(self) -> dict[str, np.ndarray]:
        """Per-dimension mean and std of proprio and actions: DINO-WM normalises both before the predictor."""
        p = np.asarray(self.proprio, dtype=np.float64).reshape(-1, self.proprio_dim)
        a = np.asarray(self.actions, dtype=np.float64).reshape(-1, self.action_dim)
        return {"proprio_mean": p.mean(0), "proprio_std": np.maximum(p.std(0), 1e-6),
                "action_mean": a.mean(0), "action_std": np.maximum(a.std(0), 1e-6)}


# ---------------------------------------------------------------- writing


def _navkit_version() -> str:
    try:
        return importlib.metadata.version("navkit")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _metadata_digest(doc: dict[str, Any]) -> str:
    """sha256 of the metadata without its own digest, in a canonical form (key order and spacing ignored)."""
    body = {k: v for k, v in doc.items() if k != "metadata_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _is_dataset_folder(path: Path) -> bool:
    try:
        doc = json.loads((path / METADATA_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and doc.get("format") == FORMAT


def _check_target(out: Path, overwrite: bool) -> None:
    """Refuse to clobber: an existing path only with ``overwrite``, and then only an empty folder or a dataset."""
    if not out.exists() and not out.is_symlink():
        return
    if not overwrite:
        raise WmDatasetError(str(out), "out", "already exists; pass overwrite=True (--overwrite) to replace it")
    if out.is_symlink() or not out.is_dir():
        raise WmDatasetError(str(out), "out", "exists and is not a folder; refusing to replace it")
    if any(out.iterdir()) and not _is_dataset_folder(out):
        raise WmDatasetError(str(out), "out", "is a non-empty folder but not a navkit world-model dataset; "
                                              "refusing to replace it")


class _Writer:
    """Streams arrays into ``.<name>.partial-<pid>`` beside ``out`` and renames it into place when complete."""

    def __init__(self, out: Path, shapes: dict[str, tuple[int, ...]]) -> None:
        self.out = out
        self.tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
        if self.tmp.exists():
            shutil.rmtree(self.tmp)
        self.tmp.mkdir(parents=True)
        self.arrays: dict[str, np.ndarray] = {}
        for name, shape in shapes.items():
            self.arrays[name] = np.lib.format.open_memmap(self.tmp / f"{name}.npy", mode="w+",
                                                          dtype=ARRAY_DTYPES[name], shape=shape)

    def commit(self, metadata: dict[str, Any], overwrite: bool) -> Path:
        files: dict[str, Any] = {}
        for name, array in self.arrays.items():
            if isinstance(array, np.memmap):
                array.flush()
            files[name] = {"file": f"{name}.npy", "dtype": str(array.dtype), "shape": list(array.shape)}
        self.arrays.clear()  # drop the maps before hashing and renaming
        for entry in files.values():
            entry["sha256"] = _sha256(self.tmp / entry["file"])
        doc = dict(metadata, files=files)
        doc["metadata_sha256"] = _metadata_digest(doc)
        (self.tmp / METADATA_FILE).write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        _check_target(self.out, overwrite)  # again: something may have appeared there while collecting
        old = self.out.parent / f".{self.out.name}.old-{os.getpid()}"
        if self.out.exists():
            os.replace(self.out, old)
        os.replace(self.tmp, self.out)
        if old.exists():
            shutil.rmtree(old)
        return self.out

    def abort(self) -> None:
        self.arrays.clear()
        shutil.rmtree(self.tmp, ignore_errors=True)


def _base_metadata(env_name: str, env_config: dict[str, Any], n_traj: int, traj_len: int,
                   image_hw: tuple[int, int], action_dim: int, proprio_dim: int, state_dim: int,
                   action_low: Sequence[float], action_high: Sequence[float]) -> dict[str, Any]:
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "env": env_name, "env_config": env_config,
        "n_traj": n_traj, "traj_len": traj_len, "image_size": list(image_hw), "frameskip": 1,
        "frameskip_note": "env steps between stored frames; training windows choose their own frameskip",
        "action_dim": action_dim, "proprio_dim": proprio_dim, "state_dim": state_dim,
        "action_low": [float(v) for v in action_low], "action_high": [float(v) for v in action_high],
        "navkit_version": _navkit_version(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "citation": CITATION}


def write_dataset(out: str | Path, *, frames: np.ndarray, proprio: np.ndarray, actions: np.ndarray,
                  states: np.ndarray, env: str, env_config: dict[str, Any] | None = None,
                  action_low: Sequence[float] | None = None, action_high: Sequence[float] | None = None,
                  extra: dict[str, Any] | None = None, overwrite: bool = False) -> Path:
    """Write in-memory arrays as a dataset (the format :func:`collect` writes): for converted or synthetic data."""
    out = Path(out)
    arrays = {"frames": np.asarray(frames), "proprio": np.asarray(proprio), "actions": np.asarray(actions),
              "states": np.asarray(states)}
    if arrays["frames"].ndim != 5 or arrays["actions"].ndim != 3:
        raise WmDatasetError(str(out), "frames", "expected frames (N, T+1, H, W, 3) and actions (N, T, A)")
    n, t1, h, w, _ = arrays["frames"].shape
    a = arrays["actions"].shape[2]
    _check_target(out, overwrite)
    writer = _Writer(out, {k: v.shape for k, v in arrays.items()})
    try:
        for name, value in arrays.items():
            writer.arrays[name][...] = value
        meta = _base_metadata(env, env_config or {}, n, t1 - 1, (h, w), a, arrays["proprio"].shape[-1],
                              arrays["states"].shape[-1], action_low or [-1.0] * a, action_high or [1.0] * a)
        meta.update(extra or {})
        return writer.commit(meta, overwrite)
    except BaseException:
        writer.abort()
        raise


def _check_count(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
        raise WmDatasetError("collect", name, f"must be an integer in [{low:,}, {high:,}], got {value!r}")
    return int(value)


def collect(env_name: str, n_traj: int, traj_len: int, out: str | Path, seed: int = 0, progress: bool = True, *,
            image_size: int = 64, overwrite: bool = False, env_config: Any | None = None) -> Path:
    """Roll out ``n_traj`` random trajectories of ``traj_len`` steps in ``env_name`` and write them to ``out``.

    Deterministic per ``seed``: trajectory i, attempt j starts from ``reset`` with a seed drawn from
    ``SeedSequence([seed, i, j])`` (recorded in the metadata), so a dataset can be regenerated or extended
    and any trajectory replayed alone. A trajectory the env reports as ``failed()`` (the AGV touched an
    obstacle) is redrawn with the next attempt. Returns the dataset folder.
    """
    if env_name not in WM_ENV_NAMES:
        raise WmDatasetError("collect", "env", f"unknown environment {env_name!r} (known: {', '.join(WM_ENV_NAMES)})")
    n_traj = _check_count("n_traj", n_traj, 1, MAX_TRAJECTORIES)
    traj_len = _check_count("traj_len", traj_len, 1, MAX_TRAJ_LEN)
    seed = _check_count("seed", seed, 0, 2**63 - 1)
    image_size = _check_count("image_size", image_size, MIN_IMAGE_SIZE, MAX_IMAGE_SIZE)
    out = Path(out)
    _check_target(out, overwrite)
    frame_bytes = image_size * image_size * 3
    need = n_traj * (traj_len + 1) * (frame_bytes + 64 * 8) * 1.02
    parent = out.parent if out.parent.exists() else Path(".")
    free = shutil.disk_usage(parent.resolve()).free
    if need > free:
        raise WmDatasetError(str(out), "out", f"the dataset needs about {need / 1e9:.2f} GB; {free / 1e9:.2f} GB free")

    from tqdm import tqdm

    env: WmEnv = make_wm_env(env_name, image_size, env_config)
    writer: _Writer | None = None
    try:
        shapes = {"frames": (n_traj, traj_len + 1, image_size, image_size, 3),
                  "proprio": (n_traj, traj_len + 1, env.proprio_dim), "actions": (n_traj, traj_len, env.action_dim),
                  "states": (n_traj, traj_len + 1, env.state_dim)}
        writer = _Writer(out, shapes)
        arrays = writer.arrays
        episode_seeds: list[int] = []
        rejected = 0
        start = time.perf_counter()
        bar = tqdm(total=n_traj, unit="traj", desc=f"wm collect {env_name}", disable=not progress, dynamic_ncols=True)
        for i in range(n_traj):
            for attempt in range(MAX_ATTEMPTS):
                ep_seed = int(np.random.SeedSequence([seed, i, attempt]).generate_state(1)[0])
                if _rollout(env, ep_seed, traj_len, i, arrays):
                    break
                rejected += 1
            else:
                raise WmDatasetError(str(out), "env", f"trajectory {i}: all {MAX_ATTEMPTS} attempts failed "
                                                      f"(the {env_name} env reported a collision each time)")
            episode_seeds.append(ep_seed)
            bar.update(1)
            bar.set_postfix(steps_per_s=f"{(i + 1) * traj_len / max(time.perf_counter() - start, 1e-9):.0f}",
                            rejected=rejected, refresh=False)
        bar.close()
        elapsed = time.perf_counter() - start
        meta = _base_metadata(env_name, env.config_dict(), n_traj, traj_len, (image_size, image_size),
                              env.action_dim, env.proprio_dim, env.state_dim, env.action_low.tolist(),
                              env.action_high.tolist())
        meta.update({"seed": seed, "episode_seeds": episode_seeds, "rejected_trajectories": rejected,
                     "collection_seconds": round(elapsed, 3),
                     "steps_per_second": round(n_traj * traj_len / max(elapsed, 1e-9), 1)})
        return writer.commit(meta, overwrite)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        env.close()


def _rollout(env: WmEnv, ep_seed: int, traj_len: int, i: int, arrays: dict[str, np.ndarray]) -> bool:
    """One random trajectory into row ``i`` of the arrays; False (nothing written) if the env reports it failed.

    Steps fill in-memory buffers and each memory map is written once per trajectory: indexing a
    ``np.memmap`` per step costs more than a Wall env step.
    """
    buf = {name: np.empty(array.shape[1:], dtype=array.dtype) for name, array in arrays.items()}
    frames, proprio, actions, states = buf["frames"], buf["proprio"], buf["actions"], buf["states"]
    obs = env.reset(ep_seed)
    frames[0], proprio[0], states[0] = obs.visual, obs.proprio, env.state()
    for t in range(traj_len):
        # Stored as float32, so the env gets the float32 value: replaying the file reproduces the run exactly.
        action = np.clip(env.random_action(), env.action_low, env.action_high).astype(np.float32)
        obs = env.step(action)
        actions[t] = action
        frames[t + 1], proprio[t + 1], states[t + 1] = obs.visual, obs.proprio, env.state()
        if env.failed():
            return False
    if not (np.all(np.isfinite(proprio)) and np.all(np.isfinite(states))):
        raise WmDatasetError(env.name, "proprio", f"trajectory {i} (seed {ep_seed}) produced non-finite numbers")
    for name, array in arrays.items():
        array[i] = buf[name]
    return True


# ---------------------------------------------------------------- reading


_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "format_version": int, "env": str, "env_config": dict, "n_traj": int, "traj_len": int, "image_size": list,
    "frameskip": int, "action_dim": int, "proprio_dim": int, "state_dim": int, "action_low": list,
    "action_high": list, "files": dict}


def _read_metadata(folder: Path) -> dict[str, Any]:
    path = folder / METADATA_FILE
    src = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise WmDatasetError(src, "file", "missing (not a dataset folder, or an interrupted write)") from None
    except OSError as exc:
        raise WmDatasetError(src, "file", f"cannot be read: {_one_line(exc)}") from None
    try:
        doc = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise WmDatasetError(src, "file", f"not UTF-8 text at byte {exc.start} (corrupted)") from None
    except json.JSONDecodeError as exc:
        raise WmDatasetError(src, "file", f"not valid JSON: {exc.msg} at line {exc.lineno} column "
                                                 f"{exc.colno} (corrupted)") from None
    if not isinstance(doc, dict):
        raise WmDatasetError(src, "file", f"expected a JSON object, got {type(doc).__name__}")
    if doc.get("format") != FORMAT:
        raise WmDatasetError(src, "format", f"expected {FORMAT!r}, got {doc.get('format')!r}")
    if "metadata_sha256" in doc and doc["metadata_sha256"] != _metadata_digest(doc):
        raise WmDatasetError(src, "metadata_sha256", "the metadata does not match its checksum (edited or corrupted)")
    for key, kind in _REQUIRED.items():
        if key not in doc:
            raise WmDatasetError(src, key, "missing required field")
        if not isinstance(doc[key], kind) or isinstance(doc[key], bool):
            raise WmDatasetError(src, key, f"expected {getattr(kind, '__name__', kind)}, got {brief(doc[key])}")
    if doc["format_version"] > FORMAT_VERSION:
        raise WmDatasetError(src, "format_version", f"{doc['format_version']} is newer than this navkit reads "
                                                    f"({FORMAT_VERSION}); update navkit")
    for key in ("n_traj", "traj_len", "frameskip", "action_dim", "proprio_dim", "state_dim"):
        if doc[key] < 1:
            raise WmDatasetError(src, key, f"must be >= 1, got {doc[key]}")
    size = doc["image_size"]
    if len(size) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in size):
        raise WmDatasetError(src, "image_size", f"expected [height, width], got {brief(size)}")
    for key in ("action_low", "action_high"):
        values = doc[key]
        if len(values) != doc["action_dim"] or not all(isinstance(v, (int, float)) and math.isfinite(v)
                                                       for v in values):
            raise WmDatasetError(src, key, f"expected {doc['action_dim']} finite numbers, got {brief(values)}")
    if "episode_seeds" in doc and (not isinstance(doc["episode_seeds"], list)
                                   or len(doc["episode_seeds"]) != doc["n_traj"]):
        raise WmDatasetError(src, "episode_seeds", f"expected a list of n_traj = {doc['n_traj']} seeds")
    return doc


def _open_array(folder: Path, name: str, expected_shape: tuple[int, ...], doc: dict[str, Any],
                verify_checksums: bool) -> np.ndarray:
    """Memory-map ``<name>.npy`` after checking its header and size against the metadata."""
    path = folder / f"{name}.npy"
    src = str(path)
    expected_dtype = ARRAY_DTYPES[name]
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f"unsupported .npy version {version}")
            offset = f.tell()
    except FileNotFoundError:
        raise WmDatasetError(src, name, "missing file") from None
    except (ValueError, OSError, EOFError, SyntaxError) as exc:
        raise WmDatasetError(src, name, f"not a readable .npy file ({_one_line(exc)})") from None
    if dtype.hasobject or dtype != expected_dtype:
        raise WmDatasetError(src, name, f"wrong dtype: expected {expected_dtype}, got {dtype}")
    if tuple(shape) != expected_shape:
        raise WmDatasetError(src, name, f"wrong shape: expected {expected_shape} from {METADATA_FILE} "
                                        f"(n_traj, traj_len, ...), got {tuple(shape)}")
    want = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    have = size - offset
    if have < want:
        raise WmDatasetError(src, name, f"truncated: {have:,} of {want:,} data bytes present")
    if have > want:
        raise WmDatasetError(src, name, f"{have - want:,} unexpected bytes after the array (corrupted)")
    entry = doc["files"].get(name)
    if verify_checksums and isinstance(entry, dict) and "sha256" in entry and _sha256(path) != entry["sha256"]:
        raise WmDatasetError(src, name, f"contents do not match the sha256 in {METADATA_FILE} (corrupted)")
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise WmDatasetError(src, name, f"cannot be memory-mapped ({_one_line(exc)})") from None
    return array


def load_dataset(path: str | Path, *, verify_checksums: bool = False) -> WmDataset:
    """Open and validate a dataset folder written by :func:`collect` or :func:`write_dataset`.

    Checks the metadata (format, fields, its own checksum), every array's presence, dtype, shape
    against the metadata's counts, byte length (truncation), and that proprio, actions and states are
    finite and actions within the recorded bounds. ``verify_checksums`` also hashes every file against
    the metadata (a few seconds per GB): it catches flipped bytes inside the image data, which no
    structural check can.
    """
    folder = Path(path)
    if not folder.exists():
        raise WmDatasetError(str(folder), "path", "no such dataset folder")
    if not folder.is_dir():
        raise WmDatasetError(str(folder), "path", "is a file; expected a dataset folder (metadata.json + .npy files)")
    doc = _read_metadata(folder)
    n, t = doc["n_traj"], doc["traj_len"]
    h, w = doc["image_size"]
    shapes = {"frames": (n, t + 1, h, w, 3), "proprio": (n, t + 1, doc["proprio_dim"]),
              "actions": (n, t, doc["action_dim"]), "states": (n, t + 1, doc["state_dim"])}
    arrays = {name: _open_array(folder, name, shape, doc, verify_checksums) for name, shape in shapes.items()}
    for name in ("proprio", "actions", "states"):
        if not np.all(np.isfinite(arrays[name])):
            bad = np.argwhere(~np.isfinite(arrays[name]))[0].tolist()
            raise WmDatasetError(str(folder / f"{name}.npy"), name, f"non-finite value at index {bad}")
    low = np.asarray(doc["action_low"]) - 1e-6
    high = np.asarray(doc["action_high"]) + 1e-6
    outside = (arrays["actions"] < low) | (arrays["actions"] > high)
    if np.any(outside):
        bad = np.argwhere(outside)[0].tolist()
        raise WmDatasetError(str(folder / "actions.npy"), "actions",
                             f"value at index {bad} outside [action_low, action_high] of {METADATA_FILE}")
    return WmDataset(path=folder, metadata=doc, **arrays)
