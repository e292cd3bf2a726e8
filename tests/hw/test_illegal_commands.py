"""What the engine does with an illegal command or shift (docs/architecture.md, "Illegal commands"), on the
Amaranth simulator.

An illegal command is taken and dropped: while every data input offers a beat, none is taken and no result
is made; `error` rises the cycle after and stays; the next, legal command then runs exactly as the model
says. A shift beyond ACC + 14 in a parameter beat raises `error` too, and its command still completes.
tests/verif/test_formal.py proves the same rules for every input timing on a smaller engine.
"""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from contract.streams import INPUTS
from hw.engine import Engine
from sim.payload import from_bits, to_bits
from sim.streams import pack_sequence
from verif.amaranth_streams import receive, send
from verif.configs import AMARANTH
from verif.scenarios import random_command
from verif.stalls import Never

CFG = AMARANTH["2x2-b4a4acc16-m8k64n64"]  # max_m 8, max_k 64, max_n 64, B = A = 4
#: Cycles in which the dropped command's aftermath is watched, before the legal command is sent.
WATCH = 24
LEGAL = dict(m=2, k_dim=3, n=3, wbits=4, abits=4, scheme=0, mode=0)
ILLEGAL = [
    dict(m=0),
    dict(m=9),
    dict(k_dim=0),
    dict(k_dim=65),
    dict(n=0),
    dict(n=65),
    dict(wbits=0),
    dict(wbits=5),
    dict(abits=0),
    dict(abits=7),
]


def run(illegal: dict | None, commands, shift_lane: int | None = None):
    """Offer `illegal` (if any) with every data input valid for WATCH cycles, then run `commands`; return the
    per-cycle watch log, the received and expected result beats, and `error` at the end."""
    beats = pack_sequence(CFG, commands)
    if shift_lane is not None:
        beats["param"][0]["shift"][shift_lane] = (1 << CFG.shift_bits) - 1
    dut = Engine(CFG)
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    watch, received, final_error = [], [], []
    phase = WATCH if illegal is not None else 0

    async def cmd_driver(ctx):
        if illegal is not None:
            ctx.set(dut.cmd.payload.as_value(), to_bits(CFG, "cmd", LEGAL | illegal))
            ctx.set(dut.cmd.valid, 1)
            await ctx.tick()
            ctx.set(dut.cmd.valid, 0)
            await ctx.tick().repeat(phase - 1)
        await send(ctx, dut.cmd, [to_bits(CFG, "cmd", beat) for beat in beats["cmd"]], Never())

    def data_driver(name):
        async def testbench(ctx):
            port = getattr(dut, name)
            if illegal is not None:
                ctx.set(port.valid, 1)  # a beat the dropped command must not take
                await ctx.tick().repeat(phase)
                ctx.set(port.valid, 0)
            await send(ctx, port, [to_bits(CFG, name, beat) for beat in beats[name]], Never())

        return testbench

    async def watcher(ctx):
        signals = [dut.cmd.ready, *(getattr(dut, name).ready for name in INPUTS if name != "cmd"), dut.result.valid]
        for _ in range(phase):
            *_, cmd_ready, param_ready, weight_ready, act_ready, result_valid, error = await ctx.tick().sample(
                *signals, dut.error
            )
            watch.append((cmd_ready, param_ready | weight_ready | act_ready, result_valid, error))

    async def receiver(ctx):
        if illegal is not None:
            await ctx.tick().repeat(phase)
        payloads = await receive(ctx, dut.result, len(beats["result"]), Never(), timeout=2000, silence=10)
        received.extend(from_bits(CFG, "result", payload) for payload in payloads)
        final_error.append(ctx.get(dut.error))

    sim.add_testbench(cmd_driver)
    for name in INPUTS:
        if name != "cmd":
            sim.add_testbench(data_driver(name))
    sim.add_testbench(watcher, background=True)
    sim.add_testbench(receiver)
    sim.run()
    return watch, received, beats["result"], final_error[0]


def legal_commands(seed: int):
    rng = np.random.default_rng(seed)
    return [random_command(CFG, rng, 3, CFG.rows + 1, CFG.cols + 1), random_command(CFG, rng, 1, 2, 1)]


@pytest.mark.parametrize("illegal", ILLEGAL, ids=lambda fields: ",".join(f"{k}={v}" for k, v in fields.items()))
def test_an_illegal_command_is_dropped_with_error_and_the_next_runs_exactly(illegal):
    commands = legal_commands(seed=len(str(illegal)))
    watch, received, expected, final_error = run(illegal, commands)
    assert watch[0][0] == 1, "the illegal command was not taken in its first cycle"
    assert not any(inputs for _, inputs, _, _ in watch), "a data beat was taken for a dropped command"
    assert not any(result for _, _, result, _ in watch), "a dropped command made a result beat"
    assert [error for *_, error in watch] == [0] + [1] * (WATCH - 1), "error must rise the cycle after, and stay"
    # `expected` are the model's beats for the legal commands alone: the dropped one left nothing behind.
    assert received == expected and final_error == 1


def test_a_legal_run_leaves_error_low():
    _, received, expected, final_error = run(None, legal_commands(seed=1))
    assert received == expected and final_error == 0


def test_a_shift_beyond_its_range_raises_error_and_the_command_completes():
    # N = C + 1: the second lane of the first N-tile is real, of the second N-tile padded; spoil a real lane.
    _, received, expected, final_error = run(None, legal_commands(seed=2), shift_lane=1)
    assert final_error == 1
    assert len(received) == len(expected)  # every beat still comes; the spoilt column's values are unspecified
