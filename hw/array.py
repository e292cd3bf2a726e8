"""R x C weight-stationary systolic array (TPU style).

Activations enter each row from the left, one row of X per cycle, skewed so that row r runs r cycles
behind row 0; every PE passes its activation right and its partial sum down, so the column sum of one row
of X leaves column c at the bottom R + c cycles after it entered row 0. Weights are loaded into the PEs'
shadow registers one array row at a time, column c one cycle after column c - 1, which keeps each load
behind the diagonal wave of `swap` marks that retires the previous tile (docs/architecture.md). A tile's
R weight rows always arrive in order, 0 to R - 1, so each column counts its loads to know the row: the
load skew carries a code and one bit per column instead of a code and a one-hot row select. In a
digit-serial array each activation carries the index of the weight digit it is multiplied by (and its
command's decode), so one column sum per cycle is one digit's: the shift-and-add below the array weights
and adds them.
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, Value, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from contract.config import PEKind
from contract.widths import psum_bits
from hw.offset import row_sum_bits
from hw.pe import build_pe, row_input_layout


def column_load_layout(cfg) -> data.StructLayout:
    """What enters column c in a slot: a weight code, and whether it is one (`load`); the column's row
    counter says which array row it is for."""
    return data.StructLayout({"code": cfg.base_bits, "load": 1})


class SystolicArray(wiring.Component):
    """The R x C weight-stationary array (module docstring): skewed rows in, column sums out.

    Parameters
    ----------
    cfg : EngineConfig
        Rows, columns, widths and PE kind of the engine.

    Members
    -------
    rows : In(ArrayLayout(row input, R))
        Row r's activation code, `swap` mark (and digit place and decode), already skewed by the caller.
    load : In(ArrayLayout(column load, C))
        Column c's weight code and load bit, already skewed; each column counts its loads to find the row.
    psums : Out(ArrayLayout(signed(psum_bits), C))
        The bottom row's partial sums, column c lagging column 0 by c slots.
    row_sum : Out(row_sum_bits)
        Switchable bit-parallel only: the row's sum of masked activations for the offset term, a slot
        behind like a partial sum.
    """

    def __init__(self, cfg):
        self._cfg = cfg
        super().__init__(
            {
                "rows": In(data.ArrayLayout(row_input_layout(cfg), cfg.rows)),
                "load": In(data.ArrayLayout(column_load_layout(cfg), cfg.cols)),
                "psums": Out(data.ArrayLayout(signed(psum_bits(cfg)), cfg.cols)),
            }
            | ({"row_sum": Out(row_sum_bits(cfg))} if cfg.pe_kind is PEKind.BIT_PARALLEL else {})
        )

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        psums = [Const(0, signed(psum_bits(cfg)))] * cfg.cols
        next_rows = []
        for c, load in enumerate(self.load):
            # Rows 0..R-1 of every tile, in order: a command's loads are whole tiles, and reset clears it.
            next_row = Signal(range(cfg.rows), name=f"next_row_{c}")
            with m.If(load.load):
                m.d.sync += next_row.eq(Mux(next_row == cfg.rows - 1, 0, next_row + 1))
            next_rows.append(next_row)
        row_sum = Const(0, 1)
        for r in range(cfg.rows):
            row = self.rows[r]
            for c, load in enumerate(self.load):
                if c == cfg.cols - 1 and not cfg.pipelined:
                    row_sum = _add_row(m, r, row_sum, row.act)
                writes = load.load & (next_rows[c] == r)
                row, psums[c] = build_pe(
                    m, f"pe_{r}_{c}", row, psums[c], writes, load.code, cfg.digit_bits, cfg.pipelined
                )
            if cfg.pipelined:  # the column sums come two slots later: take the activation past the edge,
                row_sum = _add_row(m, r, row_sum, row.act)
        m.d.comb += [self.psums[c].eq(psum) for c, psum in enumerate(psums)]
        if cfg.pe_kind is PEKind.BIT_PARALLEL:  # the offset term's row sum (hw/offset.py)
            if cfg.pipelined:  # and delay the sum by one more slot at the bottom
                delayed = Signal.like(row_sum, name="row_sum_delayed")
                m.d.sync += delayed.eq(row_sum)
                row_sum = delayed
            m.d.comb += self.row_sum.eq(row_sum)
        return m


def _add_row(m: Module, r: int, row_sum: Value, act: Value) -> Signal:
    """One step of the row-sum chain that runs down the array's right edge beside the last column: the
    activation of row r as it reaches that column, added to the sum of the rows above, a slot behind like
    a partial sum (hw/offset.py)."""
    total = Signal(range((r + 1) * ((1 << len(act)) - 1) + 1), name=f"row_sum_{r}")
    m.d.sync += total.eq(row_sum + act)
    return total
