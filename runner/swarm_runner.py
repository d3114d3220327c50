"""The in-process runner for a robot team: MuJoCo physics + SwarmController + an α source.

Each control period (the scenario's ``control_dt_s``) it reads the team's state from
:class:`~navkit.sim.mujoco_swarm.MujocoSwarm`, asks the α source for every agent's CBF
gain (a fixed baseline or the online GNN policy), filters go-to-goal commands through
the per-agent CBF-QPs and steps physics. Episodes are scored with the definitions of
:mod:`navkit.planning.swarm_rollout` (success, collision onsets, separation, infeasible
QPs, time-to-goal, path-length ratio); collisions are counted from MuJoCo's contacts,
and geometric overlap is reported next to them. Stages are timed separately, because
"how many agents still run at 50 Hz" is a question users ask.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from navkit.common.errors import NavkitError
from navkit.control.multi_agent_cbf import AgentStatus
from navkit.control.swarm_controller import AlphaSource, FixedAlpha, SwarmController
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


DEFAULT_POLICY = Path(__file__).resolve().parents[1] / "control" / "policies" / "online_cbf_gnn.pt"
"""The shipped online-CBF policy; ``navkit run`` uses it for swarm scenarios when present."""


def load_policy(path: Path) -> AlphaSource:
    """The online GNN α policy from a checkpoint; a missing or corrupt file is a
    :class:`~navkit.control.online_cbf_policy.PolicyCheckpointError` naming it."""
    from navkit.control.online_cbf_policy import OnlineCbfPolicy

    return OnlineCbfPolicy.load(path)


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _ms(samples: list[float]) -> dict[str, float]:
    a = 1e3 * np.asarray(samples)
    return {"mean": round(float(a.mean()), 4), "p50": round(float(np.median(a)), 4),
            "p99": round(float(np.percentile(a, 99)), 4), "max": round(float(a.max()), 4)}


class SwarmRunner:
    """Steps a :class:`MujocoSwarm` and a :class:`SwarmController` together for one episode."""

    def __init__(self, scenario: SwarmScenario, alpha_source: AlphaSource | None = None,
                 controller: SwarmController | None = None) -> None:
        self.scenario = scenario
        self.alpha_source = alpha_source if alpha_source is not None else FixedAlpha(1.0)
        self.controller = controller or SwarmController.for_scenario(scenario)
        self.sim = MujocoSwarm(scenario)

    def close(self) -> None:
        self.sim.close()

    def run(self, options: SwarmRunOptions | None = None) -> SwarmRunResult:
        opts = options or SwarmRunOptions()
        sc, sim, ctl = self.scenario, self.sim, self.controller
        n, dt = sc.num_agents, sc.control_dt_s
        limit = opts.time_limit_s or sc.time_limit_s
        state = sim.reset()
        start = state.positions[0].copy()
        straight = np.linalg.norm(sc.goals - start, axis=-1)
        travelled = np.zeros(n)
        first_arrival = np.full(n, np.nan)
        touching = np.zeros(n, dtype=bool)
        overlapping = np.zeros(n, dtype=bool)
        collisions = {"agent": 0, "obstacle": 0}
        overlap_onsets = 0
        min_sep, min_gap = math.inf, math.inf
        infeasible = 0
        success = False
        rows: dict[str, list[np.ndarray]] = {k: [] for k in ("x", "y", "heading", "v", "alpha", "status")}
        times: list[float] = []
        stage: dict[str, list[float]] = {s: [] for s in STAGES}
        statuses = np.zeros(len(AgentStatus), dtype=int)
        frames: list[np.ndarray] = []
        frame_size = topdown_frame_size(sc, opts.video_height) if opts.video_fps > 0 else None
        next_frame = 0.0
        bar = None
        if opts.progress:
            from tqdm import tqdm

            bar = tqdm(total=round(limit, 1), unit="sim s", desc=f"{sc.name} x{n}",
                       bar_format="{l_bar}{bar}| {n:.1f}/{total:.0f} sim s [{elapsed}<{remaining}{postfix}]")
        steps = 0
        error: BaseException | None = None
        wall_start = time.perf_counter()
        try:
            while True:
                if frame_size is not None and state.time >= next_frame - 1e-9:
                    frames.append(sim.render_topdown(*frame_size))
                    next_frame += 1.0 / opts.video_fps
                if success or state.time >= limit - 1e-9:
                    break
                t0 = time.perf_counter()
                alpha = np.asarray(self.alpha_source(state), dtype=float)
                t1 = time.perf_counter()
                action = ctl.act(state, alpha)
                t2 = time.perf_counter()
                step = sim.step(action.u)
                t3 = time.perf_counter()
                stage["alpha"].append(t1 - t0)
                stage["controller"].append(t2 - t1)
                stage["physics"].append(t3 - t2)
                times.append(state.time)
                rows["x"].append(state.positions[0, :, 0])
                rows["y"].append(state.positions[0, :, 1])
                rows["heading"].append(state.headings[0])
                rows["v"].append(np.linalg.norm(state.velocities[0], axis=-1))
                rows["alpha"].append(action.alpha[0].copy())
                rows["status"].append(action.status[0].copy())
                statuses += np.bincount(action.status[0], minlength=len(AgentStatus))[:len(AgentStatus)]
                steps += 1

                new = step.state
                travelled += np.linalg.norm(new.positions[0] - state.positions[0], axis=-1)
                infeasible += int(np.sum(action.status[0] == AgentStatus.INFEASIBLE_BRAKE))
                a_hit, o_hit = step.agent_collision[0], step.obstacle_collision[0]
                now_touching = a_hit | o_hit
                onset = now_touching & ~touching
                collisions["agent"] += int(np.sum(onset & a_hit))
                collisions["obstacle"] += int(np.sum(onset & o_hit & ~a_hit))
                touching = now_touching
                a_ov, o_ov, sep, gap = sim.overlap()
                now_overlapping = a_ov | o_ov
                overlap_onsets += int(np.sum(now_overlapping & ~overlapping))
                overlapping = now_overlapping
                min_sep, min_gap = min(min_sep, sep), min(min_gap, gap)
                arrived = step.at_goal[0] & np.isnan(first_arrival)
                first_arrival[arrived] = new.time
                success = bool(step.at_goal[0].all())
                state = new
                if bar is not None:
                    bar.update(min(dt, bar.total - bar.n))
                    if steps % 20 == 0:
                        bar.set_postfix_str(f"at goal {int(step.at_goal[0].sum())}/{n}", refresh=False)
        except (NavkitError, KeyboardInterrupt) as exc:
            error = exc  # what was measured so far is still written, marked as aborted
        finally:
            if bar is not None:
                bar.close()
        wall = time.perf_counter() - wall_start
        reached = ~np.isnan(first_arrival)
        ratio = travelled[reached] / np.maximum(straight[reached], 1e-9)
        all_alpha = np.concatenate(rows["alpha"]) if rows["alpha"] else np.zeros(0)
        per_step = [a + c + p for a, c, p in zip(stage["alpha"], stage["controller"], stage["physics"])]
        compute_ms = _ms(per_step) if per_step else None
        metrics: dict[str, Any] = {
            "scenario": sc.name, "seed": sc.seed, "num_agents": n, "dynamics": sc.dynamics,
            "success": success,
            "collisions": collisions["agent"] + collisions["obstacle"],
            "min_separation_m": _finite(min_sep),
            "min_obstacle_gap_m": _finite(min_gap),
            "infeasible": infeasible,
            "mean_time_to_goal_s": float(np.nanmean(first_arrival)) if reached.any() else None,
            "path_length_ratio": float(ratio.mean()) if reached.any() else None,
            "agents_at_goal": int(reached.sum()),
            "episode_time_s": round(float(state.time), 6),
            # Beyond swarm_rollout.EpisodeMetrics:
            "agent_collisions": collisions["agent"],
            "obstacle_collisions": collisions["obstacle"],
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
            "step_ms": {s: _ms(v) for s, v in stage.items() if v} | ({"total": compute_ms} if compute_ms else {}),
            "step_ms_per_agent": round(compute_ms["mean"] / n, 5) if compute_ms else None,
            "max_rate_hz": round(1e3 / compute_ms["mean"], 1) if compute_ms else None,
        }
        if error is not None:
            metrics["aborted"] = True
            metrics["abort_reason"] = "interrupted (Ctrl-C)" if isinstance(error, KeyboardInterrupt) else str(error)
        traces = SwarmTraces(time=np.asarray(times), final_xy=state.positions[0].copy(),
                             **{k: np.asarray(v).reshape(-1, n) for k, v in rows.items()})
        return SwarmRunResult(metrics=metrics, traces=traces, frames=frames, error=error)
