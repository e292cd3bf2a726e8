"""On-chip accumulators: one ACC-bit sum per (row m, column) of the current N-tile, summed over K-tiles.

The array produces a complete row of column sums per cycle, so one memory word holds all C columns of
row m: at most one read and one write per cycle (per row, not per digit, in a digit-serial engine). The
datapath enables the read (`read_enable`) only for a row that has an earlier K-tile's sum to add, and the
write happens only when a later K-tile will read it back.
The read is issued a cycle ahead (the memory is synchronous) and is transparent to the write, which
matters only when the same row comes back on the next cycle (R = 1, M = 1). A pipelined engine
(EngineConfig.pipelined) registers the read data as well, so the read is issued two cycles ahead
(`contract.timing.accumulator_read_slots`, from which the datapath picks the row to read); the
row written in the cycle between is then forwarded from the sum register, which again matters only
for R = 1, the one shape in which a row comes back within two cycles (a tile lasts max(M, R) slots).
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from contract.widths import column_sum_bits
from hw.interface import token_layout


class Accumulator(wiring.Component):
    """sums <= (first K-tile ? 0 : acc[row]) + colsums; written back unless it is the last K-tile.

    `sums`/`sums_token` are registered and carry a valid token only for the final K-tile, i.e. when the
    sum is complete and goes on to requantization.

    Parameters
    ----------
    cfg : EngineConfig
        Columns, widths and the accumulator depth max_m.

    Members
    -------
    colsums : In(ArrayLayout(signed(column_sum_bits), C))
        The row's column sums from the column stage.
    token : In(token)
        The row's token (row index, first/last K-tile).
    read_row : In(range(max_m))
        The row whose earlier sum to read, issued ahead by the read latency.
    read_enable : In(1)
        Read it (only when an earlier K-tile left a sum there).
    sums : Out(ArrayLayout(signed(ACC), C))
        The complete sums of the last K-tile's row.
    sums_token : Out(token)
        Their token, valid in the last K-tile only.
    """

    def __init__(self, cfg):
        self._cfg = cfg
        sums_layout = data.ArrayLayout(signed(cfg.acc_bits), cfg.cols)
        super().__init__(
            {
                "colsums": In(data.ArrayLayout(signed(column_sum_bits(cfg)), cfg.cols)),
                "token": In(token_layout(cfg)),
                "read_row": In(range(cfg.max_m)),
                "read_enable": In(1),
                "sums": Out(sums_layout),
                "sums_token": Out(token_layout(cfg)),
            }
        )
        self.memory = Memory(shape=sums_layout, depth=cfg.max_m, init=[])

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        m.submodules.memory = self.memory
        write = self.memory.write_port()
        read = self.memory.read_port(transparent_for=(write,))
        total = Signal.like(self.sums)
        m.d.comb += [read.addr.eq(self.read_row), read.en.eq(self.read_enable)]
        stored = read.data
        if cfg.pipelined:
            stored = Signal.like(read.data)
            m.d.sync += stored.eq(read.data)
            if cfg.rows == 1:
                written = Signal(range(cfg.max_m))
                written_valid = Signal()
                m.d.sync += [written.eq(self.token.row), written_valid.eq(write.en)]
                forwarded = Signal.like(read.data)
                m.d.comb += forwarded.eq(Mux(written_valid & (written == self.token.row), self.sums, stored))
                stored = forwarded
        for c in range(cfg.cols):
            prior = Mux(self.token.first_ktile, 0, stored[c])
            m.d.comb += total[c].eq(prior + self.colsums[c])
        m.d.comb += [
            write.addr.eq(self.token.row),
            write.data.eq(total),
            write.en.eq(self.token.valid & ~self.token.last_ktile),
        ]
        m.d.sync += [
            self.sums.eq(total),
            self.sums_token.eq(self.token),
            self.sums_token.valid.eq(self.token.valid & self.token.last_ktile),
        ]
        return m
