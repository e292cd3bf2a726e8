"""The engine's fixed pipeline latencies: the one place the HDL and the cycle model both take them from.

The schedule (hw/sequencer.py) drains for `drain_slots` after the last activation row, and the model's
cycle formula (sim/model.py, docs/architecture.md) adds the same stages: if either changes, both change.
"""

from __future__ import annotations

from contract.config import EngineConfig

#: The cycle in which the engine accepts a command (the sequencer's IDLE state).
ACCEPT_CYCLES = 1
#: The requantizer's register stages (hw/requant.py): pre-shift, bias, partial products, their sum,
#: output shift. Five short stages rather than two long ones: the 48-bit variable shift and the 32 x 16
#: multiply had limited every placed design to 55-68 MHz on an ECP5 (docs/estimates.md).
REQUANT_STAGES = 5
#: Register stages behind the array that a result row passes before it is in the output FIFO: the
#: accumulator's sum register and the requantizer's stages; counted from the slot in which the de-skewed
#: column sums are complete (the accumulate slot), up to and including the FIFO write.
REQUANT_CYCLES = 1 + REQUANT_STAGES
#: The cycle in which the output FIFO presents a beat on `result`.
OUTPUT_CYCLES = 1
#: Digit-serial engines: the shift-and-add register below the array (hw/accumulator.py, DigitShiftAdd)
#: that turns the last digit's column sums into the row's.
SHIFT_ADD_CYCLES = 1
#: Pipelined bit-parallel engines: a register of the complete column sums (after the offset term) below
#: the array, so that the accumulator's add into its memory's write port is the only adder on that path.
COLSUM_REGISTER_CYCLES = 1


#: A pipelined engine's registers around every PE's multiplier (EngineConfig.pipelined), one for its
#: weight input and one for its product: a row's column sums leave the array two slots later. (Its
#: registered accumulator read is issued a slot earlier and costs none.)
PIPELINE_CYCLES = 2


def array_slots(cfg: EngineConfig) -> int:
    """Slots from an activation row (one digit of it) entering the array to its de-skewed column sums:
    R down, C across, and a pipelined engine's product register."""
    return cfg.rows + cfg.cols + (PIPELINE_CYCLES if cfg.pipelined else 0)


def below_array_slots(cfg: EngineConfig) -> int:
    """The register stage between the array and the accumulator: a digit-serial engine's shift-and-add,
    a pipelined bit-parallel engine's column-sum register, none otherwise."""
    if cfg.digit_serial:
        return SHIFT_ADD_CYCLES
    return COLSUM_REGISTER_CYCLES if cfg.pipelined else 0


def fill_drain_slots(cfg: EngineConfig) -> int:
    """Slots from an activation row (its last digit) entering the array to its complete column sums:
    the array and the stage below it."""
    return array_slots(cfg) + below_array_slots(cfg)


def drain_slots(cfg: EngineConfig) -> int:
    """Slots after the last activation beat until its result row is written into the output FIFO."""
    return fill_drain_slots(cfg) + REQUANT_CYCLES
