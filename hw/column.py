"""The column stage: what turns the array's de-skewed column sums into the row's sums the accumulator adds.

It is the one part of the datapath whose structure depends on the PE kind, so it is one component per
kind, chosen once (`column_stage`), with the same ports: `psums` and their `token` in, aligned; `sums`
and `sums_token` out, `contract.timing.column_stage_slots` later. The datapath derives every other
alignment (the accumulator read, the parameter request) from that latency.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Value, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from contract.config import PEKind
from contract.timing import column_stage_slots
from contract.widths import column_sum_bits, psum_bits
from hw.interface import token_layout
from hw.offset import OffsetTerm, row_sum_bits
from hw.skew import delay_line


class ColumnStage(wiring.Component):
    """The ports every column stage has, and `extra` ones of its kind.

    Parameters
    ----------
    cfg : EngineConfig
        The engine.
    extra : dict, optional
        Members only this kind of stage has.

    Members
    -------
    psums : In(ArrayLayout(signed(psum_bits), C))
        The de-skewed column sums of one row (digit-serial: of one digit).
    token : In(token)
        Their token.
    sums : Out(ArrayLayout(signed(column_sum_bits), C))
        The row's complete column sums, after the stage's latency (contract.timing.column_stage_slots).
    sums_token : Out(token)
        Their token, valid when `sums` is complete.
    """

    #: Submodule name -> the block `eda.synth` reports its gates under (hw.engine.engine_blocks); the
    #: stage's own registers are control.
    BLOCKS: dict[str, str] = {}

    def __init__(self, cfg, extra: dict | None = None):
        self._cfg = cfg
        super().__init__(
            {
                "psums": In(data.ArrayLayout(signed(psum_bits(cfg)), cfg.cols)),
                "token": In(token_layout(cfg)),
                "sums": Out(data.ArrayLayout(signed(column_sum_bits(cfg)), cfg.cols)),
                "sums_token": Out(token_layout(cfg)),
            }
            | (extra or {})
        )

    def _registered(self, m: Module, sums: Value) -> None:
        """`sums` and the token out after the stage's slots: a pipelined engine's column-sum register."""
        slots = column_stage_slots(self._cfg)
        m.d.comb += [
            self.sums.eq(delay_line(m, sums, slots, "colsums")[-1]),
            self.sums_token.eq(delay_line(m, self.token, slots, "token")[-1]),
        ]


class ColumnSums(ColumnStage):
    """The fixed-precision engine: a column's sum of products is already the row's sum."""

    def elaborate(self, platform):
        m = Module()
        self._registered(m, self.psums)
        return m


class OffsetColumnSums(ColumnStage):
    """The switchable bit-parallel engine: the offset scheme's constant term added per column (hw/offset.py),
    from the array's `row_sum` and the scheme and precision that travel in the row's token.

    Members
    -------
    psums, token, sums, sums_token
        As every ColumnStage's.
    row_sum : In(row_sum_bits)
        The row's sum of masked activations, from the array.
    """

    BLOCKS = {"offset_term": "accumulators"}

    def __init__(self, cfg):
        super().__init__(cfg, {"row_sum": In(row_sum_bits(cfg))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.offset_term = offset_term = OffsetTerm(self._cfg)
        m.d.comb += [
            offset_term.row_sum.eq(self.row_sum),
            offset_term.precision.eq(self.token.precision),
            offset_term.psums.eq(self.psums),
        ]
        self._registered(m, offset_term.sums)
        return m


class DigitShiftAdd(ColumnStage):
    """Digit-serial engines: sums <= (first digit ? 0 : sums * 2^D) + psums, per column.

    The digits of one activation row leave the array in consecutive slots, most significant first, so
    Horner's rule rebuilds the row's column sums here, below the array, and the accumulator memory is
    still read and written once per activation row. After the last digit, at place p0 = floor((B-k)/D),
    `sums` is 2^(D*p0) times too small against the bit-parallel engine's 2^(B-k)-scaled sum, so the
    requantizer shifts by (B-k) mod D instead of B-k (hw/sequencer.py). `sums_token` is valid only on
    the row's last digit, when the sum is complete.
    """

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        first_digit = self.token.place == cfg.digit_count - 1
        for c in range(cfg.cols):
            total = Mux(first_digit, 0, self.sums[c] << cfg.digit_width) + self.psums[c]
            m.d.sync += self.sums[c].eq(total[: column_sum_bits(cfg)].as_signed())
        m.d.sync += [
            self.sums_token.eq(self.token),
            self.sums_token.valid.eq(self.token.valid & self.token.last_digit),
        ]
        return m


#: The column stage of each PE kind.
STAGES = {PEKind.FIXED: ColumnSums, PEKind.BIT_PARALLEL: OffsetColumnSums, PEKind.DIGIT_SERIAL: DigitShiftAdd}


def column_stage(cfg) -> ColumnStage:
    """The column stage of the config's PE kind."""
    return STAGES[cfg.pe_kind](cfg)
