"""Cycles of a layer program on the program engine (hw/program_engine.py), every input stream ideal.

A layer step is the GEMM engine's command (sim.model: its slots are a fixed schedule) feeding the output path
(hw/output_path.py) through two 2-beat FIFOs: the engine's output FIFO and the output path's beat buffer. The
output path spends `output_segment_cycles` steps on each segment of a beat; while it takes one step per beat
the FIFOs never fill and the layer takes the command's cycles plus a constant. When a beat needs more steps
(a raw region's planes, a raw operand's planes, C not a multiple of R), beats that the engine makes one per
slot back up and stall the engine's slots that write a result; the recurrence below follows each beat:

    a_b = max(a_(b-1) + gap_b, p_(b-2) + 1)    the cycle beat b enters the engine's output FIFO (its slot,
                                               delayed until the FIFO has room: beat b-2 has left it)
    p_b = max(a_b + 1, p_(b-1) + 1, d_(b-2) + 1)   the cycle it moves into the output path's buffer
    h_b = max(p_b + 1, d_(b-1) + 1)            the first of its steps;   d_b = h_b + steps_b - 1, its last

where gap_b is the slots between the engine's result slots b-1 and b (each slot one cycle when it writes no
result). Every term is a register stage of the HDL; tests/hw/test_program_engine.py checks the whole against
the Amaranth simulation, cycle for cycle.
"""

from __future__ import annotations

from dataclasses import replace

from contract.config import EngineConfig
from contract.program import Descriptor, Program, map_words
from contract.timing import OUTPUT_DRAIN_CYCLES, REQUANT_CYCLES, fill_drain_slots, output_segment_cycles
from sim.program import writes

#: The program engine's cycles before a layer's GEMM command: the cycle that takes the step and the two that
#: decode it (DECODE: the units' checks and the first products; PLAN: their verdict and K); the engine accepts
#: its command in the next (cycle 0 below).
STEP_CYCLES = 3
#: From a store's last write (OUTPUT_DRAIN_CYCLES after its last step) to the cycle the next step is taken:
#: the output path's `busy` falls, and the program engine sees all units idle and returns to take a step.
IDLE_CYCLES = 2
#: From a decision store's last column to the cycle the next step is taken: the decision unit's `busy` falls,
#: and the program engine returns to take a step.
DECISION_IDLE_CYCLES = 5
#: From taking a controlled layer's last dropped parameter beat to the cycle the next step is taken.
PARAM_IDLE_CYCLES = 2


def result_slots(cfg: EngineConfig, d: Descriptor, block: tuple[int, int]) -> list[int]:
    """The engine's slots (0 the first after the command's accept) in which each result beat of M-block
    `block` (first output row, output rows) is written into its output FIFO, in order: row i of an N-tile's
    last K-tile enters the array in its last digit's slot and reaches the FIFO fill_drain + REQUANT_CYCLES slots
    later (sim.model's schedule)."""
    R, n = cfg.rows, cfg.digits(d.k)
    rows, k_tiles = block[1] * d.out_shape[2], d.k_tiles(R)
    period = max(rows * n, R)
    delay = fill_drain_slots(cfg) + REQUANT_CYCLES
    return [
        R + (n_tile * k_tiles + k_tiles - 1) * period + i * n + n - 1 + delay
        for n_tile in range(d.n_tiles(cfg.cols))
        for i in range(rows)
    ]


def beat_steps(cfg: EngineConfig, d: Descriptor, block: tuple[int, int] | None = None) -> list[int]:
    """The output path's steps for each result beat (of M-block `block`, default the whole map), in order: its
    segments' `output_segment_cycles`; a decision store's beats take C steps each in the decision unit
    (hw/decision.py), one a column."""
    if d.store == "decision":
        return [cfg.cols] * d.n_tiles(cfg.cols)
    per_segment = output_segment_cycles(d.store, d.planes, [operand.planes for operand in d.operands])
    if d.store == "logits":
        return [per_segment] * (d.n_tiles(cfg.cols) * d.out_shape[1] * d.out_shape[2])
    segments: dict[tuple[int, int], int] = {}
    for write in writes(d, cfg.rows, cfg.cols, block):
        segments[write.n_tile, write.row] = segments.get((write.n_tile, write.row), 0) + 1
    return [count * per_segment for count in segments.values()]


def beat_cycles(cfg: EngineConfig, d: Descriptor, block: tuple[int, int], lead: int = 0) -> tuple[list[int], list[int]]:
    """Per result beat of M-block `block` of layer `d`, the cycle (0 = the engine accepts the command) it enters
    the engine's output FIFO and the cycle of its last step in the output path (or the decision unit). `lead`:
    the cycle from which the layer's first parameter beat can be taken (a controlled layer's dropped blocks come
    first); the engine takes it REQUANT_CYCLES slots before N-tile 0's first result, and waits there for it."""
    arrive = enter = done = [-(1 << 30)] * 2  # the two beats before the first: no constraint
    arrive, enter, done = list(arrive), list(enter), list(done)
    previous_slot = None
    for slot, steps in zip(result_slots(cfg, d, block), beat_steps(cfg, d, block), strict=True):
        first = 1 + slot + max(0, lead - (1 + slot - REQUANT_CYCLES))
        natural = first if previous_slot is None else arrive[-1] + slot - previous_slot
        a = max(natural, enter[-2] + 1)
        p = max(a + 1, enter[-1] + 1, done[-2] + 1)
        h = max(p + 1, done[-1] + 1)
        arrive.append(a)
        enter.append(p)
        done.append(h + steps - 1)
        previous_slot = slot
    return arrive[2:], done[2:]


def program_step_cycles(cfg: EngineConfig, program: Program, d: Descriptor | None, k: int | None = None) -> int:
    """Cycles from taking a step to taking the next: the image step (`d` None: one cycle to take it, one per
    word) or layer `d` at `k` (default its own; a controlled layer's is the image's choice), the sum of its
    M-blocks' (`block_cycles`), which the engine runs back to back, each as if it were a step of its own."""
    if d is None:
        return 1 + map_words(program.input_shape, program.rows)
    return sum(block_cycles(cfg, d, block, k) for block in d.blocks())


def block_cycles(cfg: EngineConfig, d: Descriptor, block: tuple[int, int], k: int | None = None) -> int:
    """Cycles of M-block `block` of layer `d` at `k` (`program_step_cycles`), from taking it to taking what
    follows: a store until its last write and the idle check, a decision store until its last column and the
    idle check, the logits until the last beat leaves, which is the program's end."""
    k = d.k if k is None else k
    chosen = d.candidates.index(k) if d.k_source else 0
    d = replace(d, k=k)
    tiles = d.n_tiles(cfg.cols)
    arrive, done = beat_cycles(cfg, d, block, lead=chosen * tiles)
    end = done[-1]
    if d.store in ("codes", "raw"):
        end += OUTPUT_DRAIN_CYCLES + IDLE_CYCLES
    elif d.store == "decision":
        end += DECISION_IDLE_CYCLES
    if d.k_source:  # the parameter blocks after the chosen one are dropped after its last beat is taken
        last_take = arrive[(tiles - 1) * block[1] * d.out_shape[2]] - REQUANT_CYCLES
        end = max(end, last_take + (len(d.candidates) - 1 - chosen) * tiles + PARAM_IDLE_CYCLES)
    return STEP_CYCLES + end
