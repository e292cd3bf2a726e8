"""Everything that moves in lockstep with the pipeline: input masking, skews, array, accumulators and
requantizer. It has no handshakes of its own: the engine clocks it only in slots where every beat it
consumes is present and the output FIFO can take what it produces. That enable, `advance`, comes as one
copy per region (`region_layout`, hw/stall.py), each region's registers moving with their own copy.
"""

from __future__ import annotations

from amaranth.hdl import EnableInserter, Module, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from contract.config import PEKind
from contract.timing import accumulator_read_slots, array_slots, fill_drain_slots
from contract.widths import psum_bits
from hw.accumulator import Accumulator
from hw.array import SystolicArray, column_load_layout
from hw.column import STAGES, column_stage
from hw.interface import payload_layout, precision_layout, token_layout
from hw.pe import load_value, row_input_layout
from hw.requant import Requantizer
from hw.skew import Skew, delay_line
from hw.stall import region


def region_layout(cfg) -> data.StructLayout:
    """The datapath's stall regions, one copy of `advance` each: the two input skews, the PE array,
    the column (de-skew, tokens, the column stage of hw/column.py), the accumulator and the requantizer."""
    return data.StructLayout({"act_skew": 1, "load_skew": 1, "array": 1, "column": 1, "accumulator": 1, "requant": 1})


def datapath_blocks(cfg) -> dict[str, str]:
    """Each submodule's path below the datapath (as `elaborate` names it) -> the block `eda.synth` reports
    its gates under (hw.engine.engine_blocks); its own registers and the column stage's are control."""
    blocks = {
        "act_skew": "skew",
        "load_skew": "skew",
        "array": "pe_array",
        "deskew": "skew",
        "accumulator": "accumulators",
        "requant": "requantization",
    }
    return blocks | {f"column_stage.{path}": block for path, block in STAGES[cfg.pe_kind].BLOCKS.items()}


class Datapath(wiring.Component):
    """One slot in: an activation row + its token, and/or one weight row; one result row out when due.

    Parameters
    ----------
    cfg : EngineConfig
        The engine (its PE kind chooses the column stage, hw/column.py).

    Members
    -------
    act_codes : In(ArrayLayout(A, R))
        The activation beat's codes.
    act_lanes : In(R)
        Lanes that exist in this K-tile (the sequencer's mask).
    token : In(token)
        The activation row's token, travelling with it to the requantizer.
    weight_codes : In(ArrayLayout(B, C))
        The weight beat's codes.
    weight_load : In(1)
        The weight beat is taken in this slot.
    precision : In(precision)
        The decoded precision of the command whose rows and weights enter now (what the rows need further
        on travels in their tokens and, digit-serial, beside their activations).
    params : In(param payload)
        The `param` stream's beat.
    param_wanted : Out(1)
        The slot consumes a parameter beat (an N-tile's first complete row is at the requantizer).
    param_wanted_after_slot : Out(1)
        `param_wanted` after a slot (its register's input when the column stage advances), for the stall
        copies (hw/stall.py), which choose it by their own enable.
    result : Out(result payload)
        The requantized row.
    result_valid : Out(1)
        `result` is to be written into the output FIFO.
    result_due : Out(1)
        `result_valid` after a slot, for the stall copies' output room (hw/stall.py), which choose it by
        their own enable.
    advance : In(regions)
        The global enable, one copy per region (hw/stall.py).
    """

    def __init__(self, cfg):
        self._cfg = cfg
        super().__init__(
            {
                "act_codes": In(data.ArrayLayout(cfg.act_bits, cfg.rows)),
                "act_lanes": In(cfg.rows),
                "token": In(token_layout(cfg)),
                "weight_codes": In(data.ArrayLayout(cfg.base_bits, cfg.cols)),
                "weight_load": In(1),
                "precision": In(precision_layout(cfg)),
                "params": In(payload_layout(cfg, "param")),
                "param_wanted": Out(1),
                "param_wanted_after_slot": Out(1),
                "result": Out(payload_layout(cfg, "result")),
                "result_valid": Out(1),
                "result_due": Out(1),
                "advance": In(region_layout(cfg)),
            }
        )

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        rows, cols = cfg.rows, cfg.cols
        # Lane r waits 1 + r slots (input register, then the skew); column c's loads wait 1 + c slots to
        # stay behind the swap marks; column c's sums wait C - 1 - c slots to line up with column C - 1.
        advance = self.advance
        act_skew = Skew(row_input_layout(cfg), [1 + r for r in range(rows)])
        load_skew = Skew(column_load_layout(cfg), [1 + c for c in range(cols)])
        array = SystolicArray(cfg)
        deskew = Skew(signed(psum_bits(cfg)), [cols - 1 - c for c in range(cols)])
        accumulator = Accumulator(cfg)
        requant = Requantizer(cfg)
        m.submodules.act_skew = EnableInserter(advance.act_skew)(act_skew)
        m.submodules.load_skew = EnableInserter(advance.load_skew)(load_skew)
        m.submodules.array = EnableInserter(advance.array)(array)
        m.submodules.deskew = EnableInserter(advance.column)(deskew)
        m.submodules.accumulator = EnableInserter(advance.accumulator)(accumulator)
        m.submodules.requant = EnableInserter(advance.requant)(requant)
        column = region(m, "column", advance.column)  # this module's own registers

        first_row = self.token.valid & (self.token.row == 0)
        if cfg.digit_serial:  # a tile's first row swaps in its weights with its first digit only
            first_row &= self.token.place == cfg.digit_count - 1
        for r in range(rows):
            lane = self.act_codes[r] & self.act_lanes[r].replicate(cfg.act_bits)
            m.d.comb += [
                act_skew.i[r].act.eq(lane & self.precision.act_mask if cfg.switchable else lane),
                act_skew.i[r].swap.eq(first_row),
            ]
            if cfg.digit_serial:
                m.d.comb += [act_skew.i[r].place.eq(self.token.place), act_skew.i[r].decode.eq(self.precision.weight)]
            if cfg.digit_serial and cfg.digit_width > 1:
                m.d.comb += act_skew.i[r].last_digit.eq(self.token.last_digit)
        # A switchable bit-parallel engine decodes each column's code here, once, instead of in every PE.
        for c in range(cols):
            code = self.weight_codes[c]
            if cfg.pe_kind is PEKind.BIT_PARALLEL:
                code = load_value(m, f"load{c}", code, self.precision.weight)
            m.d.comb += [load_skew.i[c].code.eq(code), load_skew.i[c].load.eq(self.weight_load)]
        m.d.comb += [
            array.rows.eq(act_skew.o),
            array.load.eq(load_skew.o),
            deskew.i.eq(array.psums),
        ]

        # tokens[i] is the datapath's input token i slots later: the column stage's is the array's output's,
        # and the accumulator's, fill_drain_slots after the input, is the stage's own `sums_token`.
        tokens = delay_line(column, self.token, array_slots(cfg), "token")
        stage = column_stage(cfg)
        m.submodules.column_stage = EnableInserter(advance.column)(stage)
        m.d.comb += [stage.psums.eq(deskew.o), stage.token.eq(tokens[-1])]
        if cfg.pe_kind is PEKind.BIT_PARALLEL:
            m.d.comb += stage.row_sum.eq(array.row_sum)
        ahead = tokens[fill_drain_slots(cfg) - accumulator_read_slots(cfg)]  # the row whose read is issued now
        # Whether the stage's output is an N-tile's first complete row (its parameters are due), registered
        # from the token that reaches the accumulator next, so that the engine's `advance` waits for no row
        # comparison. A digit-serial row is complete, and reads the accumulator once, with its last digit.
        feeding = tokens[fill_drain_slots(cfg) - 1]
        feeding_valid, read_once = feeding.valid, 1
        if cfg.digit_serial:
            feeding_valid, read_once = feeding.valid & feeding.last_digit, ahead.last_digit
        param_due, param_due_after_slot = Signal(), Signal()
        m.d.comb += param_due_after_slot.eq(feeding_valid & feeding.last_ktile & (feeding.row == 0))
        column.d.sync += param_due.eq(param_due_after_slot)
        m.d.comb += [
            accumulator.colsums.eq(stage.sums),
            accumulator.token.eq(stage.sums_token),
            accumulator.read_row.eq(ahead.row),
            # Only a row with an earlier K-tile's sum in memory reads it: no read in the first K-tile (whose
            # prior sum is 0) nor for an empty slot, so the memory is read M * (T_k - 1) * T_n times.
            accumulator.read_enable.eq(ahead.valid & ~ahead.first_ktile & read_once),
            self.param_wanted.eq(param_due),
            self.param_wanted_after_slot.eq(param_due_after_slot),
            requant.sums.eq(accumulator.sums),
            requant.token.eq(accumulator.sums_token),
            requant.params.eq(self.params),
            requant.load_params.eq(self.param_wanted),
            self.result.eq(requant.result),
            self.result_valid.eq(requant.result_valid),
            self.result_due.eq(requant.result_due),
        ]
        return m
