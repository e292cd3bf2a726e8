"""The offset scheme's constant term, added once per column instead of in every PE.

A switchable bit-parallel PE multiplies by v = kept XOR 2^(B-1) for an offset code (hw/pe.py,
`load_value`), whose scaled weight is 2v + 2^(B-k). A column's sum of R products is therefore

    sum_r act_r * (2 v_r + 2^(B-k)) = 2 * (the array's column sum) + 2^(B-k) * S,   S = sum_r act_r,

and S is the same for every column of one activation row. So S is computed once per row from the masked
activations entering the array, travels beside the row's token for the slots the row spends in the array
(contract/timing.py, array_slots), and each de-skewed column sum is doubled and gets 2^(B-k) * S added
before the accumulator. For the twos scheme the column sum is already the scaled one, and S is held at
zero. The numbers are the same, bit for bit, as a PE that decodes the (B+1)-bit offset weight itself
(docs/numerics.md).
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from contract.timing import array_slots
from hw.interface import Scheme, column_sum_bits, psum_bits, weight_decode_layout
from hw.skew import delay_line


def tree_sum(values: list[Value]) -> Value:
    """The sum of `values` as a balanced tree of adders (log depth, not a chain)."""
    while len(values) > 1:
        values = [a + b for a, b in zip(values[0::2], values[1::2], strict=False)] + values[len(values) & ~1 :]
    return values[0]


class OffsetTerm(wiring.Component):
    """`lanes` in: one masked activation row as it enters the array; `sums` out, array_slots later: its
    de-skewed `psums`, doubled plus 2^(B-k) * sum(lanes) for the offset scheme, unchanged for twos."""

    def __init__(self, cfg):
        self._cfg = cfg
        super().__init__(
            {
                "lanes": In(data.ArrayLayout(cfg.act_bits, cfg.rows)),
                "decode": In(weight_decode_layout(cfg)),
                "psums": In(data.ArrayLayout(signed(psum_bits(cfg)), cfg.cols)),
                "sums": Out(data.ArrayLayout(signed(column_sum_bits(cfg)), cfg.cols)),
            }
        )

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        offset = self.decode.scheme == Scheme.OFFSET
        row_sum = Signal(unsigned((cfg.rows * ((1 << cfg.act_bits) - 1)).bit_length()))
        m.d.comb += row_sum.eq(Mux(offset, tree_sum(list(self.lanes)), 0))
        # The row's sum waits as long as its row is in the array; the last stage also scales it by 2^(B-k).
        taps = delay_line(m, row_sum, array_slots(cfg) - 1, "row_sum")
        term = Signal(unsigned(len(row_sum) + cfg.base_bits - 1))
        m.d.sync += term.eq(taps[-1] << self.decode.drop)
        width = column_sum_bits(cfg)
        for c in range(cfg.cols):
            doubled = Mux(offset, self.psums[c] << 1, self.psums[c])
            m.d.comb += self.sums[c].eq((doubled + term)[:width].as_signed())
        return m
