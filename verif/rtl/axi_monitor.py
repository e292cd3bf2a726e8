"""AXI handshake assertions for cocotb benches: a monitor that watches every channel of an AXI4 or AXI4-Lite
port at each rising clock edge and records each break of the rules AXI sets a channel's source (IHI 0022,
A3.2.1): once VALID is high it stays high until the edge at which READY is high too, and the channel's payload
does not change while VALID is high and READY low. It checks both directions of a port (what the design under
test drives and what the bench's models drive); a bench asserts `violations` is empty at the end.
"""

from __future__ import annotations

import cocotb
from cocotb.triggers import ReadOnly, RisingEdge

#: Each channel's VALID/READY prefix and the payload signals its source holds stable (AXI4; AXI4-Lite has a
#: subset, and a port's absent signals are skipped).
CHANNELS = {
    "ar": ("arid", "araddr", "arlen", "arsize", "arburst"),
    "r": ("rid", "rdata", "rresp", "rlast"),
    "aw": ("awid", "awaddr", "awlen", "awsize", "awburst"),
    "w": ("wdata", "wstrb", "wlast"),
    "b": ("bid", "bresp"),
}


class AxiHandshakeMonitor:
    """Watches the port whose signals are `<prefix><name>` on `dut` (e.g. "m_axi__"), from `start()` on; at most
    `limit` violations are kept, each "<port> <channel>: <rule> at cycle <n>"."""

    def __init__(self, dut, clock, prefix: str, limit: int = 20):
        self.clock, self.prefix, self.limit = clock, prefix, limit
        self.violations: list[str] = []
        self.transfers = dict.fromkeys(CHANNELS, 0)
        self._channels = {}
        for channel, payload in CHANNELS.items():
            valid = getattr(dut, f"{prefix}{channel}valid", None)
            if valid is not None:
                fields = [getattr(dut, f"{prefix}{name}") for name in payload if hasattr(dut, f"{prefix}{name}")]
                self._channels[channel] = (valid, getattr(dut, f"{prefix}{channel}ready"), fields)

    def start(self) -> None:
        cocotb.start_soon(self._watch())

    def _record(self, channel: str, rule: str, cycle: int) -> None:
        if len(self.violations) < self.limit:
            self.violations.append(f"{self.prefix.rstrip('_')} {channel}: {rule} at cycle {cycle}")

    async def _watch(self) -> None:
        pending = dict.fromkeys(self._channels)  # a channel's payload while VALID waits for READY, else None
        cycle = 0
        while True:
            await RisingEdge(self.clock)
            await ReadOnly()
            cycle += 1
            for channel, (valid, ready, fields) in self._channels.items():
                is_valid, is_ready = bool(valid.value), bool(ready.value)
                payload = tuple(str(field.value) for field in fields) if is_valid else None
                held = pending[channel]
                if held is not None:
                    if not is_valid:
                        self._record(channel, "VALID fell before READY", cycle)
                    elif payload != held:
                        self._record(channel, "payload changed while VALID waited for READY", cycle)
                if is_valid and is_ready:
                    self.transfers[channel] += 1
                pending[channel] = payload if is_valid and not is_ready else None
