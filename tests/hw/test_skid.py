"""The skid buffer (hw/skid.py) on the Amaranth simulator: under random pauses on both sides every beat comes
out once and in order; `input.ready` does not follow `output.ready` within a cycle (it is a register); and
with the sink always ready a beat leaves in the cycle it is offered (the buffer costs no cycle). A failure
prints its seed; set NESTMAC_SEED to run other random draws."""

from __future__ import annotations

import random

import pytest
from amaranth.lib import data
from amaranth.sim import Simulator

from hw.skid import SkidBuffer
from verif.amaranth_streams import receive, send
from verif.scenarios import base_seed, run_seed
from verif.stalls import Never, Random

BEATS = 60
LAYOUT = data.StructLayout({"value": 8})


def run(source_stall: float, sink_stall: float, seed: int) -> tuple[list[int], list[int], list[int], list[int]]:
    """The payloads sent and received, and the cycles in which a beat was offered and one was taken."""
    dut = SkidBuffer(LAYOUT)
    rng = random.Random(seed)
    sent = [rng.randrange(256) for _ in range(BEATS)]
    got, offered, taken = [], [], []

    def pauses(stall):
        return Random(stall, rng.randrange(1 << 30)) if stall else Never()

    async def source(ctx):
        await send(ctx, dut.input, sent, pauses(source_stall))

    async def sink(ctx):
        got.extend(await receive(ctx, dut.output, BEATS, pauses(sink_stall), timeout=40 * BEATS, silence=5))

    async def watch(ctx):
        cycle = 0
        async for _, _, in_valid, in_ready, out_valid, out_ready in ctx.tick().sample(
            dut.input.valid, dut.input.ready, dut.output.valid, dut.output.ready
        ):
            if in_valid and in_ready:
                offered.append(cycle)
            if out_valid and out_ready:
                taken.append(cycle)
            cycle += 1

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(source, background=True)
    sim.add_testbench(watch, background=True)
    sim.add_testbench(sink)
    sim.run()
    return sent, got, offered, taken


@pytest.mark.parametrize("source_stall, sink_stall", [(0.0, 0.5), (0.5, 0.5), (0.3, 0.8)])
def test_every_beat_once_in_order(source_stall, sink_stall):
    seed = run_seed(base_seed(), "skid", f"{source_stall}-{sink_stall}")
    sent, got, _, _ = run(source_stall, sink_stall, seed)
    assert got == sent, f"seed {seed}"


def test_no_cycle_with_an_always_ready_sink():
    seed = run_seed(base_seed(), "skid", "ideal-sink")
    _, _, offered, taken = run(0.5, 0.0, seed)
    assert taken == offered and len(taken) == BEATS, f"seed {seed}"


def test_input_ready_does_not_follow_output_ready():
    dut = SkidBuffer(LAYOUT)

    async def bench(ctx):
        ctx.set(dut.input.valid, 1)
        for out_ready in (1, 0, 0, 1, 1):  # fills the buffer in the first refused cycle, drains in the next taken
            readies = []
            for flipped in (out_ready, 1 - out_ready):
                ctx.set(dut.output.ready, flipped)
                readies.append(ctx.get(dut.input.ready))
            assert readies[0] == readies[1]
            ctx.set(dut.output.ready, out_ready)
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
