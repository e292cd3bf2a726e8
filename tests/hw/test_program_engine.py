"""The program engine (hw/program_engine.py) on the Amaranth simulator: a compiled network, image in, logits out.

A small residual network (a raw 1x1 projection stored as a raw region, its add fused into a strided conv, an
identity add fused into the next conv, a pooled linear layer) is compiled for the engine's array and run with
random pauses on every input stream and on `logits`: the logits must equal golden's integer path bit for bit,
and, with every stream ideal, each step must end in the cycle `contract.timing.program_step_cycles` gives.
Illegal steps are refused with `error` and the next program still runs. A failure prints its seed.
"""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest
import torch
from amaranth.sim import Simulator
from torch import nn

from contract.config import EngineConfig
from contract.policy import Policy
from contract.program import compile_program
from golden.convert import convert
from golden.export import build_export
from golden.infer import run_integer
from golden.layers import QuantSpec
from hw.program_engine import ProgramEngine
from sim.payload import from_bits
from sim.program_cycles import program_step_cycles
from verif.amaranth_streams import receive, send
from verif.program_steps import layer_step, payloads, program_beats
from verif.scenarios import base_seed, run_seed
from verif.stalls import Never, Random

WORDS = 256
LIMITS = dict(max_size=8, max_channels=16, max_n_tiles=4)


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


def simulate(cfg, program, images, codes, stall, seed, extra_steps=()):
    """Run one image; the logits beats, the cycle each step was taken in, and the final `error`."""
    dut = ProgramEngine(cfg, WORDS, **LIMITS)
    beats = program_beats(program, images, codes)
    beats["step"] = [*extra_steps, *beats["step"]]
    count = program.descriptors[-1].n_tiles(cfg.cols) * program.descriptors[-1].out_shape[1] ** 2
    rng = random.Random(seed)
    taken, result = [], {}

    def pauses():
        return Random(stall, rng.randrange(1 << 30)) if stall else Never()

    def driver(name):
        async def testbench(ctx):
            await send(ctx, getattr(dut, name), payloads(getattr(dut, name), beats[name]), pauses())

        return testbench

    async def watcher(ctx):
        cycle = 0
        async for _, _, valid, ready in ctx.tick().sample(dut.step.valid, dut.step.ready):
            if valid and ready:
                taken.append(cycle)
            cycle += 1

    async def receiver(ctx):
        result["logits"] = await receive(ctx, dut.logits, count, pauses(), timeout=200_000, silence=20)
        result["error"] = ctx.get(dut.error)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    for name in ("step", "image", "weight", "param"):
        sim.add_testbench(driver(name), background=True)
    sim.add_testbench(watcher, background=True)
    sim.add_testbench(receiver)
    sim.run()
    values = [from_bits(cfg, "result", beat)["values"] for beat in result["logits"]]
    return values, taken, result["error"]


def logits_of(program, cfg, values) -> torch.Tensor:
    """The logits beats (per N-tile, one per output pixel: 1 for the linear layer) as [1, N]."""
    n = program.descriptors[-1].out_shape[0]
    return torch.tensor(np.concatenate(values)[:n]).reshape(1, n)


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
    values, taken, error = simulate(cfg, program, images, codes[0], stall, seed)
    golden = run_integer(export, torch.from_numpy(codes), ks)[0]
    assert not error, f"seed {seed}"
    assert torch.equal(logits_of(program, cfg, values), golden), f"seed {seed}: logits differ from golden"
    if not stall:
        steps = [None, *program.descriptors]
        expected = [program_step_cycles(cfg, program, d) for d in steps]
        assert np.diff(taken).tolist() == expected[:-1], f"seed {seed}: step cycles differ from the formula"


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
    values, _, error = simulate(cfg, program, images, codes[0], 0.0, 0, extra_steps=illegal)
    assert error
    assert torch.equal(logits_of(program, cfg, values), run_integer(export, torch.from_numpy(codes), 8)[0])
