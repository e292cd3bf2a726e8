"""Cycle-exact model of the engine: bit-exact outputs from golden.nested and the exact cycle count.

The RTL's schedule is a fixed function of (M, K, N, R, C) (hw/sequencer.py), so with ideal streams (every
input valid and `result.ready` high whenever the engine looks) its cycle count is a closed formula:

    T = ceil(K/R) * ceil(N/C) tiles,  L = max(M, R) slots per tile (weights load in R beats)
    cycles = 1 + R + ((T - 1) * L + M) + (R + C) + 7 + 1          (= (T-1)L + M + 2R + C + 9)

counted from the cycle that accepts the command to the cycle that transfers its last result beat, both
inclusive; `CycleBreakdown` names each term. A digit-serial engine (EngineConfig.digit_bits = D < B)
holds each activation row for n = ceil(k/D) slots and has one more pipeline stage (the shift-and-add):

    L = max(M*n, R),  cycles = 1 + R + ((T - 1) * L + M*n) + (R + C + 1) + 7 + 1

(7 = contract.timing.REQUANT_CYCLES: the accumulator's register and the requantizer's six stages.)
Back to back, the next command is accepted in the cycle after the previous command's last activation slot,
while its last rows drain: each command overlaps the one before it by O = contract.timing.overlap_cycles
(the drain and the output cycle, R + C + 8 bit-parallel), so a sequence takes sum(cycles) - O*(commands - 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from contract.config import EngineConfig
from contract.timing import ACCEPT_CYCLES, OUTPUT_CYCLES, REQUANT_CYCLES, fill_drain_slots, overlap_cycles
from contract.widths import ceil_div
from golden.nested import int_gemm, requantize
from sim.command import Command


@dataclass(frozen=True)
class CycleBreakdown:
    """Where the cycles of one command go (ideal streams)."""

    accept: int  # the cycle in which `cmd` is accepted
    weight_load: int  # R: the first tile's weight rows, before any activation can enter
    steady: int  # M * T * ceil(k/D): slots that feed an activation row (one digit of it) into the array
    weight_wait: int  # (T - 1) * (L - M*n): tile slots without an activation while the next weights load
    fill_drain: (
        int  # R + C (+ 1 digit-serial; pipelined + 2, + 1 bit-parallel): last activation row to complete column sums
    )
    requant: int  # 6: accumulator register, requantizer stages 1-5; the last is the output FIFO write
    output: int  # 1: the output FIFO presents the last result beat

    @property
    def total(self) -> int:
        return (
            self.accept
            + self.weight_load
            + self.steady
            + self.weight_wait
            + self.fill_drain
            + self.requant
            + self.output
        )

    @property
    def issue(self) -> int:
        """Cycles from the command's acceptance to the next command's, back to back: the acceptance, the
        preload and the tiles; the drain and the output cycle overlap the next command."""
        return self.accept + self.weight_load + self.steady + self.weight_wait

    @property
    def utilisation(self) -> float:
        """Fraction of cycles in which the array takes in an activation row."""
        return self.steady / self.total


def command_cycles(cfg: EngineConfig, m: int, k_dim: int, n: int, wbits: int | None = None) -> CycleBreakdown:
    """Cycles of one command of an M x K by K x N GEMM at weight precision `wbits` (default B; only a
    digit-serial engine's cycles depend on it) on an R x C engine with ideal streams."""
    tile_count = ceil_div(k_dim, cfg.rows) * ceil_div(n, cfg.cols)
    row_slots = m * cfg.digits(cfg.base_bits if wbits is None else wbits)
    tile_slots = max(row_slots, cfg.rows)
    return CycleBreakdown(
        accept=ACCEPT_CYCLES,
        weight_load=cfg.rows,
        steady=row_slots * tile_count,
        weight_wait=(tile_count - 1) * (tile_slots - row_slots),
        fill_drain=fill_drain_slots(cfg),
        requant=REQUANT_CYCLES,
        output=OUTPUT_CYCLES,
    )


def sequence_cycles(cfg: EngineConfig, shapes: list[tuple[int, ...]]) -> int:
    """Cycles of back-to-back commands (M, K, N) or (M, K, N, wbits): each next one is accepted in the cycle
    after the previous one's last activation slot, overlapping its drain by contract.timing.overlap_cycles."""
    return sum(command_cycles(cfg, *shape).total for shape in shapes) - overlap_cycles(cfg) * (len(shapes) - 1)


@dataclass(frozen=True)
class CommandResult:
    outputs: torch.Tensor  # [M, N] int64: relu codes or raw t values
    cycles: CycleBreakdown
    accept_cycle: int  # relative to the first command's acceptance
    last_result_cycle: int

    @property
    def span(self) -> tuple[int, int]:
        """(acceptance, last result beat): what a testbench measures to check the timing."""
        return self.accept_cycle, self.last_result_cycle


class EngineModel:
    """`EngineModel(cfg).run(commands)`: what the RTL computes and when, for back-to-back commands."""

    def __init__(self, cfg: EngineConfig):
        self.cfg = cfg

    def outputs(self, command: Command) -> torch.Tensor:
        cfg = self.cfg
        command.check(cfg)
        acc = int_gemm(
            command.X,
            command.W,
            command.wbits,
            command.abits,
            command.scheme,
            cfg.base_bits,
            cfg.act_bits,
            cfg.acc_bits,
        )
        return requantize(acc, command.bias, command.mult, command.shift, command.mode, cfg.act_bits, cfg.acc_bits)

    def run(self, commands: list[Command]) -> list[CommandResult]:
        results, accept = [], 0
        for command in commands:
            cycles = command_cycles(self.cfg, command.m, command.k_dim, command.n, command.wbits)
            last = accept + cycles.total - 1
            results.append(CommandResult(self.outputs(command), cycles, accept, last))
            accept += cycles.issue
        return results
