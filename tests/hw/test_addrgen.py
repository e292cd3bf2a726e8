"""The convolution address generator (hw/addrgen.py) emits exactly `sim.program.reads`, on the Amaranth
simulator: random descriptors back to back under random backpressure, and illegal descriptors refused (taken,
`error` high in that cycle, no read) with the next one walked normally. A failure prints its seed; set
NESTMAC_SEED to run other random draws."""

from __future__ import annotations

import random
from itertools import pairwise
from typing import NamedTuple

import pytest
from amaranth.lib import data
from amaranth.sim import Simulator

from contract.config import EngineConfig
from contract.program import Descriptor
from hw.addrgen import ConvAddressGenerator
from sim.program import Read, reads
from verif.amaranth_streams import receive, send
from verif.descriptors import descriptor, fields, linear, random_descriptor
from verif.scenarios import base_seed
from verif.stalls import Never, Random

LIMITS = dict(address_bits=12, max_size=12, max_channels=16, max_n_tiles=4)
CFGS = [EngineConfig(rows=4, cols=4), EngineConfig(rows=3, cols=2)]


class Run(NamedTuple):
    beats: list  # the reads taken, as data.Const of the read layout
    errors: list[int]  # `error` in the cycle each descriptor was taken
    taken: list[int]  # the cycle each descriptor was taken
    read_cycles: list[int]  # the cycle each read was taken


def simulate(cfg: EngineConfig, payloads: list[dict], expected: int, pause: Random | Never) -> Run:
    """Offer `payloads` back to back; take `expected` reads under `pause` and watch for any beyond them."""
    dut = ConvAddressGenerator(cfg, **LIMITS)
    layout = dut.reads.payload.shape()
    descriptor_shape = dut.descriptor.payload.shape()
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    run = Run([], [], [], [])

    async def driver(ctx):
        await send(ctx, dut.descriptor, [descriptor_shape.const(p).as_value().value for p in payloads], Never())

    async def recorder(ctx):
        cycle = 0
        signals = (dut.descriptor.valid, dut.descriptor.ready, dut.error, dut.reads.valid, dut.reads.ready)
        async for _, _, valid, ready, error, read_valid, read_ready in ctx.tick().sample(*signals):
            if valid and ready:
                run.errors.append(int(error))
                run.taken.append(cycle)
            if read_valid and read_ready:
                run.read_cycles.append(cycle)
            cycle += 1

    async def receiver(ctx):
        beats = await receive(ctx, dut.reads, expected, pause, timeout=20 * expected + 200, silence=20)
        run.beats.extend(data.Const(layout, beat) for beat in beats)

    sim.add_testbench(driver)
    sim.add_testbench(recorder, background=True)
    sim.add_testbench(receiver)
    sim.run()
    return run


def rebuild(beats) -> list[tuple[Read, tuple]]:
    """Each beat as the Read it stands for (the N- and K-tile counted from the flags) and its flags."""
    n_tile = k_tile = 0
    out = []
    for beat in beats:
        address = None if beat.pad else beat.address
        flags = (beat.first_ktile, beat.last_ktile, beat.last_ntile, beat.last_row, beat.last)
        out.append((Read(n_tile, k_tile, beat.row, address, beat.lanes), flags))
        if beat.last:
            n_tile = k_tile = 0
        elif beat.last_row:
            n_tile, k_tile = (n_tile + 1, 0) if beat.last_ktile else (n_tile, k_tile + 1)
    return out


def expected_flags(d: Descriptor, cfg: EngineConfig) -> list[tuple]:
    sequence = list(reads(d, cfg.rows, cfg.cols))
    pixels, k_tiles, n_tiles = d.out_shape[1] * d.out_shape[2], d.k_tiles(cfg.rows), d.n_tiles(cfg.cols)
    return [
        (
            int(r.k_tile == 0),
            int(r.k_tile == k_tiles - 1),
            int(r.n_tile == n_tiles - 1),
            int(r.row == pixels - 1),
            int(i == len(sequence) - 1),
        )
        for i, r in enumerate(sequence)
    ]


def check(cfg, descriptors, seed, stall):
    expected = [read for d in descriptors for read in reads(d, cfg.rows, cfg.cols)]
    flags = [f for d in descriptors for f in expected_flags(d, cfg)]
    pause = Random(stall, seed) if stall else Never()
    run = simulate(cfg, [fields(d, cfg.cols) for d in descriptors], len(expected), pause)
    got = rebuild(run.beats)
    assert run.errors == [0] * len(descriptors), f"seed {seed}: legal descriptors refused: {run.errors}"
    assert len(got) == len(expected), f"seed {seed}: {len(got)} reads, expected {len(expected)}"
    for index, ((read, flag), want, want_flag) in enumerate(zip(got, expected, flags, strict=True)):
        assert read == want, f"seed {seed}: read {index} is {read}, expected {want}"
        assert flag == want_flag, f"seed {seed}: read {index} ({want}) has flags {flag}, expected {want_flag}"


@pytest.mark.parametrize("cfg", CFGS, ids=lambda c: f"{c.rows}x{c.cols}")
@pytest.mark.parametrize("round_", range(4))
def test_random_descriptors_walk_exactly_the_reference_reads(cfg, round_):
    seed = base_seed() * 1000 + round_ * 10 + cfg.rows
    rng = random.Random(seed)
    descriptors = [random_descriptor(rng, cfg, 1 << LIMITS["address_bits"]) for _ in range(6)]
    check(cfg, descriptors, seed, stall=[0.0, 0.3, 0.6, 0.9][round_])


@pytest.mark.parametrize("cfg", CFGS, ids=lambda c: f"{c.rows}x{c.cols}")
def test_edge_descriptors(cfg):
    """1x1 maps and kernels, a kernel larger than the map, stride 4, kernel 7, a non-square kernel, a
    linear layer whose kernel (the whole map) is beyond MAX_KERNEL, the highest address."""
    descriptors = [
        descriptor((1, 1, 1), (1, 1), 1, 0, 0, 1),
        descriptor((cfg.rows + 1, 2, 3), (3, 3), 1, 2, 5),
        descriptor((2, 9, 9), (3, 3), 4, 1, 100, 1),
        descriptor((1, 7, 6), (7, 7), 2, 6, 9),
        descriptor((cfg.rows, 4, 5), (1, 3), 1, 0, 17, 1),
        linear((cfg.rows + 2, 9, 10), 30, cfg.cols + 1),
        descriptor((1, 3, 3), (3, 3), 1, 1, (1 << LIMITS["address_bits"]) - 9, 1),
    ]
    check(cfg, descriptors, seed=0, stall=0.2)


def test_walks_run_back_to_back_one_read_per_cycle():
    """With a sink always ready, a walk's reads leave in the cycles right after its descriptor is taken, and
    the next descriptor is taken in the cycle after the last read: n reads take n + 1 cycles."""
    cfg = CFGS[0]
    descriptors = [
        descriptor((1, 1, 1), (1, 1), 1, 0, 0, 1),
        descriptor((5, 3, 4), (3, 3), 2, 1, 7),
        linear((2, 2, 3), 1, 5),
    ]
    counts = [len(list(reads(d, cfg.rows, cfg.cols))) for d in descriptors]
    run = simulate(cfg, [fields(d, cfg.cols) for d in descriptors], sum(counts), Never())
    expected = []
    for taken, count in zip(run.taken, counts, strict=True):
        expected += range(taken + 1, taken + 1 + count)
    assert run.read_cycles == expected
    assert [b - a for a, b in pairwise(run.taken)] == [count + 1 for count in counts[:-1]]


CFG = CFGS[0]
LEGAL = fields(descriptor((5, 6, 6), (3, 3), 2, 1, 40), CFG.cols)
ILLEGAL = {
    "no channels": dict(channels=0),
    "too many channels": dict(channels=LIMITS["max_channels"] + 1),
    "height 0": dict(height=0),
    "width beyond the maximum": dict(width=LIMITS["max_size"] + 1, out_width=7),
    "output height 0": dict(out_height=0),
    "output width not from the window": dict(out_width=2),
    "output height too large": dict(out_height=4),
    "kernel 0": dict(kernel_height=0),
    "kernel 8": dict(kernel_width=8, out_width=1),
    "stride 0": dict(stride=0),
    "stride 5": dict(stride=5, out_height=2, out_width=2),
    "padding = kernel": dict(padding=3, out_height=5, out_width=5),
    "no N-tiles": dict(n_tiles=0),
    "linear with padding": dict(kernel_height=6, kernel_width=6, stride=1, padding=1, out_height=1, out_width=1),
    "linear with stride 2": dict(kernel_height=9, kernel_width=6, height=9, stride=2, out_height=1, out_width=1),
}


def test_illegal_descriptors_are_refused_and_the_next_one_runs():
    """Each illegal descriptor is taken with `error` high and makes no read; the legal one after it is walked."""
    legal = descriptor((5, 6, 6), (3, 3), 2, 1, 40)
    payloads = [item for change in ILLEGAL.values() for item in (LEGAL | change, LEGAL)]
    sequence = list(reads(legal, CFG.rows, CFG.cols))
    run = simulate(CFG, payloads, len(sequence) * len(ILLEGAL), Random(0.3, 7))
    assert run.errors == [1, 0] * len(ILLEGAL), f"error of each taken {run.errors}, pairs {list(ILLEGAL)}"
    assert [read for read, _ in rebuild(run.beats)] == sequence * len(ILLEGAL)
