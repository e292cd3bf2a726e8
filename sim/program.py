"""The reference executor of a layer program (contract.program): a scratchpad, an address generator, the GEMMs.

It runs a program as an engine with an activation scratchpad would, so that the layout, the implicit im2col
and the fused residual add are proved, bit for bit, against golden's integer path; the HDL must match it
(hw/addrgen.py and hw/act_fetch.py are tested to walk `reads` exactly; no engine runs a program yet). Per
layer it:

1. walks the address generator (`reads`): per N-tile, per K-tile, per output row, the scratchpad word that
   row's X slice comes from (None: zero padding), with the lanes that hold channels;
2. computes that N-tile's GEMM and requantization with golden.nested's exact functions;
3. walks `writes`: per N-tile, per output row, the words the results go to, through the output path (the raw
   value u of a raw store or a fused add's raw layer, which the requantizer's linear mode gives, then the add
   of the operands read from the scratchpad and its clamp: golden.lowering's host_add, so the numerics are
   those of the host's).

`reads` and `writes` are plain generators over a descriptor's integers: the HDL's address generator and its
formal properties (every read in bounds or padding, every output element written exactly once) mirror them.

A batch of images runs as that many independent scratchpads side by side (numpy's leading axis); counts are
per image. Memory starts as zeros, or as random codes from `rng`, which shows that no read depends on a word
or a lane the program did not write.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np
import torch

from contract.numerics import MULT_BITS, SHIFT_BITS
from contract.program import (
    MAX_DECISIONS,
    Descriptor,
    Program,
    ProgramError,
    ProgramImages,
    encode_program,
    map_words,
)
from golden.lowering import host_add
from golden.nested import int_gemm, requantize


class Read(NamedTuple):
    """The word the X slice (N-tile, K-tile, output row) comes from, None for zero padding; `lanes`: how many
    of its lanes hold channels (the rest read as code 0)."""

    n_tile: int
    k_tile: int
    row: int
    address: int | None
    lanes: int


class Write(NamedTuple):
    """Output row `row` of N-tile `n_tile` writes lanes lo..hi-1 of the word at `offset` of each plane of the
    output map (channel group g = its lanes' group); a fused add reads its operands at the same offset."""

    n_tile: int
    row: int
    offset: int
    lo: int
    hi: int
    channel: int  # the output channel of lane lo


def reads(d: Descriptor, rows: int, cols: int, block: tuple[int, int] | None = None) -> Iterator[Read]:
    """The address generator's read sequence of descriptor `d` (contract.program, "Implicit im2col"), or of its
    M-block `block` (first output row, output rows; `row` counts from the block's first pixel)."""
    channels, height, width = d.in_shape
    groups = d.groups(rows)
    _, out_h, out_w = d.out_shape
    first, block_h = (0, out_h) if block is None else block
    for n_tile in range(d.n_tiles(cols)):
        for k_tile in range(d.k_tiles(rows)):
            tap, group = divmod(k_tile, groups)
            ky, kx = divmod(tap, d.kernel[1])
            lanes = min(rows, channels - group * rows)
            for row in range(block_h * out_w):
                oy, ox = divmod(row + first * out_w, out_w)
                y, x = oy * d.stride - d.padding + ky, ox * d.stride - d.padding + kx
                if 0 <= y < height and 0 <= x < width:
                    yield Read(n_tile, k_tile, row, d.source + (group * height + y) * width + x, lanes)
                else:
                    yield Read(n_tile, k_tile, row, None, 0)


def writes(d: Descriptor, rows: int, cols: int, block: tuple[int, int] | None = None) -> Iterator[Write]:
    """The output path's write sequence of descriptor `d`, or of its M-block `block` (as `reads`): an N-tile's
    C columns split at channel groups."""
    channels, out_h, out_w = d.out_shape
    first, block_h = (0, out_h) if block is None else block
    for n_tile in range(d.n_tiles(cols)):
        for row in range(block_h * out_w):
            oy, ox = divmod(row + first * out_w, out_w)
            channel, end = n_tile * cols, min(channels, n_tile * cols + cols)
            while channel < end:
                group, lo = divmod(channel, rows)
                hi = min(rows, end - group * rows)
                yield Write(n_tile, row, (group * out_h + oy) * out_w + ox, lo, hi, channel)
                channel += hi - lo


@dataclass
class LayerCounts:
    """Scratchpad traffic of one layer per image: words read (the padding reads touch no memory) and written."""

    name: str
    reads: int = 0
    padding: int = 0
    writes: int = 0


@dataclass
class ProgramRun:
    logits: torch.Tensor  # [images * output pixels, N], as golden.infer.run_integer's last output
    layers: list[LayerCounts] = field(default_factory=list)  # the input image's writes first, as "input"
    traffic: dict[str, float] = field(default_factory=dict)  # bytes per image entering the engine, per stream
    ks: np.ndarray | None = None  # [images, descriptors]: the k each image ran each descriptor at


def traffic(program: Program, images: ProgramImages) -> dict[str, float]:
    """Bytes per image that enter the engine from outside, per stream: the image's codes, the weight image (B
    bits a code), the parameter image (ACC + MULT_BITS + SHIFT_BITS bits a row) and the encoded program; no
    activation enters. The logits leave on the result stream (ACC bits each)."""
    last = program.descriptors[-1]
    return {
        "image": math.prod(program.input_shape) * program.act_bits / 8,
        "weights": images.weights.size * program.base_bits / 8,
        "params": images.params.shape[0] * (program.acc_bits + MULT_BITS + SHIFT_BITS) / 8,
        "program": len(encode_program(program)),
        "act": 0,
        "logits out": math.prod(last.out_shape) * program.acc_bits / 8,
    }


def check_inputs(program: Program, images: ProgramImages, codes: np.ndarray) -> None:
    """ProgramError (one line) unless the images and the input codes have the shapes the program reads."""
    if images.weights.shape != (program.weight_length,) or images.params.shape != (program.param_length, 3):
        raise ProgramError(
            f"the images hold {images.weights.shape} weights and {images.params.shape} parameters, the program "
            f"expects ({program.weight_length},) and ({program.param_length}, 3)"
        )
    if codes.ndim != 4 or codes.shape[1:] != program.input_shape:
        raise ProgramError(f"the program takes inputs {list(program.input_shape)}, got {list(codes.shape[1:])}")


def run_program(program: Program, images: ProgramImages, input_codes, rng: np.random.Generator | None = None):
    """Run `program` on input codes [images, C, H, W]: its ProgramRun (logits, per-layer counts, traffic)."""
    codes = np.asarray(input_codes, dtype=np.int64)
    check_inputs(program, images, codes)
    R, A = program.rows, program.act_bits
    shape = (codes.shape[0], program.scratchpad_words, R)
    memory = np.zeros(shape, dtype=np.int64) if rng is None else rng.integers(0, 1 << A, shape)
    counts = [LayerCounts("input", writes=_write_input(memory, program, codes))]
    logits = None
    decisions = np.zeros((len(codes), MAX_DECISIONS), dtype=np.int64)  # each register's candidate index
    ks = np.zeros((len(codes), len(program.descriptors)), dtype=np.int64)
    for index, d in enumerate(program.descriptors):
        counts.append(LayerCounts(d.name))
        if d.k_source:
            chosen = decisions[:, d.k_source - 1]
            output = _run_controlled(memory, program, images, d, counts[-1], chosen)
            ks[:, index] = np.asarray(d.candidates)[chosen]
        else:
            output = _run_layer(memory, program, images, d, counts[-1])
            ks[:, index] = d.k
        if d.store == "decision":
            decisions[:, : d.decisions()] = decide(output, len(d.candidates))
        else:
            logits = output
    return ProgramRun(torch.from_numpy(logits), counts, traffic(program, images), ks)


def decide(raw: np.ndarray, candidates: int) -> np.ndarray:
    """Per image and controlled layer, the index of the candidate whose raw output is the largest, the first on
    ties (the smaller k: candidates ascend), from a decision store's outputs [images, layers * candidates]."""
    return raw.reshape(len(raw), -1, candidates).argmax(axis=2)


def _run_controlled(memory, program, images, d: Descriptor, counts: LayerCounts, chosen: np.ndarray) -> np.ndarray:
    """A controlled layer: each image at its chosen candidate's k with that candidate's parameter block, the
    images of one candidate together (their scratchpads side by side, as ever)."""
    block = d.n_tiles(program.cols) * program.cols
    pixels = d.out_shape[1] * d.out_shape[2]
    output = np.zeros((len(memory), pixels, d.out_shape[0]), dtype=np.int64)
    for j in np.unique(chosen):
        rows = np.flatnonzero(chosen == j)
        fixed = replace(d, k=d.candidates[j], param_offset=d.param_offset + j * block, k_source=0, candidates=())
        part, own = memory[rows], LayerCounts(d.name)
        output[rows] = _run_layer(part, program, images, fixed, own).reshape(len(rows), pixels, -1)
        memory[rows] = part
        counts.reads, counts.padding, counts.writes = own.reads, own.padding, own.writes  # per image: any group's
    return output.reshape(len(memory) * pixels, -1)


def _write_input(memory: np.ndarray, program: Program, codes: np.ndarray) -> int:
    """The image written in the layout, one word per (group, y, x); lanes beyond C are left as they are."""
    R = program.rows
    channels, height, width = program.input_shape
    for channel in range(channels):
        group, lane = divmod(channel, R)
        start = program.input_address + group * height * width
        memory[:, start : start + height * width, lane] = codes[:, channel].reshape(codes.shape[0], -1)
    return map_words(program.input_shape, R)


def _run_layer(memory: np.ndarray, program: Program, images: ProgramImages, d: Descriptor, counts: LayerCounts):
    """Layer `d` block by block (contract.program, "M-blocks"): its outputs [images * OH*OW, N]."""
    images_count, out_w = memory.shape[0], d.out_shape[2]
    logits = np.zeros((images_count, d.out_shape[1] * out_w, d.out_shape[0]), dtype=np.int64)
    for first, block_h in d.blocks():
        block = logits[:, first * out_w : (first + block_h) * out_w]
        block[:] = _run_block(memory, program, images, d, counts, (first, block_h))
    return logits.reshape(images_count * d.out_shape[1] * out_w, -1)


def _run_block(memory, program: Program, images: ProgramImages, d: Descriptor, counts: LayerCounts, block):
    """One M-block of layer `d`: its GEMM over all N-tiles and K-tiles, its writes; its outputs [images,
    block pixels, N]."""
    R, C = program.rows, program.cols
    images_count, pixels = memory.shape[0], block[1] * d.out_shape[2]
    n_tiles, k_tiles = d.n_tiles(C), d.k_tiles(R)
    table = np.full((n_tiles, k_tiles, pixels), -1)
    lanes = np.zeros(k_tiles, dtype=np.int64)
    for read in reads(d, R, C, block):
        if read.address is None:
            counts.padding += 1
        else:
            table[read.n_tile, read.k_tile, read.row], lanes[read.k_tile] = read.address, read.lanes
            counts.reads += 1
    weights = images.weights[d.weight_offset : d.weight_offset + d.weight_codes(R, C)].astype(np.int64)
    weights = weights.reshape(n_tiles, k_tiles * R, C)
    params = images.params[d.param_offset : d.param_offset + d.param_rows(C)].reshape(n_tiles, C, 3)
    batches = _write_batches(writes(d, R, C, block))
    logits = np.zeros((images_count, pixels, d.out_shape[0]), dtype=np.int64)
    for n_tile in range(n_tiles):
        addresses = table[n_tile]  # [K-tiles, rows]
        valid = (addresses >= 0)[:, :, None] & (np.arange(R) < lanes[:, None])[:, None, :]
        x = np.where(valid, memory[:, np.maximum(addresses, 0)], 0)  # [images, K-tiles, rows, R]
        x = x.transpose(0, 2, 1, 3).reshape(images_count * pixels, k_tiles * R)
        bias, mult, shift = (torch.from_numpy(params[n_tile, :, i]) for i in range(3))
        acc = int_gemm(x, weights[n_tile], d.k, d.j, d.scheme, program.base_bits, program.act_bits, program.acc_bits)
        y = requantize(acc, bias, mult, shift, d.mode, program.act_bits, program.acc_bits)  # linear: u
        y = y.numpy().reshape(images_count, pixels, C)
        for (tile, lo, hi, channel), (out_rows, offsets) in batches.items():
            if tile != n_tile:
                continue
            value = y[:, out_rows, channel - n_tile * C : channel - n_tile * C + hi - lo]
            if d.store in ("logits", "decision"):  # out of the engine, or into the decision registers
                logits[:, out_rows, channel : channel + hi - lo] = value
                continue
            if d.operands:
                operands = [_read_operand(memory, program, d, operand, offsets, lo, hi) for operand in d.operands]
                counts.reads += len(offsets) * sum(operand.planes for operand in d.operands)
                value = host_add([torch.from_numpy(v) for v in (value, *operands)], program.act_bits).numpy()
            _store(memory, program, d, offsets, lo, hi, value)
            counts.writes += len(offsets) * d.planes
    return logits


def _write_batches(sequence: Iterator[Write]) -> dict[tuple[int, int, int, int], tuple[np.ndarray, np.ndarray]]:
    """The write sequence gathered by (N-tile, lanes, first channel): the output rows and word offsets of each,
    so that numpy writes all rows of one lane pattern at once (the same words and values, in another order)."""
    batches: dict[tuple[int, int, int, int], tuple[list, list]] = {}
    for write in sequence:
        out_rows, offsets = batches.setdefault((write.n_tile, write.lo, write.hi, write.channel), ([], []))
        out_rows.append(write.row)
        offsets.append(write.offset)
    return {key: (np.array(out_rows), np.array(offsets)) for key, (out_rows, offsets) in batches.items()}


def _read_operand(
    memory: np.ndarray, program: Program, d: Descriptor, operand, offsets: np.ndarray, lo: int, hi: int
) -> np.ndarray:
    """An add operand's values at the written words' lanes: codes, or a raw region's planes put together."""
    A, plane = program.act_bits, d.plane_words(program.rows)
    value = sum(memory[:, operand.address + p * plane + offsets, lo:hi] << (p * A) for p in range(operand.planes))
    width = operand.planes * A
    return np.where(value >= 1 << (width - 1), value - (1 << width), value) if operand.signed else value


def _store(
    memory: np.ndarray, program: Program, d: Descriptor, offsets: np.ndarray, lo: int, hi: int, value: np.ndarray
) -> None:
    """Codes into the words' lanes, or u in two's complement over the raw region's planes (plane p: bits
    p*A .. p*A+A-1)."""
    A, plane = program.act_bits, d.plane_words(program.rows)
    for p in range(d.planes):
        memory[:, d.target + p * plane + offsets, lo:hi] = (value >> (p * A)) & ((1 << A) - 1)
