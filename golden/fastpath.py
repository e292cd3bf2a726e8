"""The integer path computed by whole-batch convolutions: the same numbers as golden.infer, much faster.

golden.infer lowers every layer to an explicit im2col GEMM, which is what the engine receives and what
the hardware is checked against, but an im2col of a ResNet layer for thousands of images is gigabytes of
int64. Here each layer is a float32 convolution (or matmul) of the truncated activation values by the
truncated weight values. It is exact: when K * max|x| * max|w| < 2^24 every product and every partial
sum, in whatever order the library adds them, is an integer that float32 represents exactly; when not,
the activations are split into high and low halves (x = 2^s * hi + lo) whose two convolutions each meet
that bound, and float64 (exact below 2^53) is the last resort. The accumulator wrap, requantization and
host operations are golden.nested's and golden.lowering's own functions. Tests compare it with golden.infer on
real images; apps.run and the benchmarks score whole test sets with it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from contract.cli import InputError
from contract.model_format import Export, ExportedLayer
from golden.lowering import check_input, host_requantize, precisions_for, walk_graph
from golden.nested import requantize, truncate_act, truncate_weight, wrap


def fast_logits(export: Export, input_codes: torch.Tensor, k, j: int | None = None) -> torch.Tensor:
    """Raw logits [batch, classes] for input codes [batch, C, H, W] at k (one, or one per GEMM layer)."""
    return fast_values(export, input_codes, k, (), j)[0]


def fast_values(
    export: Export, input_codes: torch.Tensor, k, names: Sequence[str], j: int | None = None
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(raw logits, {name: that GEMM layer's output, as fast_layer gives it}) in one pass: what a probe on an
    inner layer reads, from the same run that scores the image (bench/adaptivity.py)."""
    j = export.act_bits if j is None else j
    ks = dict(zip((layer.name for layer in export.layers), precisions_for(export, k), strict=True))
    missing = set(names) - set(ks)
    if missing:
        raise InputError(f"the network has no GEMM layer named {', '.join(sorted(missing))}")
    kept = {}

    def layer_value(layer, source, last):
        value = fast_layer(export, layer, source, ks[layer.name], j, last)
        if layer.name in names:
            kept[layer.name] = value
        return value

    return walk_graph(export, check_input(export, input_codes), layer_value), kept


def fast_layer(export: Export, layer: ExportedLayer, codes: torch.Tensor, k: int, j: int, last: bool) -> torch.Tensor:
    """One layer on the codes [batch, *in_shape] it reads, as golden.lowering.run_layer's value: NCHW codes, a
    raw output requantized to code units unless `last` (then the raw logits t)."""
    x = truncate_act(codes, j, export.act_bits)
    w = truncate_weight(layer.weight_codes.astype("int64"), k, export.scheme, export.base_bits)
    if layer.kind == "conv":
        kernel = w.T.reshape(layer.N, layer.in_shape[0] // layer.groups, *layer.kernel_hw)

        def product(a, b):
            out = F.conv2d(a, b, None, layer.stride_hw, layer.padding_hw, layer.dilation_hw, layer.groups)
            return out.permute(0, 2, 3, 1)

        acc = exact_product(product, x, kernel, layer.K)
    else:
        acc = exact_product(torch.matmul, x.reshape(x.shape[0], -1), w, layer.K)
    acc = wrap(acc, export.acc_bits)
    bias, mult, shift = (torch.from_numpy(p) for p in layer.requant(k))
    out = requantize(acc, bias, mult, shift, layer.mode, export.act_bits, export.acc_bits)
    if layer.mode == "raw" and not last:
        out = host_requantize(out, mult, shift)
    return out.permute(0, 3, 1, 2) if layer.kind == "conv" else out


def exact_product(product, x: torch.Tensor, w: torch.Tensor, depth: int) -> torch.Tensor:
    """product(x, w) of integer tensors, exactly, as int64: a bilinear `product` (conv or matmul) summing
    `depth` products per output, computed in float32 (split when needed) or float64 (module docstring)."""
    x_max = int(x.max()) if x.numel() else 0
    w_max = int(w.abs().max()) if w.numel() else 0
    if depth * x_max * w_max < _FLOAT32_EXACT:
        return product(x.float(), w.float()).to(torch.int64)
    low_bits = max(x_max.bit_length() // 2, 1)
    if depth * ((1 << low_bits) - 1) * w_max < _FLOAT32_EXACT and depth * (x_max >> low_bits) * w_max < _FLOAT32_EXACT:
        wf = w.float()
        high = product((x >> low_bits).float(), wf).to(torch.int64)
        low = product((x & ((1 << low_bits) - 1)).float(), wf).to(torch.int64)
        return (high << low_bits) + low
    return product(x.double(), w.double()).to(torch.int64)


_FLOAT32_EXACT = 1 << 24
