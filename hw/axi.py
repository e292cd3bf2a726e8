"""AXI4 and AXI4-Lite port signatures, seen from the master (flip them for a slave).

Only the signals the SoC wrapper (hw/soc.py) uses: no QoS, no cache or protection attributes (a host's
interconnect ties them off). The members are named as in the AXI specification, so that the emitted Verilog's
ports read `<bus>__awaddr` etc. and tools that bind by prefix (cocotbext-axi's `from_prefix(dut, "<bus>_")`)
find them.
"""

from __future__ import annotations

from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

#: AXI burst type INCR; responses OKAY and SLVERR (the slave refuses the access).
BURST_INCR = 1
RESP_OKAY, RESP_SLVERR = 0, 2


def axi_lite_signature(address_bits: int, data_bits: int = 32) -> wiring.Signature:
    """An AXI4-Lite port (master's view): write address, write data, write response, read address, read data."""
    return wiring.Signature(
        {
            "awaddr": Out(address_bits),
            "awvalid": Out(1),
            "awready": In(1),
            "wdata": Out(data_bits),
            "wstrb": Out(data_bits // 8),
            "wvalid": Out(1),
            "wready": In(1),
            "bresp": In(2),
            "bvalid": In(1),
            "bready": Out(1),
            "araddr": Out(address_bits),
            "arvalid": Out(1),
            "arready": In(1),
            "rdata": In(data_bits),
            "rresp": In(2),
            "rvalid": In(1),
            "rready": Out(1),
        }
    )


def axi_signature(address_bits: int, data_bits: int, id_bits: int = 1) -> wiring.Signature:
    """An AXI4 port (master's view) with bursts: AR/R and AW/W/B, each burst's ID, length, size and type (a
    master that keeps one transaction of each kind in flight drives ID 0 and may ignore RID and BID)."""
    return wiring.Signature(
        {
            "arid": Out(id_bits),
            "araddr": Out(address_bits),
            "arlen": Out(8),
            "arsize": Out(3),
            "arburst": Out(2),
            "arvalid": Out(1),
            "arready": In(1),
            "rid": In(id_bits),
            "rdata": In(data_bits),
            "rresp": In(2),
            "rlast": In(1),
            "rvalid": In(1),
            "rready": Out(1),
            "awid": Out(id_bits),
            "awaddr": Out(address_bits),
            "awlen": Out(8),
            "awsize": Out(3),
            "awburst": Out(2),
            "awvalid": Out(1),
            "awready": In(1),
            "wdata": Out(data_bits),
            "wstrb": Out(data_bits // 8),
            "wlast": Out(1),
            "wvalid": Out(1),
            "wready": In(1),
            "bid": In(id_bits),
            "bresp": In(2),
            "bvalid": In(1),
            "bready": Out(1),
        }
    )
