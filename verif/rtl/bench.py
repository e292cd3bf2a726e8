"""The engine inside a cocotb simulation: clock, reset, one driver per stream, and command execution.

`Bench.run` streams commands back to back with the beats of `sim.streams` (the documented host order)
and returns the model's results, the expected and the received result beats, with every command's
acceptance and result cycles recorded for comparison with the cycle-exact model.
"""

from __future__ import annotations

import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, with_timeout

from contract.config import EngineConfig
from sim.command import Command
from sim.model import EngineModel, ceil_div
from sim.streams import LAYOUTS, last_result_beats, pack_sequence, result_beat
from verif.rtl.streams import CycleCounter, StreamSink, StreamSource

INPUTS = ("cmd", "param", "weight", "act")
CLOCK_PERIOD_NS = 10


class Bench:
    """`stall` maps a stream name to its rate of idle cycles (inputs) or of `ready` low (result)."""

    def __init__(self, dut, cfg: EngineConfig, seed: int, stall: dict[str, float] | None = None):
        stall = stall or {}
        self.dut = dut
        self.cfg = cfg
        self.clock = CycleCounter(dut.clk)
        rng = random.Random(seed)
        self.sources = {
            name: StreamSource(
                dut, name, LAYOUTS[name](cfg), self.clock, random.Random(rng.getrandbits(32)), stall.get(name, 0.0)
            )
            for name in INPUTS
        }
        self.sink = StreamSink(
            dut,
            "result",
            LAYOUTS["result"](cfg),
            self.clock,
            random.Random(rng.getrandbits(32)),
            stall.get("result", 0.0),
        )

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

    def start_sequence(self, commands: list[Command], seed: int):
        """Start driving the input streams with `commands`; returns (beats, driver tasks)."""
        beats = pack_sequence(self.cfg, commands, np.random.default_rng(seed))
        for port in (*self.sources.values(), self.sink):
            port.cycles.clear()
        tasks = [cocotb.start_soon(self.sources[name].send(getattr(beats, name))) for name in INPUTS]
        return beats, tasks

    async def run(self, commands: list[Command], seed: int):
        """Stream `commands` back to back; returns (model results, expected beats, received beats).

        `seed` fills the don't-care lanes of padded tiles, which the engine must ignore."""
        beats, tasks = self.start_sequence(commands, seed)
        model = EngineModel(self.cfg).run(commands)
        budget = 50 * sum(r.cycles.total for r in model) + 2000  # generous even at 90% stalls
        received = await with_timeout(self.sink.receive(len(beats.result)), budget * CLOCK_PERIOD_NS, "ns")
        for task in tasks:
            await task
        await self.sink.expect_silence(2 * (self.cfg.rows + self.cfg.cols) + 10)
        return model, beats.result, [result_beat(self.cfg, beat) for beat in received]

    def measured_cycles(self, commands: list[Command]) -> list[tuple[int, int]]:
        """(acceptance, last result beat) of each command, relative to the first acceptance."""
        accepts, results = self.sources["cmd"].cycles, self.sink.cycles
        ends = last_result_beats(self.cfg, commands)
        return [(accepts[i] - accepts[0], results[end] - accepts[0]) for i, end in enumerate(ends)]


def beats_to_outputs(cfg: EngineConfig, commands: list[Command], received: list[dict]) -> list[np.ndarray]:
    """Reassemble each command's [M, N] output from its result beats (N-tile outer, row m inner)."""
    outputs, index = [], 0
    for command in commands:
        tiles = ceil_div(command.n, cfg.cols)
        rows = np.array([beat["values"] for beat in received[index : index + command.m * tiles]])
        index += command.m * tiles
        blocks = rows.reshape(tiles, command.m, cfg.cols)
        outputs.append(np.concatenate(list(blocks), axis=1)[:, : command.n])
    return outputs
