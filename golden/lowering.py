"""Lowering an exported network to the GEMMs the engine executes, one per layer, and the host operations
between them.

The lowering is separate from who computes the GEMMs: `lower()` takes an `execute` function, so the
golden integer reference (golden.infer), the cycle model and the RTL flow all run the very same GEMMs
with the same operands and parameters, and can be compared layer by layer.

Convolutions become GEMMs by im2col on activation *codes*:
  - zero padding inserts code 0, whose value is 0 at every activation precision j;
  - X[M, K] has one row per output pixel, M index = (batch, oh, ow), and one column per input tap,
    K index = (c_in, kh, kw) -- the order of a PyTorch conv weight [N, c_in, kh, kw], so the weight
    matrix is W[K, N] = weight_codes.reshape(N, -1).T; tap (kh, kw) of output pixel (oh, ow) reads input
    pixel (oh*stride - padding + kh*dilation, ow*stride - padding + kw*dilation), per dimension;
  - the output [M, N] is reshaped to (batch, oh, ow, N) and permuted to NCHW for the next layer.
A grouped convolution is one GEMM per group: group g's im2col of its C_in/groups input channels times the
columns g*N/groups .. (g+1)*N/groups - 1 of W, with those columns' requantization; the groups' outputs are
concatenated along N. A linear layer's X is the previous layer's NCHW codes flattened per sample in (c, h, w)
order, as torch's flatten does.

A residual add (with its ReLU or linear), a max or average pooling and a concat along channels are host
operations (docs/numerics.md, "Host operations"), done here between executor calls, so whoever executes the
GEMMs sees every engine command with its true inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from contract.cli import InputError
from contract.model_format import (
    INPUT,
    AddStep,
    ConcatStep,
    Export,
    ExportedLayer,
    GemmStep,
    PoolStep,
    conv_output_size,
    pair,
    steps,
)


def im2col(codes: torch.Tensor, kernel, stride, padding, dilation=1) -> torch.Tensor:
    """[batch, C, H, W] integer codes -> X[batch*OH*OW, C*KH*KW] (ordering in the module docstring); kernel,
    stride, padding and dilation are each an integer or a (height, width) pair."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (pair(v) for v in (kernel, stride, padding, dilation))
    batch, channels, height, width = codes.shape
    oh, ow = conv_output_size(height, kh, sh, ph, dh), conv_output_size(width, kw, sw, pw, dw)
    padded = torch.nn.functional.pad(codes, (pw, pw, ph, ph), value=0)
    taps = [
        padded[:, :, y * dh : y * dh + sh * (oh - 1) + 1 : sh, x * dw : x * dw + sw * (ow - 1) + 1 : sw]
        for y in range(kh)
        for x in range(kw)
    ]
    patches = torch.stack(taps, dim=2)  # [b, C, KH*KW, OH, OW]
    return patches.permute(0, 3, 4, 1, 2).reshape(batch * oh * ow, channels * kh * kw)


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


def _gemm_inputs(layer: ExportedLayer, codes: torch.Tensor) -> list[torch.Tensor]:
    """X of each of the layer's GEMMs: one per group of a convolution, on the group's input channels."""
    if layer.kind == "conv":
        return [
            im2col(part, layer.kernel, layer.stride, layer.padding, layer.dilation)
            for part in codes.chunk(layer.groups, dim=1)
        ]
    return [codes.reshape(codes.shape[0], -1)]


def _layer_output(layer: ExportedLayer, out: torch.Tensor, batch: int) -> torch.Tensor:
    if layer.kind == "conv":
        _, oh, ow = layer.out_shape
        return out.reshape(batch, oh, ow, layer.N).permute(0, 3, 1, 2)
    return out


def precisions_for(export: Export, k: int | Sequence[int]) -> list[int]:
    """One weight precision per GEMM layer, in execution order: k for all, or a sequence with one per layer."""
    if isinstance(k, Sequence) and not isinstance(k, str):
        ks = list(k)
        if len(ks) != len(export.layers):
            raise InputError(f"{len(ks)} weight precisions given for {len(export.layers)} layers")
    else:
        ks = [k] * len(export.layers)
    for value in ks:
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= export.base_bits:
            raise InputError(f"weight precision k must be an integer in 1..{export.base_bits}, got {value!r}")
    return ks


def host_requantize(raw: torch.Tensor, mult: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """A raw output t [.., N] in activation code units, without clamp: (t * mult + 2^(shift-1)) >> shift, the
    requantizer's formula (docs/numerics.md) without its ReLU and clamp, so it may be negative."""
    rounding = torch.where(shift > 0, torch.ones_like(shift) << (shift - 1).clamp(min=0), torch.zeros_like(shift))
    return (raw * mult + rounding) >> shift


def host_add(operands: list[torch.Tensor], act_bits: int, offset: int = 0) -> torch.Tensor:
    """The residual add: the operands' sum plus `offset` (AddStep.offset: a linear add's zero point, less those
    of its signed-code operands) clamped to the activation codes 0..2^A - 1."""
    return (torch.stack(operands).sum(dim=0) + offset).clamp(0, (1 << act_bits) - 1)


def host_step(step: AddStep | PoolStep | ConcatStep, values: dict[str, torch.Tensor], act_bits: int) -> torch.Tensor:
    """A host operation's output on the values it reads (NCHW codes; a raw layer's in code units): an add, a
    pooling, or a concat along channels (a layout operation: the codes as they are)."""
    if isinstance(step, AddStep):
        return host_add([values[name] for name in step.operands], act_bits, step.offset(act_bits))
    if isinstance(step, PoolStep):
        return host_pool(step, values[step.source])
    return torch.cat([values[name] for name in step.operands], dim=1)


def host_pool(step: PoolStep, codes: torch.Tensor) -> torch.Tensor:
    """A max or average pooling of activation codes [batch, C, H, W] (docs/numerics.md, "Host operations"),
    in integers: the largest code of each window's taps inside the map, or floor((S + floor(n/2)) / n) with S
    the sum of those taps and n the window's divisor (round half up; never above the largest code)."""
    pooling = step.pooling
    _, height, width = step.source_shape
    rows, cols = pooling.windows(height, 0), pooling.windows(width, 1)
    if step.op == "maxpool":
        columns = torch.stack([codes[..., col].amax(dim=-1) for col in map(torch.tensor, cols)], dim=-1)
        return torch.stack([columns[..., row, :].amax(dim=-2) for row in map(torch.tensor, rows)], dim=-2)
    columns = torch.stack([codes[..., col].sum(dim=-1) for col in map(torch.tensor, cols)], dim=-1)
    sums = torch.stack([columns[..., row, :].sum(dim=-2) for row in map(torch.tensor, rows)], dim=-2)
    if pooling.divisor_override is not None:
        divisor = torch.tensor(pooling.divisor_override)
    else:
        divisor = torch.outer(
            *(torch.tensor(pooling.divisors(size, axis)) for axis, size in enumerate((height, width)))
        )
    return torch.div(sums + divisor // 2, divisor, rounding_mode="floor")


def check_input(export: Export, input_codes) -> torch.Tensor:
    """The input codes as int64 [batch, *input_shape]; InputError for any other shape."""
    codes = torch.as_tensor(input_codes).to(torch.int64)
    if tuple(codes.shape[1:]) != export.input_shape:
        raise InputError(
            f"the model takes inputs {list(export.input_shape)}, got images of shape {list(codes.shape[1:])}"
        )
    return codes


def walk_graph(
    export: Export, codes: torch.Tensor, layer_value: Callable[[ExportedLayer, torch.Tensor, bool], torch.Tensor]
) -> torch.Tensor:
    """The network's nodes in order on input `codes`: each add, pooling and concat on the host, each GEMM layer by
    `layer_value(layer, what it reads, whether it is the last node)`; returns the last node's value. One walk
    for every executor (lower's engine GEMMs, golden.fastpath's whole-batch products)."""
    values = {INPUT: codes}  # NCHW codes, or a raw layer's output in code units (NCHW) for an add
    for step in steps(export):
        if isinstance(step, GemmStep):
            values[step.name] = layer_value(step.layer, values[step.source], step.last)
        else:
            values[step.name] = host_step(step, values, export.act_bits)
    return values[step.name]


def check_j(export: Export, j: int | None) -> int:
    j = export.act_bits if j is None else j
    if j != export.act_bits:
        raise InputError(f"the export holds requantization parameters for j = {export.act_bits} only, got j = {j!r}")
    return j


def run_layer(
    export: Export, layer: ExportedLayer, codes: torch.Tensor, k: int, j: int, execute: Executor, last: bool
) -> tuple[list[LayerRun], torch.Tensor]:
    """One layer on the codes [batch, *in_shape] it reads: its GEMMs (one, or one per group of a grouped
    convolution), computed by `execute`, and the value the next nodes read (NCHW codes; a raw output
    requantized to code units unless `last`, the logits)."""
    bias, mult, shift = (torch.from_numpy(p) for p in layer.requant(k))
    weights = torch.from_numpy(layer.weight_codes.astype("int64"))
    runs = []
    for group, act_codes in enumerate(_gemm_inputs(layer, codes)):
        columns = slice(group * layer.N // layer.groups, (group + 1) * layer.N // layer.groups)
        gemm = Gemm(
            layer.name,
            layer.mode,
            k,
            j,
            export.scheme,
            export.base_bits,
            export.act_bits,
            export.acc_bits,
            act_codes,
            weights[:, columns].contiguous(),
            bias[columns],
            mult[columns],
            shift[columns],
        )
        out = execute(gemm)
        if tuple(out.shape) != (gemm.M, gemm.N):
            raise ValueError(f"layer {layer.name}: executor returned {list(out.shape)}, expected [{gemm.M}, {gemm.N}]")
        runs.append(LayerRun(gemm, out))
    out = torch.cat([run.output for run in runs], dim=1)
    if layer.mode == "raw" and not last:
        out = host_requantize(out, mult, shift)
    return runs, _layer_output(layer, out, codes.shape[0])


def lower(export: Export, input_codes, k, j: int | None, execute: Executor) -> list[LayerRun]:
    """Run the network on `input_codes` [batch, *input_shape] at weight precision k (one for all layers, or a
    sequence with one per GEMM layer in execution order), one GEMM per layer (per group of a grouped
    convolution) computed by `execute`, the adds and poolings on the host; returns every GEMM and its output in
    order."""
    j = check_j(export, j)
    precision = dict(zip((layer.name for layer in export.layers), precisions_for(export, k), strict=True))
    runs = []

    def layer_value(layer, source, last):
        layer_runs, value = run_layer(export, layer, source, precision[layer.name], j, execute, last)
        runs.extend(layer_runs)
        return value

    walk_graph(export, check_input(export, input_codes), layer_value)
    return runs
