"""The decision unit: a controller's result beats in, the decision registers out (contract.program, "Policies").

A dynamic policy's controller runs as a GEMM whose N = layers x candidates raw outputs are not stored: per
controlled layer i, register i takes the index of the candidate whose output is the largest among columns
i*n .. i*n + n - 1 (n candidates), the first on ties, which is the smaller k because candidates ascend
(docs/numerics.md, "The decision rule"). Later layers take their k from these registers.

The unit has the output path's shape (hw/output_path.py), so the same cycle recurrence times it
(sim.program_cycles): the beats enter a two-beat buffer, whose registered "not full" is `result.ready`, and
the beat at its head is examined one column a cycle, C cycles a beat, and popped with its last column. A
running maximum and its index are registers; the register of a layer is written with its last candidate's
column. A column is examined in four stages: its value is taken from the buffer's head and registered; in the
next cycle it is compared both with the running maximum and with the column before it (whose own comparison
is then in the third stage, not yet in the maximum), and both results registered; in the third the column
wins if it is its layer's first, or by the second result if the column before it won and by the first if not
(a multiplexer of registers), and the running maximum and the layer's choice are registered; the choice is
written into the layer's register in the fourth. No cycle holds more than one of the buffer's memory and the
column's multiplexer, a 32-bit comparison, the maximum's enables, the write into one of 32 registers: each
was in turn the program engine's critical path. `busy` is high from `start` until three cycles after the last
beat's last column.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from contract.config import EngineConfig
from contract.program import MAX_CANDIDATES, MAX_DECISIONS
from hw.interface import payload_layout


class DecisionUnit(wiring.Component):
    """A controller's raw outputs in, the index of each controlled layer's largest one out (module docstring).

    Parameters
    ----------
    cfg : EngineConfig
        The engine whose result beats (C values of ACC bits) come in.
    max_channels : int
        The largest N of a controller.

    Members
    -------
    start : In(1)
        A decision step begins: `channels` and `candidates` are taken.
    channels : In(range(max_channels + 1))
        N, the controller's outputs.
    candidates : In(range(MAX_CANDIDATES + 1))
        Candidates per controlled layer.
    result : In(stream.Signature(result))
        The controller's result beats (one output row, ceil(N/C) beats).
    busy : Out(1)
        A decision step is under way.
    decisions : Out(ArrayLayout(range(MAX_CANDIDATES), MAX_DECISIONS))
        Register i: the chosen candidate's index for controlled layer i.
    """

    def __init__(self, cfg: EngineConfig, max_channels: int):
        self._cfg = cfg
        super().__init__(
            {
                "start": In(1),
                "channels": In(range(max_channels + 1)),
                "candidates": In(range(MAX_CANDIDATES + 1)),
                "result": In(stream.Signature(payload_layout(cfg, "result"))),
                "busy": Out(1),
                "decisions": Out(data.ArrayLayout(range(MAX_CANDIDATES), MAX_DECISIONS)),
            }
        )
        self._max_channels = max_channels

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        width = data.Layout.cast(payload_layout(cfg, "result")).size
        m.submodules.buffer = buffer = SyncFIFO(width=width, depth=2)
        beat = Signal(payload_layout(cfg, "result"))
        m.d.comb += [
            buffer.w_data.eq(self.result.payload),
            buffer.w_en.eq(self.result.valid),
            self.result.ready.eq(buffer.w_rdy),
            beat.eq(buffer.r_data),
        ]
        channels, candidates = Signal.like(self.channels), Signal.like(self.candidates)
        column = Signal(range(cfg.cols))  # the column of the head beat examined this cycle
        index = Signal(range(self._max_channels + cfg.cols))  # its output index n
        layer = Signal(range(MAX_DECISIONS))
        candidate = Signal(range(MAX_CANDIDATES))
        best = Signal(signed(cfg.acc_bits))
        best_index = Signal(range(MAX_CANDIDATES))
        value = Signal(signed(cfg.acc_bits))
        m.d.comb += value.eq(beat.values[column])
        # The examined column, registered before it is compared (the buffer's memory and the column's
        # multiplexer in one cycle, the comparison with the running maximum in the next): what the second
        # stage needs of it.
        examined = Signal(
            data.StructLayout(
                {
                    "valid": 1,
                    "value": signed(cfg.acc_bits),
                    "first": 1,
                    "last": 1,
                    "candidate": range(MAX_CANDIDATES),
                    "layer": range(MAX_DECISIONS),
                }
            )
        )
        running = Signal()  # columns are examined: busy but for the later stages
        ending = Signal(3)  # the later stages of the last column (in range or not: a uniform end)
        m.d.comb += self.busy.eq(running | ending.any())
        m.d.sync += [examined.valid.eq(0), ending.eq(ending << 1)]
        with m.If(self.start):
            m.d.sync += [
                running.eq(1),
                channels.eq(self.channels),
                candidates.eq(self.candidates),
                column.eq(0),
                index.eq(0),
                layer.eq(0),
                candidate.eq(0),
            ]
        with m.Elif(running & buffer.r_rdy):
            last_column = column == cfg.cols - 1
            m.d.comb += buffer.r_en.eq(last_column)
            m.d.sync += [column.eq(Mux(last_column, 0, column + 1)), index.eq(index + 1)]
            with m.If(index < channels):
                last_candidate = candidate == candidates - 1
                m.d.sync += [
                    examined.valid.eq(1),
                    examined.value.eq(value),
                    examined.first.eq(candidate == 0),
                    examined.last.eq(last_candidate),
                    examined.candidate.eq(candidate),
                    examined.layer.eq(layer),
                ]
                with m.If(last_candidate):
                    m.d.sync += [layer.eq(layer + 1), candidate.eq(0)]
                with m.Else():
                    m.d.sync += candidate.eq(candidate + 1)
            with m.If(last_column & beat.last):
                m.d.sync += [running.eq(0), ending[0].eq(1)]
        # The second stage: the examined column against the running maximum, which holds every column but the
        # one in the third stage (`compared.examined`, if any), and against that column itself.
        compared = Signal(
            data.StructLayout(
                {
                    "examined": examined.shape(),
                    "above_best": 1,  # value > the running maximum
                    "above_previous": 1,  # value > the value of the column in the third stage
                    "follows": 1,  # that column was there: the running maximum lacks it
                }
            )
        )
        m.d.sync += [
            compared.examined.eq(examined),
            compared.above_best.eq(examined.value > best),
            compared.above_previous.eq(examined.value > compared.examined.value),
            compared.follows.eq(compared.examined.valid),
        ]
        # The third: the column wins if it is its layer's first, or if it is above the running maximum with the
        # column before it in (that column's value if it won, else the maximum it was compared with). The
        # layer's choice is registered before it is written into its decision register (the registers sit by
        # the program engine's decode, which reads them).
        third = compared.examined
        won = Signal()  # the column in the third stage in the cycle before won
        chosen = Signal(
            data.StructLayout({"valid": 1, "candidate": range(MAX_CANDIDATES), "layer": range(MAX_DECISIONS)})
        )
        m.d.sync += chosen.valid.eq(0)
        with m.If(third.valid):
            wins = third.first | Mux(compared.follows & won, compared.above_previous, compared.above_best)
            with m.If(wins):
                m.d.sync += [best.eq(third.value), best_index.eq(third.candidate)]
            m.d.sync += [
                won.eq(wins),
                chosen.valid.eq(third.last),
                chosen.candidate.eq(Mux(wins, third.candidate, best_index)),
                chosen.layer.eq(third.layer),
            ]
        with m.If(chosen.valid):
            m.d.sync += self.decisions[chosen.layer].eq(chosen.candidate)
        return m
