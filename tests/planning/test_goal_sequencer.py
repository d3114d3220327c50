"""GoalSequencer: visits goals in order and reports each arrival once."""
from __future__ import annotations

import numpy as np
import pytest

from navkit.planning import GoalSequencer, GoalSequencerConfig


def test_advances_through_goals_in_order() -> None:
    seq = GoalSequencer([(1.0, 0.0), (2.0, 2.0), (0.0, 3.0)], GoalSequencerConfig(goal_tolerance_m=0.25))
    assert seq.current() == (1.0, 0.0) and not seq.done
    assert not seq.update((0.0, 0.0))
    assert not seq.update((2.0, 2.0))  # the second goal does not count before the first
    assert seq.update((1.2, 0.1))
    assert seq.current() == (2.0, 2.0) and seq.reached == [0]
    assert not seq.update((1.2, 0.1))  # reported once
    assert seq.update(np.array([2.0, 1.8]))
    assert seq.update((0.1, 3.1))
    assert seq.done and seq.current() is None and seq.reached == [0, 1, 2]
    assert not seq.update((0.0, 3.0))


def test_tolerance_boundary() -> None:
    seq = GoalSequencer([(0.0, 0.0)], GoalSequencerConfig(goal_tolerance_m=0.5))
    assert not seq.update((0.51, 0.0))
    assert seq.update((0.49, 0.0))


def test_empty_sequence_is_done() -> None:
    seq = GoalSequencer([])
    assert seq.done and seq.current() is None and not seq.update((0.0, 0.0))


def test_validation_names_the_field() -> None:
    with pytest.raises(ValueError, match="goal_tolerance_m"):
        GoalSequencerConfig(goal_tolerance_m=0.0)
    with pytest.raises(ValueError, match=r"goals\[1\]"):
        GoalSequencer([(0.0, 0.0), (float("inf"), 1.0)])
