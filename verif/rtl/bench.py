"""The engine inside a cocotb simulation: clock, reset, one driver per stream, and command execution.

`Bench.run` streams commands back to back with the beats of `sim.streams` (the documented host order) and
returns what `verif.scoreboard` checks (`Observed`): the received result beats, the cycle of every `cmd` and
`result` transfer, and `result`'s handshake in every cycle. The Amaranth-simulator twin is
`verif.amaranth_streams.simulate`.
"""

from __future__ import annotations

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, with_timeout

from contract.config import EngineConfig
from contract.streams import INPUTS
from contract.widths import ceil_div
from sim.command import Command
from sim.model import EngineModel
from sim.payload import from_bits
from sim.streams import pack_sequence
from verif.rtl.runner import CLOCK_PERIOD_NS
from verif.rtl.streams import CycleCounter, StreamSink, StreamSource
from verif.scoreboard import Observed
from verif.stalls import Pauses


class Bench:
    def __init__(self, dut, cfg: EngineConfig):
        self.dut = dut
        self.cfg = cfg
        self.clock = CycleCounter(dut.clk)
        self.sources = {name: StreamSource(dut, name, cfg, self.clock) for name in INPUTS}
        self.sink = StreamSink(dut, "result", cfg, self.clock)

    def set_pauses(self, pauses: dict[str, Pauses]) -> None:
        """Pause generators per stream name (`cmd`, `param`, `weight`, `act`, `result`); others stay ideal."""
        for name, port in (*self.sources.items(), ("result", self.sink)):
            if name in pauses:
                port.set_pause_generator(pauses[name])

    async def start(self):
        cocotb.start_soon(Clock(self.dut.clk, CLOCK_PERIOD_NS, unit="ns").start())
        cocotb.start_soon(self.clock.run())
        await self.reset()

    async def reset(self, cycles: int = 3):
        await FallingEdge(self.dut.clk)
        for source in self.sources.values():
            source.idle()
        self.sink.idle()
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, cycles)
        await FallingEdge(self.dut.clk)
        self.dut.rst.value = 0

    def _start(self, commands: list[Command], seed: int):
        beats = pack_sequence(self.cfg, commands, np.random.default_rng(seed))  # seed fills don't-care lanes
        for port in (*self.sources.values(), self.sink):
            port.cycles.clear()
        self.sink.trace.clear()
        tasks = [cocotb.start_soon(self.sources[name].send(beats[name])) for name in INPUTS]
        return beats, tasks

    async def abort(self, command: Command, cycles: int, seed: int):
        """Start `command`, assert reset `cycles` cycles later, and leave the engine idle for a clean one."""
        beats, tasks = self._start([command], seed)
        sink = cocotb.start_soon(self.sink.receive(len(beats["result"])))
        await ClockCycles(self.dut.clk, cycles)
        for task in (*tasks, sink):
            task.cancel()
        await self.reset()

    async def refuse(self, beats: list[dict]) -> None:
        """Offer raw illegal `cmd` beats; each must be taken at once (and dropped) and raise `error`."""
        for beat in beats:
            await with_timeout(self.sources["cmd"].send([beat]), 10 * CLOCK_PERIOD_NS, "ns")
            await ClockCycles(self.dut.clk, 2)
            if int(self.dut.error.value) != 1:
                raise AssertionError(f"the illegal command {beat} did not raise error")

    async def run(self, commands: list[Command], seed: int) -> Observed:
        """Stream `commands` back to back and take their result beats, then watch for any extra one."""
        beats, tasks = self._start(commands, seed)
        model = EngineModel(self.cfg).run(commands)
        budget = 50 * sum(r.cycles.total for r in model) + 2000  # generous even at 90% stalls
        received = await with_timeout(self.sink.receive(len(beats["result"])), budget * CLOCK_PERIOD_NS, "ns")
        for task in tasks:
            await task
        received += await self.sink.take_extra(2 * (self.cfg.rows + self.cfg.cols) + 10)
        return Observed(
            [from_bits(self.cfg, "result", word) for word in received],
            list(self.sources["cmd"].cycles),
            list(self.sink.cycles),
            list(self.sink.trace),
        )


def beats_to_outputs(cfg: EngineConfig, commands: list[Command], received: list[dict]) -> list[np.ndarray]:
    """Reassemble each command's [M, N] output from its result beats (N-tile outer, row m inner)."""
    outputs, index = [], 0
    for command in commands:
        tiles = ceil_div(command.n, cfg.cols)
        rows = np.array([beat["values"] for beat in received[index : index + command.m * tiles]])
        index += command.m * tiles
        blocks = rows.reshape(tiles, command.m, cfg.cols)
        outputs.append(np.concatenate(list(blocks), axis=1)[:, : command.n])
    if index != len(received):
        raise AssertionError(f"{len(received) - index} result beats more than the commands produce")
    return outputs
