"""The engine RTL against golden.nested and the cycle-exact model, in the Amaranth simulator.

Every test drives the five streams with the beats from `sim.streams.pack_command` (the documented order),
compares every result beat with the model's, and, with ideal streams, the cycle of every command's
acceptance and last result beat with the model's. Stall tests print their seed on failure.
"""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from contract.config import EngineConfig
from hw.engine import Engine
from sim.command import Command
from sim.model import EngineModel
from sim.streams import LAYOUTS, last_result_beats, pack_sequence, result_beat
from verif.amaranth_streams import receive, record_handshakes, send
from verif.scenarios import random_command

SMALL = EngineConfig(rows=2, cols=2, base_bits=4, act_bits=4, acc_bits=16, max_m=8, max_k=64, max_n=64)
ODD = EngineConfig(rows=3, cols=5, base_bits=8, act_bits=8, acc_bits=32, max_m=16, max_k=64, max_n=64)
SQUARE = EngineConfig(rows=4, cols=4, base_bits=8, act_bits=6, acc_bits=24, max_m=16, max_k=64, max_n=64)
THIN = EngineConfig(rows=1, cols=2, base_bits=3, act_bits=2, acc_bits=12, max_m=8, max_k=16, max_n=16)
TALL = EngineConfig(rows=3, cols=1, base_bits=4, act_bits=3, acc_bits=16, max_m=8, max_k=32, max_n=16)
ONE = EngineConfig(rows=1, cols=1, base_bits=2, act_bits=1, acc_bits=10, max_m=8, max_k=16, max_n=16)
INPUTS = ("cmd", "param", "weight", "act")


def simulate(cfg, commands, seed=0, stall=None):
    """Run `commands` back to back; returns (expected beats, received beats, handshake log, model results).

    `stall` maps a stream name to the probability of an idle cycle before each beat (inputs) or of
    `ready` low (result); streams not named are ideal."""
    stall = stall or {}
    model_results = EngineModel(cfg).run(commands)
    beats = pack_sequence(cfg, commands, np.random.default_rng(seed + 1))
    dut = Engine(cfg)
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    stall_rng = np.random.default_rng(seed)
    received, log = [], {}

    def driver(name):
        consts = [LAYOUTS[name](cfg).const(beat) for beat in getattr(beats, name)]
        rng = np.random.default_rng(stall_rng.integers(1 << 32))

        async def testbench(ctx):
            await send(ctx, getattr(dut, name), consts, rng, stall.get(name, 0.0))

        return testbench

    for name in INPUTS:
        sim.add_testbench(driver(name))
    rx_rng = np.random.default_rng(stall_rng.integers(1 << 32))
    timeout = 40 * sum(result.cycles.total for result in model_results) + 1000  # even at 90% stalls

    async def receiver(ctx):
        payloads = await receive(ctx, dut.result, len(beats.result), rx_rng, stall.get("result", 0.0), timeout)
        received.extend(result_beat(cfg, payload) for payload in payloads)

    sim.add_testbench(receiver)
    sim.add_testbench(record_handshakes({"cmd": dut.cmd, "result": dut.result}, log), background=True)
    sim.run()
    return beats.result, received, log, model_results


def check(cfg, commands, seed=0, stall=None):
    expected, received, log, model = simulate(cfg, commands, seed, stall)
    context = f"seed={seed} stall={stall} config={cfg}"
    assert len(received) == len(expected), context
    for index, (want, got) in enumerate(zip(expected, received, strict=True)):
        assert got == want, f"result beat {index}: got {got}, want {want} ({context})"
    if stall:
        return
    accepts, results = log["cmd"], log["result"]
    ends = [results[i] for i in last_result_beats(cfg, commands)]
    for index, result in enumerate(model):
        measured = (accepts[index] - accepts[0], ends[index] - accepts[0])
        modelled = result.span
        assert measured == modelled, (
            f"command {index}: accepted/last beat at cycles {measured}, model says {modelled}: off by "
            f"{measured[1] - modelled[1]} ({result.cycles})"
        )


@pytest.mark.parametrize(
    "cfg", [SMALL, ODD, SQUARE, THIN, TALL, ONE], ids=["2x2b4", "3x5b8", "4x4b8", "1x2b3", "3x1b4", "1x1b2"]
)
def test_random_gemms_back_to_back_match_golden_and_model(cfg):
    rng = np.random.default_rng(cfg.rows * 100 + cfg.cols)
    R, C = cfg.rows, cfg.cols
    shapes = [
        (1, 1, 1),
        (1, 2 * R + 1, C + 2),
        (R - 1 or 1, R + 1, 2 * C - 1),
        (R + 3, 2 * R, C),
        (2 * R + 1, 3 * R - 1, 2 * C + 1),
        (5, R, 1),
    ]
    check(cfg, [random_command(cfg, rng, *shape) for shape in shapes])


@pytest.mark.parametrize("cfg", [SMALL, ODD, SQUARE], ids=["2x2b4", "3x5b8", "4x4b8"])
def test_random_shapes_and_precisions_cycle_exact(cfg):
    rng = np.random.default_rng(cfg.rows * 7 + cfg.cols + 1)
    shapes = [
        (
            int(rng.integers(1, cfg.max_m + 1)),
            int(rng.integers(1, 4 * cfg.rows + 1)),
            int(rng.integers(1, 3 * cfg.cols + 1)),
        )
        for _ in range(8)
    ]
    check(cfg, [random_command(cfg, rng, *shape) for shape in shapes])


@pytest.mark.parametrize("cfg,scheme", [(SMALL, "offset"), (SMALL, "twos"), (ODD, "offset"), (ODD, "twos")])
def test_every_weight_and_activation_precision_switching_each_command(cfg, scheme):
    """One command per (k, j) pair (B = A = 4) or per k with j sweeping too (B = A = 8), all back to back
    on the same engine: precision switches cost no cycle (the model charges none) and need no reload."""
    rng = np.random.default_rng(7)
    if cfg.base_bits == 4:
        pairs = [(k, j) for k in range(1, 5) for j in range(1, 5)]
    else:
        pairs = [(k, (k * 3) % 8 + 1) for k in range(1, 9)] + [(9 - k, k) for k in range(1, 9)]
    check(cfg, [random_command(cfg, rng, 3, cfg.rows + 1, cfg.cols + 1, k, j, scheme) for k, j in pairs])


@pytest.mark.parametrize("fill", ["zeros", "max"])
def test_extreme_codes_and_parameters(fill):
    cfg = SQUARE
    rng = np.random.default_rng(3)
    commands = []
    for scheme in ("offset", "twos"):
        for mode in ("relu", "raw"):
            command = random_command(cfg, rng, 5, 7, 6, cfg.base_bits, cfg.act_bits, scheme, mode)
            X = np.zeros_like(command.X) if fill == "zeros" else np.full_like(command.X, (1 << cfg.act_bits) - 1)
            W = np.zeros_like(command.W) if fill == "zeros" else np.full_like(command.W, (1 << cfg.base_bits) - 1)
            top = (1 << (cfg.acc_bits - 1)) - 1
            commands.append(
                Command(
                    X=X,
                    W=W,
                    wbits=command.wbits,
                    abits=command.abits,
                    scheme=scheme,
                    mode=mode,
                    bias=np.array([top, -top - 1, 0, 1, -1, 5]),
                    mult=np.array([32767, -32768, 1, -1, 0, 3]),
                    shift=np.array([cfg.acc_bits + 14, 0, 1, 2, 0, cfg.acc_bits]),
                )
            )
    check(cfg, commands)


@pytest.mark.parametrize("seed", range(11, 17))
@pytest.mark.parametrize("cfg", [SMALL, ODD, THIN], ids=["2x2b4", "3x5b8", "1x2b3"])
def test_random_stalls_on_every_stream(cfg, seed):
    """Each stream gets its own stall probability (0 to 90%), so every stream is at some point the one
    holding the pipeline back, including a full output FIFO."""
    rng = np.random.default_rng(seed)
    stall = {name: float(rng.choice([0.0, 0.3, 0.6, 0.9])) for name in (*INPUTS, "result")}
    commands = [
        random_command(
            cfg,
            rng,
            int(rng.integers(1, 2 * cfg.rows + 3)),
            int(rng.integers(1, 3 * cfg.rows + 1)),
            int(rng.integers(1, 2 * cfg.cols + 2)),
        )
        for _ in range(3)
    ]
    check(cfg, commands, seed=seed, stall=stall)


def test_moderate_gemm_keeps_tiles_back_to_back():
    """M >= R: after the first weight load the array takes an activation row in every tile slot."""
    rng = np.random.default_rng(9)
    command = random_command(SQUARE, rng, 16, 37, 23)
    check(SQUARE, [command])
    assert EngineModel(SQUARE).run([command])[0].cycles.weight_wait == 0


def test_single_row_array_reads_the_sum_it_writes_in_the_same_cycle():
    """R = 1 and M = 1: every slot is a new K-tile of the same output row, so the accumulator must read
    back the sum that is being written in the same cycle (its read port is transparent)."""
    rng = np.random.default_rng(4)
    cfg = THIN
    commands = [
        random_command(cfg, rng, 1, 5, 3, cfg.base_bits, cfg.act_bits, scheme, "raw") for scheme in ("offset", "twos")
    ]
    check(cfg, commands)
