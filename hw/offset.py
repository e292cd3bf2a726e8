"""The offset scheme's constant term, added once per column instead of in every PE.

A switchable bit-parallel PE multiplies by v = kept XOR 2^(B-1) for an offset code (hw/pe.py,
`load_value`), whose scaled weight is 2v + 2^(B-k). A column's sum of R products is therefore

    sum_r act_r * (2 v_r + 2^(B-k)) = 2 * (the array's column sum) + 2^(B-k) * S,   S = sum_r act_r,

and S is the same for every column of one activation row. The array sums S down its right edge, beside
the last column, from the activations as they pass it (hw/array.py), so it arrives with the row's
de-skewed column sums; each is doubled and gets 2^(B-k) * S added before the accumulator. For the twos
scheme the column sum is already the scaled one and S is not added. The numbers are the same, bit for
bit, as a PE that decodes the (B+1)-bit offset weight itself (docs/numerics.md).
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from contract.widths import column_sum_bits, psum_bits
from hw.interface import Scheme, row_precision_layout


def row_sum_bits(cfg) -> int:
    """Width of S, the sum of one row's R masked activations."""
    return (cfg.rows * ((1 << cfg.act_bits) - 1)).bit_length()


class OffsetTerm(wiring.Component):
    """`psums` and `row_sum` in, of one activation row, aligned; `sums` out: the psums doubled plus
    2^(B-k) * row_sum for the offset scheme, unchanged for twos.

    Parameters
    ----------
    cfg : EngineConfig
        A switchable bit-parallel engine.

    Members
    -------
    row_sum : In(row_sum_bits)
        The row's sum of masked activations, from the array's right edge.
    precision : In(row precision)
        The row's scheme and B - k (which 2^(B-k) to add), from its token.
    psums : In(ArrayLayout(signed(psum_bits), C))
        The de-skewed column sums of the PEs' stored values.
    sums : Out(ArrayLayout(signed(column_sum_bits), C))
        The column sums of the true weights, scaled by 2^(B-k) (combinational).
    """

    def __init__(self, cfg):
        self._cfg = cfg
        super().__init__(
            {
                "row_sum": In(row_sum_bits(cfg)),
                "precision": In(row_precision_layout(cfg)),
                "psums": In(data.ArrayLayout(signed(psum_bits(cfg)), cfg.cols)),
                "sums": Out(data.ArrayLayout(signed(column_sum_bits(cfg)), cfg.cols)),
            }
        )

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        offset = self.precision.scheme == Scheme.OFFSET
        term = Signal(unsigned(row_sum_bits(cfg) + cfg.base_bits - 1))
        m.d.comb += term.eq(Mux(offset, self.row_sum << self.precision.drop, 0))
        width = column_sum_bits(cfg)
        for c in range(cfg.cols):
            doubled = Mux(offset, self.psums[c] << 1, self.psums[c])
            m.d.comb += self.sums[c].eq((doubled + term)[:width].as_signed())
        return m
