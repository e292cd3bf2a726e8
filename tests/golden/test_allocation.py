"""The static allocation search on accuracy functions whose best allocations are known by construction."""

import pytest

from contract.numerics import NumericsError
from golden.allocation import (
    Point,
    additive_front,
    best_under,
    exhaustive_points,
    greedy_front,
    knapsack_allocation,
    pareto_front,
)


def _separable(sensitivity):
    """Accuracy falls by sensitivity[i] per bit removed from layer i below 8: the cheapest loss is known."""
    return lambda ks: 1.0 - sum(s * (8 - k) for s, k in zip(sensitivity, ks, strict=True))


def _macs_cost(macs):
    return lambda ks: sum(m * k for m, k in zip(macs, ks, strict=True))


def test_greedy_lowers_the_least_sensitive_layer_per_bitop_first():
    # Same MACs: layer 1 (sensitivity 0.001) goes down to 1 bit before layer 0 (0.01) loses a bit.
    points = greedy_front(2, 8, _separable([0.01, 0.001]), _macs_cost([100, 100]))
    assert [p.bits for p in points[:8]] == [(8, k) for k in range(8, 0, -1)]
    assert points[-1].bits == (1, 1)
    assert len(points) == 2 * 7 + 1


def test_greedy_weighs_loss_against_bitops_saved():
    # Layer 0 is 10x as sensitive but holds 100x the MACs: lowering it saves more per accuracy lost.
    points = greedy_front(2, 4, _separable([0.01, 0.001]), _macs_cost([1000, 10]))
    assert points[1].bits == (3, 4)


def test_greedy_matches_exhaustive_on_a_separable_problem():
    accuracy, cost = _separable([0.02, 0.005, 0.01]), _macs_cost([10, 40, 20])
    exhaustive = pareto_front(exhaustive_points(3, 4, accuracy, cost))
    greedy = greedy_front(3, 4, accuracy, cost)
    for budget in (70, 140, 210, 280):
        assert best_under(greedy, budget).accuracy == pytest.approx(best_under(exhaustive, budget).accuracy)


def test_pareto_front_drops_dominated_points():
    points = [Point((1,), 0.5, 10), Point((2,), 0.4, 20), Point((3,), 0.9, 30), Point((4,), 0.9, 40)]
    assert [p.bits for p in pareto_front(points)] == [(1,), (3,)]


def test_a_budget_no_allocation_meets_is_refused():
    with pytest.raises(NumericsError, match="no allocation meets the budget 5; the cheapest costs 10"):
        best_under([Point((1,), 0.5, 10)], 5)


def test_exhaustive_search_is_bounded():
    with pytest.raises(NumericsError, match="too many"):
        exhaustive_points(5, 8, lambda ks: 0.0, lambda ks: 0.0)


def test_additive_walk_equals_greedy_when_losses_do_add_up():
    accuracy, cost = _separable([0.02, 0.005, 0.01]), _macs_cost([10, 40, 20])
    calls = []

    def counted(ks):
        calls.append(ks)
        return accuracy(ks)

    additive = additive_front(3, 4, counted, cost)
    assert [p.bits for p in additive] == [p.bits for p in greedy_front(3, 4, accuracy, cost)]
    assert [p.accuracy for p in additive] == [accuracy(p.bits) for p in additive]
    assert len(calls) == 1 + 3 * 3 + (3 * 3 + 1)  # top, each layer alone at k < B, then every step


def test_knapsack_finds_the_exhaustive_best_under_each_budget_when_losses_add_up():
    accuracy, cost = _separable([0.02, 0.005, 0.01]), _macs_cost([10, 40, 20])
    exhaustive = pareto_front(exhaustive_points(3, 4, accuracy, cost))
    for budget in (70, 95, 140, 175, 210, 280):
        chosen = knapsack_allocation(3, 4, accuracy, cost, budget)
        assert chosen.cost <= budget
        assert chosen.accuracy == pytest.approx(best_under(exhaustive, budget).accuracy), f"budget {budget}"


def test_knapsack_spends_the_budget_a_greedy_step_leaves():
    """Layer 0 loses least per BitOP, so the walk lowers it 4 -> 3 -> 2 -> 1 (costs 130, 100, 70): at a budget of
    90 its step is (1, 4), 20 under the budget; (2, 3) costs exactly 90 and loses a point less."""
    accuracy, cost = _separable([0.02, 0.01]), _macs_cost([30, 10])
    walk = max((p for p in greedy_front(2, 4, accuracy, cost) if p.cost <= 90), key=lambda p: p.cost)
    chosen = knapsack_allocation(2, 4, accuracy, cost, 90)
    assert (walk.bits, walk.cost) == ((1, 4), 70)
    assert (chosen.bits, chosen.cost) == ((2, 3), 90)
    assert chosen.accuracy == pytest.approx(accuracy((2, 3)))
    assert chosen.accuracy > walk.accuracy


def test_knapsack_measures_each_layer_alone_then_only_its_answer():
    accuracy, cost = _separable([0.02, 0.005, 0.01]), _macs_cost([10, 40, 20])
    calls = []

    def counted(ks):
        calls.append(ks)
        return accuracy(ks)

    knapsack_allocation(3, 4, counted, cost, 150)
    assert len(calls) == 1 + 3 * 3 + 1


def test_knapsack_refuses_a_budget_no_allocation_meets():
    with pytest.raises(NumericsError, match="no allocation meets the budget 60; the cheapest costs 70"):
        knapsack_allocation(3, 4, _separable([0.02, 0.005, 0.01]), _macs_cost([10, 40, 20]), 60)
