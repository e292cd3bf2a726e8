"""golden.adaptivity on hand-made arrays: every expected figure below is worked out in the comment beside it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from contract.numerics import NumericsError
from golden.adaptivity import Outcome, escalated_fraction, mixed_at_random, oracle, route, threshold, transitions


def test_transitions_count_layer_switches_between_consecutive_inputs_and_their_weights():
    ks = np.array([[1, 2], [1, 3], [2, 3], [2, 3]])
    # pairs: (0,1) layer 1 switches (100 weights), (1,2) layer 0 (10), (2,3) none: 2 switches, 110 shifts, 3 pairs
    assert transitions(ks, np.array([10, 100])) == pytest.approx((2 / 3, 110 / 3))
    assert transitions(ks[:1], np.array([10, 100])) == (0.0, 0.0)
    with pytest.raises(NumericsError, match=r"ks must be \[inputs, 3\]"):
        transitions(ks, np.array([1, 2, 3]))


CORRECT = np.array([[True, True], [False, True], [False, True], [False, False]])
COSTS = np.array([1.0, 4.0])


def test_the_oracle_buys_the_cheapest_corrections_first_within_the_mean_budget():
    # every input costs 1; inputs 1 and 2 are right for 3 more each, input 3 never: 4 inputs x 1.5 spare = 6
    # buys both, 4 x 1 = 4 buys one
    assert oracle(CORRECT, COSTS, 2.5) == Outcome(0.75, 2.5)
    assert oracle(CORRECT, COSTS, 2.0) == Outcome(0.5, 1.75)
    assert oracle(CORRECT, COSTS, 1.0) == Outcome(0.25, 1.0)
    with pytest.raises(NumericsError, match="the cheapest costs 1"):
        oracle(CORRECT, COSTS, 0.5)


def test_escalating_the_highest_scores_at_the_fraction_the_budget_affords():
    assert escalated_fraction(1.0, 5.0, 2.0) == 0.25  # 1 + f * 4 = 2
    assert escalated_fraction(1.0, 5.0, 9.0) == 1.0
    with pytest.raises(NumericsError, match="must cost more"):
        escalated_fraction(5.0, 5.0, 5.0)
    scores = np.array([0.1, 0.9, 0.5, 0.7])
    assert threshold(scores, 0.5) == 0.7  # the two highest: 0.9 and 0.7
    assert threshold(scores, 0.0) == math.inf
    # inputs 1 and 3 escalate: right cheap [T, F, F, T] and dear [F, T, T, F] give T, T, F, F; costs 1, 5, 1, 5
    routed = route(scores, 0.7, [True, False, False, True], [False, True, True, False], 1.0, 5.0)
    assert routed == Outcome(0.5, 3.0)


def test_a_random_mix_lies_on_the_line_between_its_two_allocations():
    mixed = mixed_at_random(Outcome(0.8, 1.0), Outcome(0.9, 5.0), 0.25)
    assert (mixed.accuracy, mixed.cost) == pytest.approx((0.825, 2.0))
