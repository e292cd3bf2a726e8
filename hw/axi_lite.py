"""An AXI4-Lite slave reduced to a register file's two plain ports: a write strobe and a combinational read.

A write is taken when its address and data are both offered (AW and W in the same cycle, as most masters and
interconnects do; a master that sends one first simply waits) and answered OKAY the cycle after; `wstrb` is
ignored: every write is of a whole 32-bit register. A read samples `read_data` for `read_address` in the cycle
its address is taken and answers the cycle after. One transaction of each kind at a time.
"""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.axi import RESP_OKAY, axi_lite_signature


class AxiLiteRegisters(wiring.Component):
    """The AXI4-Lite port `bus` (a slave) and the register file's side: `write` pulses for one cycle with
    `address` and `data`; `read_address` is the address being read, whose `read_data` is returned."""

    def __init__(self, address_bits: int = 8):
        super().__init__(
            {
                "bus": In(axi_lite_signature(address_bits)),
                "write": Out(1),
                "write_address": Out(address_bits),
                "write_data": Out(32),
                "read_address": Out(address_bits),
                "read_data": In(32),
            }
        )

    def elaborate(self, platform):
        m = Module()
        bus = self.bus
        take_write = bus.awvalid & bus.wvalid & ~bus.bvalid
        m.d.comb += [
            bus.awready.eq(take_write),
            bus.wready.eq(take_write),
            self.write.eq(take_write),
            self.write_address.eq(bus.awaddr),
            self.write_data.eq(bus.wdata),
            bus.bresp.eq(RESP_OKAY),
            bus.rresp.eq(RESP_OKAY),
        ]
        with m.If(take_write):
            m.d.sync += bus.bvalid.eq(1)
        with m.Elif(bus.bready):
            m.d.sync += bus.bvalid.eq(0)
        take_read = bus.arvalid & ~bus.rvalid
        m.d.comb += [bus.arready.eq(take_read), self.read_address.eq(bus.araddr)]
        with m.If(take_read):
            m.d.sync += [bus.rvalid.eq(1), bus.rdata.eq(self.read_data)]
        with m.Elif(bus.rready):
            m.d.sync += bus.rvalid.eq(0)
        return m
