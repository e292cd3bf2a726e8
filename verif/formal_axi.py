"""Formal proofs of the AXI handshake rules on the SoC wrapper's bus blocks (hw/axi_lite.py, hw/dma.py), by
SymbiYosys, on small widths.

`AxiHarness` puts the register port (`AxiLiteRegisters`), the read arbiter (`ReadArbiter`) and the logits
writer (`LogitsWriter`) side by side with every input free in every cycle, constrained only by what their
surroundings guarantee: the AXI masters and slaves they face keep the source rules (VALID held until READY,
the payload unchanged meanwhile: IHI 0022 A3.2.1), the memory window does not move while a DMA block has a
burst in flight (hw/soc.py answers such a write SLVERR), and the writer's `go` comes in the cycle after reset
only (as START's reset is followed by `go` in hw/soc.py). Against all of that it asserts that every channel
the blocks drive keeps the same rules: AWREADY/WREADY-answered B and AR-answered R on the register port, AR of
the arbiter, AW and W of the writer. Covers show a register write and read answered, a burst read and a
burst written. With `free_window` the arbiter's window may move during a burst: its ARVALID, which says
whether the waiting burst lies in the window, may then fall, so that proof must fail (the assertions bite).
"""

from __future__ import annotations

from amaranth.hdl import Assert, Assume, Cover, Elaboratable, Module, ResetSignal, Signal, Value

from hw.axi_lite import AxiLiteRegisters
from hw.dma import LogitsWriter, ReadArbiter

BUS_BYTES, BURST, ADDRESS_BITS, LOGITS_BITS = 4, 4, 12, 40


def held(m: Module, valid, ready, payload: list, checking) -> list:
    """The source rule of one channel as conditions true in every cycle: after a cycle in which VALID was high
    and READY low, VALID is high and every payload signal is what it was."""
    was_waiting = Signal()
    m.d.sync += was_waiting.eq(valid & ~ready)
    rules = [~(checking & was_waiting) | valid]
    for signal in payload:
        before = Signal.like(signal)
        m.d.sync += before.eq(signal)
        rules.append(~(checking & was_waiting) | (signal == before))
    return rules


class AxiHarness(Elaboratable):
    """The three blocks with free inputs and the properties of the module docstring."""

    def __init__(self, free_window: bool = False):
        self.free_window = free_window
        self.registers = AxiLiteRegisters(8)
        self.arbiter = ReadArbiter(2, BUS_BYTES, BURST, ADDRESS_BITS)
        self.writer = LogitsWriter(BUS_BYTES, LOGITS_BITS, BURST, ADDRESS_BITS, count_bits=6)

    def ports(self) -> list[Signal]:
        blocks = (self.registers, self.arbiter, self.writer)
        return [Value.cast(value) for block in blocks for _, _, value in block.signature.flatten(block)]

    def elaborate(self, platform):
        m = Module()
        m.submodules.registers = registers = self.registers
        m.submodules.arbiter = arbiter = self.arbiter
        m.submodules.writer = writer = self.writer
        started, checking = Signal(reset_less=True), Signal()
        m.d.sync += [started.eq(1), checking.eq(~ResetSignal())]
        m.d.comb += Assume(ResetSignal() == ~started)

        def assume(valid, ready, payload):
            m.d.comb += [Assume(rule) for rule in held(m, valid, ready, payload, checking)]

        def require(valid, ready, payload):
            m.d.comb += [Assert(rule) for rule in held(m, valid, ready, payload, checking)]

        bus = registers.bus
        assume(bus.awvalid, bus.awready, [bus.awaddr])
        assume(bus.wvalid, bus.wready, [bus.wdata, bus.wstrb])
        assume(bus.arvalid, bus.arready, [bus.araddr])
        require(bus.bvalid, bus.bready, [bus.bresp])
        require(bus.rvalid, bus.rready, [bus.rdata, bus.rresp])

        r = arbiter.r
        assume(r.valid, r.ready, [r.payload.as_value()])
        require(arbiter.ar.valid, arbiter.ar.ready, [arbiter.ar.payload.as_value()])
        require(writer.aw.valid, writer.aw.ready, [writer.aw.payload.as_value()])
        require(writer.w.valid, writer.w.ready, [writer.w.payload.as_value()])
        assume(writer.b.valid, writer.b.ready, [writer.b.payload])
        assume(writer.logits.valid, writer.logits.ready, [writer.logits.payload])

        after_reset = Signal(reset_less=True)  # not cleared by the reset it follows
        m.d.sync += after_reset.eq(ResetSignal())
        m.d.comb += Assume(~writer.go | after_reset)
        for block in (arbiter, writer):
            window = [block.window_base, block.window_size]
            was_idle = Signal()
            m.d.sync += was_idle.eq(block.idle)
            if not (self.free_window and block is arbiter):
                for signal in window:
                    before = Signal.like(signal)
                    m.d.sync += before.eq(signal)
                    m.d.comb += Assume(~checking | was_idle | (signal == before))

        m.d.comb += [
            Cover(bus.bvalid & bus.bready),
            Cover(bus.rvalid & bus.rready),
            Cover(r.valid & r.ready & r.payload.last),
            Cover(writer.b.valid & writer.b.ready),
        ]
        return m
