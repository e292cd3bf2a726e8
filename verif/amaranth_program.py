"""The program engine (hw/program_engine.py) in the Amaranth simulator: one image's run of a compiled program.

The four input streams are driven with `verif.program_steps`' beats, each paced by its own seeded pauses
(none when `stall` is 0), and `logits` is taken with pauses too; the cycle of every `step` transfer is
recorded, so that the steps' cycles can be compared with `sim.program_cycles`, and the engine's events
(`ProgramEngine.events`) are counted per cycle class from the first cycle to the one before the last logits
beat is taken (where the model's program ends), with the MACs, as the SoC's counters count them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch
from amaranth.sim import Simulator

from contract.config import EngineConfig
from contract.program import Program, ProgramImages, ProgramLimits
from hw.program_engine import Cycle, ProgramEngine
from sim.payload import from_bits
from verif.amaranth_streams import receive, send
from verif.program_steps import payloads, program_beats
from verif.stalls import Never, Random

INPUTS = ("step", "image", "weight", "param")


@dataclass(frozen=True)
class ProgramRunOnEngine:
    logits: torch.Tensor  # [1, N]
    step_cycles: list[int]  # the cycle each step was taken in, from the first
    error: bool
    counters: dict[str, int]  # apps.driver.counters()' class cycles (before the last logits beat) and macs


def simulate_program(
    cfg: EngineConfig,
    limits: ProgramLimits,
    program: Program,
    images: ProgramImages,
    codes: np.ndarray,
    stall: float = 0.0,
    seed: int = 0,
    extra_steps: tuple[dict, ...] = (),
    timeout: int = 1_000_000,
) -> ProgramRunOnEngine:
    """Run one image [C, H, W] through `program` (after `extra_steps`, e.g. illegal ones)."""
    fields = limits.as_dict()
    dut = ProgramEngine(cfg, fields.pop("words"), **fields)
    beats = program_beats(program, images, codes)
    beats["step"] = [*extra_steps, *beats["step"]]
    last = program.descriptors[-1]
    count = last.n_tiles(cfg.cols) * last.out_shape[1] * last.out_shape[2]
    rng = random.Random(seed)
    taken, result = [], {}
    counters = {f"{member.name.lower()}_cycles": 0 for member in Cycle} | {"macs": 0}

    def pauses():
        return Random(stall, rng.randrange(1 << 30)) if stall else Never()

    def driver(name):
        async def testbench(ctx):
            port = getattr(dut, name)
            await send(ctx, port, payloads(port, beats[name]), pauses())

        return testbench

    async def watcher(ctx):
        cycle = 0
        async for _, _, valid, ready in ctx.tick().sample(dut.step.valid, dut.step.ready):
            if valid and ready:
                taken.append(cycle)
            cycle += 1

    async def counter(ctx):
        given = 0
        signals = (dut.events.cycle, dut.events.macs, dut.logits.valid, dut.logits.ready)
        async for _, _, cycle, macs, valid, ready in ctx.tick().sample(*signals):
            given += valid and ready
            if given < count:
                counters[f"{Cycle(cycle).name.lower()}_cycles"] += 1
            counters["macs"] += macs

    async def receiver(ctx):
        result["beats"] = await receive(ctx, dut.logits, count, pauses(), timeout=timeout, silence=20)
        result["error"] = bool(ctx.get(dut.error))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    for name in INPUTS:
        sim.add_testbench(driver(name), background=True)
    sim.add_testbench(watcher, background=True)
    sim.add_testbench(counter, background=True)
    sim.add_testbench(receiver)
    sim.run()
    values = np.concatenate([from_bits(cfg, "result", beat)["values"] for beat in result["beats"]])
    n = last.out_shape[0]
    return ProgramRunOnEngine(torch.tensor(values[:n]).reshape(1, n), taken, result["error"], counters)
