"""Lowering an exported network to the GEMMs the engine executes, one per layer.

The lowering is separate from who computes the GEMMs: `lower()` takes an `execute` function, so the
golden integer reference (golden.infer), the cycle model and the RTL flow all run the very same GEMMs
with the same operands and parameters, and can be compared layer by layer.

Convolutions become GEMMs by im2col on activation *codes*:
  - zero padding inserts code 0, whose value is 0 at every activation precision j;
  - X[M, K] has one row per output pixel, M index = (batch, oh, ow), and one column per input tap,
    K index = (c_in, kh, kw) -- the order of a PyTorch conv weight [N, c_in, kh, kw], so the weight
    matrix is W[K, N] = weight_codes.reshape(N, -1).T;
  - the output [M, N] is reshaped to (batch, oh, ow, N) and permuted to NCHW for the next layer.
A linear layer's X is the previous layer's NCHW codes flattened per sample in (c, h, w) order, as
torch's flatten does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from contract.cli import InputError
from golden.export import Export, ExportedLayer


def im2col(codes: torch.Tensor, kernel: int, stride: int, padding: int) -> torch.Tensor:
    """[batch, C, H, W] integer codes -> X[batch*OH*OW, C*kernel*kernel] (ordering in the module docstring)."""
    padded = torch.nn.functional.pad(codes, (padding, padding, padding, padding), value=0)
    patches = padded.unfold(2, kernel, stride).unfold(3, kernel, stride)  # [b, C, OH, OW, kh, kw]
    batch, channels, oh, ow = patches.shape[:4]
    return patches.permute(0, 2, 3, 1, 4, 5).reshape(batch * oh * ow, channels * kernel * kernel)


@dataclass(frozen=True)
class Gemm:
    """One engine command: everything needed to compute a layer's output codes, and nothing else."""

    layer: str
    mode: str
    k: int
    j: int
    scheme: str
    base_bits: int
    act_bits: int
    acc_bits: int
    act_codes: torch.Tensor  # int64 [M, K]
    weight_codes: torch.Tensor  # int64 [K, N]
    bias: torch.Tensor  # int64 [N]
    mult: torch.Tensor
    shift: torch.Tensor

    @property
    def M(self) -> int:
        return int(self.act_codes.shape[0])

    @property
    def K(self) -> int:
        return int(self.act_codes.shape[1])

    @property
    def N(self) -> int:
        return int(self.weight_codes.shape[1])


@dataclass(frozen=True)
class LayerRun:
    gemm: Gemm
    output: torch.Tensor  # int64 [M, N]: activation codes (relu) or ACC-bit values (raw)


Executor = Callable[[Gemm], torch.Tensor]


def _gemm_input(layer: ExportedLayer, codes: torch.Tensor) -> torch.Tensor:
    if layer.kind == "conv":
        return im2col(codes, layer.kernel, layer.stride, layer.padding)
    return codes.reshape(codes.shape[0], -1)


def _layer_output(layer: ExportedLayer, out: torch.Tensor, batch: int) -> torch.Tensor:
    if layer.kind == "conv":
        _, oh, ow = layer.out_shape
        return out.reshape(batch, oh, ow, layer.N).permute(0, 3, 1, 2)
    return out


def lower(export: Export, input_codes, k: int, j: int | None, execute: Executor) -> list[LayerRun]:
    """Run the network on `input_codes` [batch, *input_shape] at weight precision k, one GEMM per layer
    computed by `execute`; returns every layer's GEMM and output in order."""
    j = export.act_bits if j is None else j
    if not isinstance(k, int) or not 1 <= k <= export.base_bits:
        raise InputError(f"weight precision k must be an integer in 1..{export.base_bits}, got {k!r}")
    if j != export.act_bits:
        raise InputError(f"the export holds requantization parameters for j = {export.act_bits} only, got j = {j!r}")
    codes = torch.as_tensor(input_codes).to(torch.int64)
    if tuple(codes.shape[1:]) != export.input_shape:
        raise InputError(
            f"input codes must have shape [batch, {', '.join(map(str, export.input_shape))}], got {list(codes.shape)}"
        )
    batch, runs = codes.shape[0], []
    for layer in export.layers:
        bias, mult, shift = (torch.from_numpy(p) for p in layer.requant(k))
        gemm = Gemm(
            layer.name,
            layer.mode,
            k,
            j,
            export.scheme,
            export.base_bits,
            export.act_bits,
            export.acc_bits,
            _gemm_input(layer, codes),
            torch.from_numpy(layer.weight_codes.astype("int64")),
            bias,
            mult,
            shift,
        )
        out = execute(gemm)
        if tuple(out.shape) != (gemm.M, gemm.N):
            raise ValueError(f"layer {layer.name}: executor returned {list(out.shape)}, expected [{gemm.M}, {gemm.N}]")
        runs.append(LayerRun(gemm, out))
        codes = _layer_output(layer, out, batch)
    return runs
