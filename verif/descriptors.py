"""Layer descriptors for the tests of the HDL that runs layer programs (hw/addrgen.py, hw/act_fetch.py,
hw/output_path.py).

A conv or linear `contract.program.Descriptor` from its sizes (the fields the address walk does not read are
placeholders), a random legal one placed in an address space, and the payload of the generator's
`descriptor` stream (`hw.addrgen.descriptor_layout`) that stands for it; and for the output path, a random
output (codes with 0..2 fused operands, raw, logits) in regions that do not overlap, and its payload
(`hw.output_path.output_descriptor_layout`).
"""

from __future__ import annotations

import random
from dataclasses import replace

from contract.config import EngineConfig
from contract.program import Descriptor, Operand, map_words
from contract.widths import ceil_div
from hw.output_path import Store


def descriptor(in_shape, kernel, stride, padding, source, out_channels=4) -> Descriptor:
    """A conv layer's descriptor (the fields the generator does not read are placeholders)."""
    out = tuple((size + 2 * padding - k) // stride + 1 for size, k in zip(in_shape[1:], kernel, strict=True))
    return Descriptor(
        "layer", "conv", in_shape, (out_channels, *out), kernel, stride, padding, source, "codes", 0, 1, 8, 8,
        "offset", "relu", 0, 0,
    )  # fmt: skip


def linear(in_shape, source, out_channels) -> Descriptor:
    """A linear layer's descriptor: a kernel of the whole map, stride 1, no padding, one output pixel."""
    return replace(descriptor(in_shape, in_shape[1:], 1, 0, source, out_channels), kind="linear")


def window_fields(d: Descriptor) -> dict:
    """The map read and the window over it, as the generator's payload and the program engine's step name them."""
    (_, height, width), (_, out_height, out_width) = d.in_shape, d.out_shape
    return dict(
        height=height,
        width=width,
        out_height=out_height,
        out_width=out_width,
        kernel_height=d.kernel[0],
        kernel_width=d.kernel[1],
        stride=d.stride,
        padding=d.padding,
        source=d.source,
    )


def fields(d: Descriptor, cols: int) -> dict:
    """The descriptor as the generator's payload."""
    return window_fields(d) | dict(channels=d.in_shape[0], n_tiles=d.n_tiles(cols))


def random_descriptor(rng: random.Random, cfg: EngineConfig, words: int, kernels=(1, 3, 5)) -> Descriptor:
    """A conv layer of up to 3R channels and 7x7 maps, stride 1 or 2, any padding below the kernel, whose map
    lies in words 0 .. `words` - 1."""
    kernel, stride = rng.choice(kernels), rng.choice([1, 2])
    padding = rng.randrange(kernel)
    height, width = (rng.randint(max(1, kernel - 2 * padding), 7) for _ in range(2))
    channels = rng.randint(1, 3 * cfg.rows)
    map_words = ceil_div(channels, cfg.rows) * height * width
    source = rng.randrange(words - map_words)
    return descriptor(
        (channels, height, width), (kernel, kernel), stride, padding, source, rng.randint(1, 2 * cfg.cols)
    )


def output_fields(d: Descriptor, max_operands: int) -> dict:
    """The descriptor as the output path's payload, its operands padded to `max_operands` with zeros."""
    operands = [dict(address=o.address, planes=o.planes, signed=int(o.signed)) for o in d.operands]
    operands += [dict(address=0, planes=0, signed=0)] * (max_operands - len(operands))
    channels, out_height, out_width = d.out_shape
    return dict(
        channels=channels,
        out_height=out_height,
        out_width=out_width,
        target=d.target,
        store=Store[d.store.upper()],
        planes=d.planes,
        operand_count=len(d.operands),
        operands=operands,
    )


def output(out_shape, store, target=0, planes=1, operands=()) -> Descriptor:
    """A layer's output [N, OH, OW] stored as `store` at `target` (planes 1 for codes, P for raw, 0 for logits),
    with the fused add's `operands` (the fields the output path does not read are placeholders)."""
    mode = {"raw": "linear", "logits": "raw"}.get(store, "relu")
    return replace(
        descriptor((1, 1, 1), (1, 1), 1, 0, 0), out_shape=out_shape, store=store, target=target, planes=planes,
        operands=tuple(operands), mode=mode,
    )  # fmt: skip


def random_output(rng: random.Random, cfg: EngineConfig, words: int, max_channels: int, max_size: int) -> Descriptor:
    """A layer's output [N, OH, OW] (N up to 3*max(R, C) and `max_channels`, sides up to `max_size`): a codes
    store with 0, 1 or 2 fused operands (each a code map or a signed raw region of 1..3 planes), a raw store of
    1..3 planes, or the logits; its regions placed in words 0 .. `words` - 1 in random order with random gaps,
    overlapping nowhere (as the compiler places them)."""
    while True:
        channels = rng.randint(1, min(max_channels, 3 * max(cfg.rows, cfg.cols)))
        shape = (channels, rng.randint(1, max_size), rng.randint(1, max_size))
        store = rng.choice(["codes", "codes", "raw", "logits"])
        planes = {"codes": 1, "raw": rng.randint(1, 3), "logits": 0}[store]
        raw = [rng.random() < 0.5 for _ in range(rng.choice([0, 1, 2]) if store == "codes" else 0)]
        operand_planes = [rng.randint(1, 3) if signed else 1 for signed in raw]
        sizes = [planes, *operand_planes] if planes else []
        plane_words = map_words(shape, cfg.rows)
        free = words - plane_words * sum(sizes)
        if free >= 0:
            break
    addresses = [0] * len(sizes)
    cuts = sorted(rng.randint(0, free) for _ in sizes)
    address = 0
    for index, cut in zip(rng.sample(range(len(sizes)), len(sizes)), cuts, strict=True):
        addresses[index] = address + cut
        address += plane_words * sizes[index]
    target = addresses[0] if sizes else 0
    operands = tuple(
        Operand(address, count, signed)
        for address, count, signed in zip(addresses[1:], operand_planes, raw, strict=True)
    )
    return Descriptor(
        "layer", "conv", (1, 1, 1), shape, (1, 1), 1, 0, 0, store, target, planes, 8, 8, "offset",
        "raw" if store == "raw" else "relu", 0, 0, operands,
    )  # fmt: skip
