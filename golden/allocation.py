"""Static mixed precision: which k per layer is best under a BitOPs budget (the static Pareto front).

A network of L layers has B^L static allocations, too many to evaluate beyond a few layers, so the search
is greedy by sensitivity, as HAWQ-style and DQT's static baselines do: start with every layer at B and, step
by step, lower by one bit the layer whose step loses the least accuracy per BitOP saved. Each step is one
point of the front, from B everywhere down to 1 everywhere; the best allocation under a budget is the most
accurate point that fits. Greedy measures about L^2*B/2 allocations; the additive variant measures each
layer alone at each k (L*(B-1)), assumes the losses add up, steers the same greedy walk by that sum, and
then measures only the walk's own L*(B-1)+1 steps: what a ResNet-20 can afford. The same per-layer losses also
pick the allocation for one budget exactly, as a knapsack (knapsack_allocation): the one with the least summed
loss among all B^L within the budget, which lands nearer the budget than a step of the walk. Where the space is
small it is searched exhaustively instead, which also shows how far greedy falls from the true front.

The search knows nothing of torch or the engine: it calls `accuracy(ks)` and `cost(ks)` for precision
vectors ks, so the same code ranks allocations by fake-quant accuracy, integer-path accuracy or cycles.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from contract.numerics import NumericsError

Allocation = tuple[int, ...]
EXHAUSTIVE_LIMIT = 4096  # allocations; beyond this the search is greedy


@dataclass(frozen=True)
class Point:
    bits: Allocation
    accuracy: float
    cost: float


def pareto_front(points: Sequence[Point]) -> list[Point]:
    """The points no other point beats on both accuracy and cost, cheapest first."""
    front: list[Point] = []
    for point in sorted(points, key=lambda p: (p.cost, -p.accuracy)):
        if not front or point.accuracy > front[-1].accuracy:
            front.append(point)
    return front


def greedy_front(
    layers: int, base_bits: int, accuracy: Callable[[Allocation], float], cost: Callable[[Allocation], float]
) -> list[Point]:
    """One point per greedy step from (B,)*L to (1,)*L: L*(B-1)+1 points, about L^2*B/2 evaluations."""
    bits = (base_bits,) * layers
    points = [Point(bits, accuracy(bits), cost(bits))]
    while any(k > 1 for k in bits):
        current = points[-1]
        candidates = []
        for layer in (i for i, k in enumerate(bits) if k > 1):
            lower = bits[:layer] + (bits[layer] - 1,) + bits[layer + 1 :]
            step = Point(lower, accuracy(lower), cost(lower))
            saved = max(current.cost - step.cost, 1e-12)
            candidates.append(((current.accuracy - step.accuracy) / saved, layer, step))
        _, _, best = min(candidates, key=lambda c: (c[0], c[1]))
        bits = best.bits
        points.append(best)
    return points


def layer_losses(
    layers: int, base_bits: int, accuracy: Callable[[Allocation], float]
) -> tuple[float, dict[tuple[int, int], float]]:
    """The accuracy at B everywhere, and what each layer alone at each k loses from it: L*(B-1)+1 measurements."""
    full = (base_bits,) * layers
    top = accuracy(full)
    loss = {(layer, base_bits): 0.0 for layer in range(layers)}
    for layer in range(layers):
        for k in range(1, base_bits):
            loss[layer, k] = top - accuracy(full[:layer] + (k,) + full[layer + 1 :])
    return top, loss


def additive_front(
    layers: int, base_bits: int, accuracy: Callable[[Allocation], float], cost: Callable[[Allocation], float]
) -> list[Point]:
    """The greedy walk steered by per-layer losses assumed to add up; every step's accuracy is measured."""
    top, loss = layer_losses(layers, base_bits, accuracy)

    def surrogate(bits: Allocation) -> float:
        return top - sum(loss[layer, k] for layer, k in enumerate(bits))

    return [
        Point(step.bits, accuracy(step.bits), step.cost) for step in greedy_front(layers, base_bits, surrogate, cost)
    ]


def knapsack_allocation(
    layers: int,
    base_bits: int,
    accuracy: Callable[[Allocation], float],
    cost: Callable[[Allocation], float],
    budget: float,
) -> Point:
    """The allocation within `budget` that loses the least by the per-layer losses' sum (layer_losses), found
    exactly over all B^L allocations as a multiple-choice knapsack (HAWQ-V3 solves the same problem as an
    integer program), then measured. Unlike a step of the greedy walk, which lowers one bit at a time and stops
    up to a whole step under the budget, it spends the budget where the losses say it buys most, so it lands
    near the budget. `cost` must add up over layers, as BitOPs and cycles do: each layer's share is read off
    as cost with that layer alone at k, less cost at B everywhere.

    The search keeps, layer by layer, only the partial allocations no other beats on both cost and loss (a
    Pareto set), so it is exact and small: at most one entry per distinct cost."""
    full = (base_bits,) * layers
    _, loss = layer_losses(layers, base_bits, accuracy)
    start = cost(full)
    saved = {
        (layer, k): start - cost(full[:layer] + (k,) + full[layer + 1 :])
        for layer in range(layers)
        for k in range(1, base_bits + 1)
    }
    least = start - sum(max(saved[layer, k] for k in range(1, base_bits + 1)) for layer in range(layers))
    if least > budget:
        raise NumericsError(f"no allocation meets the budget {budget:g}; the cheapest costs {least:g}")
    # partial allocation -> (cost so far, loss so far), the cost being what the layers not yet chosen leave at B
    states: list[tuple[float, float, Allocation]] = [(start, 0.0, ())]
    for layer in range(layers):
        # what the layers after this one can still save at most, so that a state that cannot reach the budget
        # is dropped now
        later = sum(max(saved[rest, k] for k in range(1, base_bits + 1)) for rest in range(layer + 1, layers))
        grown = [
            (spent - saved[layer, k], lost + loss[layer, k], bits + (k,))
            for spent, lost, bits in states
            for k in range(1, base_bits + 1)
            if spent - saved[layer, k] - later <= budget
        ]
        states = []
        for state in sorted(grown, key=lambda s: (s[1], -s[0])):  # least loss first; of equal loss, the dearest
            if not states or state[0] < states[-1][0]:  # keep it only if cheaper than every less lossy state
                states.append(state)
    _, _, bits = min(states, key=lambda s: (s[1], -s[0]))
    return Point(bits, accuracy(bits), cost(bits))


def exhaustive_points(
    layers: int, base_bits: int, accuracy: Callable[[Allocation], float], cost: Callable[[Allocation], float]
) -> list[Point]:
    """Every allocation; refused beyond EXHAUSTIVE_LIMIT of them."""
    if base_bits**layers > EXHAUSTIVE_LIMIT:
        raise NumericsError(f"{base_bits}^{layers} allocations are too many to search exhaustively")
    return [
        Point(bits, accuracy(bits), cost(bits)) for bits in itertools.product(range(1, base_bits + 1), repeat=layers)
    ]


def best_under(points: Sequence[Point], budget: float) -> Point:
    """The most accurate point whose cost is within `budget` (ties: the cheaper one)."""
    fitting = [p for p in points if p.cost <= budget]
    if not fitting:
        cheapest = min(p.cost for p in points)
        raise NumericsError(f"no allocation meets the budget {budget:g}; the cheapest costs {cheapest:g}")
    return max(fitting, key=lambda p: (p.accuracy, -p.cost))
