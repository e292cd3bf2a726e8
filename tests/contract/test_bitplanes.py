"""contract.bitplanes: the plane image of a weight image, its byte order pinned by hand, exact round trips on
random images, and a layer at k reading only its top k planes. (The fetch over a compiled program is in
tests/sim/test_memory_traffic.py, which builds one.)"""

from __future__ import annotations

import numpy as np
import pytest

from contract.bitplanes import BitPlaneError, PlaneLayout, decode_planes, encode_planes


def test_the_byte_order_by_hand():
    """A 2x4 tile of 2-bit codes on a 1-byte bus: plane 0 packs the MSBs, code i at bit i, then plane 1."""
    layout = PlaneLayout(rows=2, cols=4, base_bits=2, bus_bytes=1)
    codes = np.array([0b10, 0b01, 0b11, 0b00, 0b00, 0b11, 0b10, 0b01])
    msb = 0b0110_0101  # codes 0, 2, 5, 6 have their MSB set
    lsb = 0b1010_0110  # codes 1, 2, 5, 7 have their LSB set
    assert encode_planes(codes, layout).tolist() == [msb, lsb]
    assert (layout.plane_bytes, layout.tile_bytes, layout.address(3, 1)) == (1, 2, 7)


def test_planes_are_padded_to_bus_words_with_zeros():
    """A 3x3 tile's 9 bits take 2 bytes, padded to an 8-byte bus word; two tiles of B = 3 take 2*3*8 bytes."""
    layout = PlaneLayout(rows=3, cols=3, base_bits=3, bus_bytes=8)
    image = encode_planes(np.full(18, 7), layout).reshape(2, 3, 8)
    assert image[:, :, :2].tolist() == [[[0xFF, 0x01]] * 3] * 2
    assert not image[:, :, 2:].any()
    assert layout.padding_factor == 8 * 8 / 9


@pytest.mark.parametrize("seed", range(6))
def test_random_images_round_trip_and_truncate(seed):
    rng = np.random.default_rng(seed)
    rows, cols = (int(v) for v in rng.integers(1, 20, 2))
    base_bits = int(rng.integers(2, 17))
    layout = PlaneLayout(rows, cols, base_bits, int(rng.choice([1, 2, 4, 8, 16, 32])))
    codes = rng.integers(0, 1 << base_bits, int(rng.integers(1, 6)) * rows * cols).astype(np.uint16)
    image = encode_planes(codes, layout)
    assert image.size == layout.image_bytes(codes.size), f"seed {seed}"
    assert np.array_equal(decode_planes(image, layout), codes), f"seed {seed}"
    for k in range(1, base_bits + 1):
        drop = base_bits - k
        assert np.array_equal(decode_planes(image, layout, k), (codes >> drop) << drop), f"seed {seed}, k {k}"


def test_a_layer_at_k_reads_only_planes_0_to_k_minus_1():
    """Garbage in planes k..B-1 of every tile changes nothing decoded at k."""
    layout = PlaneLayout(rows=4, cols=4, base_bits=8, bus_bytes=4)
    codes = np.random.default_rng(1).integers(0, 256, 5 * 16)
    for k in range(1, 8):
        image = encode_planes(codes, layout).reshape(5, 8, layout.plane_bytes)
        image[:, k:] = 0xA5
        assert np.array_equal(decode_planes(image.reshape(-1), layout, k), (codes >> (8 - k)) << (8 - k)), k


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda: PlaneLayout(4, 4, 8, 3), "bus_bytes must be one of 1, 2, 4"),
        (lambda: PlaneLayout(0, 4, 8, 8), "rows must be an integer in 1..48"),
        (lambda: PlaneLayout(4, 4, 17, 8), "base_bits must be an integer in 2..16"),
        (lambda: encode_planes(np.arange(15), PlaneLayout(4, 4, 8, 8)), "whole tiles of 16 codes"),
        (lambda: encode_planes(np.full(16, 256), PlaneLayout(4, 4, 8, 8)), "must lie in 0..255"),
        (lambda: encode_planes(np.full(16, -1), PlaneLayout(4, 4, 8, 8)), "must lie in 0..255"),
        (lambda: encode_planes(np.zeros(16) + 0.5, PlaneLayout(4, 4, 8, 8)), "must be integers"),
        (lambda: decode_planes(np.zeros(63, np.uint8), PlaneLayout(4, 4, 8, 8)), "whole tiles of 64"),
        (lambda: decode_planes(np.zeros(64, np.uint8), PlaneLayout(4, 4, 8, 8), 0), "k must be an integer in 1..8"),
    ],
)
def test_bad_input_is_one_error(make, message):
    with pytest.raises(BitPlaneError, match=message):
        make()
