"""The SoC wrapper (hw/soc.py) on the Amaranth simulator, as a backend for apps.driver.NestmacDriver.

`AmaranthSocBackend(dut, memory_size)` runs the simulator step by step under the driver's synchronous calls:
a CPU process performs each register read or write on the AXI4-Lite port (one transaction at a time; a
response other than OKAY raises contract.soc.SlaveError), and a
memory model answers the AXI4 master from a byte array, with reads and writes paced by seeded random pauses
(`stall`: the fraction of cycles in which the memory holds arready/rvalid/awready/wready/bvalid low). The
model checks what it is asked: whole-bus INCR bursts that stay inside one 4 KiB page and inside the memory
(else it answers SLVERR and records the burst in `violations`).
"""

from __future__ import annotations

import random
from collections import deque

from amaranth.sim import Simulator

from contract.soc import check_response
from hw.axi import BURST_INCR, RESP_OKAY, RESP_SLVERR
from verif.stalls import Never, Random

POLL_CYCLES = 20  # cycles the driver lets pass between two reads of STATUS


async def _transfer(ctx, ready) -> None:
    """Tick until a clock edge at which `ready` is high. A loop of plain `sample`s, not `tick().until()`:
    a simulation dropped in the middle of a burst then leaves no asynchronous generator behind whose garbage
    collection raises."""
    while not (await ctx.tick().sample(ready))[2]:
        pass


class AmaranthSocBackend:
    """A NestmacSoC `dut` with `memory_size` bytes of memory behind its master (module docstring)."""

    def __init__(self, dut, memory_size: int, stall: float = 0.0, seed: int = 0):
        self.dut, self.memory_size = dut, memory_size
        self.memory = bytearray(memory_size)
        self.violations: list[str] = []
        self.cycles = 0  # simulated so far
        self._bus_bytes = len(dut.m_axi.wstrb)
        rng = random.Random(seed)
        self._pauses = [Random(stall, rng.randrange(1 << 30)) if stall else Never() for _ in range(5)]
        self._requests: deque = deque()
        self._sim = Simulator(dut)
        self._sim.add_clock(1e-6)
        for process in (self._clock_counter, self._cpu, self._reader, self._writer):
            self._sim.add_testbench(process, background=True)

    # The driver's Backend protocol.

    def read32(self, offset: int) -> int:
        data, response = self._call("read", offset)
        check_response(response, f"read of {offset:#x}")
        return data

    def write32(self, offset: int, value: int) -> None:
        check_response(self._call("write", offset, value), f"write of {value:#x} to {offset:#x}")

    def write_mem(self, address: int, data: bytes) -> None:
        self.memory[address : address + len(data)] = data

    def read_mem(self, address: int, length: int) -> bytes:
        return bytes(self.memory[address : address + length])

    def pause(self) -> None:
        self._call("idle", POLL_CYCLES)

    def irq(self) -> bool:
        return bool(self._call("irq"))

    # The simulation.

    def _call(self, *request):
        answer: list = []
        self._requests.append((request, answer))
        while not answer:
            self._sim.advance()
        return answer[0]

    async def _clock_counter(self, ctx):
        async for _ in ctx.tick():
            self.cycles += 1

    async def _cpu(self, ctx):
        bus = self.dut.s_axil
        while True:
            if not self._requests:
                await ctx.tick()
                continue
            (kind, *arguments), answer = self._requests.popleft()
            if kind == "write":
                offset, value = arguments
                for signal, level in ((bus.awaddr, offset), (bus.wdata, value), (bus.wstrb, 0xF)):
                    ctx.set(signal, level)
                ctx.set(bus.awvalid, 1)
                ctx.set(bus.wvalid, 1)
                await _transfer(ctx, bus.awready & bus.wready)
                ctx.set(bus.awvalid, 0)
                ctx.set(bus.wvalid, 0)
                ctx.set(bus.bready, 1)
                while True:
                    _, _, valid, response = await ctx.tick().sample(bus.bvalid, bus.bresp)
                    if valid:
                        break
                ctx.set(bus.bready, 0)
                answer.append(response)
            elif kind == "read":
                ctx.set(bus.araddr, arguments[0])
                ctx.set(bus.arvalid, 1)
                await _transfer(ctx, bus.arready)
                ctx.set(bus.arvalid, 0)
                ctx.set(bus.rready, 1)
                while True:
                    _, _, valid, data, response = await ctx.tick().sample(bus.rvalid, bus.rdata, bus.rresp)
                    if valid:
                        break
                ctx.set(bus.rready, 0)
                answer.append((data, response))
            elif kind == "idle":
                await ctx.tick().repeat(arguments[0])
                answer.append(None)
            else:  # irq
                answer.append(ctx.get(self.dut.irq))

    def _check(self, what: str, address: int, length: int, size: int) -> bool:
        """A burst of `length` whole-bus beats at `address` (AxSIZE `size`): in range and in one 4 KiB page."""
        span = length * self._bus_bytes
        problems = []
        if 1 << size != self._bus_bytes:
            problems.append(f"size {1 << size} bytes")
        if address % self._bus_bytes:
            problems.append("unaligned")
        if address // 4096 != (address + span - 1) // 4096:
            problems.append("crosses a 4 KiB boundary")
        if address + span > self.memory_size:
            problems.append("outside the memory")
        if problems:
            self.violations.append(f"{what} {address:#x}+{span}: {', '.join(problems)}")
        return not problems

    async def _accept(self, ctx, ready, valid, fields, pauses):
        """Hold `ready` low on paused cycles and high otherwise until a transfer; its sampled `fields`."""
        while True:
            go = not pauses.pause()
            ctx.set(ready, go)
            _, _, taken, *values = await ctx.tick().sample(valid, *fields)
            if go and taken:
                ctx.set(ready, 0)
                return values

    async def _reader(self, ctx):
        bus, step = self.dut.m_axi, self._bus_bytes
        address_pauses, data_pauses = self._pauses[0], self._pauses[1]
        while True:
            address, length, size, burst = await self._accept(
                ctx, bus.arready, bus.arvalid, (bus.araddr, bus.arlen, bus.arsize, bus.arburst), address_pauses
            )
            good = self._check("read", address, length + 1, size) and burst == BURST_INCR
            for beat in range(length + 1):
                while data_pauses.pause():
                    ctx.set(bus.rvalid, 0)
                    await ctx.tick()
                at = address + beat * step
                word = int.from_bytes(self.memory[at : at + step], "little") if good else 0
                ctx.set(bus.rdata, word)
                ctx.set(bus.rresp, RESP_OKAY if good else RESP_SLVERR)
                ctx.set(bus.rlast, beat == length)
                ctx.set(bus.rvalid, 1)
                await _transfer(ctx, bus.rready)
            ctx.set(bus.rvalid, 0)

    async def _writer(self, ctx):
        bus, step = self.dut.m_axi, self._bus_bytes
        address_pauses, data_pauses, response_pauses = self._pauses[2:]
        while True:
            address, length, size, burst = await self._accept(
                ctx, bus.awready, bus.awvalid, (bus.awaddr, bus.awlen, bus.awsize, bus.awburst), address_pauses
            )
            good = self._check("write", address, length + 1, size) and burst == BURST_INCR
            for beat in range(length + 1):
                data, strobe, last = await self._accept(
                    ctx, bus.wready, bus.wvalid, (bus.wdata, bus.wstrb, bus.wlast), data_pauses
                )
                if last != (beat == length):
                    self.violations.append(f"write {address:#x}: wlast {last} on beat {beat} of {length + 1}")
                if good:
                    at = address + beat * step
                    old = self.memory[at : at + step]
                    new = data.to_bytes(step, "little")
                    self.memory[at : at + step] = bytes(new[i] if strobe >> i & 1 else old[i] for i in range(step))
            while response_pauses.pause():
                await ctx.tick()
            ctx.set(bus.bresp, RESP_OKAY if good else RESP_SLVERR)
            ctx.set(bus.bvalid, 1)
            await _transfer(ctx, bus.bready)
            ctx.set(bus.bvalid, 0)
