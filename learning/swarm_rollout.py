"""Roll B scenes of a robot team out to the end of their episodes on the vectorised simulator.

The benchmark, the trainer's evaluation and the tests roll out here; the scoring is
:class:`~navkit.learning.swarm_task.EpisodeScorer`, shared with every other wiring.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from navkit.common.swarm_state import SwarmState
from navkit.control.multi_agent_cbf import AgentStatus
from navkit.common.interfaces import CbfParameterPolicy
from navkit.control.swarm_controller import SwarmController
from navkit.learning.swarm_task import EpisodeMetrics, EpisodeScorer
from navkit.sim.kinematic_swarm import KinematicSwarm
from navkit.sim.swarm_scenario import SwarmScenario


def rollout(scenarios: Sequence[SwarmScenario], controller: SwarmController, alpha_source: CbfParameterPolicy,
            on_step: Callable[[SwarmState, object], None] | None = None) -> list[EpisodeMetrics]:
    """Run B scenes together until each succeeds or hits its time limit; one metrics row each."""
    env = KinematicSwarm(scenarios)
    scorer = EpisodeScorer(scenarios, env.positions.copy())
    state = env.state
    while not scorer.done.all():
        action = controller.act(state, alpha_source(state))
        u = np.where(scorer.done[:, None, None], 0.0, action.u)
        before = env.positions.copy()
        step = env.step(u)
        state = step.state
        scorer.update(before, step, env.time, action.status == AgentStatus.INFEASIBLE_FALLBACK)
        if on_step is not None:
            on_step(state, action)
    return scorer.metrics()
