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


class HandshakeRules:
    """The rules of one channel, fed a cycle at a time (`sample`): the violations so far, plain Python so that
    the rules are tested without a simulator."""

    def __init__(self, name: str):
        self.name = name
        self.violations: list[str] = []
        self.transfers = 0
        self._held = None  # the payload while VALID waits for READY, else None

    def sample(self, cycle: int, valid: bool, ready: bool, payload: tuple) -> None:
        if self._held is not None:
            if not valid:
                self.violations.append(f"{self.name}: VALID fell before READY at cycle {cycle}")
            elif payload != self._held:
                self.violations.append(f"{self.name}: payload changed while VALID waited for READY at cycle {cycle}")
        self.transfers += valid and ready
        self._held = payload if valid and not ready else None


class AxiHandshakeMonitor:
    """Watches the port whose signals are `<prefix><name>` on `dut` (e.g. "m_axi__"), from `start()` on: a
    HandshakeRules per channel, whose violations ("<port> <channel>: <rule> at cycle <n>") `violations` joins."""

    def __init__(self, dut, clock, prefix: str):
        self.clock, self.prefix = clock, prefix
        self._channels = {}
        for channel, payload in CHANNELS.items():
            valid = getattr(dut, f"{prefix}{channel}valid", None)
            if valid is not None:
                fields = [getattr(dut, f"{prefix}{name}") for name in payload if hasattr(dut, f"{prefix}{name}")]
                rules = HandshakeRules(f"{prefix.rstrip('_')} {channel}")
                self._channels[channel] = (valid, getattr(dut, f"{prefix}{channel}ready"), fields, rules)

    @property
    def violations(self) -> list[str]:
        return [violation for *_, rules in self._channels.values() for violation in rules.violations]

    @property
    def transfers(self) -> dict[str, int]:
        return {channel: rules.transfers for channel, (*_, rules) in self._channels.items()}

    def start(self) -> None:
        cocotb.start_soon(self._watch())

    async def _watch(self) -> None:
        cycle = 0
        while True:
            await RisingEdge(self.clock)
            await ReadOnly()
            cycle += 1
            for valid, ready, fields, rules in self._channels.values():
                is_valid = bool(valid.value)
                payload = tuple(str(field.value) for field in fields) if is_valid else None
                rules.sample(cycle, is_valid, bool(ready.value), payload)
