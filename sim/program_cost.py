"""What a layer program costs on the program engine per image: cycles per step, MACs, engine and scratchpad
energy, and no host work.

Cycles come from `sim.program_cycles` (exact, every stream ideal). Energy prices each layer's GEMM command
with sim.energy's events, except where the program engine moves data differently from the GEMM engine: the
activations come from the scratchpad (one R x A-bit word per read that is not padding; padding reads no
memory) instead of the operand buffer, and the results go back into it (A bits per lane written, per plane,
and one word per fused operand plane read), all priced as SRAM of the scratchpad's size; only the logits
leave through the buffer. The weights and parameters are still read from the operand buffer.

`run_program_policy` scores a test set as apps.run does for GEMM commands: the outputs are golden's batched
integer path (the program's logits are equal to it bit for bit, tests/sim/test_program.py and
tests/hw/test_program_engine.py), the costs one program run per image (the engine runs a program one image at
a time: batch 1).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from contract.config import EngineConfig
from contract.model_format import Export
from contract.policy import ResolvedPolicy, bitops
from contract.program import Descriptor, Program, ProgramImages, ProgramLimits, check_fits, compile_program
from sim.energy import Energy, events_energy
from sim.energy_table import DEFAULT_TABLE, EnergyTable
from sim.events import command_events
from sim.model import command_cycles
from sim.network import CHUNK, PrecisionSummary, infer
from sim.program import reads, writes
from sim.program_cycles import program_step_cycles


@dataclass(frozen=True)
class StepCost:
    name: str  # "input" for the image step, else the layer's
    cycles: int
    steady: int  # of `cycles`, the slots that feed an activation row (digit) into the array
    macs: int  # useful (the export's K, not the padded channel groups)
    scratchpad_reads: int  # words: activation reads that are not padding, and fused operand planes
    scratchpad_write_bits: int
    energy: Energy


@dataclass(frozen=True)
class ProgramCost:
    steps: tuple[StepCost, ...]

    @property
    def cycles(self) -> int:
        return sum(step.cycles for step in self.steps)

    @property
    def steady(self) -> int:
        return sum(step.steady for step in self.steps)

    @property
    def macs(self) -> int:
        return sum(step.macs for step in self.steps)

    @property
    def energy(self) -> Energy:
        return sum((step.energy for step in self.steps), Energy())


def scratchpad_traffic(program: Program, d: Descriptor) -> tuple[int, int, int]:
    """(activation words read, operand plane words read, bits written) of layer `d`."""
    R, C, A = program.rows, program.cols, program.act_bits
    act = sum(read.address is not None for read in reads(d, R, C))
    operand_planes = sum(operand.planes for operand in d.operands)
    segments = list(writes(d, R, C)) if d.store != "logits" else []
    written = sum((w.hi - w.lo) * A * d.planes for w in segments)
    return act, len(segments) * operand_planes, written


def step_cost(cfg: EngineConfig, program: Program, d: Descriptor, macs: int, words: int, table: EnergyTable):
    """The cost of layer `d`: its command's events priced as sim.energy does, with the act stream replaced by
    scratchpad reads and the results (but the logits) by scratchpad writes (module docstring)."""
    m, k_dim, n = d.out_shape[1] * d.out_shape[2], d.k_tiles(cfg.rows) * cfg.rows, d.out_shape[0]
    events = command_events(cfg, m, k_dim, n, d.k)
    stored = d.store != "logits"
    streamed = replace(events, act_bits=0, result_bits=0 if stored else events.result_bits)
    energy = events_energy(cfg, streamed, d.k, d.j, table)
    act_reads, operand_reads, written = scratchpad_traffic(program, d)
    word_bits = cfg.rows * cfg.act_bits
    sram_pj = table.sram_bit_pj(words * word_bits / 8)
    energy = replace(energy, scratchpad=((act_reads + operand_reads) * word_bits + written) * sram_pj)
    steady = command_cycles(cfg, m, k_dim, n, d.k).steady
    return StepCost(
        d.name, program_step_cycles(cfg, program, d), steady, macs, act_reads + operand_reads, written, energy
    )


def program_cost(
    cfg: EngineConfig, program: Program, export: Export, words: int, table: EnergyTable = DEFAULT_TABLE
) -> ProgramCost:
    """Per image: the image step (its words written into the scratchpad) and every layer step."""
    word_bits = cfg.rows * cfg.act_bits
    image_words = program_step_cycles(cfg, program, None) - 1
    image = StepCost(
        "input",
        program_step_cycles(cfg, program, None),
        0,
        0,
        0,
        image_words * word_bits,
        Energy(scratchpad=image_words * word_bits * table.sram_bit_pj(words * word_bits / 8)),
    )
    macs = {layer.name: layer.gemm_shape()[0] * layer.K * layer.N for layer in export.layers}
    layers = [step_cost(cfg, program, d, macs[d.name], words, table) for d in program.descriptors]
    return ProgramCost((image, *layers))


def compile_for(
    cfg: EngineConfig, export: Export, limits: ProgramLimits, policy: ResolvedPolicy
) -> tuple[Program, ProgramImages]:
    """The program of `export` under `policy` for this engine; ProgramError (one line) when it cannot run."""
    program, images = compile_program(export, cfg.rows, cfg.cols, limits.words, policy)
    check_fits(program, limits, dict(max_m=cfg.max_m, max_k=cfg.max_k, max_n=cfg.max_n))
    return program, images


def run_program_policy(
    cfg: EngineConfig,
    export: Export,
    limits: ProgramLimits,
    input_codes: torch.Tensor,
    labels: torch.Tensor,
    policy: ResolvedPolicy,
    progress=None,
    table: EnergyTable = DEFAULT_TABLE,
) -> tuple[PrecisionSummary, Program, ProgramCost]:
    """All images under a uniform or static `policy`, each as one program run (module docstring)."""
    program, _ = compile_for(cfg, export, limits, policy)
    cost = program_cost(cfg, program, export, limits.words, table)
    total, correct = len(input_codes), 0
    for first in range(0, total, CHUNK):
        logits, _ = infer(export, input_codes[first : first + CHUNK], policy)
        correct += int((logits.argmax(dim=1) == labels[first : first + CHUNK]).sum())
        if progress:
            progress(min(first + CHUNK, total))
    counts = [[total if k == policy_k else 0 for k in range(1, export.base_bits + 1)] for policy_k in policy.ks]
    summary = PrecisionSummary(
        policy.label,
        total,
        total,
        correct,
        cost.cycles * total,
        cost.steady * total,
        cost.macs * total,
        cfg.pe_count,
        bitops(export.gemm_shapes(), [k * total for k in policy.ks], export.act_bits),
        tuple(map(tuple, counts)),
        energy=cost.energy.scaled(total),
    )
    return summary, program, cost
