"""The engine in the Amaranth simulator: stream drivers paced by `verif.stalls` objects, and a scenario run.

`simulate(cfg, scenario)` drives the four input streams with the beats of `sim.streams` (the documented
host order), takes the result beats, and records what `verif.scoreboard` checks: the cycle of every `cmd`
and `result` transfer and `result`'s (valid, ready) in every cycle. The cocotb twin is `verif.rtl.bench`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from amaranth.hdl import Fragment
from amaranth.sim import Simulator

from contract.config import EngineConfig
from contract.streams import INPUTS
from hw.engine import Engine
from sim.model import EngineModel
from sim.payload import from_bits, to_bits
from sim.streams import pack_sequence
from verif.scenarios import Scenario
from verif.scoreboard import Observed
from verif.stalls import Pauses


async def send(ctx, port, payloads, pauses: Pauses):
    """Offer each payload (the integer on the port, `sim.payload.to_bits`) in turn, holding `valid` until it is
    taken; idle while `pauses` says so."""
    for payload in payloads:
        while pauses.pause():
            ctx.set(port.valid, 0)
            await ctx.tick()
        ctx.set(port.payload.as_value(), payload)
        ctx.set(port.valid, 1)
        await ctx.tick().until(port.ready)
    ctx.set(port.valid, 0)


async def receive(ctx, port, count: int, pauses: Pauses, timeout: int, silence: int = 0) -> list:
    """Take `count` payloads, with `ready` low in the cycles `pauses` says; then `silence` more cycles with
    `ready` high, taking any further beat (the engine must offer none: a duplicated beat shows up here).
    Payloads are the integers on the port (`sim.payload.from_bits` reads them)."""
    payloads = []
    for _ in range(timeout):
        if len(payloads) == count:
            break
        ready = not pauses.pause()
        ctx.set(port.ready, ready)
        _, _, valid, payload = await ctx.tick().sample(port.valid, port.payload.as_value())
        if ready and valid:
            payloads.append(payload)
    else:
        raise TimeoutError(f"received {len(payloads)} of {count} beats in {timeout} cycles")
    ctx.set(port.ready, 1)
    for _ in range(silence):
        _, _, valid, payload = await ctx.tick().sample(port.valid, port.payload.as_value())
        if valid:
            payloads.append(payload)
    ctx.set(port.ready, 0)
    return payloads


def recorder(dut, observed: Observed):
    """A background testbench noting every `cmd` and `result` transfer and `result`'s handshake per cycle."""

    async def testbench(ctx):
        cycle = 0
        signals = (dut.cmd.valid, dut.cmd.ready, dut.result.valid, dut.result.ready)
        async for _, _, cmd_valid, cmd_ready, valid, ready in ctx.tick().sample(*signals):
            if cmd_valid and cmd_ready:
                observed.accepts.append(cycle)
            if valid and ready:
                observed.results.append(cycle)
            observed.result_trace.append((int(valid), int(ready)))
            cycle += 1

    return testbench


def simulate(
    cfg: EngineConfig,
    scenario: Scenario,
    engine: Callable[[EngineConfig], Engine] = Engine,
    probes: tuple[Callable[[Fragment], Callable], ...] = (),
) -> Observed:
    """Run `scenario`'s commands back to back on `engine(cfg)`; `scenario.abort` is not supported here.

    Each probe gets the elaborated design (to reach an internal signal through its `origins`, which the ports
    do not show) and returns a background testbench."""
    if scenario.abort is not None or scenario.refused:
        raise ValueError(
            f"scenario {scenario.name!r} resets the engine or offers raw illegal commands: run it on "
            f"the cocotb bench (tests/hw/test_illegal_commands.py covers the latter here)"
        )
    commands = scenario.commands
    beats = pack_sequence(cfg, commands, np.random.default_rng(scenario.seed + 1))  # fills don't-care lanes
    dut = engine(cfg)
    design = Fragment.get(dut, None)
    sim = Simulator(design)
    sim.add_clock(1e-6)
    observed = Observed()

    def driver(name):
        async def testbench(ctx):
            payloads = [to_bits(cfg, name, beat) for beat in beats[name]]
            await send(ctx, getattr(dut, name), payloads, scenario.pause(name))

        return testbench

    for name in INPUTS:
        sim.add_testbench(driver(name))
    ideal_cycles = sum(result.cycles.total for result in EngineModel(cfg).run(commands))
    timeout = 40 * ideal_cycles + 1000  # even at 90% stalls

    async def receiver(ctx):
        silence = 2 * (cfg.rows + cfg.cols) + 10
        payloads = await receive(ctx, dut.result, len(beats["result"]), scenario.pause("result"), timeout, silence)
        observed.received.extend(from_bits(cfg, "result", payload) for payload in payloads)

    sim.add_testbench(receiver)
    sim.add_testbench(recorder(dut, observed), background=True)
    for probe in probes:
        sim.add_testbench(probe(design), background=True)
    sim.run()
    return observed
