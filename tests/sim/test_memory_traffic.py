"""sim.memory_traffic and contract.bitplanes over compiled programs: a layer at k fetches exactly k/B of its
weight bytes and those bytes alone give its truncated codes; the bus model's recurrence by hand; the streams
against the executor's traffic; the energy split."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from contract.bitplanes import PlaneLayout, decode_planes, encode_planes, fetch_runs, tile_index, weight_fetch_bytes
from contract.cli import InputError
from contract.config import EngineConfig
from contract.policy import Policy
from contract.program import compile_program, encode_program, encoded_sizes
from golden.convert import build_net
from golden.export import build_export
from golden.layers import QuantSpec
from sim.energy_table import DEFAULT_TABLE, SHIPPED_TABLE, EnergyTableError, load_energy_table
from sim.memory_traffic import Bus, burst_cycles, memory_energy, memory_traffic
from sim.program import traffic
from sim.program_cost import program_cost
from sim.program_cycles import program_step_cycles

WORDS = 1 << 16


@pytest.fixture(scope="module")
def resnet20():
    """The Fashion-MNIST ResNet-20 (1x28x28), untrained: bench/program_latency.py's network."""
    torch.manual_seed(0)
    return build_export(build_net("resnet20", QuantSpec("truncquant", "offset"), (1, 28, 28)).eval())


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    return build_export(build_net("resnet20", QuantSpec("truncquant", "twos"), (1, 8, 8)).eval())


def compiled(export, rows, cols, ks, max_m=None):
    policy = Policy("uniform" if len(ks) == 1 else "static", tuple(ks)).resolve(export)
    return compile_program(export, rows, cols, WORDS, policy, max_m)


def engine(program, digit_bits=None) -> EngineConfig:
    """An engine that runs `program`'s GEMM commands."""
    return EngineConfig(rows=program.rows, cols=program.cols, digit_bits=digit_bits, **program.gemm_limits())


def test_resnet20_fetches_exactly_an_eighth_of_its_weight_bytes_at_k1(resnet20):
    """16x16 on a 64-bit bus: a plane of a tile is 32 bytes, 4 whole bus words, so nothing is padded: k = 8
    fetches the B-bit codes' bytes, and k = 1 exactly 1/8 of them, layer by layer."""
    at = {k: compiled(resnet20, 16, 16, [k])[0] for k in (8, 1)}
    fetched = {k: weight_fetch_bytes(program, 8) for k, program in at.items()}
    assert sum(fetched[8].values()) == at[8].weight_length * 8 // 8
    assert all(fetched[8][name] == 8 * fetched[1][name] for name in fetched[8])
    assert memory_traffic(engine(at[1]), at[1]).stream_bytes()["weights"] * 8 == sum(fetched[8].values())


def test_m_blocks_read_each_layers_planes_once_per_block_and_keep_the_ratio(resnet20):
    """On an accumulator of 98 rows the 14x14 layers (M = 196) run as 2 blocks of 7 output rows, each reading
    the layer's k planes again: the weight stream is each layer's bit-plane bytes times its blocks, still
    exactly 1/8 at k = 1; each extra block costs a step's fixed overhead, tens of cycles."""
    at = {k: compiled(resnet20, 16, 16, [k], max_m=98)[0] for k in (8, 1)}
    whole = compiled(resnet20, 16, 16, [8])[0]
    cfg = engine(whole)
    streams = {k: memory_traffic(cfg, program).stream_bytes()["weights"] for k, program in at.items()}
    blocks = {d.name: len(d.blocks()) for d in at[8].descriptors}
    assert sorted(set(blocks.values())) == [1, 2] and sum(n == 2 for n in blocks.values()) == 7
    for k, program in at.items():
        assert streams[k] == sum(blocks[name] * n for name, n in weight_fetch_bytes(program, 8).items())
    assert streams[8] == 8 * streams[1]
    blocked, unblocked = (memory_traffic(cfg, program).engine_cycles for program in (at[8], whole))
    assert unblocked < blocked <= unblocked + 7 * 100


def test_padding_to_bus_words_keeps_the_ratio_and_costs_bytes(small):
    """4x4 on a 64-bit bus: a plane's 16 bits take 2 bytes, padded to 8: the region is 4x the codes' bytes,
    and a layer at k still fetches exactly k/B of it."""
    program, _ = compiled(small, 4, 4, [8])
    at_one, _ = compiled(small, 4, 4, [1])
    padded, one = weight_fetch_bytes(program, 8), weight_fetch_bytes(at_one, 8)
    assert sum(padded.values()) == 4 * program.weight_length
    assert all(padded[name] == 8 * one[name] for name in padded)
    assert sum(weight_fetch_bytes(program, 2).values()) == program.weight_length  # 2-byte bus: no padding


@pytest.mark.parametrize("rows,cols,bus_bytes", [(8, 4, 4), (4, 4, 8), (3, 5, 1)])
def test_the_fetched_bytes_alone_give_each_layers_truncated_codes(small, rows, cols, bus_bytes):
    """Copy only the runs each layer fetches (a static policy: every layer its own k) out of the plane image:
    each layer's region decodes at its k to its weight codes with the low B-k bits zero."""
    ks = [int(k) for k in np.random.default_rng(rows * cols).integers(1, 9, len(small.layers))]
    program, images = compiled(small, rows, cols, ks)
    layout = PlaneLayout.of(program, bus_bytes)
    image = encode_planes(images.weights, layout)
    fetched = np.zeros_like(image)
    for d in program.descriptors:
        for address, length in fetch_runs(program, d, layout):
            fetched[address : address + length] = image[address : address + length]
    tile_codes = rows * cols
    for d in program.descriptors:
        first, tiles = tile_index(program, d, 0, 0), d.weight_codes(rows, cols) // tile_codes
        region = fetched[first * layout.tile_bytes : (first + tiles) * layout.tile_bytes]
        codes = images.weights[d.weight_offset : d.weight_offset + d.weight_codes(rows, cols)]
        drop = program.base_bits - d.k
        assert np.array_equal(decode_planes(region, layout, d.k), (codes >> drop) << drop), (d.name, ks)


def test_a_tile_address_follows_the_load_order(small):
    program, _ = compiled(small, 4, 4, [8])
    d = program.descriptors[2]
    layout = PlaneLayout.of(program, 8)
    first = d.weight_offset // 16
    assert tile_index(program, d, 1, 2) == first + d.k_tiles(4) + 2
    assert layout.address(tile_index(program, d, 1, 2), 3) == ((first + d.k_tiles(4) + 2) * 8 + 3) * 8


def test_the_burst_recurrence_by_hand():
    """Latency 10, two 4-beat bursts: one in flight waits for the first to end (cycle 14), two overlap."""
    assert burst_cycles([4, 4], Bus(8, 16, 10, 1)) == 28
    assert burst_cycles([4, 4], Bus(8, 16, 10, 2)) == 18
    assert burst_cycles([], Bus()) == 0
    assert Bus(8, 16).bursts(4096 - 16, 64) == [2, 6]  # split at the 4 KB boundary
    assert Bus(8, 4).bursts(0, 100) == [4, 4, 4, 1]


def test_streams_are_the_executors_traffic_in_bus_words(small):
    """Against sim.program.traffic (B-bit weights, payload bits): at k = B every stream moves at least those
    bytes and less than one bus word more per region it reads (the image, the header, a descriptor, a layer's
    parameters, the logits); the program's regions are its encoded sizes."""
    program, images = compiled(small, 4, 4, [8])
    cfg = engine(program)
    bus = Bus(bus_bytes=2)
    streams = memory_traffic(cfg, program, bus).stream_bytes()
    reference = traffic(program, images)
    header, descriptors = encoded_sizes(program)
    assert header + sum(descriptors) == len(encode_program(program))
    regions = dict(image=1, program=1 + len(program.descriptors), params=len(program.descriptors), logits=1)
    for stream, count in regions.items():
        name = "logits out" if stream == "logits" else stream
        assert 0 <= streams[stream] - reference[name] < count * bus.bus_bytes, stream
    assert streams["weights"] == reference["weights"]


def test_a_step_takes_the_longer_of_engine_and_bus(small):
    program, _ = compiled(small, 4, 4, [8])
    cfg = engine(program)
    fast, slow = memory_traffic(cfg, program, Bus(latency=0)), memory_traffic(cfg, program, Bus(1, 1, 200, 1))
    assert fast.engine_cycles == sum(program_step_cycles(cfg, program, d) for d in [None, *program.descriptors])
    assert slow.engine_cycles == fast.engine_cycles
    for step in slow.steps:
        assert step.cycles == max(step.engine_cycles, step.bus_cycles)
    # One byte a beat, one 1-beat burst in flight, 200 cycles each: the bus is the bottleneck everywhere; the
    # logits' write runs on its own channel, beside the last layer's reads.
    reads = [sum(n for stream, n in step.streams.items() if stream != "logits") for step in slow.steps]
    assert slow.steps[-1].streams["logits"] < reads[-1]
    assert slow.cycles == 201 * sum(reads)


def test_the_energy_split(small):
    program, _ = compiled(small, 4, 4, [3])
    cfg = engine(program, digit_bits=1)
    cost = program_cost(cfg, program, small, WORDS)
    moved = memory_traffic(cfg, program)
    energy = memory_energy(cost, moved)
    parts = cost.energy
    assert energy.engine == pytest.approx(parts.total - parts.buffers - parts.scratchpad)
    assert energy.dram == pytest.approx((moved.read_bytes + moved.written_bytes) * 8 * 1300 / 64)
    assert energy.onchip > parts.scratchpad
    assert energy.total == pytest.approx(energy.engine + energy.onchip + energy.dram)


def test_a_format_1_table_cannot_price_dram(small, tmp_path):
    data = json.loads(SHIPPED_TABLE.read_text())
    data["version"] = 1
    del data["actions"]["dram_access"]
    (tmp_path / "v1.json").write_text(json.dumps(data))
    old = load_energy_table(tmp_path / "v1.json")
    program, _ = compiled(small, 4, 4, [8])
    cfg = engine(program)
    with pytest.raises(EnergyTableError, match="no dram_access price"):
        memory_energy(program_cost(cfg, program, small, WORDS, old), memory_traffic(cfg, program), old)
    assert DEFAULT_TABLE.dram_bit_pj() > 0


@pytest.mark.parametrize(
    "fields,message",
    [
        (dict(bus_bytes=12), "bus_bytes must be one of"),
        (dict(burst_beats=0), "burst_beats must be an integer in 1..256"),
        (dict(latency=-1), "latency must be an integer"),
        (dict(outstanding=1.5), "outstanding must be an integer"),
    ],
)
def test_a_bad_bus_is_one_error(fields, message):
    with pytest.raises(InputError, match=message):
        Bus(**fields)
