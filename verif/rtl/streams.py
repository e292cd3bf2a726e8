"""cocotb drivers for the engine's valid/ready streams, paced by `verif.stalls` pause generators.

Every signal is driven just after the falling clock edge and sampled in the read-only phase before the
next rising edge, so a handshake is seen exactly as the design sees it at that rising edge, whatever
combinational path connects `valid` and `ready` inside the engine. A source holds `valid` and the payload
until the beat is taken (AXI-Stream rule); idling happens only between beats. Payloads are the integers on
the port, packed and read by `sim.payload`.
"""

from __future__ import annotations

from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from contract.config import EngineConfig
from sim.payload import to_bits
from verif.stalls import Never, Pauses


class CycleCounter:
    """Counts rising clock edges, so drivers can stamp each transfer with its cycle number."""

    def __init__(self, clk):
        self.clk = clk
        self.now = 0

    async def run(self):
        while True:
            await RisingEdge(self.clk)
            self.now += 1


class _StreamPort:
    def __init__(self, dut, name: str, cfg: EngineConfig, clock: CycleCounter):
        self.name = name
        self.cfg = cfg
        self.clock = clock
        self.pauses: Pauses = Never()
        self.valid = getattr(dut, f"{name}__valid")
        self.ready = getattr(dut, f"{name}__ready")
        self.payload = getattr(dut, f"{name}__payload")
        self.cycles: list[int] = []  # cycle number (rising edge) of each transfer

    def set_pause_generator(self, pauses: Pauses) -> None:
        """Idle (sources) or drop `ready` (sinks) in the cycles `pauses` says, from now on."""
        self.pauses = pauses


class StreamSource(_StreamPort):
    """Sends beats (dicts of the stream's payload fields) into an input stream of the engine."""

    def idle(self):
        """Not valid, and a defined payload: an X payload could reach the engine's handshake logic."""
        self.valid.value = 0
        self.payload.value = 0

    async def send(self, beats: list[dict]):
        await FallingEdge(self.clock.clk)
        for beat in beats:
            while self.pauses.pause():
                self.valid.value = 0
                await FallingEdge(self.clock.clk)
            self.payload.value = to_bits(self.cfg, self.name, beat)
            self.valid.value = 1
            while True:
                await ReadOnly()
                taken = bool(self.ready.value)
                await FallingEdge(self.clock.clk)
                if taken:
                    self.cycles.append(self.clock.now)
                    break
        self.valid.value = 0


class StreamSink(_StreamPort):
    """Takes beats from the engine's output stream, with back-pressure on `ready` from its pause generator.
    `trace` records (valid, ready) in every cycle, for the coverage of the output FIFO."""

    def __init__(self, dut, name: str, cfg: EngineConfig, clock: CycleCounter):
        super().__init__(dut, name, cfg, clock)
        self.trace: list[tuple[int, int]] = []

    def idle(self):
        self.ready.value = 0

    async def receive(self, count: int) -> list[int]:
        beats = []
        await FallingEdge(self.clock.clk)
        while len(beats) < count:
            ready = not self.pauses.pause()
            self.ready.value = int(ready)
            await ReadOnly()
            self.trace.append((int(self.valid.value), int(ready)))
            if ready and self.valid.value:
                beats.append(self.payload.value.to_unsigned())
                self.cycles.append(self.clock.now + 1)  # the transfer happens at the coming rising edge
            await FallingEdge(self.clock.clk)
        self.ready.value = 0
        return beats

    async def take_extra(self, cycles: int) -> list[int]:
        """`ready` high for `cycles` more cycles, taking any further beat: the engine must offer none, and a
        duplicated beat shows up in what the scoreboard counts."""
        beats = []
        await FallingEdge(self.clock.clk)
        self.ready.value = 1
        for _ in range(cycles):
            await ReadOnly()
            if self.valid.value:
                beats.append(self.payload.value.to_unsigned())
            await FallingEdge(self.clock.clk)
        self.ready.value = 0
        return beats
