"""The activation scratchpad (hw/scratchpad.py) and the activation fetch (hw/act_fetch.py) on the Amaranth
simulator: a random memory written through the scratchpad's write port, random descriptors fetched back to
back under random backpressure on both streams, every `act` beat equal to the reference (for each Read of
`sim.program.reads`, the word's lanes below `lanes`, 0 for padding and beyond), none lost or repeated, and one
memory access per non-padding read; and the write port's per-lane enables. A failure prints its seed; set
NESTMAC_SEED to run other random draws."""

from __future__ import annotations

import random
from typing import NamedTuple

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from contract.config import EngineConfig
from hw.act_fetch import ActivationFetch
from hw.scratchpad import Scratchpad
from sim.payload import from_bits
from sim.program import reads
from verif.amaranth_streams import receive, send
from verif.configs import config_id
from verif.descriptors import descriptor, fields, linear, random_descriptor
from verif.scenarios import base_seed, run_seed
from verif.stalls import Never, Random

DEPTH = 200  # not a power of two: 8-bit addresses, the top ones never used
LIMITS = dict(max_size=12, max_channels=16, max_n_tiles=4)
CFGS = [EngineConfig(rows=4, cols=4), EngineConfig(rows=3, cols=2)]
STALLS = [0.0, 0.3, 0.6, 0.9]  # the fraction of cycles each stream idles


def pack(cfg: EngineConfig, codes) -> int:
    """A word's lanes as the integer on a port of the word layout (lane 0 least significant)."""
    return sum(code << (lane * cfg.act_bits) for lane, code in enumerate(codes))


def random_memory(cfg: EngineConfig, rng: random.Random) -> list[list[int]]:
    return [[rng.randrange(1 << cfg.act_bits) for _ in range(cfg.rows)] for _ in range(DEPTH)]


async def write_words(ctx, port, cfg: EngineConfig, words: dict[int, list[int]], enables: int) -> None:
    """Write each word at its address in one cycle each, the lanes whose bit is set in `enables`."""
    for address, codes in words.items():
        ctx.set(port.addr, address)
        ctx.set(port.data.as_value(), pack(cfg, codes))
        ctx.set(port.en, enables)
        await ctx.tick()
    ctx.set(port.en, 0)


def expected_beats(cfg: EngineConfig, memory, descriptors) -> list[dict]:
    """What the host sends on `act` for these layers' X rows in the program's K order."""
    beats = []
    for d in descriptors:
        sequence = list(reads(d, cfg.rows, cfg.cols))
        for index, read in enumerate(sequence):
            word = memory[read.address] if read.address is not None else [0] * cfg.rows
            codes = [code if lane < read.lanes else 0 for lane, code in enumerate(word)]
            beats.append({"codes": codes, "last": int(index == len(sequence) - 1)})
    return beats


class Run(NamedTuple):
    beats: list[dict]  # the beats taken on `act`
    errors: list[int]  # `error` in the cycle each descriptor was taken
    beat_cycles: list[int]  # the cycle each beat was taken
    memory_reads: list[int]  # the address of each cycle with the read port's `en` high


def fetch(cfg, memory, descriptors, act_pause, descriptor_pause) -> Run:
    """Write `memory` through the write port, then fetch `descriptors` under these pauses."""
    expected = sum(len(list(reads(d, cfg.rows, cfg.cols))) for d in descriptors)
    top = Module()
    top.submodules.scratchpad = scratchpad = Scratchpad(cfg, DEPTH)
    top.submodules.fetch = dut = ActivationFetch(cfg, DEPTH, **LIMITS)
    wiring.connect(top, dut.read, scratchpad.read)
    shape = dut.descriptor.payload.shape()
    sim = Simulator(top)
    sim.add_clock(1e-6)
    run = Run([], [], [], [])

    async def driver(ctx):
        await write_words(ctx, scratchpad.write, cfg, dict(enumerate(memory)), (1 << cfg.rows) - 1)
        payloads = [shape.const(fields(d, cfg.cols)).as_value().value for d in descriptors]
        await send(ctx, dut.descriptor, payloads, descriptor_pause)

    async def recorder(ctx):
        cycle = 0
        signals = (dut.descriptor.valid, dut.descriptor.ready, dut.error, dut.act.valid, dut.act.ready)
        async for _, _, valid, ready, error, act_valid, act_ready, en, address in ctx.tick().sample(
            *signals, dut.read.en, dut.read.addr
        ):
            if valid and ready:
                run.errors.append(int(error))
            if act_valid and act_ready:
                run.beat_cycles.append(cycle)
            if en:
                run.memory_reads.append(address)
            cycle += 1

    async def receiver(ctx):
        taken = await receive(ctx, dut.act, expected, act_pause, timeout=20 * expected + 20 * DEPTH, silence=20)
        run.beats.extend(from_bits(cfg, "act", beat) for beat in taken)

    sim.add_testbench(driver)
    sim.add_testbench(recorder, background=True)
    sim.add_testbench(receiver)
    sim.run()
    return run


def check(cfg, descriptors, seed, stall):
    rng = random.Random(seed)
    memory = random_memory(cfg, rng)
    act_pause, descriptor_pause = (Random(stall, seed + 1), Random(stall, seed + 2)) if stall else (Never(), Never())
    run = fetch(cfg, memory, descriptors, act_pause, descriptor_pause)
    expected = expected_beats(cfg, memory, descriptors)
    assert run.errors == [0] * len(descriptors), f"seed {seed}: legal descriptors refused: {run.errors}"
    assert len(run.beats) == len(expected), f"seed {seed}: {len(run.beats)} beats, expected {len(expected)}"
    for index, (beat, want) in enumerate(zip(run.beats, expected, strict=True)):
        assert beat == want, f"seed {seed}: beat {index} is {beat}, expected {want}"
    # One memory access per word read, none for padding and none again while `act` stalls.
    words = [read.address for d in descriptors for read in reads(d, cfg.rows, cfg.cols) if read.address is not None]
    assert run.memory_reads == words, f"seed {seed}: memory read {run.memory_reads}, expected {words}"


@pytest.mark.parametrize("stall", STALLS)
@pytest.mark.parametrize("cfg", CFGS, ids=config_id)
def test_random_descriptors_fetch_exactly_the_reference_beats(cfg, stall):
    seed = run_seed(base_seed(), config_id(cfg), "act_fetch", STALLS.index(stall))
    rng = random.Random(seed)
    check(cfg, [random_descriptor(rng, cfg, DEPTH, kernels=(1, 3)) for _ in range(6)], seed, stall)


@pytest.mark.parametrize("cfg", CFGS, ids=config_id)
def test_edge_descriptors(cfg):
    """A 1x1 map, all-padding taps (a kernel larger than the map), a linear layer, the scratchpad's last word."""
    descriptors = [
        descriptor((1, 1, 1), (1, 1), 1, 0, 0, 1),
        descriptor((cfg.rows + 1, 2, 3), (3, 3), 1, 2, 5),
        linear((cfg.rows + 2, 3, 4), 30, cfg.cols + 1),
        descriptor((2, 3, 3), (3, 3), 1, 1, DEPTH - 9, 1),
    ]
    check(cfg, descriptors, seed=0, stall=0.3)


def test_beats_leave_one_per_cycle():
    """With `act` always ready, a walk's beats leave in consecutive cycles: the memory's latency and the
    registered word cost cycles per walk, not per beat."""
    cfg = CFGS[0]
    d = descriptor((5, 3, 4), (3, 3), 2, 1, 7)
    count = len(list(reads(d, cfg.rows, cfg.cols)))
    cycles = fetch(cfg, random_memory(cfg, random.Random(1)), [d], Never(), Never()).beat_cycles
    assert cycles == list(range(cycles[0], cycles[0] + count))


@pytest.mark.parametrize("cfg", CFGS, ids=config_id)
def test_write_enables_write_only_their_lanes(cfg):
    """Every lane mask over a word written full: the enabled lanes take the new codes, the others keep theirs;
    a read returns its word in the next cycle and holds it while `en` is low."""
    rng = random.Random(cfg.rows)
    dut = Scratchpad(cfg, DEPTH)
    masks = range(1 << cfg.rows)
    old = {address: random_memory(cfg, rng)[0] for address in range(len(masks))}
    new = {address: random_memory(cfg, rng)[0] for address in range(len(masks))}
    got = {}

    async def testbench(ctx):
        await write_words(ctx, dut.write, cfg, old, (1 << cfg.rows) - 1)
        for address, mask in zip(new, masks, strict=True):
            await write_words(ctx, dut.write, cfg, {address: new[address]}, mask)
        for address in new:
            ctx.set(dut.read.addr, address)
            ctx.set(dut.read.en, 1)
            await ctx.tick()
            ctx.set(dut.read.addr, DEPTH - 1)
            ctx.set(dut.read.en, 0)
            await ctx.tick()
            got[address] = ctx.get(dut.read.data.as_value())

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    for address, mask in zip(new, masks, strict=True):
        want = [new[address][lane] if mask >> lane & 1 else old[address][lane] for lane in range(cfg.rows)]
        assert got[address] == pack(cfg, want), f"mask {mask:b}: read {got[address]:x}, expected {want}"
