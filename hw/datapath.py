"""Everything that moves in lockstep with the pipeline: input masking, skews, array, accumulators and
requantizer. It has no handshakes of its own: the engine clocks it only in slots where every beat it
consumes is present and the output FIFO can take what it produces. That enable, `advance`, comes as one
copy per region (`region_layout`, hw/stall.py), each region's registers moving with their own copy.
"""

from __future__ import annotations

from amaranth.hdl import EnableInserter, Module, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from contract.timing import array_slots, below_array_slots, fill_drain_slots
from contract.widths import psum_bits
from hw.accumulator import Accumulator, DigitShiftAdd
from hw.array import SystolicArray, column_load_layout
from hw.interface import payload_layout, precision_layout, token_layout
from hw.offset import OffsetTerm, has_offset_term
from hw.pe import load_value, pe_decodes, row_input_layout
from hw.requant import Requantizer
from hw.skew import Skew, delay_line
from hw.stall import region


def region_layout(cfg) -> data.StructLayout:
    """The datapath's stall regions, one copy of `advance` each: the two input skews, the PE array,
    the column stage (de-skew, offset term or shift-and-add, column-sum register, tokens), the
    accumulator and the requantizer."""
    return data.StructLayout({"act_skew": 1, "load_skew": 1, "array": 1, "column": 1, "accumulator": 1, "requant": 1})


class Datapath(wiring.Component):
    """One slot in: an activation row + its token, and/or one weight row; one result row out when due."""

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
                "out_lanes": In(cfg.cols),
                "result": Out(payload_layout(cfg, "result")),
                "result_valid": Out(1),
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
                m.d.comb += act_skew.i[r].place.eq(self.token.place)
        # A switchable bit-parallel engine decodes each column's code here, once, instead of in every PE.
        for c in range(cols):
            code = self.weight_codes[c]
            if has_offset_term(cfg):
                code = load_value(m, f"load{c}", code, self.precision.weight)
            m.d.comb += [load_skew.i[c].code.eq(code), load_skew.i[c].load.eq(self.weight_load)]
        m.d.comb += [
            array.rows.eq(act_skew.o),
            array.load.eq(load_skew.o),
            deskew.i.eq(array.psums),
        ]
        if pe_decodes(cfg):
            m.d.comb += array.decode.eq(self.precision.weight)

        # Tokens as far as the accumulator (a digit-serial engine's shift-and-add delays its own).
        token_slots = array_slots(cfg) if cfg.digit_serial else fill_drain_slots(cfg)
        tokens = delay_line(column, self.token, token_slots, "token")
        ahead = tokens[-3 if cfg.pipelined else -2]  # the row whose accumulator read is issued now
        read_once = 1
        if cfg.digit_serial:
            # One more stage: the row's column sums are complete one slot after its last digit's.
            shift_add = DigitShiftAdd(cfg)
            m.submodules.shift_add = EnableInserter(advance.column)(shift_add)
            # The read is issued one slot before the row's sums leave the shift-and-add, two when registered.
            ahead = tokens[-2] if cfg.pipelined else tokens[-1]
            m.d.comb += [
                shift_add.digit_sums.eq(deskew.o),
                shift_add.token.eq(tokens[-1]),
            ]
            colsums, aligned, read_once = shift_add.sums, shift_add.sums_token, ahead.last_digit  # once a row
        elif has_offset_term(cfg):
            offset_term = OffsetTerm(cfg)
            m.submodules.offset_term = EnableInserter(advance.column)(offset_term)
            m.d.comb += [
                offset_term.row_sum.eq(array.row_sum),
                offset_term.decode.eq(self.precision.weight),
                offset_term.psums.eq(deskew.o),
            ]
            colsums, aligned = offset_term.sums, tokens[-1]
        else:
            colsums, aligned = deskew.o, tokens[-1]
        if below_array_slots(cfg) and not cfg.digit_serial:
            # The column-sum register of a pipelined engine: the offset term's adder and the accumulator's
            # are no longer in series on the path into the accumulator memory.
            registered = Signal(colsums.shape(), name="colsums")
            column.d.sync += registered.eq(colsums)
            colsums = registered
        # Whether `aligned` is an N-tile's first complete row (its parameters are due), registered from
        # the token that enters `aligned` next (a digit-serial row's with its last digit), so that the
        # engine's `advance` waits for no row comparison.
        feeding = tokens[-1] if cfg.digit_serial else tokens[-2]
        feeding_valid = feeding.valid & feeding.last_digit if cfg.digit_serial else feeding.valid
        param_due = Signal()
        column.d.sync += param_due.eq(feeding_valid & feeding.last_ktile & (feeding.row == 0))
        m.d.comb += [
            accumulator.colsums.eq(colsums),
            accumulator.token.eq(aligned),
            accumulator.read_row.eq(ahead.row),
            # Only a row with an earlier K-tile's sum in memory reads it: no read in the first K-tile (whose
            # prior sum is 0) nor for an empty slot, so the memory is read M * (T_k - 1) * T_n times.
            accumulator.read_enable.eq(ahead.valid & ~ahead.first_ktile & read_once),
            self.param_wanted.eq(param_due),
            requant.sums.eq(accumulator.sums),
            requant.token.eq(accumulator.sums_token),
            requant.params.eq(self.params),
            requant.load_params.eq(self.param_wanted),
            requant.precision.eq(self.precision),
            requant.out_lanes.eq(self.out_lanes),
            self.result.eq(requant.result),
            self.result_valid.eq(requant.result_valid),
        ]
        return m
