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

from collections import Counter
from collections.abc import Sequence
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
from sim.network import PrecisionSummary, score
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


def step_cost(
    cfg: EngineConfig, program: Program, d: Descriptor, macs: int, words: int, table: EnergyTable, k: int | None = None
):
    """The cost of layer `d` at `k` (default its own): its commands' events (one per M-block) priced as
    sim.energy does, with the act stream replaced by scratchpad reads and the stored results by scratchpad
    writes (module docstring)."""
    k = d.k if k is None else k
    k_dim, n = d.k_tiles(cfg.rows) * cfg.rows, d.out_shape[0]
    stored = d.store in ("codes", "raw")
    energy, steady = Energy(), 0
    for _, block_h in d.blocks():  # one GEMM command per M-block
        m = block_h * d.out_shape[2]
        events = command_events(cfg, m, k_dim, n, k)
        streamed = replace(events, act_bits=0, result_bits=0 if stored else events.result_bits)
        energy = energy + events_energy(cfg, streamed, k, d.j, table)
        steady += command_cycles(cfg, m, k_dim, n, k).steady
    act_reads, operand_reads, written = scratchpad_traffic(program, d)
    word_bits = cfg.rows * cfg.act_bits
    sram_pj = table.sram_bit_pj(words * word_bits / 8)
    energy = replace(energy, scratchpad=((act_reads + operand_reads) * word_bits + written) * sram_pj)
    cycles = program_step_cycles(cfg, program, d, k)
    return StepCost(d.name, cycles, steady, macs, act_reads + operand_reads, written, energy)


def program_cost(
    cfg: EngineConfig,
    program: Program,
    export: Export,
    words: int,
    table: EnergyTable = DEFAULT_TABLE,
    ks: Sequence[int] | None = None,
) -> ProgramCost:
    """Per image: the image step (its words written into the scratchpad) and every layer step, each at its k in
    `ks` (one per descriptor: a dynamic policy's image's choices; default each descriptor's own)."""
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
    gemm_layers = [*export.layers, *(controller.layer for controller in export.controllers)]
    macs = {layer.name: layer.gemm_shape()[0] * layer.K * layer.N for layer in gemm_layers}
    ks = [d.k for d in program.descriptors] if ks is None else ks
    layers = [
        step_cost(cfg, program, d, macs[d.name], words, table, k) for d, k in zip(program.descriptors, ks, strict=True)
    ]
    return ProgramCost((image, *layers))


def mean_cost(costs: Counter) -> ProgramCost:
    """The per-step mean of program costs, each counted as often as images ran it (a dynamic policy)."""
    total = sum(costs.values())
    steps = []
    for index, first in enumerate(next(iter(costs)).steps):
        parts = [(cost.steps[index], count) for cost, count in costs.items()]
        mean = {
            field: sum(getattr(step, field) * count for step, count in parts) / total
            for field in ("cycles", "steady", "macs", "scratchpad_reads", "scratchpad_write_bits")
        }
        energy = sum((step.energy.scaled(count / total) for step, count in parts), Energy())
        steps.append(StepCost(first.name, **mean, energy=energy))
    return ProgramCost(tuple(steps))


def compile_for(
    cfg: EngineConfig, export: Export, limits: ProgramLimits, policy: ResolvedPolicy
) -> tuple[Program, ProgramImages]:
    """The program of `export` under `policy` for this engine; ProgramError (one line) when it cannot run."""
    program, images = compile_program(export, cfg.rows, cfg.cols, limits.words, policy, cfg.max_m)
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
    """All images under `policy`, each as one program run (module docstring); with a controller, each image at
    the k it chose (the program's cost per distinct choice, the returned cost their mean per step)."""
    program, _ = compile_for(cfg, export, limits, policy)
    total = len(input_codes)
    correct, ks = score(export, input_codes, labels, policy, progress)  # ks: [images, layers]
    column = {layer.name: index for index, layer in enumerate(export.layers)}
    costs = Counter()
    for row, count in Counter(map(tuple, ks.tolist())).items():
        per_step = [row[column[d.name]] if d.name in column else d.k for d in program.descriptors]
        costs[program_cost(cfg, program, export, limits.words, table, per_step)] += count
    controller = policy.controller
    controller_bitops = (
        bitops([controller.layer.gemm_shape(total)], [controller.k], export.act_bits) if controller else 0
    )
    counts = torch.stack([torch.bincount(layer_ks, minlength=export.base_bits + 1)[1:] for layer_ks in ks.T])
    summary = PrecisionSummary(
        policy.label,
        total,
        total,
        correct,
        sum(c.cycles * count for c, count in costs.items()),
        sum(c.steady * count for c, count in costs.items()),
        sum(c.macs * count for c, count in costs.items()),
        cfg.pe_count,
        bitops(export.gemm_shapes(), ks.sum(dim=0).tolist(), export.act_bits) + controller_bitops,
        tuple(map(tuple, counts.tolist())),
        energy=sum((c.energy.scaled(count) for c, count in costs.items()), Energy()),
    )
    return summary, program, mean_cost(costs)
