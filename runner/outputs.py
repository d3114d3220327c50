"""What a run leaves behind: metrics.json, a metrics table, a trajectory plot and a video.

People would rather look than read: the plot shows the map the planner had, what it
did not have (unmapped obstacles, hatched), every plan, the true and odometry
trajectories and where the safety filter stepped in.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from navkit.common.errors import NavkitError
from navkit.common.json_output import METRICS_FILE, write_metrics
from navkit.runner.in_process import RunResult
from navkit.sim.scenario import Box, Scenario


def format_metrics_table(metrics: dict[str, Any]) -> str:
    """The headline metrics as an aligned two-column table."""
    rows = [
        ("scenario", metrics["scenario"]),
        ("goals reached", f"{metrics['goals_reached']}/{metrics['goals_total']}"),
        ("closest true approach to goals (m)", ", ".join(f"{e:.2f}" for e in metrics["goal_true_error_m"]) or "-"),
        ("odometry drift at end (m)", f"{metrics['final_odometry_drift_m']:.2f}"),
        ("success", "yes" if metrics["success"] else "NO"),
        ("collisions", metrics["collisions"]),
        ("min clearance (m)", f"{metrics['min_clearance_m']:.3f}"),
        ("path length (m)", f"{metrics['path_length_m']:.2f}"),
        ("filter interventions", metrics["filter_interventions"]),
        ("filter infeasible (braked)", metrics["filter_infeasible"]),
        ("filter invalid / stale input", f"{metrics['filter_invalid_input']} / {metrics['filter_stale_input']}"),
        ("replans", metrics["replans"]),
        ("sim time (s)", f"{metrics['sim_time_s']:.1f}"),
        ("wall time (s)", f"{metrics['wall_time_s']:.2f}"),
        ("real-time factor", f"{metrics['real_time_factor']}x"),
    ]
    for stage, t in metrics.get("stage_ms", {}).items():
        rows.append((f"  {stage} ms/call (mean, p99)", f"{t['mean']:.3f}, {t['p99']:.3f}"))
    width = max(len(str(k)) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


DEFAULT_ARTEFACTS = (METRICS_FILE, "trajectory.png", "trajectory.gif", "trajectory.mp4", "trajectories.png",
                     "traces.csv")
"""What a run writes by default; a later run into the same folder replaces these."""
VIDEO_SUFFIXES = (".gif", ".mp4")


def prepare_output_dir(out_dir: Path, option: str = "--out") -> list[str]:
    """Check ``out_dir`` before a run and clear the previous run's files; returns what was removed.

    A run must not find out after an hour of simulation that it cannot write its results,
    and two runs' files must never sit in one folder looking like one run: the previous
    run's ``metrics.json`` lists its files (``files``), and those (or the default names)
    are removed. Raises :class:`NavkitError` naming the folder and the option.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise NavkitError(f"{out_dir}: {option}: exists and is not a folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out_dir, prefix=".navkit-write-test-"):
            pass
    except OSError as exc:
        raise NavkitError(f"{out_dir}: {option}: cannot write there ({exc.strerror or exc})") from None
    previous: list[str] = list(DEFAULT_ARTEFACTS)
    try:
        listed = json.loads((out_dir / METRICS_FILE).read_text()).get("files", [])
        previous += [name for name in listed if isinstance(name, str) and "/" not in name and name not in previous]
    except (OSError, ValueError, AttributeError):
        pass
    removed = []
    for name in previous:
        path = out_dir / name
        if path.is_file():
            try:
                path.unlink()
            except OSError as exc:
                raise NavkitError(f"{path}: {option}: cannot replace the previous run's file "
                                  f"({exc.strerror or exc})") from None
            removed.append(name)
    return removed


def check_video_name(name: str) -> str:
    """``--video``: a file name ending .gif or .mp4 (MP4 needs imageio-ffmpeg), or 'none'."""
    if name.lower() == "none":
        return name
    if Path(name).suffix.lower() not in VIDEO_SUFFIXES or Path(name).name != name:
        raise NavkitError(f"{name}: --video: expected a file name ending {' or '.join(VIDEO_SUFFIXES)} "
                          "(written inside --out), or 'none'")
    if name.lower().endswith(".mp4"):
        try:
            import imageio_ffmpeg  # noqa: F401
        except ImportError:
            raise NavkitError(f"{name}: --video: MP4 needs imageio-ffmpeg (pip install imageio-ffmpeg); "
                              "use a .gif name") from None
    return name


def write_outputs(out_dir: Path, metrics: dict[str, Any],
                  artefacts: list[tuple[str, Callable[[Path], Path | None]]]) -> tuple[list[Path], list[str]]:
    """Write metrics.json first (it lists every artefact), then each artefact; never raises on I/O.

    Returns (paths written, one-line failures): a full disk must not cost the metrics
    already computed, and the caller prints the table whatever happens here. ``metrics``
    gains ``files`` (what this run writes), which the next run into the folder replaces.
    """
    metrics["files"] = [METRICS_FILE] + [name for name, _ in artefacts]
    written: list[Path] = []
    failures: list[str] = []
    for name, write in [(METRICS_FILE, lambda p: write_metrics(metrics, p.parent))] + artefacts:
        path = out_dir / name
        try:
            result = write(path)
        except OSError as exc:
            failures.append(f"{path}: cannot write ({exc.strerror or exc})")
            try:
                if path.is_file() and name != METRICS_FILE:
                    os.unlink(path)  # no half-written artefact left behind
            except OSError:
                pass
            continue
        if result is not None:
            written.append(result)
    return written, failures


def _draw_box(ax: Any, box: Box, **style: Any) -> None:
    from matplotlib.patches import Polygon

    c, s = np.cos(box.yaw), np.sin(box.yaw)
    hx, hy = box.size[0] / 2, box.size[1] / 2
    corners = np.array([[-hx, -hy], [hx, -hy], [hx, hy], [-hx, hy]]) @ np.array([[c, s], [-s, c]]) + box.center
    ax.add_patch(Polygon(corners, closed=True, **style))


def write_trajectory_plot(scenario: Scenario, result: RunResult, path: Path) -> Path:
    """Top-down PNG: map, plans, true vs odometry trajectory, goals, filter interventions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Circle, Rectangle

    xmin, ymin, xmax, ymax = scenario.bounds
    fig, ax = plt.subplots(figsize=(10, 10 * (ymax - ymin) / (xmax - xmin) + 0.8), dpi=110)
    ax.add_patch(Rectangle((xmin, ymin), xmax - xmin, ymax - ymin, fill=False, lw=3, ec="0.4"))
    for b in scenario.boxes:
        style = {"fc": "#4a6fb5", "ec": "#2c4370"} if b.mapped else {"fc": "#f2a65a", "ec": "#b35c00", "hatch": "//"}
        _draw_box(ax, b, **style)
    for c in scenario.cylinders:
        style = {"fc": "0.5"} if c.mapped else {"fc": "#f2a65a", "ec": "#b35c00", "hatch": "//"}
        ax.add_patch(Circle(c.center, c.radius, **style))
    for i, plan in enumerate(result.plans):
        ax.plot(plan[:, 0], plan[:, 1], color="0.55", lw=1, ls=":", label="planned paths" if i == 0 else None)
    if len(result.true_xy):
        ax.plot(result.odom_xy[:, 0], result.odom_xy[:, 1], color="#7b3294", lw=1, ls="--", label="odometry")
        ax.plot(result.true_xy[:, 0], result.true_xy[:, 1], color="#d7191c", lw=2, label="true trajectory")
        ax.plot(*result.true_xy[0], marker="o", color="k", ms=7, label="start")
    if len(result.intervention_xy):
        ax.scatter(result.intervention_xy[:, 0], result.intervention_xy[:, 1], s=6, color="#fdae61", zorder=3,
                   label="safety filter modified cmd")
    for i, g in enumerate(scenario.goals):
        reached = i < result.metrics["goals_reached"]
        ax.add_patch(Circle(g, scenario.goal_tolerance_m, fc="#1a9641" if reached else "none", ec="#1a9641", lw=2))
        ax.annotate(f"G{i}", g, xytext=(6, 6), textcoords="offset points", color="#1a9641", weight="bold")
    m = result.metrics
    ax.set_title(f"{scenario.name}: goals {m['goals_reached']}/{m['goals_total']}, collisions {m['collisions']}, "
                 f"min clearance {m['min_clearance_m']:.2f} m, filter interventions {m['filter_interventions']}")
    return save_map_figure(fig, ax, scenario.bounds, path, pad=0.5, legend_columns=6)


def save_map_figure(fig: Any, ax: Any, bounds: tuple[float, float, float, float], path: Path, *, pad: float,
                    legend_columns: int) -> Path:
    """Frame a top-down map plot on ``bounds`` (metres, equal aspect), legend below, and save it."""
    import matplotlib.pyplot as plt

    xmin, ymin, xmax, ymax = bounds
    ax.set_xlim(xmin - pad, xmax + pad)
    ax.set_ylim(ymin - pad, ymax + pad)
    ax.set_aspect("equal")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=legend_columns, fontsize=8, frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def write_video(frames: list[np.ndarray], path: Path, fps: float) -> Path | None:
    """GIF (or MP4 when the suffix asks for it and imageio-ffmpeg is installed)."""
    if not frames:
        return None
    import imageio.v2 as imageio

    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gif":
        imageio.mimsave(path, frames, duration=1000.0 / fps, loop=0)
    else:
        imageio.mimsave(path, frames, fps=fps)
    return path
