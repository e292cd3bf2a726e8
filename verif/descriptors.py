"""Layer descriptors for the tests of the HDL that runs layer programs (hw/addrgen.py, hw/act_fetch.py).

A conv or linear `contract.program.Descriptor` from its sizes (the fields the address walk does not read are
placeholders), a random legal one placed in an address space, and the payload of the generator's
`descriptor` stream (`hw.addrgen.descriptor_layout`) that stands for it.
"""

from __future__ import annotations

import random
from dataclasses import replace

from contract.config import EngineConfig
from contract.program import Descriptor
from contract.widths import ceil_div


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


def fields(d: Descriptor, cols: int) -> dict:
    """The descriptor as the generator's payload."""
    (channels, height, width), (_, out_height, out_width) = d.in_shape, d.out_shape
    return dict(
        channels=channels,
        height=height,
        width=width,
        out_height=out_height,
        out_width=out_width,
        kernel_height=d.kernel[0],
        kernel_width=d.kernel[1],
        stride=d.stride,
        padding=d.padding,
        source=d.source,
        n_tiles=d.n_tiles(cols),
    )


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
