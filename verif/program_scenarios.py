"""Random networks for the program engine's regressions, and the coverage bins a program exercises.

`random_network` draws a small convolutional network from a grammar that reaches every kind of step a
program has: convolutions of kernel 1, 3 and 5 at stride 1 and 2 with any padding below the kernel, channel
counts below, at and beyond R, residual blocks whose skip is the block's input (an add of a code map) or a
strided 1x1 projection (a raw region read by the add), and a linear layer for the logits. Its weights are
the seeded initialisation: bit-exactness does not depend on training.

`program_bins` names what a compiled program makes the hardware do (`PROGRAM_BINS`), read off its
descriptors and the address generator's reads: the corners a regression must have run, padding at each edge
of a map included.
"""

from __future__ import annotations

import random

import torch
from torch import nn

from contract.program import Program
from sim.program import reads

KERNELS = (1, 3, 5)

PROGRAM_BINS = (
    *(f"kernel {k}" for k in KERNELS),
    "stride 1",
    "stride 2",
    *(f"padding read at the {edge} edge" for edge in ("top", "bottom", "left", "right")),
    "channels not a multiple of R",
    "several channel groups",
    "several N-tiles",
    "N not a multiple of C",
    "fused add of a code map",
    "fused add of a raw region",
    "raw store",
    "linear layer",
)


class _Residual(nn.Module):
    """relu(conv(x) + skip(x)): the skip is x itself, or a strided 1x1 projection when the shape changes."""

    def __init__(self, channels: int, out_channels: int, kernel: int, stride: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, out_channels, kernel, stride, kernel // 2)
        self.skip = None if (stride, out_channels) == (1, channels) else nn.Conv2d(channels, out_channels, 1, stride)

    def forward(self, x):
        return torch.relu(self.conv(x) + (x if self.skip is None else self.skip(x)))


class _Network(nn.Module):
    def __init__(self, body: nn.Sequential, features: int, classes: int):
        super().__init__()
        self.body, self.fc = body, nn.Linear(features, classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.body(x), 1))


def random_network(rng: random.Random, rows: int) -> tuple[nn.Module, tuple[int, int, int]]:
    """A random network (module docstring) and its input shape, with channel counts around `rows` (R)."""
    channels, size = rng.randint(1, 3), rng.randint(6, 9)
    shape = (channels, size, size)
    layers = []
    for _ in range(rng.randint(2, 3)):
        out = rng.randint(2, 2 * rows + 1)
        kernel = rng.choice([k for k in KERNELS if k <= size + 2 * (k - 1)])
        stride = rng.choice([1, 2]) if size >= 4 else 1
        if rng.random() < 0.5 and kernel % 2:
            layers.append(_Residual(channels, out, kernel, stride))
            size = (size + 2 * (kernel // 2) - kernel) // stride + 1
        else:
            padding = rng.randrange(kernel)
            layers += [nn.Conv2d(channels, out, kernel, stride, padding), nn.ReLU()]
            size = (size + 2 * padding - kernel) // stride + 1
        channels = out
    torch.manual_seed(rng.randrange(1 << 30))
    return _Network(nn.Sequential(*layers), channels * size * size, rng.randint(2, 12)), shape


def program_bins(program: Program) -> set[str]:
    """The PROGRAM_BINS that `program` hits."""
    R, C = program.rows, program.cols
    hit = set()
    for d in program.descriptors:
        channels, height, width = d.in_shape
        hit.add("linear layer" if d.kind == "linear" else f"kernel {d.kernel[0]}")
        if d.kind == "conv":
            hit.add(f"stride {d.stride}")
        hit |= {"channels not a multiple of R"} if channels % R else set()
        hit |= {"several channel groups"} if channels > R else set()
        hit |= {"several N-tiles"} if d.out_shape[0] > C else set()
        hit |= {"N not a multiple of C"} if d.out_shape[0] % C else set()
        hit |= {"raw store"} if d.store == "raw" else set()
        for operand in d.operands:
            hit.add("fused add of a raw region" if operand.signed else "fused add of a code map")
        hit |= _padding_edges(d, R, C)
    return hit


def _padding_edges(d, rows: int, cols: int) -> set[str]:
    """The map edges at which the walk of `d` reads padding (a tap outside the map)."""
    _, height, width = d.in_shape
    _, out_h, out_w = d.out_shape
    edges = set()
    for read in reads(d, rows, cols):
        if read.address is not None or read.n_tile:
            continue
        tap, _ = divmod(read.k_tile, d.groups(rows))
        ky, kx = divmod(tap, d.kernel[1])
        oy, ox = divmod(read.row, out_w)
        y, x = oy * d.stride - d.padding + ky, ox * d.stride - d.padding + kx
        edges |= {
            edge
            for edge, out in (("top", y < 0), ("bottom", y >= height), ("left", x < 0), ("right", x >= width))
            if out
        }
    return {f"padding read at the {edge} edge" for edge in edges}
