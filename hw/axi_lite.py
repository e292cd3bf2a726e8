"""An AXI4-Lite slave reduced to a register file's two plain ports: a write strobe and a combinational read.

A write is taken when its address and data are both offered (AW and W in the same cycle, as most masters and
interconnects do; a master that sends one first simply waits) and answered OKAY the cycle after; `wstrb` is
ignored: every write is of a whole 32-bit register. A read samples `read_data` for `read_address` in the cycle
its address is taken and answers the cycle after. One transaction of each kind at a time. The register file
says which accesses are illegal (`write_error`, `read_error`, combinational on the address and data offered):
those are answered SLVERR, as AXI asks of a slave that refuses an access.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.axi import RESP_OKAY, RESP_SLVERR, axi_lite_signature


class AxiLiteRegisters(wiring.Component):
    """The AXI4-Lite port `bus` (a slave) and the register file's side: `write` pulses for one cycle with
    `address` and `data` (not for a refused write); `read_address` is the address being read, whose `read_data` is
    returned; `write_error` and `read_error` refuse the access offered (answered SLVERR)."""

    def __init__(self, address_bits: int = 8):
        super().__init__(
            {
                "bus": In(axi_lite_signature(address_bits)),
                "write": Out(1),
                "write_address": Out(address_bits),
                "write_data": Out(32),
                "read_address": Out(address_bits),
                "read_data": In(32),
                "write_error": In(1),
                "read_error": In(1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        bus = self.bus
        take_write = bus.awvalid & bus.wvalid & ~bus.bvalid
        m.d.comb += [
            bus.awready.eq(take_write),
            bus.wready.eq(take_write),
            self.write.eq(take_write & ~self.write_error),
            self.write_address.eq(bus.awaddr),
            self.write_data.eq(bus.wdata),
        ]
        with m.If(take_write):
            m.d.sync += [bus.bvalid.eq(1), bus.bresp.eq(Mux(self.write_error, RESP_SLVERR, RESP_OKAY))]
        with m.Elif(bus.bready):
            m.d.sync += bus.bvalid.eq(0)
        take_read = bus.arvalid & ~bus.rvalid
        m.d.comb += [bus.arready.eq(take_read), self.read_address.eq(bus.araddr)]
        with m.If(take_read):
            m.d.sync += [
                bus.rvalid.eq(1),
                bus.rdata.eq(Mux(self.read_error, 0, self.read_data)),
                bus.rresp.eq(Mux(self.read_error, RESP_SLVERR, RESP_OKAY)),
            ]
        with m.Elif(bus.rready):
            m.d.sync += bus.rvalid.eq(0)
        return m
