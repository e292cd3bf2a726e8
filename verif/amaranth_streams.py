"""Amaranth-simulator helpers for `lib.stream` ports: a driver, a receiver and a handshake recorder.

Stalls come from a seeded numpy Generator, so a failing pattern can be replayed from its seed; with
`stall=0` the driver keeps `valid` high and the receiver keeps `ready` high (ideal streams).
"""

from __future__ import annotations

import numpy as np


async def send(ctx, port, payloads, rng: np.random.Generator, stall: float = 0.0):
    """Offer each payload in turn; before each one, idle for a random number of cycles."""
    for payload in payloads:
        while stall and rng.random() < stall:
            ctx.set(port.valid, 0)
            await ctx.tick()
        ctx.set(port.payload, payload)
        ctx.set(port.valid, 1)
        await ctx.tick().until(port.ready)
    ctx.set(port.valid, 0)


async def receive(ctx, port, count: int, rng: np.random.Generator, stall: float = 0.0, timeout: int = 100_000) -> list:
    """Take `count` payloads, dropping `ready` on a random fraction `stall` of cycles."""
    payloads = []
    for _ in range(timeout):
        if len(payloads) == count:
            break
        ready = not (stall and rng.random() < stall)
        ctx.set(port.ready, ready)
        _, _, valid, payload = await ctx.tick().sample(port.valid, port.payload)
        if ready and valid:
            payloads.append(payload)
    else:
        raise TimeoutError(f"received {len(payloads)} of {count} beats in {timeout} cycles")
    ctx.set(port.ready, 0)
    return payloads


def record_handshakes(ports: dict, log: dict):
    """A background testbench appending, per named port, the cycle index of every transfer."""
    names = list(ports)
    signals = [s for name in names for s in (ports[name].valid, ports[name].ready)]

    async def testbench(ctx):
        cycle = 0
        async for _, _, *values in ctx.tick().sample(*signals):
            for index, name in enumerate(names):
                if values[2 * index] and values[2 * index + 1]:
                    log.setdefault(name, []).append(cycle)
            cycle += 1

    return testbench
