"""hw/plane_reader.py's WeightReader on the Amaranth simulator, alone: a plane image in a memory that answers
its bursts, weight requests at several k, a consumer that takes rows at random.

Each request's rows must be decode_planes' codes at its k (the low B-k bits zero) tile after tile, `last` on the
request's final row; the words read must be exactly k*S bytes per tile, never a plane beyond k
(contract.bitplanes' weight_fetch_bytes counts the same); no burst crosses a multiple of `burst` words (so no
4 KiB page); and a tile beyond the region's tile count is never read. A failure prints its seed.
"""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from contract.bitplanes import PlaneLayout, decode_planes, encode_planes
from contract.config import EngineConfig
from hw.plane_reader import WeightReader
from verif.scenarios import base_seed, run_seed

BASE = 0x200


def run_reader(cfg, bus_bytes, burst, requests, region_tiles, image, seed):
    """Drive a WeightReader through `requests` ((n_tiles, rows, k) each) from a memory holding `image` at BASE;
    returns the rows it handed on ((codes, last) each) and the bursts it asked for ((address, words) each)."""
    dut = WeightReader(cfg, max_n_tiles=4, bus_bytes=bus_bytes, burst=burst, address_bits=16)
    rng = np.random.default_rng(seed)
    rows, bursts = [], []

    async def bench(ctx):
        ctx.set(dut.base, BASE)
        ctx.set(dut.beats, region_tiles)
        ctx.set(dut.go, 1)
        await ctx.tick()
        ctx.set(dut.go, 0)
        pending, words, quiet = list(requests), [], 0
        while quiet < 50:  # ends 50 cycles after the last handshake
            if pending:
                n_tiles, k_rows, k = pending[0]
                ctx.set(dut.weight_request.payload, {"n_tiles": n_tiles, "rows": k_rows, "k": k})
            ctx.set(dut.weight_request.valid, bool(pending))
            ctx.set(dut.request.ready, not words)
            if words:
                ctx.set(
                    dut.word.payload, int.from_bytes(image[words[0] - BASE : words[0] - BASE + bus_bytes], "little")
                )
            ctx.set(dut.word.valid, bool(words) and rng.random() < 0.7)
            ctx.set(dut.beat.ready, rng.random() < 0.6)
            request_taken = ctx.get(dut.weight_request.valid) and ctx.get(dut.weight_request.ready)
            burst_taken = ctx.get(dut.request.valid) and not words
            word_taken = ctx.get(dut.word.valid) and ctx.get(dut.word.ready)
            beat = ctx.get(dut.beat.payload) if ctx.get(dut.beat.valid) and ctx.get(dut.beat.ready) else None
            burst_address, burst_words = ctx.get(dut.request.payload.address), ctx.get(dut.request.payload.length)
            await ctx.tick()
            quiet = 0 if request_taken or burst_taken or word_taken or beat is not None else quiet + 1
            if request_taken:
                pending.pop(0)
            if burst_taken:
                bursts.append((burst_address, burst_words))
                words = [burst_address + i * bus_bytes for i in range(burst_words)]
            elif word_taken:
                words.pop(0)
            if beat is not None:
                rows.append(([int(code) for code in beat.codes], int(beat.last)))

    simulator = Simulator(dut)
    simulator.add_clock(1e-6)
    simulator.add_testbench(bench)
    simulator.run()
    return rows, bursts


@pytest.mark.parametrize(
    "rows, cols, bus_bytes, burst",
    [(3, 5, 4, 4), (8, 8, 4, 4), (4, 4, 8, 2), (5, 7, 4, 4)],
    ids=["15-codes-in-one-word", "planes-of-two-words", "4x4-on-64-bits", "a-row-across-two-words"],
)
def test_each_request_reads_its_k_planes_and_hands_on_truncated_codes(rows, cols, bus_bytes, burst):
    seed = run_seed(base_seed(), "plane-reader", f"{rows}x{cols}-{bus_bytes}-{burst}")
    cfg = EngineConfig(rows=rows, cols=cols, max_m=8, max_k=4 * rows, max_n=4 * cols)
    layout = PlaneLayout(rows, cols, cfg.base_bits, bus_bytes)
    # Three layers: 2 N-tiles of 2 K-tiles at k = 3, one tile at k = 8, one at k = 1.
    requests = [(2, 2 * rows, 3), (1, rows, 8), (1, rows, 1)]
    tiles = [4, 1, 1]
    codes = np.random.default_rng(seed).integers(0, 1 << cfg.base_bits, sum(tiles) * rows * cols)
    image = encode_planes(codes, layout).tobytes()
    got, bursts = run_reader(cfg, bus_bytes, burst, requests, sum(tiles), image, seed)

    expected, first = [], 0
    for (_, _, k), count in zip(requests, tiles, strict=True):
        truncated = decode_planes(np.frombuffer(image, dtype=np.uint8), layout, k)
        region = truncated[first * rows * cols : (first + count) * rows * cols].reshape(-1, cols)
        expected += [(row.tolist(), int(i == len(region) - 1)) for i, row in enumerate(region)]
        first += count
    assert got == expected, f"seed {seed}: the rows differ from decode_planes at each request's k"
    read = sorted(address + i * bus_bytes for address, words in bursts for i in range(words))
    wanted = sorted(
        BASE + layout.address(first + t, 0) + offset
        for first, count, (_, _, k) in zip([0, 4, 5], tiles, requests, strict=True)
        for t in range(count)
        for offset in range(0, k * layout.plane_bytes, bus_bytes)
    )
    assert read == wanted, f"seed {seed}: words read other than each tile's k planes"
    span = burst * bus_bytes
    assert all(address // span == (address + words * bus_bytes - 1) // span for address, words in bursts), bursts


def test_a_tile_beyond_the_region_is_never_read():
    cfg = EngineConfig(rows=4, cols=4, max_m=8, max_k=16, max_n=16)
    layout = PlaneLayout(4, 4, cfg.base_bits, 8)
    image = encode_planes(np.arange(32) % 256, layout).tobytes()
    got, bursts = run_reader(cfg, 8, 4, [(1, 12, 8)], 2, image, 0)  # three tiles asked, two held
    assert len(got) == 8 and not any(last for _, last in got), "the rows of the two tiles, and no `last`"
    assert max(address for address, _ in bursts) < BASE + 2 * layout.tile_bytes
