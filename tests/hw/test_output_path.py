"""The output path (hw/output_path.py) on the Amaranth simulator, on a memory that starts random: random layer
outputs (codes with 0, 1 or 2 fused operands that are code maps or signed raw regions, raw regions of 1..3
planes, logits) at R in {3, 4} x C in {2, 3, 4, 5}, their result beats offered with random gaps, the logits
taken with random gaps, illegal descriptors among them; the final memory equals a reference built here from
`sim.program.writes` and the numerics of docs/numerics.md, "Host operations" (so every lane outside a segment
is untouched), the logits leave unchanged, `busy` falls the cycle after each layer's last write, an illegal
descriptor raises `error` and the next one runs; and with `result` always valid the cycles equal
contract.timing.output_path_cycles. A failure prints its seed; set NESTMAC_SEED to run other random draws."""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace

import pytest
from amaranth.hdl import Module, Shape
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.sim import Simulator

from contract.config import EngineConfig
from contract.program import MAX_RAW_PLANES, Descriptor, Operand
from contract.timing import OUTPUT_DRAIN_CYCLES, OUTPUT_SETUP_CYCLES, output_path_cycles, output_segment_cycles
from hw.output_path import OutputPath, output_descriptor_layout
from hw.scratchpad import word_layout
from sim.payload import from_bits, to_bits
from sim.program import writes
from verif.amaranth_streams import receive, send
from verif.configs import config_id
from verif.descriptors import output_fields, random_output
from verif.scenarios import base_seed, run_seed
from verif.stalls import Never, Pauses, Random

DEPTH = 300  # not a power of two: 9-bit addresses, the top ones never used
LIMITS = dict(max_size=4, max_channels=24, max_n_tiles=8, max_operands=2)
CFGS = [EngineConfig(rows=rows, cols=cols) for rows in (3, 4) for cols in (2, 3, 4, 5)]


def random_beats(cfg: EngineConfig, rng: random.Random, d: Descriptor) -> list[list[int]]:
    """The layer's result beats: per N-tile, per output row, C values in the range its store receives (A-bit
    codes for a plain codes store, u for a fused add, with now and then any ACC-bit value, a value fitting the
    raw region for a raw store, any ACC-bit t for logits), columns past N included (they are never written)."""
    A, acc = cfg.act_bits, cfg.acc_bits
    full = (-(1 << (acc - 1)), (1 << (acc - 1)) - 1)
    if d.store == "raw":
        bits = min(d.planes * A, acc)
        span = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
    elif d.store == "codes":
        span = (-(1 << (A + 1)), 1 << (A + 1)) if d.operands else (0, (1 << A) - 1)
    else:
        span = full
    beats = d.n_tiles(cfg.cols) * d.out_shape[1] * d.out_shape[2]

    def value():
        return rng.randint(*full) if d.operands and rng.random() < 0.1 else rng.randint(*span)

    return [[value() for _ in range(cfg.cols)] for _ in range(beats)]


def operand_value(cfg: EngineConfig, memory, operand: Operand, plane_words: int, offset: int, lane: int) -> int:
    """An add operand at a word's lane: its planes put together, least significant first, and sign-extended
    when signed (contract.program, "Raw regions")."""
    A = cfg.act_bits
    value = sum(memory[operand.address + p * plane_words + offset][lane] << (p * A) for p in range(operand.planes))
    width = operand.planes * A
    return value - (1 << width) if operand.signed and value >> (width - 1) else value


def reference(cfg: EngineConfig, memory: list[list[int]], d: Descriptor, beats: list[list[int]]) -> None:
    """Apply the layer's writes to `memory`: for each segment of `sim.program.writes`, each lane lo..hi-1 takes
    the beat's column channel - nt*C + (lane - lo); a codes store writes it plus the operands clamped to
    0..2^A - 1, a raw store its two's complement over the planes."""
    R, C, A = cfg.rows, cfg.cols, cfg.act_bits
    plane_words, rows_per_tile = d.plane_words(R), d.out_shape[1] * d.out_shape[2]
    for write in writes(d, R, C):
        beat = beats[write.n_tile * rows_per_tile + write.row]
        for lane in range(write.lo, write.hi):
            value = beat[write.channel - write.n_tile * C + lane - write.lo]
            if d.store == "raw":
                for p in range(d.planes):
                    memory[d.target + p * plane_words + write.offset][lane] = (value >> (p * A)) & ((1 << A) - 1)
            else:
                value += sum(operand_value(cfg, memory, o, plane_words, write.offset, lane) for o in d.operands)
                memory[d.target + write.offset][lane] = min(max(value, 0), (1 << A) - 1)


def writes_of(cfg: EngineConfig, d: Descriptor) -> int:
    """Word writes a layer makes: each segment of `writes` once per plane."""
    return len(list(writes(d, cfg.rows, cfg.cols))) * d.planes


@dataclass
class Layer:
    """A descriptor offered to the output path: its payload, and if legal its Descriptor and beats."""

    payload: int
    descriptor: Descriptor | None = None
    beats: list[list[int]] = field(default_factory=list)


@dataclass
class Run:
    memory: list[list[int]] = field(default_factory=list)  # the final image
    logits: list[dict] = field(default_factory=list)
    errors: list[int] = field(default_factory=list)  # `error` in the cycle each descriptor was taken
    takes: list[int] = field(default_factory=list)  # the cycle each descriptor was taken
    busy: list[int] = field(default_factory=list)  # per cycle
    write_cycles: list[int] = field(default_factory=list)  # cycles with a write enable high
    logits_cycles: list[int] = field(default_factory=list)  # cycles a logits beat was taken


def payload_of(d: Descriptor) -> int:
    layout = output_descriptor_layout(9, LIMITS["max_size"], LIMITS["max_channels"], LIMITS["max_operands"])
    return layout.const(output_fields(d, LIMITS["max_operands"])).as_value().value


def simulate(cfg, memory, layers: list[Layer], result_pause: Pauses, logits_pause: Pauses, descriptor_pause: Pauses):
    top = Module()
    top.submodules.memory = ram = Memory(shape=word_layout(cfg), depth=DEPTH, init=memory)
    top.submodules.dut = dut = OutputPath(cfg, DEPTH, **LIMITS)
    wiring.connect(top, dut.read, ram.read_port())
    wiring.connect(top, dut.write, ram.write_port(granularity=1))
    legal = [layer for layer in layers if layer.descriptor is not None]
    logits = [beat for layer in legal if layer.descriptor.store == "logits" for beat in layer.beats]
    beats = [
        to_bits(cfg, "result", {"values": beat, "last": int(index == len(layer.beats) - 1)})
        for layer in legal
        for index, beat in enumerate(layer.beats)
    ]
    timeout = 30 * (sum(output_path_cycles(layer.descriptor, cfg.rows, cfg.cols) for layer in legal) + len(layers))
    run, sent = Run(), set()

    async def descriptors(ctx):
        await send(ctx, dut.descriptor, [layer.payload for layer in layers], descriptor_pause)
        sent.add("descriptors")

    async def results(ctx):
        await send(ctx, dut.result, beats, result_pause)
        sent.add("results")

    async def logits_sink(ctx):
        taken = await receive(ctx, dut.logits, len(logits), logits_pause, timeout, silence=10)
        run.logits.extend(from_bits(cfg, "result", beat) for beat in taken)
        sent.add("logits")

    async def recorder(ctx):
        cycle = 0
        signals = (dut.descriptor.valid, dut.descriptor.ready, dut.error, dut.busy, dut.write.en)
        async for _, _, valid, ready, error, busy, enables, l_valid, l_ready in ctx.tick().sample(
            *signals, dut.logits.valid, dut.logits.ready
        ):
            if valid and ready:
                run.errors.append(int(error))
                run.takes.append(cycle)
            run.busy.append(int(busy))
            if enables:
                run.write_cycles.append(cycle)
            if l_valid and l_ready:
                run.logits_cycles.append(cycle)
            cycle += 1

    async def finish(ctx):
        for _ in range(timeout):
            if sent == {"descriptors", "results", "logits"} and not ctx.get(dut.busy):
                break
            await ctx.tick()
        else:
            raise TimeoutError(f"still busy after {timeout} cycles")
        await ctx.tick().repeat(3)
        run.memory.extend(list(ctx.get(ram.data[address])) for address in range(DEPTH))

    sim = Simulator(top)
    sim.add_clock(1e-6)
    for testbench in (descriptors, results, logits_sink, finish):
        sim.add_testbench(testbench)
    sim.add_testbench(recorder, background=True)
    sim.run()
    return run, logits


def random_layers(cfg: EngineConfig, rng: random.Random, count: int) -> list[Layer]:
    layers = []
    for _ in range(count):
        d = random_output(rng, cfg, DEPTH, LIMITS["max_channels"], LIMITS["max_size"])
        layers.append(Layer(payload_of(d), d, random_beats(cfg, rng, d)))
    return layers


def check(cfg, layers: list[Layer], seed: int, stall: float) -> Run:
    rng = random.Random(seed)
    memory = [[rng.randrange(1 << cfg.act_bits) for _ in range(cfg.rows)] for _ in range(DEPTH)]
    pauses = [Random(stall, seed + i) if stall else Never() for i in range(3)]
    run, logits = simulate(cfg, memory, layers, *pauses)
    expected = [list(word) for word in memory]
    for layer in layers:
        if layer.descriptor is not None and layer.descriptor.store != "logits":
            reference(cfg, expected, layer.descriptor, layer.beats)
    errors = [int(layer.descriptor is None) for layer in layers]
    assert run.errors == errors, f"seed {seed}: error per descriptor {run.errors}, expected {errors}"
    for address, (got, want) in enumerate(zip(run.memory, expected, strict=True)):
        assert got == want, f"seed {seed}: word {address} is {got}, expected {want}"
    assert [beat["values"] for beat in run.logits] == logits, f"seed {seed}: logits {run.logits}, expected {logits}"
    assert [beat["last"] for beat in run.logits] == [
        int(index == len(layer.beats) - 1)
        for layer in layers
        if layer.descriptor is not None and layer.descriptor.store == "logits"
        for index in range(len(layer.beats))
    ], f"seed {seed}: logits' last flags"
    # Exactly the writes of `writes` (no repeats), all while busy; busy falls right after each layer's last
    # write or logits beat, once per legal layer.
    count = sum(writes_of(cfg, layer.descriptor) for layer in layers if layer.descriptor is not None)
    assert len(run.write_cycles) == count, f"seed {seed}: {len(run.write_cycles)} writes, expected {count}"
    assert all(run.busy[cycle] for cycle in run.write_cycles), f"seed {seed}: a write while not busy"
    falls = [cycle for cycle in range(1, len(run.busy)) if run.busy[cycle - 1] and not run.busy[cycle]]
    ends = set(run.write_cycles) | set(run.logits_cycles)
    assert len(falls) == len(errors) - sum(errors), f"seed {seed}: busy fell {len(falls)} times"
    assert all(cycle - 1 in ends for cycle in falls), f"seed {seed}: busy fell at {falls}, not after a last write"
    return run


def illegal_payloads(cfg: EngineConfig) -> list[int]:
    """One payload per way a descriptor can be out of range: each a legal one with one field changed."""
    codes = Descriptor(
        "layer", "conv", (1, 1, 1), (5, 2, 3), (1, 1), 1, 0, 0, "codes", 10, 1, 8, 8, "offset", "relu", 0, 0,
        (Operand(100, 1, False),),
    )  # fmt: skip
    raw = replace(codes, store="raw", planes=2, operands=())
    logits = replace(codes, store="logits", planes=0, target=0, operands=())
    layout = output_descriptor_layout(9, LIMITS["max_size"], LIMITS["max_channels"], LIMITS["max_operands"])
    operand = layout["operands"].shape.elem_shape

    def changed(d: Descriptor, name: str, value: int, operand_field: str | None = None) -> int:
        """`d`'s payload with field `name` (or field `operand_field` of its first operand) set to `value`."""
        offset, shape = layout[name].offset, layout[name].shape
        if operand_field is not None:
            offset, shape = offset + operand[operand_field].offset, operand[operand_field].shape
        mask = ((1 << Shape.cast(shape).width) - 1) << offset
        return payload_of(d) & ~mask | value << offset

    too_many_channels = min(LIMITS["max_channels"], LIMITS["max_n_tiles"] * cfg.cols) + 1
    return [
        changed(codes, "channels", 0),
        changed(codes, "channels", too_many_channels),
        changed(codes, "out_height", 0),
        changed(codes, "out_width", LIMITS["max_size"] + 1),
        changed(codes, "store", 3),
        changed(codes, "planes", 2),
        changed(codes, "operand_count", LIMITS["max_operands"] + 1),
        changed(codes, "operands", 0, "planes"),
        changed(codes, "operands", MAX_RAW_PLANES + 1, "planes"),
        changed(raw, "planes", 0),
        changed(raw, "planes", MAX_RAW_PLANES + 1),
        changed(raw, "operand_count", 1),
        changed(logits, "planes", 1),
        changed(logits, "operand_count", 1),
    ]


@pytest.mark.parametrize("cfg", CFGS, ids=config_id)
def test_random_layers_write_exactly_the_reference(cfg):
    """Random layers under random gaps on all three streams, with two illegal descriptors among them."""
    seed = run_seed(base_seed(), config_id(cfg), "output_path")
    rng = random.Random(seed)
    layers = random_layers(cfg, rng, 6)
    for payload in rng.sample(illegal_payloads(cfg), 2):
        layers.insert(rng.randrange(len(layers) + 1), Layer(payload))
    check(cfg, layers, seed, stall=rng.choice([0.3, 0.6]))


@pytest.mark.parametrize("cfg", [CFGS[2], CFGS[5]], ids=config_id)
def test_every_illegal_descriptor_is_dropped_and_the_next_runs(cfg):
    seed = run_seed(base_seed(), config_id(cfg), "output_path_illegal")
    rng = random.Random(seed)
    layers = []
    for payload in illegal_payloads(cfg):
        layers += [Layer(payload), *random_layers(cfg, rng, 1)]
    check(cfg, layers, seed, stall=0.3)


@pytest.mark.parametrize("cfg", [CFGS[1], CFGS[6], CFGS[3]], ids=config_id)
def test_cycles_equal_the_timing_formula(cfg):
    """`result` always valid and `logits` always ready: each layer takes output_path_cycles from its taking to
    the cycle the next is taken; and that formula's steps are output_segment_cycles summed over `writes`."""
    seed = run_seed(base_seed(), config_id(cfg), "output_path_cycles")
    rng = random.Random(seed)
    layers = random_layers(cfg, rng, 8)
    run = check(cfg, layers, seed, stall=0.0)
    for index, layer in enumerate(layers):
        d = layer.descriptor
        end = run.takes[index + 1] if index + 1 < len(layers) else run.busy.index(0, run.takes[index] + 1)
        cycles = output_path_cycles(d, cfg.rows, cfg.cols)
        assert end - run.takes[index] == cycles, f"seed {seed}: layer {index} took {end - run.takes[index]} cycles"
        segments = list(writes(d, cfg.rows, cfg.cols))
        steps = output_segment_cycles(d.store, d.planes, [o.planes for o in d.operands])
        if d.store == "logits":
            assert cycles == OUTPUT_SETUP_CYCLES + len(layer.beats)
        else:
            assert cycles == OUTPUT_SETUP_CYCLES + len(segments) * steps + OUTPUT_DRAIN_CYCLES


def test_one_segment_per_cycle_when_c_equals_r():
    """C = R and one code operand: one beat (one segment, one read, one write) per cycle."""
    cfg = EngineConfig(rows=4, cols=4)
    d = Descriptor(
        "layer", "conv", (1, 1, 1), (8, 3, 3), (1, 1), 1, 0, 0, "codes", 0, 1, 8, 8, "offset", "relu", 0, 0,
        (Operand(100, 1, False),),
    )  # fmt: skip
    rng = random.Random(2)
    run = check(cfg, [Layer(payload_of(d), d, random_beats(cfg, rng, d))], seed=2, stall=0.0)
    beats = d.n_tiles(cfg.cols) * 9
    assert run.write_cycles == list(range(run.write_cycles[0], run.write_cycles[0] + beats))
