"""A skid buffer: a stream stage whose `ready` upstream is a register, at no cost in cycles.

A valid/ready chain through several units is one combinational path: the sink's `ready` reaches every
register the source enables with it. Between the activation fetch and the GEMM engine that path ran from the
engine's stall through `act.ready` into the fetch's stages and the address generator's counters, and limited
the program engine's Fmax (docs/estimates.md, "Issue 22"). This stage cuts it: `input.ready` is `~full`, a
register, and `output.ready` reaches only this stage's own two registers.

It adds no latency: a beat offered while the buffer is empty passes straight through (`output.valid` and
`output.payload` follow `input` combinationally, which the stream rules allow since neither depends on a
ready). When the sink refuses it, the beat is kept (`full`) and offered from the buffer, ahead of anything
upstream, which waits meanwhile. So the sink sees a beat in every cycle it would have without the buffer,
the same beats in the same order, and the source may run one beat ahead of the sink.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out


class SkidBuffer(wiring.Component):
    """One beat of buffering between `input` and `output` (module docstring).

    Parameters
    ----------
    layout : data.Layout
        The payload of both streams.

    Members
    -------
    input : In(stream.Signature(layout))
        The source's beats; `ready` is a register (the buffer is empty).
    output : Out(stream.Signature(layout))
        The same beats, in order: the held one if any, else the source's.
    """

    def __init__(self, layout: data.Layout):
        super().__init__({"input": In(stream.Signature(layout)), "output": Out(stream.Signature(layout))})

    def elaborate(self, platform):
        m = Module()
        full = Signal()
        held = Signal.like(self.input.payload)
        m.d.comb += [
            self.input.ready.eq(~full),
            self.output.valid.eq(full | self.input.valid),
            self.output.payload.eq(Mux(full, held, self.input.payload)),
        ]
        with m.If(full):
            with m.If(self.output.ready):
                m.d.sync += full.eq(0)
        with m.Elif(self.input.valid & ~self.output.ready):
            m.d.sync += [full.eq(1), held.eq(self.input.payload)]
        return m
