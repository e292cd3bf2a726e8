"""The engine's fixed pipeline latencies: the one place the HDL and the cycle model both take them from.

The schedule (hw/sequencer.py) drains for `drain_slots` after the last activation row, and the model's
cycle formula (sim/model.py, docs/architecture.md) adds the same stages: if either changes, both change. The
next command's acceptance and weight preload overlap that drain (`overlap_cycles`).
"""

from __future__ import annotations

from collections.abc import Sequence

from contract.config import EngineConfig, PEKind
from contract.program import Descriptor
from contract.widths import ceil_div

#: The cycle in which the engine accepts a command (the sequencer's IDLE state).
ACCEPT_CYCLES = 1
#: The requantizer's register stages (hw/requant.py): pre-shift, bias, partial products, their sum beside the
#: rounding term, the sum of those two, output shift. Six short stages rather than two long ones: the 48-bit
#: variable shift and the 32 x 16 multiply were the longest paths of every placed design, then the
#: four-operand sum behind the DSP blocks (docs/estimates.md, "Issue 13" and "Issue 25", have the figures).
REQUANT_STAGES = 6
#: Register stages behind the array that a result row passes before it is in the output FIFO: the
#: accumulator's sum register and the requantizer's stages; counted from the slot in which the de-skewed
#: column sums are complete (the accumulate slot), up to and including the FIFO write.
REQUANT_CYCLES = 1 + REQUANT_STAGES
#: The cycle in which the output FIFO presents a beat on `result`.
OUTPUT_CYCLES = 1
#: The column stage's register below the array (hw/column.py), by PE kind: a digit-serial engine's
#: shift-and-add (DigitShiftAdd) that turns the last digit's column sums into the row's ...
SHIFT_ADD_CYCLES = 1
#: ... and a pipelined bit-parallel or fixed engine's register of the complete column sums (after the offset
#: term), so that the accumulator's add into its memory's write port is the only adder on that path.
COLSUM_REGISTER_CYCLES = 1
#: The accumulator's memory read is synchronous: issued a slot before its row's column sums arrive ...
ACCUMULATOR_READ_CYCLES = 1
#: ... and a pipelined engine registers its data, so issued one slot earlier still (at no cycle).
ACCUMULATOR_READ_REGISTER_CYCLES = 1


#: A pipelined engine's registers around every PE's multiplier (EngineConfig.pipelined), one for its
#: weight input and one for its product: a row's column sums leave the array two slots later.
PIPELINE_CYCLES = 2


def array_slots(cfg: EngineConfig) -> int:
    """Slots from an activation row (one digit of it) entering the array to its de-skewed column sums:
    R down, C across, and a pipelined engine's product register."""
    return cfg.rows + cfg.cols + (PIPELINE_CYCLES if cfg.pipelined else 0)


def column_stage_slots(cfg: EngineConfig) -> int:
    """The column stage between the array and the accumulator (hw/column.py): a digit-serial engine's
    shift-and-add, a pipelined engine's column-sum register, none otherwise."""
    if cfg.pe_kind is PEKind.DIGIT_SERIAL:
        return SHIFT_ADD_CYCLES
    return COLSUM_REGISTER_CYCLES if cfg.pipelined else 0


def fill_drain_slots(cfg: EngineConfig) -> int:
    """Slots from an activation row (its last digit) entering the array to its complete column sums
    at the accumulator: the array and the column stage."""
    return array_slots(cfg) + column_stage_slots(cfg)


def accumulator_read_slots(cfg: EngineConfig) -> int:
    """How many slots before a row's column sums reach the accumulator its memory read is issued."""
    return ACCUMULATOR_READ_CYCLES + (ACCUMULATOR_READ_REGISTER_CYCLES if cfg.pipelined else 0)


def drain_slots(cfg: EngineConfig) -> int:
    """Slots after the last activation beat until its result row is written into the output FIFO."""
    return fill_drain_slots(cfg) + REQUANT_CYCLES


def overlap_cycles(cfg: EngineConfig) -> int:
    """Cycles by which a command overlaps the one before it, back to back: the sequencer takes the next command
    in the cycle after the previous one's last activation slot, while that command's last rows drain
    (`drain_slots`) and its last result beat leaves the FIFO (OUTPUT_CYCLES), so the pair's last beats are
    this much closer than the sum of the commands' own cycles (sim.model.sequence_cycles)."""
    return drain_slots(cfg) + OUTPUT_CYCLES


#: The output path of layer programs (hw/output_path.py) takes a descriptor in one cycle and forms its plane
#: and N-tile strides in the next; its first step is in the cycle after.
OUTPUT_SETUP_CYCLES = 2
#: A step's write reaches the scratchpad four cycles after the step: the operand's word arrives and is
#: registered, the add is registered, the clamp is registered into the write port, then the memory takes it.
OUTPUT_DRAIN_CYCLES = 4


def output_segment_cycles(store: str, planes: int, operand_planes: Sequence[int]) -> int:
    """Cycles (steps) the output path spends on one segment of a result beat (one `sim.program.Write`) once
    the beat is there: one per operand plane read or plane written, whichever is more, at least one. A logits
    beat is not split into segments: it leaves in one cycle."""
    if store == "logits":
        return 1
    return max(sum(operand_planes), planes, 1)


def output_path_cycles(d: Descriptor, rows: int, cols: int) -> int:
    """Cycles from the output path taking descriptor `d` to the first cycle in which it can take the next,
    with `result` always valid and `logits` always ready: the setup, one cycle per step of every segment
    (per N-tile nt, each of the OH*OW beats has a segment per channel group its channels nt*C .. touch),
    and, for a store, the drain of the last write."""
    channels, out_h, out_w = d.out_shape
    steps = output_segment_cycles(d.store, d.planes, [operand.planes for operand in d.operands])
    if d.store == "logits":
        return OUTPUT_SETUP_CYCLES + ceil_div(channels, cols) * out_h * out_w * steps
    segments = 0
    for first in range(0, channels, cols):
        last = min(channels, first + cols) - 1
        segments += last // rows - first // rows + 1
    return OUTPUT_SETUP_CYCLES + segments * out_h * out_w * steps + OUTPUT_DRAIN_CYCLES
