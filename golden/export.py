"""Export a trained model as integer codes and requantization parameters: `python -m golden.export`.

`python -m golden.export MODEL.pt --out DIR` writes DIR/model.json and DIR/model.npz, the export format that
contract.model_format describes, validates, reads and writes (no pickle: the hardware flow, the cycle model
and other languages read it without torch). This module holds only what needs the PyTorch model: building an
Export from a trained QuantNet (`build_export`), and the command line.

The parameters follow docs/numerics.md, "From a trained model to integer parameters"; global average pooling
before a linear layer is folded into it (its weight codes repeated over the pooled pixels, 1/(H*W) in its
requantization).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import torch

from contract.cli import Parser, number, run_main
from contract.model_files import write_export
from contract.model_format import (
    JSON_NAME,
    MULT_MAX,
    NPZ_NAME,
    Export,
    ExportedController,
    ExportedLayer,
    ExportError,
    GemmStep,
    GraphNode,
    require,
    steps,
)
from contract.numerics import ACC_BITS_RANGE, MULT_BITS
from golden.layers import QConv2d
from golden.model import HOST_OPS, QuantNet, load_checkpoint, trained_on
from golden.nested import truncate_weight

ACC_BITS = 32


# --- from a trained model ----------------------------------------------------------------------------


def quantize_multiplier(real: float, acc_bits: int, where: str) -> tuple[int, int]:
    """(mult, shift) with mult / 2^shift the closest 16-bit signed fraction to `real`: the largest shift
    (at most ACC + MULT_BITS - 2) whose rounded multiplier still fits."""
    require(math.isfinite(real) and real != 0, f"{where}: requantization multiplier is {real}")
    for shift in range(acc_bits + MULT_BITS - 2, -1, -1):
        mult = round(real * 2.0**shift)
        if abs(mult) <= MULT_MAX:
            return mult, shift
    raise ExportError(f"{where}: requantization multiplier {real:.6g} does not fit {MULT_BITS} signed bits")


def _integer_bias(value: float, acc_bits: int, where: str) -> int:
    limit = 1 << (acc_bits - 1)
    require(
        math.isfinite(value) and -limit <= round(value) < limit,
        f"{where}: bias {value:.6g} does not fit {acc_bits} signed bits",
    )
    return round(value)


def _requant_params(layer, k: int, act_bits: int, acc_bits: int, pool: int, where: str) -> tuple[list, list, list]:
    """Per output channel (bias, mult, shift) at precision k and j = A (Sx = 1 / (2^A - 1)). A linear layer's
    folded global average pooling over `pool` pixels divides its real scale by `pool`."""
    sx = 1.0 / ((1 << act_bits) - 1)
    sw = layer.weight_scale(k)
    require(math.isfinite(sw) and sw > 0, f"{where}: weight scale {sw} is not positive")
    if isinstance(layer, QConv2d):
        g, h = (v.tolist() for v in layer.folded_bn(k))
    else:  # y = Sx * Sw / pool * t + b: a unit BatchNorm with the linear bias as its shift
        g, h = [1.0 / pool] * layer.out_features, layer.bias.detach().double().tolist()
    bias, mult, shift = [], [], []
    for gn, hn in zip(g, h, strict=True):
        require(gn != 0, f"{where}: BatchNorm scale is zero")
        bias.append(_integer_bias(hn / (sx * sw * gn), acc_bits, where))
        m, s = quantize_multiplier(sx * sw * gn * ((1 << act_bits) - 1), acc_bits, where)
        mult.append(m)
        shift.append(s)
    return bias, mult, shift


def _weight_codes(layer, pixels: int) -> np.ndarray:
    """W[K, N] in the lowering's K order; a pooled linear layer's codes repeat over its `pixels` (H x W) input
    pixels (K index = (c, h, w), as the flattened activations)."""
    n = layer.weight.shape[0]
    codes = layer.weight_codes().reshape(n, -1)
    if pixels > 1:
        codes = codes[:, :, None].expand(n, codes.shape[1], pixels).reshape(n, -1)
    return np.ascontiguousarray(codes.T.numpy().astype(np.uint16))


def _requant_table(layer, spec, acc_bits: int, pool: int, where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """bias, mult, shift as int64 [B, N], row k-1 for precision k."""
    params = [
        _requant_params(layer, k, spec.act_bits, acc_bits, pool, f"{where}, k = {k}")
        for k in range(1, spec.base_bits + 1)
    ]
    return tuple(np.array([p[i] for p in params], dtype=np.int64) for i in range(3))


def _exported_controller(model: QuantNet, controller, acc_bits: int) -> ExportedController:
    """A controller's linear layer with the global average pooling over its read layer's output folded in."""
    spec = controller.spec
    shape = next(node.out_shape for node in model.gemm_nodes if node.name == spec.reads)
    pixels = shape[1] * shape[2]
    bias, mult, shift = _requant_table(controller.linear, model.spec, acc_bits, pixels, f"controller {spec.name}")
    layer = ExportedLayer(
        spec.name,
        "linear",
        shape,
        (spec.outputs,),
        None,
        None,
        None,
        "raw",
        _weight_codes(controller.linear, pixels),
        bias,
        mult,
        shift,
    )
    return ExportedController(
        spec.name, spec.budget, spec.reads, spec.candidates, spec.controls, dict(spec.fixed), spec.k, layer
    )


def build_export(model: QuantNet, acc_bits: int = ACC_BITS, dataset: str | None = None) -> Export:
    """The integer form of `model` (in memory): weight codes [K, N], per-k requantization and the graph;
    `dataset` is the data set it was trained on (its checkpoint's training record says which)."""
    spec = model.spec
    layers, graph = [], []
    with torch.no_grad():
        for node in model.nodes:
            host = node.op in HOST_OPS
            relu = node.relu or node.op != "add"  # only an add may be linear in the graph
            graph.append(GraphNode(node.name, node.op if host else "gemm", node.inputs, node.pooling, relu))
            if host:
                continue
            layer = model.layers[node.name]
            pool = node.in_shape[1] * node.in_shape[2] if node.pool else 1
            bias, mult, shift = _requant_table(layer, spec, acc_bits, pool, f"layer {node.name}")
            is_conv = node.op == "conv"
            layers.append(
                ExportedLayer(
                    node.name,
                    "conv" if is_conv else "linear",
                    node.in_shape,
                    node.out_shape,
                    node.kernel if is_conv else None,
                    node.stride if is_conv else None,
                    node.padding if is_conv else None,
                    "relu" if node.relu else "raw",
                    _weight_codes(layer, pool),
                    bias,
                    mult,
                    shift,
                    node.dilation if is_conv else 1,
                    node.groups if is_conv else 1,
                )
            )
        controllers = tuple(_exported_controller(model, c, acc_bits) for c in model.controllers.values())
    export = Export(
        spec.method,
        spec.scheme,
        spec.base_bits,
        spec.act_bits,
        acc_bits,
        tuple(layers),
        tuple(graph),
        controllers,
        dataset,
    )
    signed = {step.name for step in steps(export) if isinstance(step, GemmStep) and step.signed_input}
    if not signed:
        return export
    layers = tuple(_zero_point_folded(layer, export) if layer.name in signed else layer for layer in layers)
    return replace(export, layers=layers)


def _zero_point_folded(layer: ExportedLayer, export: Export) -> ExportedLayer:
    """A layer reading signed codes a (value a - Z, Z = 2^(A-1)) computes sum((a - Z) * w) = acc - Z * sum(w):
    its bias at each k takes -Z times the column sums of its k-bit weights (docs/numerics.md, "A residual add
    without ReLU"), exactly, so every executor runs it as any GEMM on the codes."""
    zero = 1 << (export.act_bits - 1)
    bias = layer.bias.copy()
    for k in range(1, export.base_bits + 1):
        weights = truncate_weight(layer.weight_codes.astype(np.int64), k, export.scheme, export.base_bits)
        bias[k - 1] -= zero * weights.sum(dim=0).numpy()
    limit = 1 << (export.acc_bits - 1)
    require(
        -limit <= int(bias.min()) and int(bias.max()) < limit,
        f"layer {layer.name}: its bias with the signed input's zero point does not fit {export.acc_bits} signed bits",
    )
    return replace(layer, bias=bias)


# --- command line ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = Parser(
        prog="python -m golden.export",
        description="Export a trained checkpoint (golden.train) as integer weight codes and "
        "requantization parameters: DIR/model.json and DIR/model.npz (no pickle).",
    )
    parser.add_argument("model", help="checkpoint written by golden.train (.pt)")
    parser.add_argument(
        "--out", required=True, help="output directory: a new path or an earlier export, replaced atomically"
    )
    parser.add_argument(
        "--acc-bits",
        type=number(int, *ACC_BITS_RANGE),
        default=ACC_BITS,
        help=f"ACC, the engine's accumulator width ({ACC_BITS_RANGE[0]}..{ACC_BITS_RANGE[1]}, default {ACC_BITS}); "
        "every layer's K must fit it without wrapping",
    )
    args = parser.parse_args(argv)
    model, training = load_checkpoint(args.model)
    export = build_export(model, args.acc_bits, trained_on(training))
    write_export(export, args.out, inputs=[args.model])
    print(
        f"wrote {args.out}/{JSON_NAME} and {NPZ_NAME}: {len(export.layers)} GEMM layers, "
        f"{sum(node.op != 'gemm' for node in export.nodes)} host operations, {len(export.controllers)} controllers, "
        f"{export.scheme} scheme, "
        f"B = {export.base_bits}, A = {export.act_bits}, ACC = {export.acc_bits}, k = {export.base_bits}..1, "
        f"inputs {export.dataset or 'of an unrecorded data set'} (pixel / {export.pixel_max or 'PIXEL_MAX'})"
    )


if __name__ == "__main__":
    raise SystemExit(run_main(main))
