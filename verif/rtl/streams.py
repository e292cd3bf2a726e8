"""cocotb drivers for the engine's valid/ready streams, with seeded random stalls.

Every signal is driven just after the falling clock edge and sampled in the read-only phase before the
next rising edge, so a handshake is seen exactly as the design sees it at that rising edge, whatever
combinational path connects `valid` and `ready` inside the engine. A source holds `valid` and the payload
until the beat is taken (AXI-Stream rule); idling happens only between beats.
"""

from __future__ import annotations

import random

from amaranth.lib import data
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge


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
    def __init__(self, dut, name: str, layout: data.Layout, clock: CycleCounter, rng: random.Random, stall_rate: float):
        self.name = name
        self.layout = layout
        self.clock = clock
        self.rng = rng
        self.stall_rate = stall_rate
        self.valid = getattr(dut, f"{name}__valid")
        self.ready = getattr(dut, f"{name}__ready")
        self.payload = getattr(dut, f"{name}__payload")
        self.cycles: list[int] = []  # cycle number (rising edge) of each transfer

    def stalls(self) -> bool:
        return self.stall_rate > 0 and self.rng.random() < self.stall_rate


class StreamSource(_StreamPort):
    """Sends beats (dicts in the port's payload layout) into an input stream of the engine."""

    def idle(self):
        """Not valid, and a defined payload: an X payload could reach the engine's handshake logic."""
        self.valid.value = 0
        self.payload.value = 0

    async def send(self, beats: list[dict]):
        await FallingEdge(self.clock.clk)
        for beat in beats:
            while self.stalls():
                self.valid.value = 0
                await FallingEdge(self.clock.clk)
            self.payload.value = self.layout.const(beat).as_bits()
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
    """Takes beats from the engine's output stream, applying random back-pressure on `ready`."""

    def idle(self):
        self.ready.value = 0

    async def receive(self, count: int) -> list[data.Const]:
        beats = []
        await FallingEdge(self.clock.clk)
        while len(beats) < count:
            ready = not self.stalls()
            self.ready.value = int(ready)
            await ReadOnly()
            if ready and self.valid.value:
                beats.append(data.Const(self.layout, self.payload.value.to_unsigned()))
                self.cycles.append(self.clock.now + 1)  # the transfer happens at the coming rising edge
            await FallingEdge(self.clock.clk)
        self.ready.value = 0
        return beats

    async def expect_silence(self, cycles: int):
        """With `ready` high, the engine must offer no further beat: nothing is duplicated."""
        await FallingEdge(self.clock.clk)
        self.ready.value = 1
        for _ in range(cycles):
            await ReadOnly()
            assert not self.valid.value, f"{self.name}: an extra beat appeared after the expected ones"
            await FallingEdge(self.clock.clk)
        self.ready.value = 0
