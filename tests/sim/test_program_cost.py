"""sim.program_cost: the scratchpad traffic it prices is what the reference executor does, and a program's
energy differs from the GEMM commands' only where the data moves differently."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from contract.config import EngineConfig
from contract.policy import Policy
from contract.program import ProgramError, ProgramLimits, compile_program
from golden.convert import build_net
from golden.export import build_export
from golden.layers import QuantSpec
from sim.energy import gemms_energy
from sim.program import run_program
from sim.program_cost import compile_for, program_cost, scratchpad_traffic
from sim.program_cycles import program_step_cycles

WORDS = 4096


@pytest.fixture(scope="module")
def export():
    torch.manual_seed(0)
    return build_export(build_net("resnet20", QuantSpec("truncquant", "twos"), (1, 8, 8)).eval())


def test_the_priced_traffic_is_the_executors(export):
    """Per layer, the words read (activations that are not padding, fused operand planes) and written equal the
    counts sim.program.run_program keeps while it computes."""
    program, images = compile_program(export, 8, 4, WORDS, Policy("uniform", (4,)).resolve(export))
    codes = np.random.default_rng(0).integers(0, 256, (1, *export.input_shape))
    run = run_program(program, images, codes)
    for d, counts in zip(program.descriptors, run.layers[1:], strict=True):
        act, operands, written = scratchpad_traffic(program, d)
        assert act + operands == counts.reads, d.name
        # counts.writes counts word writes per plane; the priced bits are the lanes written in them.
        assert written <= counts.writes * program.rows * program.act_bits, d.name
        assert (written == 0) == (counts.writes == 0), d.name


def test_a_programs_cost(export):
    """Cycles are the steps' (sim.program_cycles); MACs the export's useful ones; energy equals the GEMM
    commands' but for the act stream and the stored results, which move to the scratchpad."""
    cfg = EngineConfig(rows=8, cols=4, max_m=64, max_k=1024, max_n=64)
    limits = ProgramLimits(WORDS)
    program, _ = compile_for(cfg, export, limits, Policy("uniform", (8,)).resolve(export))
    cost = program_cost(cfg, program, export, WORDS)
    assert cost.cycles == sum(program_step_cycles(cfg, program, d) for d in [None, *program.descriptors])
    assert cost.macs == sum(m * k * n for m, k, n in export.gemm_shapes())
    for d, step in zip(program.descriptors, cost.steps[1:], strict=True):
        gemm = gemms_energy(cfg, [(d.out_shape[1] * d.out_shape[2], d.k_tiles(8) * 8, d.out_shape[0])], 8)
        same = ("multiply", "add", "registers", "accumulator", "requant")
        assert all(getattr(step.energy, part) == pytest.approx(getattr(gemm, part)) for part in same), d.name
        assert step.energy.buffers < gemm.buffers and step.energy.scratchpad > 0, d.name


def test_a_program_that_does_not_fit_the_engine_is_refused_in_one_line(export):
    cfg = EngineConfig(rows=8, cols=4, max_m=64, max_k=1024, max_n=64)
    policy = Policy("uniform", (8,)).resolve(export)
    with pytest.raises(ProgramError, match=r"words"):
        compile_for(cfg, export, ProgramLimits(10), policy)
    with pytest.raises(ProgramError, match=r"layer \w+: a map side 8 exceeds the engine's 4"):
        compile_for(cfg, export, ProgramLimits(WORDS, max_size=4), policy)
    with pytest.raises(ProgramError, match=r"the program needs max_k = \d+, the engine has 16"):
        compile_for(dataclasses.replace(cfg, max_k=16), export, ProgramLimits(WORDS), policy)
