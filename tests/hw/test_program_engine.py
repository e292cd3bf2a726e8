"""The program engine (hw/program_engine.py) on the Amaranth simulator: a compiled network, image in, logits out.

A small residual network (a raw 1x1 projection stored as a raw region, its add fused into a strided conv, an
identity add fused into the next conv, a pooled linear layer) is compiled for the engine's array and run with
random pauses on every input stream and on `logits`: the logits must equal golden's integer path bit for bit,
and, with every stream ideal, each step must end in the cycle `contract.timing.program_step_cycles` gives;
the engine's counters must hold against the model (verif.counters: MACs exact, active cycles within the
bound of a program whose output path does not keep pace, exact without stalls).
Illegal steps are refused with `error` and the next program still runs. A failure prints its seed.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from contract.config import EngineConfig
from contract.policy import Policy
from contract.program import ProgramLimits, compile_program
from golden.convert import convert
from golden.export import build_export
from golden.infer import run_integer
from golden.layers import QuantSpec
from sim.program_cost import program_cost
from sim.program_cycles import program_step_cycles
from verif.amaranth_program import simulate_program
from verif.counters import counter_mismatches, keeps_pace
from verif.program_steps import layer_step
from verif.scenarios import base_seed, run_seed

WORDS = 256
LIMITS = ProgramLimits(WORDS, max_size=8, max_channels=16, max_n_tiles=4)


class TinyResidual(nn.Module):
    """Every kind of step a program has, on a 1x6x6 input: relu convs, a raw region, two fused adds."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 5, 3, padding=1)
        self.projection = nn.Conv2d(5, 6, 1, stride=2)
        self.down = nn.Conv2d(5, 6, 3, stride=2, padding=1)
        self.same = nn.Conv2d(6, 6, 3, padding=1)
        self.fc = nn.Linear(6 * 3 * 3, 7)

    def forward(self, x):
        a = torch.relu(self.stem(x))
        b = torch.relu(self.down(a) + self.projection(a))
        c = torch.relu(self.same(b) + b)
        return self.fc(torch.flatten(c, 1))


@pytest.fixture(scope="module")
def export():
    torch.manual_seed(1)
    return build_export(convert(TinyResidual(), QuantSpec("truncquant", "twos"), (1, 6, 6)).eval())


def compiled(export, rows, cols, ks, digit_bits=None):
    policy = (Policy("uniform", (ks,)) if isinstance(ks, int) else Policy("static", tuple(ks))).resolve(export)
    program, images = compile_program(export, rows, cols, WORDS, policy)
    widths = {name: getattr(export, name) for name in ("base_bits", "act_bits", "acc_bits")}
    cfg = EngineConfig(rows=rows, cols=cols, digit_bits=digit_bits, **widths, **program.gemm_limits())
    return cfg, program, images


CASES = [((4, 4), None, 8, 0.0), ((3, 5), None, "static", 0.5), ((4, 4), 1, 2, 0.3)]


@pytest.mark.parametrize("shape, digit_bits, ks, stall", CASES, ids=lambda v: str(v))
def test_a_residual_network_runs_bit_for_bit(export, shape, digit_bits, ks, stall):
    seed = run_seed(base_seed(), f"{shape}-{digit_bits}", f"{ks}-{stall}")
    ks = [1 + 3 * i % 8 for i in range(len(export.layers))] if ks == "static" else ks
    cfg, program, images = compiled(export, *shape, ks, digit_bits)
    assert (
        any(d.store == "raw" for d in program.descriptors) and sum(bool(d.operands) for d in program.descriptors) == 2
    )
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 1 << export.act_bits, (1, *export.input_shape))
    run = simulate_program(cfg, LIMITS, program, images, codes[0], stall, seed)
    golden = run_integer(export, torch.from_numpy(codes), ks)[0]
    assert not run.error, f"seed {seed}"
    assert torch.equal(run.logits, golden), f"seed {seed}: logits differ from golden"
    cost = program_cost(cfg, program, export, LIMITS.words)
    exact = not stall or keeps_pace(cfg, program)
    assert counter_mismatches(run.counters, cost, exact) == [], f"seed {seed}: {run.counters}"
    if not stall:
        steps = [None, *program.descriptors]
        expected = [program_step_cycles(cfg, program, d) for d in steps]
        assert np.diff(run.step_cycles).tolist() == expected[:-1], f"seed {seed}: step cycles differ from the model"


def test_an_illegal_step_is_refused_and_the_next_program_runs(export):
    cfg, program, images = compiled(export, 4, 4, 8)
    first = program.descriptors[0]
    illegal = [
        layer_step(program, dataclasses.replace(first, stride=3)),  # the output size does not follow
        layer_step(program, dataclasses.replace(first, in_shape=(0, 6, 6))),  # no channels
        layer_step(program, dataclasses.replace(first, out_shape=(cfg.max_n + 1, 6, 6))),  # N beyond max_n
        layer_step(program, dataclasses.replace(first, store="raw", planes=0)),  # a raw store of no planes
    ]
    codes = np.random.default_rng(0).integers(0, 1 << export.act_bits, (1, *export.input_shape))
    run = simulate_program(cfg, LIMITS, program, images, codes[0], extra_steps=tuple(illegal))
    assert run.error
    assert torch.equal(run.logits, run_integer(export, torch.from_numpy(codes), 8)[0])


def test_steps_whose_m_or_k_wrap_the_command_fields_are_refused(export):
    """M = OH*OW and K = KH*KW*G*R are checked against max_m and max_k at their full width, before they are put
    into the GEMM command's narrower fields: a 9x9 output (M = 81) at max_m = 36 would read as 81 mod 64 = 17
    rows there, and 16 input channels of a 3x3 kernel (K = 144) at max_k = 72 as 144 mod 128 = 16, legal
    commands that would run with no weight beats coming (a hang, or the next layer's beats taken for them)."""
    cfg, program, images = compiled(export, 4, 4, 8)
    first = program.descriptors[0]
    channels = first.out_shape[0]
    side, wide = 9, 16
    m_dim, k_dim = side * side, first.kernel[0] * first.kernel[1] * wide
    for value, maximum in ((m_dim, cfg.max_m), (k_dim, cfg.max_k)):
        assert maximum < value and value % (1 << cfg.field_bits(maximum)) <= maximum, "the case must wrap"
    assert m_dim * (1 + -(-channels // cfg.rows)) <= WORDS, "source and target inside the scratchpad"
    tall = dataclasses.replace(
        first, in_shape=(1, side, side), out_shape=(channels, side, side), source=0, target=m_dim
    )
    deep = dataclasses.replace(first, in_shape=(wide, *first.in_shape[1:]), source=0)
    assert (wide // cfg.rows) * first.in_shape[1] * first.in_shape[2] <= WORDS
    limits = dataclasses.replace(LIMITS, max_size=side)
    codes = np.random.default_rng(0).integers(0, 1 << export.act_bits, (1, *export.input_shape))
    steps = (layer_step(program, tall), layer_step(program, deep))
    run = simulate_program(cfg, limits, program, images, codes[0], extra_steps=steps, timeout=20_000)
    assert run.error
    assert torch.equal(run.logits, run_integer(export, torch.from_numpy(codes), 8)[0])
