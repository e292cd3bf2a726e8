"""Bit-plane weights: the external-memory image of a program's weights, so that a layer at k reads k/B of them.

A nested-integer network stores one B-bit code per weight and runs a layer at k by using the code's top k
bits (docs/numerics.md, "Weights"). If the codes sit in memory as whole codes, every k reads all B bits. Here
they sit as **bit-planes, most significant first**: a layer at k reads planes 0..k-1 and never touches the
other B - k, so it fetches exactly k/B of its weight bytes.

**Tiles.** The program's weight image (contract.program.ProgramImages.weights) is, per layer region, per
N-tile, per K-tile, R rows of C codes: the order the array loads them. Every region is a whole number of
tiles, so tile t (counted over the whole image) holds codes t*R*C .. (t+1)*R*C - 1, and layer `d`'s tile
(nt, kt) is t = d.weight_offset / (R*C) + nt*KT + kt, with KT = d.k_tiles(R) (`tile_index`).

**Planes.** Plane p of a tile (p = 0 the MSB) packs bit B-1-p of each of its R*C codes: code i = r*C + c
(row r, column c of the tile, as loaded) is bit i % 8 of byte i // 8 (least significant bit first, numpy's
`packbits(bitorder="little")`). A plane's R*C bits fill ceil(R*C/8) bytes, padded with zero bytes to whole
bus words: S = ceil(ceil(R*C/8) / bus_bytes) * bus_bytes bytes (`PlaneLayout.plane_bytes`).

**Addresses** (bytes from the weight image's base, which must be bus-word aligned):

    address(t, p) = (t*B + p) * S          a tile is B*S bytes, its planes contiguous, MSB first

so layer `d` at k reads, for each of its tiles in load order, the one contiguous run of k*S bytes from
address(t, 0) (`fetch_runs`): k planes of every tile, in the order the array consumes the tiles, and at
k = B the whole region in one run. The fetched bytes are k*S per tile, exactly k/B of the region whatever R,
C and the bus width (`weight_fetch_bytes`). What padding costs: the region holds B*S bytes per tile instead of
B*R*C/8. S = R*C/8 (no padding) when R*C is a multiple of 8*bus_bytes: 16x16 on a bus of up to 32 bytes.
A 4x4 array on a 64-bit bus pads each 2-byte plane to 8 bytes, four times the bytes (still exactly k/B of
them). Padding each plane, not each tile's run, is what keeps the ratio exact: planes packed without gaps,
with only a tile's k-plane run padded to bus words, would fetch ceil(k*R*C / (8*bus_bytes)) words per tile,
not proportional to k (4x4 on 64 bits: one 8-byte word at every k <= 4). With a 4 KB-aligned base and B*S
dividing 4096 (16x16, B = 8, S = 32: 256 bytes), no tile's run crosses a 4 KB boundary, which an AXI burst
may not.

**How each PE kind consumes planes.** Every PE kind holds a tile's codes for the whole tile: each activation
row of the tile meets every weight, so a tile's k planes must all be on chip when the tile is preloaded.
- Digit-serial, D = 1: in digit slot d an activation row is multiplied by bit B-1-d of each code, which is
  plane d: the planes are exactly the PE's digit order, MSB first, one plane per digit slot.
- Digit-serial, D > 1: slot d takes digit d, bits B-1-dD .. B-D-dD, which is planes dD .. dD+D-1: D planes
  per slot (the last digit of a k not a multiple of D has its low planes zero, as the PE's mask makes them).
- Bit-parallel: a PE multiplies by the whole masked code in one slot, so it needs all k planes of a row
  before the row loads: either a plane buffer of R*C*B bits that gathers the tile, or codes assembled from
  the k planes with the low B-k bits zero, which is exactly the truncation the PE applies (`decode_planes`
  at k gives those codes).
Today's weight port takes B-bit codes, so the SoC wrapper's DMA (hw/plane_reader.py) assembles codes from the
k planes (the last option) for every PE kind: the same beats the port takes now, since the PE masks the low
B-k bits anyway.

`encode_planes` and `decode_planes` convert between the code image and the plane image, exactly (tested on
random images; `decode_planes(..., k)` gives the codes with their low B-k bits zero).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from contract.cli import InputError
from contract.config import MAX_ARRAY_DIM
from contract.numerics import BASE_BITS_RANGE
from contract.program import Descriptor, Program
from contract.widths import ceil_div

#: AXI data widths, in bytes: 8 to 1024 bits.
BUS_BYTES = (1, 2, 4, 8, 16, 32, 64, 128)


class BitPlaneError(InputError):
    """A plane layout, code image or plane image that is not valid (one line)."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise BitPlaneError(message)


@dataclass(frozen=True)
class PlaneLayout:
    """The bit-plane layout of an R x C engine's weight tiles of B-bit codes on a bus of `bus_bytes` bytes."""

    rows: int
    cols: int
    base_bits: int
    bus_bytes: int

    def __post_init__(self):
        for name, value, (lo, hi) in (
            ("rows", self.rows, (1, MAX_ARRAY_DIM)),
            ("cols", self.cols, (1, MAX_ARRAY_DIM)),
            ("base_bits", self.base_bits, BASE_BITS_RANGE),
        ):
            _require(
                type(value) is int and lo <= value <= hi, f"{name} must be an integer in {lo}..{hi}, got {value!r}"
            )
        _require(
            type(self.bus_bytes) is int and self.bus_bytes in BUS_BYTES,
            f"bus_bytes must be one of {', '.join(map(str, BUS_BYTES))}, got {self.bus_bytes!r}",
        )

    @classmethod
    def of(cls, program: Program, bus_bytes: int) -> PlaneLayout:
        return cls(program.rows, program.cols, program.base_bits, bus_bytes)

    @property
    def tile_codes(self) -> int:
        return self.rows * self.cols

    @property
    def packed_bytes(self) -> int:
        """Bytes of one plane's R*C bits, before padding."""
        return ceil_div(self.tile_codes, 8)

    @property
    def plane_bytes(self) -> int:
        """S: one plane of a tile, padded to whole bus words."""
        return ceil_div(self.packed_bytes, self.bus_bytes) * self.bus_bytes

    @property
    def tile_bytes(self) -> int:
        return self.base_bits * self.plane_bytes

    @property
    def padding_factor(self) -> float:
        """The plane image's bytes over those of the codes' B*R*C bits packed without padding (1 when S =
        R*C/8)."""
        return self.plane_bytes * 8 / self.tile_codes

    def address(self, tile: int, plane: int) -> int:
        """Byte offset of plane `plane` (0 the MSB) of tile `tile` from the weight image's base."""
        return (tile * self.base_bits + plane) * self.plane_bytes

    def image_bytes(self, codes: int) -> int:
        """Bytes of the plane image of a weight image of `codes` codes (whole tiles)."""
        return codes // self.tile_codes * self.tile_bytes


def tile_index(program: Program, d: Descriptor, n_tile: int, k_tile: int) -> int:
    """The index, over the whole weight image, of layer `d`'s tile (n_tile, k_tile)."""
    tile_codes = program.rows * program.cols
    return d.weight_offset // tile_codes + n_tile * d.k_tiles(program.rows) + k_tile


def fetch_runs(program: Program, d: Descriptor, layout: PlaneLayout) -> list[tuple[int, int]]:
    """The contiguous reads (address, bytes) that fetch layer `d`'s planes 0..k-1 at its descriptor's k, in the
    order the array loads its tiles: one run of k*S bytes per tile, merged with the next where they touch (at
    k = B the whole region is one run)."""
    first = tile_index(program, d, 0, 0)
    tiles = d.weight_codes(program.rows, program.cols) // layout.tile_codes
    runs: list[tuple[int, int]] = []
    for tile in range(first, first + tiles):
        address, length = layout.address(tile, 0), d.k * layout.plane_bytes
        if runs and runs[-1][0] + runs[-1][1] == address:
            runs[-1] = (runs[-1][0], runs[-1][1] + length)
        else:
            runs.append((address, length))
    return runs


def weight_fetch_bytes(program: Program, bus_bytes: int) -> dict[str, int]:
    """Per layer (in program order), the weight bytes it reads at its descriptor's k: k*S per tile."""
    layout = PlaneLayout.of(program, bus_bytes)
    return {
        d.name: d.weight_codes(program.rows, program.cols) // layout.tile_codes * d.k * layout.plane_bytes
        for d in program.descriptors
    }


def encode_planes(codes: np.ndarray, layout: PlaneLayout) -> np.ndarray:
    """The plane image (uint8) of a weight image of B-bit codes in tile order (module docstring)."""
    codes = np.asarray(codes)
    _require(
        codes.ndim == 1 and codes.size % layout.tile_codes == 0,
        f"a weight image is whole tiles of {layout.tile_codes} codes, got shape {codes.shape}",
    )
    _require(np.issubdtype(codes.dtype, np.integer), f"weight codes must be integers, got {codes.dtype}")
    top = (1 << layout.base_bits) - 1
    _require(
        codes.size == 0 or (int(codes.min()) >= 0 and int(codes.max()) <= top),
        f"weight codes must lie in 0..{top} (B = {layout.base_bits})",
    )
    B, S = layout.base_bits, layout.plane_bytes
    tiles = codes.astype(np.int64).reshape(-1, 1, layout.tile_codes)
    shifts = (B - 1 - np.arange(B)).reshape(1, B, 1)
    bits = ((tiles >> shifts) & 1).astype(np.uint8)  # [tile, plane, code]
    packed = np.packbits(bits, axis=2, bitorder="little")  # [tile, plane, packed_bytes]
    image = np.zeros((tiles.shape[0], B, S), dtype=np.uint8)
    image[:, :, : layout.packed_bytes] = packed
    return image.reshape(-1)


def decode_planes(image: np.ndarray, layout: PlaneLayout, k: int | None = None) -> np.ndarray:
    """The codes (uint16, tile order) of a plane image, from planes 0..k-1 only (default k = B): each code's top k
    bits, its low B-k bits zero, as a layer at k uses it. The other planes' bytes are never read."""
    B = layout.base_bits
    k = B if k is None else k
    _require(type(k) is int and 1 <= k <= B, f"k must be an integer in 1..{B}, got {k!r}")
    image = np.asarray(image)
    _require(
        image.dtype == np.uint8 and image.ndim == 1 and image.size % layout.tile_bytes == 0,
        f"a plane image is uint8 bytes in whole tiles of {layout.tile_bytes}, got {image.dtype} {image.shape}",
    )
    planes = image.reshape(-1, B, layout.plane_bytes)[:, :k, : layout.packed_bytes]
    bits = np.unpackbits(planes, axis=2, count=layout.tile_codes, bitorder="little").astype(np.uint16)
    weights = (np.uint16(1) << (B - 1 - np.arange(k))).astype(np.uint16).reshape(1, k, 1)
    return (bits * weights).sum(axis=1, dtype=np.uint16).reshape(-1)
