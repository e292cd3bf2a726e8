"""cocotb testbench for the emitted engine Verilog (run through rtl_tests/harness.py, never directly).

Each cocotb test reads its scenario (configuration, seed, stall rates) from the JSON file named by
NESTMAC_SCENARIO, drives the four input streams with the beats of `sim.streams` (the documented host
order), and scores every result beat against golden.nested and against the cycle-exact model; with ideal
streams the cycle of each command's acceptance and last result beat must equal the model's exactly.
"""

from __future__ import annotations

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles

from contract.config import EngineConfig
from golden.nested import int_gemm, requantize
from sim.command import Command
from verif.rtl.bench import Bench
from verif.rtl.runner import load_scenario
from verif.scenarios import random_command


def scenario_commands(cfg: EngineConfig, kind: str, rng: np.random.Generator) -> list[Command]:
    """The commands of one scenario kind; K and N are mostly not multiples of R and C on purpose."""
    R, C = cfg.rows, cfg.cols
    if kind == "precision_sweep":
        # every k with j sweeping the other way, both schemes: each command switches precision
        pairs = [(k, (k * 5) % cfg.act_bits + 1) for k in range(1, cfg.base_bits + 1)]
        pairs += [
            (cfg.base_bits + 1 - k, j)
            for k, j in zip(range(1, cfg.base_bits + 1), range(1, cfg.act_bits + 1), strict=False)
        ]
        return [
            random_command(cfg, rng, 3, R + 1, C + 1, k, j, scheme) for scheme in ("offset", "twos") for k, j in pairs
        ]
    if kind == "extremes":
        commands = []
        for fill, scheme, mode in [
            (0, "offset", "relu"),
            (1, "twos", "raw"),
            (1, "offset", "relu"),
            (0, "twos", "raw"),
        ]:
            base = random_command(cfg, rng, 1, 2 * R + 1, C + 1, None, None, scheme, mode)
            X = np.full_like(base.X, fill * ((1 << cfg.act_bits) - 1))
            W = np.full_like(base.W, fill * ((1 << cfg.base_bits) - 1))
            commands.append(Command(X, W, base.wbits, base.abits, scheme, mode, base.bias, base.mult, base.shift))
        return commands
    if kind in ("ideal", "stalls", "reset"):
        shapes = [
            (1, 1, 1),
            (1, 2 * R + 1, C + 2),
            (R + 3, 2 * R - 1 or 1, 2 * C + 1),
            (int(rng.integers(1, cfg.max_m + 1)), int(rng.integers(1, 3 * R + 1)), int(rng.integers(1, 3 * C))),
        ]
        return [random_command(cfg, rng, *shape) for shape in shapes]
    raise ValueError(f"unknown scenario kind {kind!r}")


def golden_rows(cfg: EngineConfig, commands: list[Command]) -> list[list[int]]:
    """Each result beat's values straight from golden.nested, padded lanes 0, in the documented order."""
    rows = []
    for c in commands:
        acc = int_gemm(c.X, c.W, c.wbits, c.abits, c.scheme, cfg.base_bits, cfg.act_bits, cfg.acc_bits)
        out = requantize(acc, c.bias, c.mult, c.shift, c.mode, cfg.act_bits, cfg.acc_bits).numpy()
        for first in range(0, c.n, cfg.cols):
            block = np.zeros((c.m, cfg.cols), dtype=np.int64)
            block[:, : min(cfg.cols, c.n - first)] = out[:, first : first + cfg.cols]
            rows += block.tolist()
    return rows


def score(cfg, commands, expected, received, context: str):
    assert len(received) == len(expected), f"{len(received)} result beats, want {len(expected)} ({context})"
    golden = golden_rows(cfg, commands)
    for index, (want, got, gold) in enumerate(zip(expected, received, golden, strict=True)):
        assert want["values"] == gold, f"model and golden disagree on beat {index} ({context})"
        assert got == want, f"result beat {index}: RTL {got}, golden/model {want} ({context})"


def check_cycles(commands, model, bench: Bench, context: str):
    """With ideal streams: acceptance and last-beat cycles relative to the first acceptance, exactly."""
    for index, (measured, modelled) in enumerate(
        zip(bench.measured_cycles(commands), [r.span for r in model], strict=True)
    ):
        assert measured == modelled, (
            f"command {index}: accepted/last beat at cycles {measured}, model says "
            f"{modelled}: off by {measured[1] - modelled[1]} ({context})"
        )


async def scenario_test(dut, kind: str):
    cfg, scenario = load_scenario()
    seed = scenario["seed"]
    stall = scenario["stall"] if kind == "stalls" else {}
    context = f"kind={kind} seed={seed} stall={stall} config={cfg}"
    dut._log.info("scenario %s", context)
    commands = scenario_commands(cfg, kind, np.random.default_rng(seed))
    bench = Bench(dut, cfg, seed, stall)
    await bench.start()
    if kind == "reset":
        await reset_mid_command(bench, commands[-1], seed)
        commands = commands[:2]
    model, expected, received = await bench.run(commands, seed + 1)
    score(cfg, commands, expected, received, context)
    if not stall:
        check_cycles(commands, model, bench, context)


async def reset_mid_command(bench: Bench, command: Command, seed: int):
    """Start a command, assert reset part-way through it, and leave the engine idle for a clean one."""
    beats, tasks = bench.start_sequence([command], seed)
    sink = cocotb.start_soon(bench.sink.receive(len(beats.result)))
    await ClockCycles(bench.dut.clk, max(2, command.m * bench.cfg.rows // 2 + 3))
    for task in (*tasks, sink):
        task.cancel()
    await bench.reset()


@cocotb.test()
async def ideal(dut):
    """Random shapes back to back (M = 1 included) with ideal streams: bit-exact and cycle-exact."""
    await scenario_test(dut, "ideal")


@cocotb.test()
async def precision_sweep(dut):
    """Every weight and activation precision, both schemes, switching on every command."""
    await scenario_test(dut, "precision_sweep")


@cocotb.test()
async def extremes(dut):
    """All-zero and all-max codes in both schemes and both output modes."""
    await scenario_test(dut, "extremes")


@cocotb.test()
async def stalls(dut):
    """Heavy random back-pressure and idle cycles on every stream: nothing lost, duplicated or reordered."""
    await scenario_test(dut, "stalls")


@cocotb.test()
async def reset(dut):
    """Reset asserted in the middle of a command, then a clean command must run exactly as modelled."""
    await scenario_test(dut, "reset")
