"""The program engine's performance counters (ProgramEngine.events) against the model, on the Amaranth simulator.

A small plain network (test_program_dynamic's, without its controller: two relu convs stored as codes, a linear
layer giving the logits; on a 4x4 array every layer's output path keeps pace with the engine,
verif.counters.keeps_pace) runs with random pauses on every input stream and on `logits`: its active cycles
must equal the program's cycles on the cycle-exact model (sim.program_cost) and its MACs the model's MACs,
while the waits by cause take the stalls. A model value off by one must be caught. A failure prints its seed.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from golden.convert import convert
from golden.export import build_export
from golden.layers import QuantSpec
from sim.program_cost import program_cost
from tests.hw.test_program_dynamic import Small
from tests.hw.test_program_engine import LIMITS, compiled
from verif.amaranth_program import simulate_program
from verif.counters import counter_mismatches, keeps_pace
from verif.scenarios import base_seed, run_seed


@pytest.fixture(scope="module")
def export():
    torch.manual_seed(1)
    return build_export(convert(Small(), QuantSpec("truncquant", "twos"), (1, 6, 6)).eval())


CASES = [(None, 8, 0.5), (1, 2, 0.4)]


@pytest.fixture(scope="module")
def runs(export):
    """Each case's seed, counters and model cost, simulated once for both tests."""
    results = {}
    for digit_bits, k, stall in CASES:
        seed = run_seed(base_seed(), "counters", f"{digit_bits}-{k}-{stall}")
        cfg, program, images = compiled(export, 4, 4, k, digit_bits)
        assert keeps_pace(cfg, program)
        codes = np.random.default_rng(seed).integers(0, 1 << export.act_bits, (1, *export.input_shape))
        run = simulate_program(cfg, LIMITS, program, images, codes[0], stall, seed)
        results[digit_bits, k, stall] = seed, run.counters, program_cost(cfg, program, export, LIMITS.words)
    return results


@pytest.mark.parametrize("case", CASES, ids=str)
def test_the_counters_equal_the_model_under_random_stalls(runs, case):
    seed, counters, cost = runs[case]
    assert counter_mismatches(counters, cost) == [], f"seed {seed}: {counters}"
    waits = sum(counters[f"{name}_cycles"] for name in ("step", "image", "weight", "param", "output"))
    assert waits > 0 and counters["other_cycles"] == 0, f"seed {seed}: the stalls were not counted: {counters}"


def test_a_wrong_model_value_is_caught(runs):
    seed, counters, cost = runs[CASES[0]]
    first = cost.steps[0]
    for wrong in (dataclasses.replace(first, cycles=first.cycles + 1), dataclasses.replace(first, macs=1)):
        (mismatch,) = counter_mismatches(counters, dataclasses.replace(cost, steps=(wrong, *cost.steps[1:])))
        assert "the model's" in mismatch, f"seed {seed}"
