"""The in-process runner for a robot team: MuJoCo physics + SwarmController + an α source.

Each control period (the scenario's ``control_dt_s``) it reads the team's state from a
swarm backend (:class:`~navkit.sim.mujoco_swarm.MujocoSwarm` by default), asks the
``cbf_policy`` for every agent's CBF gain (a fixed baseline or the online GNN policy),
filters go-to-goal commands through the per-agent CBF-QPs and steps physics. Episodes are
scored by :class:`~navkit.learning.swarm_task.EpisodeScorer`, as everywhere else;
collisions are MuJoCo's contacts, and geometric overlap is reported next to them. Stages are timed separately, because
"how many agents still run at 50 Hz" is a question users ask.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from navkit.common.errors import NavkitError
from navkit.common.interfaces import CbfParameterPolicy, SwarmBackend
from navkit.common.timing import FrameSchedule, StageTimer, sim_time_bar, summarize_ms
from navkit.control.multi_agent_cbf import AgentStatus
from navkit.control.swarm_controller import SwarmController
from navkit.learning.swarm_task import EpisodeScorer
from navkit.sim.mujoco_swarm import MujocoSwarm, topdown_frame_size
from navkit.sim.swarm_scenario import SwarmScenario

STAGES = ("alpha", "controller", "physics")
"""Timed per control step: the α source, nominal + CBF-QPs, MuJoCo stepping."""


@dataclass
class SwarmRunOptions:
    """What a swarm run produces besides its metrics."""

    time_limit_s: float | None = None
    """Override the scenario's time limit (sim seconds)."""
    video_fps: float = 0.0
    """Overhead frames per simulated second (0: no video)."""
    video_height: int = 360
    progress: bool = False
    """Show a tqdm bar over simulated time."""
    alpha_label: str | None = None
    """How the α source is described in the metrics (e.g. 'fixed 1.0', a policy path)."""


@dataclass
class SwarmTraces:
    """Per-robot traces, one row per control step (state before the step, the action taken)."""

    time: np.ndarray
    """(T,) seconds."""
    x: np.ndarray
    """(T, N)."""
    y: np.ndarray
    heading: np.ndarray
    v: np.ndarray
    """(T, N) speed (m/s), from the simulator's joint velocities."""
    alpha: np.ndarray
    status: np.ndarray
    """(T, N) :class:`AgentStatus` values."""
    final_xy: np.ndarray
    """(N, 2) where each robot ended (after the last step)."""

    @property
    def num_agents(self) -> int:
        return int(self.final_xy.shape[0])

    def path(self, i: int) -> np.ndarray:
        """(T + 1, 2) robot ``i``'s path including its final position."""
        return np.vstack([np.stack([self.x[:, i], self.y[:, i]], axis=1), self.final_xy[i:i + 1]])


@dataclass
class SwarmRunResult:
    metrics: dict[str, Any]
    traces: SwarmTraces
    frames: list[np.ndarray] = field(default_factory=list)
    error: BaseException | None = None
    """What ended the run early (metrics then carry ``aborted`` and ``abort_reason``)."""


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


class SwarmRunner:
    """Steps a swarm backend and a :class:`SwarmController` together for one episode."""

    def __init__(self, scenario: SwarmScenario, alpha_source: CbfParameterPolicy,
                 controller: SwarmController | None = None, backend: SwarmBackend | None = None) -> None:
        """``backend``: the ``swarm_backend`` plugin's simulator (default: MuJoCo for this scenario)."""
        self.scenario = scenario
        self.alpha_source = alpha_source
        self.controller = controller or SwarmController.for_scenario(scenario)
        self.sim: Any = backend if backend is not None else MujocoSwarm(scenario)

    def close(self) -> None:
        close = getattr(self.sim, "close", None)
        if close is not None:
            close()

    def run(self, options: SwarmRunOptions | None = None) -> SwarmRunResult:
        opts = options or SwarmRunOptions()
        sc, sim, ctl = self.scenario, self.sim, self.controller
        n, dt = sc.num_agents, sc.control_dt_s
        limit = opts.time_limit_s or sc.time_limit_s
        state = sim.reset()
        scorer = EpisodeScorer([sc], state.positions.copy(), time_limit_s=limit)
        overlapping = np.zeros(n, dtype=bool)
        overlap_onsets = 0
        rows: dict[str, list[np.ndarray]] = {k: [] for k in ("x", "y", "heading", "v", "alpha", "status")}
        times: list[float] = []
        timer = StageTimer()
        statuses = np.zeros(len(AgentStatus), dtype=int)
        frames: list[np.ndarray] = []
        frame_size = topdown_frame_size(sc, opts.video_height) if opts.video_fps > 0 else None
        frame_schedule = FrameSchedule(opts.video_fps)
        bar = sim_time_bar(limit, f"{sc.name} x{n}", opts.progress)
        steps = 0
        error: BaseException | None = None
        wall_start = time.perf_counter()
        try:
            while True:
                if frame_size is not None and frame_schedule.due(state.time):
                    frames.append(sim.render_topdown(*frame_size))
                if scorer.done[0]:
                    break
                t = time.perf_counter()
                alpha = np.asarray(self.alpha_source(state), dtype=float)
                t = timer.lap("alpha", t)
                action = ctl.act(state, alpha)
                t = timer.lap("controller", t)
                before = state.positions.copy()
                step = sim.step(action.u)
                timer.lap("physics", t)
                times.append(state.time)
                rows["x"].append(state.positions[0, :, 0])
                rows["y"].append(state.positions[0, :, 1])
                rows["heading"].append(state.headings[0])
                rows["v"].append(np.linalg.norm(state.velocities[0], axis=-1))
                rows["alpha"].append(action.alpha[0].copy())
                rows["status"].append(action.status[0].copy())
                statuses += np.bincount(action.status[0], minlength=len(AgentStatus))[:len(AgentStatus)]
                steps += 1
                state = step.state
                scorer.update(before, step, float(state.time), action.status == AgentStatus.INFEASIBLE_FALLBACK)
                if isinstance(sim, MujocoSwarm):  # contacts and geometric overlap differ only in physics
                    a_ov, o_ov, _, _ = sim.overlap()
                    now_overlapping = a_ov | o_ov
                    overlap_onsets += int(np.sum(now_overlapping & ~overlapping))
                    overlapping = now_overlapping
                bar.update(min(dt, bar.total - bar.n))
                if steps % 20 == 0:
                    bar.set_postfix_str(f"at goal {int(step.at_goal[0].sum())}/{n}", refresh=False)
        except (NavkitError, KeyboardInterrupt) as exc:
            error = exc  # what was measured so far is still written, marked as aborted
        finally:
            bar.close()
        wall = time.perf_counter() - wall_start
        row = scorer.metrics()[0]
        all_alpha = np.concatenate(rows["alpha"]) if rows["alpha"] else np.zeros(0)
        per_step = [sum(parts) for parts in zip(*(timer.samples[s] for s in STAGES))]
        compute_ms = summarize_ms(per_step) if per_step else None
        metrics: dict[str, Any] = {
            "scenario": sc.name, "seed": sc.seed, "num_agents": n, "dynamics": sc.dynamics,
            "success": row.success,
            "collisions": row.collisions,
            "min_separation_m": _finite(row.min_separation_m),
            "min_obstacle_gap_m": _finite(row.min_obstacle_gap_m),
            "infeasible": row.infeasible,
            "mean_time_to_goal_s": _finite(row.mean_time_to_goal_s),
            "path_length_ratio": _finite(row.path_length_ratio),
            "agents_at_goal": row.agents_at_goal,
            "episode_time_s": round(float(state.time), 6),
            "agent_collisions": row.agent_collisions,
            "obstacle_collisions": row.obstacle_collisions,
            "overlap_collisions": overlap_onsets,
            "alpha": {
                "source": opts.alpha_label or type(self.alpha_source).__name__,
                "mean": _finite(float(all_alpha.mean())) if all_alpha.size else None,
                "std": _finite(float(all_alpha.std())) if all_alpha.size else None,
                "min": _finite(float(all_alpha.min())) if all_alpha.size else None,
                "max": _finite(float(all_alpha.max())) if all_alpha.size else None,
            },
            "filter_status_counts": {s.name: int(statuses[s]) for s in AgentStatus},
            "control_dt_s": dt,
            "control_steps": steps,
            "wall_time_s": round(wall, 3),
            "real_time_factor": round(float(state.time) / wall, 2) if wall > 0 else None,
            "step_ms": timer.summary(STAGES) | ({"total": compute_ms} if compute_ms else {}),
            "step_ms_per_agent": round(compute_ms["mean"] / n, 5) if compute_ms else None,
            "max_rate_hz": round(1e3 / compute_ms["mean"], 1) if compute_ms and compute_ms["mean"] > 0 else None,
        }
        if error is not None:
            metrics["aborted"] = True
            metrics["abort_reason"] = "interrupted (Ctrl-C)" if isinstance(error, KeyboardInterrupt) else str(error)
        traces = SwarmTraces(time=np.asarray(times), final_xy=state.positions[0].copy(),
                             **{k: np.asarray(v).reshape(-1, n) for k, v in rows.items()})
        return SwarmRunResult(metrics=metrics, traces=traces, frames=frames, error=error)
