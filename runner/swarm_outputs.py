"""What a swarm run leaves behind: a metrics table, traces.csv and trajectories.png.

``metrics.json`` and the GIF are written by :mod:`navkit.runner.outputs` (same format
as single-robot runs). The plot colours each robot as the MuJoCo video does
(:func:`navkit.sim.mujoco_swarm.agent_rgb`), so a robot can be followed from one to the other.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from navkit.control.multi_agent_cbf import AgentStatus
from navkit.runner.outputs import save_map_figure
from navkit.runner.swarm_runner import SwarmRunResult
from navkit.sim.mujoco_swarm import agent_rgb
from navkit.sim.swarm_scenario import SwarmScenario

TRACE_COLUMNS = ("step", "time_s", "robot", "x", "y", "heading", "v", "alpha", "filter_status")


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def format_swarm_metrics_table(metrics: dict[str, Any]) -> str:
    """The headline metrics of a swarm run as an aligned two-column table."""
    a = metrics["alpha"]
    rows = [
        ("scenario", f"{metrics['scenario']} (seed {metrics['seed']}, {metrics['num_agents']} agents, "
                     f"{metrics['dynamics']})"),
        ("alpha source", a["source"]),
        ("alpha mean / min / max", f"{_fmt(a['mean'], '.3f')} / {_fmt(a['min'], '.3f')} / {_fmt(a['max'], '.3f')}"),
        ("success", "yes" if metrics["success"] else "NO"),
        ("agents at goal", f"{metrics['agents_at_goal']}/{metrics['num_agents']}"),
        ("collisions (contact onsets)", f"{metrics['collisions']} (agent {metrics['agent_collisions']}, "
                                        f"obstacle {metrics['obstacle_collisions']})"),
        ("overlap onsets (geometric)", metrics["overlap_collisions"]),
        ("min separation (m)", _fmt(metrics["min_separation_m"], ".3f")),
        ("min obstacle gap (m)", _fmt(metrics["min_obstacle_gap_m"], ".3f")),
        ("infeasible QPs (agent-steps)", metrics["infeasible"]),
        ("mean time to goal (s)", _fmt(metrics["mean_time_to_goal_s"], ".2f")),
        ("path length ratio", _fmt(metrics["path_length_ratio"], ".3f")),
        ("episode time (s)", f"{metrics['episode_time_s']:.2f}"),
        ("wall time (s)", f"{metrics['wall_time_s']:.2f}"),
        ("real-time factor", f"{metrics['real_time_factor']}x"),
    ]
    for stage, t in metrics.get("step_ms", {}).items():
        rows.append((f"  {stage} ms/step (mean, p99)", f"{t['mean']:.3f}, {t['p99']:.3f}"))
    if metrics.get("step_ms_per_agent") is not None:
        rows.append(("  ms/step per agent", f"{metrics['step_ms_per_agent']:.4f}"))
        rows.append(("  max control rate (Hz)", metrics["max_rate_hz"]))
    width = max(len(str(k)) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def write_traces_csv(result: SwarmRunResult, path: Path) -> Path:
    """One row per robot per control step: the state before the step and the action taken."""
    tr = result.traces
    names = {int(s): s.name for s in AgentStatus}
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(TRACE_COLUMNS)
        for k, t in enumerate(tr.time):
            for i in range(tr.num_agents):
                w.writerow((k, f"{t:.4f}", i, f"{tr.x[k, i]:.5f}", f"{tr.y[k, i]:.5f}", f"{tr.heading[k, i]:.5f}",
                            f"{tr.v[k, i]:.5f}", f"{tr.alpha[k, i]:.5g}", names.get(int(tr.status[k, i]), "?")))
    return path


def write_trajectories_plot(scenario: SwarmScenario, result: SwarmRunResult, path: Path) -> Path:
    """Top-down PNG: obstacles, moving obstacles' tracks, each robot's path with start and goal."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Circle, Rectangle

    xmin, ymin, xmax, ymax = scenario.bounds
    fig, ax = plt.subplots(figsize=(9, 9 * (ymax - ymin) / (xmax - xmin) + 0.9), dpi=110)
    ax.add_patch(Rectangle((xmin, ymin), xmax - xmin, ymax - ymin, fill=False, lw=2, ec="0.5"))
    for x, y, r in scenario.static_obstacles:
        ax.add_patch(Circle((x, y), r, fc="0.45", ec="0.25"))
    tr = result.traces
    end_t = float(result.metrics["episode_time_s"])
    for k, ob in enumerate(scenario.moving_obstacles):
        ts = np.linspace(0.0, max(end_t, 1e-6), 200)
        track = np.array([ob.position_velocity(t)[0] for t in ts])
        ax.plot(track[:, 0], track[:, 1], color="#e66101", lw=6, alpha=0.25, solid_capstyle="round",
                label="moving obstacle track" if k == 0 else None)
        p_end, _ = ob.position_velocity(end_t)
        ax.add_patch(Circle(p_end, ob.radius, fc="#e66101", ec="#b35c00", alpha=0.8))
    r = scenario.agent_radius_m
    for i in range(tr.num_agents):
        colour = agent_rgb(i)
        xy = tr.path(i)
        ax.plot(xy[:, 0], xy[:, 1], color=colour, lw=1.6)
        ax.plot(*scenario.starts[i, :2], marker="o", ms=6, color=colour, mec="k", mew=0.6,
                label="start" if i == 0 else None)
        ax.plot(*scenario.goals[i], marker="*", ms=11, color=colour, mec="k", mew=0.6,
                label="goal" if i == 0 else None)
        ax.add_patch(Circle(xy[-1], r, fc=colour, ec="k", lw=0.6, alpha=0.6))
    m = result.metrics
    ax.set_title(f"{scenario.name} ({m['num_agents']} agents, α: {m['alpha']['source']}): "
                 f"at goal {m['agents_at_goal']}/{m['num_agents']}, collisions {m['collisions']}, "
                 f"min sep {_fmt(m['min_separation_m'], '.2f')} m", fontsize=10)
    return save_map_figure(fig, ax, scenario.bounds, path, pad=0.3, legend_columns=3)
