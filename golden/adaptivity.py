"""Does choosing precision per input pay? The measures of issue 26 item 2, apart from any model or data set.

A dynamic policy is judged against static allocations at the same mean BitOPs. Three questions, each a
function here on plain arrays (per-image correctness and costs), so that bench/adaptivity.py only gathers
the arrays and tests can check every piece on hand-made ones:

- What does switching cost? DQT reports a transition as bit-shift operations: a layer whose k changes between
  one input and the next has each of its weights shifted to the new width, one shift per weight
  (`transitions`). nestmac's engine shifts no weight (the k is a mask on the stored code and one requantizer
  shift amount per column, docs/numerics.md), so the count is what DQT's accounting would charge, not a
  cost the engine pays.
- How much could any per-input choice gain? The oracle (`oracle`) gives each input the cheapest allocation of
  a set that classifies it correctly, as many inputs as the mean budget affords: an upper bound for every
  controller choosing among that set. A small gain over the best static allocation means no controller can
  win; a large one says only that there is room, because part of it is luck (an input right at k = 1 and
  wrong at k = 8).
- Does a cheap signal find the inputs that need more bits? Routing (`route`) sends the inputs whose
  difficulty score is highest to a dearer allocation and the rest to a cheaper one, as many as the budget
  affords (`escalated_fraction`, `threshold`). The same two allocations mixed at random at the same fraction
  score the straight line between them; the signal is worth what routing adds over that line.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from contract.numerics import NumericsError


@dataclass(frozen=True)
class Outcome:
    """A policy on a set of images: the fraction classified correctly and the mean cost per image."""

    accuracy: float
    cost: float


def transitions(ks: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    """(layer transitions per input, bit-shift operations per input) when the inputs run one after another in
    the order of `ks` [inputs, layers] (each input's k per layer): a transition is a layer whose k differs
    from the previous input's, and costs one shift per weight of that layer (`weights` [layers])."""
    ks, weights = np.asarray(ks), np.asarray(weights, dtype=np.float64)
    if ks.ndim != 2 or ks.shape[1] != len(weights):
        raise NumericsError(f"ks must be [inputs, {len(weights)}], got {list(ks.shape)}")
    if len(ks) < 2:
        return 0.0, 0.0
    changed = ks[1:] != ks[:-1]
    return float(changed.sum() / (len(ks) - 1)), float((changed * weights).sum() / (len(ks) - 1))


def oracle(correct: np.ndarray, costs: np.ndarray, budget: float) -> Outcome:
    """The per-input oracle over a set of allocations: `correct` [inputs, allocations] (bool) and `costs`
    [allocations] per input. Every input costs at least the cheapest allocation; an input is bought right at
    the cheapest allocation that classifies it correctly, cheapest extra first, while the mean cost stays
    within `budget`. Buying the cheapest extras first maximises the count, every input being worth one."""
    correct, costs = np.asarray(correct, dtype=bool), np.asarray(costs, dtype=np.float64)
    if correct.ndim != 2 or correct.shape[1] != len(costs) or len(correct) == 0:
        raise NumericsError(f"correct must be [inputs > 0, {len(costs)}], got {list(correct.shape)}")
    floor = costs.min()
    if floor > budget:
        raise NumericsError(f"no allocation meets the budget {budget:g}; the cheapest costs {floor:g}")
    extra = np.sort(np.where(correct, costs - floor, np.inf).min(axis=1))
    affordable = extra[np.isfinite(extra)]
    spent = np.cumsum(affordable)
    bought = int(np.searchsorted(spent, (budget - floor) * len(correct), side="right"))
    return Outcome(bought / len(correct), floor + (float(spent[bought - 1]) if bought else 0.0) / len(correct))


def escalated_fraction(cheap: float, dear: float, budget: float) -> float:
    """The fraction of inputs the dear allocation can take at a mean cost of `budget`, the rest at the cheap
    one (clipped to 0..1); `dear` is what an escalated input costs in all."""
    if not cheap < dear:
        raise NumericsError(f"the dear allocation must cost more than the cheap one ({dear:g} <= {cheap:g})")
    return float(np.clip((budget - cheap) / (dear - cheap), 0.0, 1.0))


def threshold(scores: np.ndarray, fraction: float) -> float:
    """The score at or above which `fraction` of these inputs (the calibration set) are escalated: the inputs
    with the highest scores; +inf escalates none."""
    scores = np.sort(np.asarray(scores, dtype=np.float64))[::-1]
    count = int(np.floor(fraction * len(scores)))
    return float(scores[count - 1]) if count else float("inf")


def route(
    scores: np.ndarray, cut: float, cheap_correct: np.ndarray, dear_correct: np.ndarray, cheap: float, dear: float
) -> Outcome:
    """Inputs whose score is at least `cut` run (and are scored) at the dear allocation, the others at the
    cheap one; `dear` is what an escalated input costs in all."""
    up = np.asarray(scores, dtype=np.float64) >= cut
    right = np.where(up, np.asarray(dear_correct, dtype=bool), np.asarray(cheap_correct, dtype=bool))
    return Outcome(float(right.mean()), float(np.where(up, dear, cheap).mean()))


def mixed_at_random(cheap: Outcome, dear: Outcome, fraction: float) -> Outcome:
    """The expected outcome of escalating a random `fraction` of the inputs: the line between the two."""
    return Outcome(
        cheap.accuracy + fraction * (dear.accuracy - cheap.accuracy), cheap.cost + fraction * (dear.cost - cheap.cost)
    )
