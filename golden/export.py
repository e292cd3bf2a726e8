"""Export a trained model as integer codes and requantization parameters: `python -m golden.export`.

An export directory holds two files and nothing executable (no pickle), so the hardware flow, the cycle
model and other languages can read it:

model.json  {"format": "nestmac-model", "format_version": 4, "numerics_contract": <contract version>,
             "method", "scheme", "base_bits" (B), "act_bits" (A), "acc_bits" (ACC),
             "weight_precisions": [B..1], "act_precision": A (requantization is derived for j = A),
             "input": {"shape": [C, H, W], "dataset": the data set trained on (null if not recorded),
                       "pixel_max": its pixel scale (null likewise), "quantization": ...}, "lowering": ...,
             "layers": [{"name", "kind": "conv"|"linear", "in_shape", "out_shape",
                         "kernel", "stride", "padding" (conv only), "K", "N", "mode": "relu"|"raw"}],
             "graph": [{"name", "op": "gemm"|"add", "inputs": [names]}], "host_ops": ...,
             "controllers": [{"name", "budget", "reads", "candidates", "controls", "fixed", "k",
                              "layer": {a layer entry as above}}]}
model.npz   per layer NAME: "NAME.weight_codes" uint16 [K, N] (unsigned B-bit codes) and
            "NAME.bias", "NAME.mult", "NAME.shift" int64 [B, N], row k-1 holding precision k; the same
            per controller under the controller's name.

Layers run in order, each one GEMM (golden.lowering). The graph says what each reads: a "gemm" node (named
like its layer) reads one earlier node's output or "input"; an "add" node is a host operation, the
residual add (docs/numerics.md, "Host operations"). Format version 1 had no graph (each layer read the
previous one); such exports still load, as that chain, and so do those of version 2 (no "controllers") and 3
(no "dataset" or "pixel_max": the data set is unknown, and tools fall back to their --data default).

A controller (docs/numerics.md, "Dynamic precision: the controller"; golden.dynamic runs it) chooses a weight
precision per image for each layer in "controls" from "candidates" (ascending), at a mean BitOPs "budget"
given as the equivalent uniform k; every other layer runs at its k in "fixed". Its "layer" is a linear
layer with the global average pooling over the output of "reads" folded in, in raw mode, with N =
len(controls) * len(candidates) logits laid out layer-major; it runs at weight precision "k".

The parameters follow docs/numerics.md, "From a trained model to integer parameters"; global average pooling
before a linear layer is folded into it (its weight codes repeated over the pooled pixels, 1/(H*W) in its
requantization).
"""

from __future__ import annotations

import json
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from contract.cli import InputError, Parser, atomic_dir, number, read_json, run_main
from contract.datasets import DATASETS, PIXEL_MAX
from contract.numerics import (
    ACC_BITS_RANGE,
    ACT_BITS_RANGE,
    BASE_BITS_RANGE,
    CONTRACT_VERSION,
    MODES,
    MULT_BITS,
    SCHEMES,
)
from golden.controller import controller_record
from golden.layers import METHODS, QConv2d
from golden.model import QuantNet, load_checkpoint, trained_on

FORMAT = "nestmac-model"
FORMAT_VERSION = 4
READABLE_VERSIONS = (1, 2, 3, 4)
#: Two budgets closer than this are the same budget (Export.controller).
BUDGET_TOLERANCE = 1e-9
INPUT = "input"
HOST_OPS = (
    "add: out = clamp(sum of operands, 0, 2^A - 1) per element; an operand is activation codes, or a raw "
    "layer's t = acc + bias requantized without clamp: (t * mult + 2^(shift-1)) >> shift (round half up)"
)
ACC_BITS = 32
JSON_NAME, NPZ_NAME = "model.json", "model.npz"
MULT_MAX = (1 << (MULT_BITS - 1)) - 1
LOWERING = (
    "conv: X[M, K] = im2col of the input codes with zero padding (code 0); K index = (c_in, kh, kw) "
    "in PyTorch weight order, M index = (batch, oh, ow); the output [M, N] is NCHW after "
    "reshape(batch, oh, ow, N). linear: X = previous codes flattened per sample in (c, h, w) order."
)


class ExportError(InputError):
    """An export that cannot be written or read as a valid model (one-line message)."""


@dataclass(frozen=True)
class ExportedLayer:
    name: str
    kind: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    kernel: int | None
    stride: int | None
    padding: int | None
    mode: str
    weight_codes: np.ndarray  # uint16 [K, N]
    bias: np.ndarray  # int64 [B, N], row k-1
    mult: np.ndarray
    shift: np.ndarray

    @property
    def K(self) -> int:
        return int(self.weight_codes.shape[0])

    @property
    def N(self) -> int:
        return int(self.weight_codes.shape[1])

    def requant(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.bias[k - 1], self.mult[k - 1], self.shift[k - 1]

    def describe(self) -> dict:
        entry = {
            "name": self.name,
            "kind": self.kind,
            "in_shape": list(self.in_shape),
            "out_shape": list(self.out_shape),
        }
        if self.kind == "conv":
            entry.update(kernel=self.kernel, stride=self.stride, padding=self.padding)
        entry.update(K=self.K, N=self.N, mode=self.mode)
        return entry


@dataclass(frozen=True)
class GraphNode:
    """What one step of the network reads: a GEMM layer (same name) or a host add, by node name or INPUT."""

    name: str
    op: str  # "gemm" | "add"
    inputs: tuple[str, ...]

    def describe(self) -> dict:
        return {"name": self.name, "op": self.op, "inputs": list(self.inputs)}


@dataclass(frozen=True)
class ExportedController:
    """A per-image precision controller (module docstring); `fixed` maps every uncontrolled layer to its k."""

    name: str
    budget: float
    reads: str
    candidates: tuple[int, ...]
    controls: tuple[str, ...]
    fixed: dict[str, int]
    k: int
    layer: ExportedLayer

    def describe(self) -> dict:
        return controller_record(self) | {"layer": self.layer.describe()}


@dataclass(frozen=True)
class Export:
    """A validated export: constructing one checks every shape and range, so no bad export can exist.
    An empty `graph` is the chain of format version 1: each layer reads the previous one."""

    method: str
    scheme: str
    base_bits: int
    act_bits: int
    acc_bits: int
    layers: tuple[ExportedLayer, ...]
    graph: tuple[GraphNode, ...] = ()
    controllers: tuple[ExportedController, ...] = ()
    dataset: str | None = None  # the data set the model was trained on; None when its checkpoint recorded none

    def __post_init__(self):
        _validate(self)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.layers[0].in_shape

    @property
    def nodes(self) -> tuple[GraphNode, ...]:
        """The graph in execution order (the chain when none was given)."""
        if self.graph:
            return self.graph
        names = [INPUT] + [layer.name for layer in self.layers]
        return tuple(GraphNode(name, "gemm", (previous,)) for previous, name in zip(names[:-1], names[1:], strict=True))

    def layer(self, name: str) -> ExportedLayer:
        return next(layer for layer in self.layers if layer.name == name)

    def controller(self, budget: float | None = None) -> ExportedController:
        """The controller for `budget` (equal within BUDGET_TOLERANCE), or the only one for None; InputError
        (one line, naming the budgets there are) when there is no such controller or None is ambiguous."""
        budgets = ", ".join(f"{c.budget:g}" for c in self.controllers)
        if not self.controllers:
            raise InputError("EXPORT holds no controller (train one with golden.train_controller)")
        if budget is None:
            if len(self.controllers) > 1:
                raise InputError(f"the export holds controllers for budgets {budgets}; choose one (dynamic:BUDGET)")
            return self.controllers[0]
        for controller in self.controllers:
            if abs(controller.budget - budget) <= BUDGET_TOLERANCE:
                return controller
        raise InputError(f"the export holds no controller for budget {budget:g}; its budgets: {budgets}")

    @property
    def pixel_max(self) -> int | None:
        """What an input pixel is divided by before its activation code is taken (None: data set unknown)."""
        return None if self.dataset is None else PIXEL_MAX[self.dataset]

    def describe(self) -> dict:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "numerics_contract": CONTRACT_VERSION,
            "method": self.method,
            "scheme": self.scheme,
            "base_bits": self.base_bits,
            "act_bits": self.act_bits,
            "acc_bits": self.acc_bits,
            "weight_precisions": list(range(self.base_bits, 0, -1)),
            "act_precision": self.act_bits,
            "input": {
                "shape": list(self.input_shape),
                "dataset": self.dataset,
                "pixel_max": self.pixel_max,
                "quantization": f"code = round_half_even(clamp(pixel / {self.pixel_max or 'PIXEL_MAX'}, 0, 1) * "
                f"(2^{self.act_bits} - 1))",
            },
            "lowering": LOWERING,
            "host_ops": HOST_OPS,
            "layers": [layer.describe() for layer in self.layers],
            "graph": [node.describe() for node in self.nodes],
            "controllers": [controller.describe() for controller in self.controllers],
        }


# --- validation --------------------------------------------------------------------------------------


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ExportError(message)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _validate(export: Export) -> None:
    _require(export.method in METHODS, f"unknown method {export.method!r}")
    _require(
        export.dataset is None or export.dataset in DATASETS,
        f"unknown data set {export.dataset!r}; expected one of {', '.join(DATASETS)} (or none recorded)",
    )
    _require(export.scheme in SCHEMES, f"unknown scheme {export.scheme!r}")
    for name, value, (lo, hi) in (
        ("base_bits", export.base_bits, BASE_BITS_RANGE),
        ("act_bits", export.act_bits, ACT_BITS_RANGE),
        ("acc_bits", export.acc_bits, ACC_BITS_RANGE),
    ):
        _require(_is_int(value) and lo <= value <= hi, f"{name} must be an integer in {lo}..{hi}, got {value!r}")
    _require(len(export.layers) > 0, "the export has no layers")
    names = [layer.name for layer in export.layers]
    _require(len(set(names)) == len(names), "layer names must be unique")
    for layer in export.layers:
        _validate_layer(export, layer)
    _validate_graph(export)
    controllers = [controller.name for controller in export.controllers]
    _require(
        len(set(controllers)) == len(controllers) and not set(controllers) & {*names, INPUT},
        "controller names must be unique and differ from the layers' names",
    )
    for controller in export.controllers:
        _validate_controller(export, controller)


def _validate_controller(export: Export, controller: ExportedController) -> None:
    where = f"controller {controller.name}"
    _require(isinstance(controller.name, str) and controller.name != "", "controller names must be non-empty strings")
    names = [layer.name for layer in export.layers]
    _require(
        controller.reads in names and export.layer(controller.reads).mode == "relu",
        f"{where}: reads {controller.reads!r}, which is not a layer with a ReLU output",
    )
    after = names[names.index(controller.reads) + 1 :]
    _require(
        len(controller.controls) > 0
        and list(controller.controls) == [name for name in after if name in controller.controls],
        f"{where}: controls must be distinct layers after {controller.reads}, in execution order",
    )
    fixed = controller.fixed
    _require(
        isinstance(fixed, dict) and sorted([*fixed, *controller.controls]) == sorted(names),
        f"{where}: every layer must be either controlled or fixed, exactly once",
    )
    base = export.base_bits
    candidates = controller.candidates
    _require(
        len(candidates) > 0 and list(candidates) == sorted(set(candidates)),
        f"{where}: candidates must be distinct and ascending, got {list(candidates)}",
    )
    for k in (*candidates, *fixed.values(), controller.k):
        _require(_is_int(k) and 1 <= k <= base, f"{where}: weight precision {k!r} is not an integer in 1..{base}")
    budget = controller.budget
    _require(
        isinstance(budget, float) and 1 <= budget <= base,
        f"{where}: budget {budget!r} is not an equivalent uniform k in 1..{base}",
    )
    layer = controller.layer
    _validate_layer(export, layer)
    _require(
        layer.name == controller.name and layer.kind == "linear" and layer.mode == "raw",
        f"{where}: its layer must be a raw linear layer named like the controller",
    )
    _require(
        layer.in_shape == export.layer(controller.reads).out_shape,
        f"{where}: its input shape {list(layer.in_shape)} is not {controller.reads}'s output",
    )
    _require(
        layer.N == len(controller.controls) * len(candidates),
        f"{where}: N = {layer.N}, expected len(controls) * len(candidates) = "
        f"{len(controller.controls) * len(candidates)}",
    )


def _validate_graph(export: Export) -> None:
    """Every layer runs once, in the layers' order; every operand exists earlier and fits; a raw output is the
    network's last or feeds exactly one add."""
    nodes = export.nodes
    _require(
        [node.name for node in nodes if node.op == "gemm"] == [layer.name for layer in export.layers],
        "the graph must run every layer exactly once, in the order of 'layers'",
    )
    shapes: dict[str, tuple[int, ...]] = {INPUT: export.input_shape}
    raw: dict[str, int] = {}
    for node in nodes:
        where = f"graph node {node.name}"
        _require(node.op in ("gemm", "add"), f"{where}: unknown op {node.op!r}")
        _require(node.name not in shapes, f"{where}: the name is used twice (or is {INPUT!r})")
        _require(all(name in shapes for name in node.inputs), f"{where}: reads a node that does not run before it")
        if node.op == "gemm":
            layer = export.layer(node.name)
            _require(len(node.inputs) == 1, f"{where}: a GEMM reads exactly one node")
            (source,) = node.inputs
            _require(
                source not in raw,
                f"{where}: reads {source}'s raw output; only the last layer, or one feeding exactly one add, "
                "may output raw values",
            )
            needed = shapes[source] if layer.kind == "conv" else (math.prod(shapes[source]),)
            got = layer.in_shape if layer.kind == "conv" else (math.prod(layer.in_shape),)
            _require(
                got == needed,
                f"layer {layer.name}: input shape {list(layer.in_shape)} does not match "
                f"{source}'s output {list(shapes[source])}",
            )
            shapes[node.name] = layer.out_shape
            if layer.mode == "raw":
                raw[node.name] = 0
        else:
            _require(len(node.inputs) >= 2, f"{where}: an add needs at least two operands")
            operand_shapes = {shapes[name] for name in node.inputs}
            _require(len(operand_shapes) == 1, f"{where}: operands of different shapes {sorted(operand_shapes)}")
            for name in node.inputs:
                if name in raw:
                    _require(export.layer(name).kind == "conv", f"{where}: operand {name} is not a convolution")
                    raw[name] += 1
            shapes[node.name] = shapes[node.inputs[0]]
    last = nodes[-1].name
    for name, readers in raw.items():
        _require(
            readers == 1 or (name == last and readers == 0),
            f"layer {name}: only the last layer, or one feeding exactly one add, may output raw values",
        )
    _require(nodes[-1].op == "gemm", "the network's last node must be a GEMM (its raw output, the logits)")


def _validate_layer(export: Export, layer: ExportedLayer) -> None:
    where = f"layer {layer.name}"
    _require(layer.kind in ("conv", "linear"), f"{where}: unknown kind {layer.kind!r}")
    _require(layer.mode in MODES, f"{where}: unknown mode {layer.mode!r}")
    shapes_ok = all(_is_int(d) and d > 0 for d in (*layer.in_shape, *layer.out_shape))
    _require(shapes_ok, f"{where}: shapes must be positive integers")
    codes = layer.weight_codes
    _require(
        isinstance(codes, np.ndarray) and codes.dtype == np.uint16 and codes.ndim == 2,
        f"{where}: weight codes must be a uint16 [K, N] array",
    )
    _require(int(codes.max(initial=0)) < 1 << export.base_bits, f"{where}: weight codes exceed {export.base_bits} bits")
    if layer.kind == "conv":
        _require(
            all(_is_int(v) for v in (layer.kernel, layer.stride, layer.padding))
            and layer.kernel > 0
            and layer.stride > 0
            and layer.padding >= 0,
            f"{where}: kernel, stride and padding must be integers (kernel, stride > 0)",
        )
        _require(len(layer.in_shape) == 3 and len(layer.out_shape) == 3, f"{where}: shapes must be [C, H, W]")
        c_in, h, w = layer.in_shape
        oh = (h + 2 * layer.padding - layer.kernel) // layer.stride + 1
        ow = (w + 2 * layer.padding - layer.kernel) // layer.stride + 1
        expected = (c_in * layer.kernel**2, layer.out_shape[0])
        _require(tuple(layer.out_shape[1:]) == (oh, ow), f"{where}: output size should be {oh}x{ow}")
    else:
        _require(len(layer.out_shape) == 1, f"{where}: a linear layer's output shape is [N]")
        expected = (math.prod(layer.in_shape), layer.out_shape[0])
    _require(
        codes.shape == expected,
        f"{where}: weight codes have shape {list(codes.shape)}, expected [K, N] = {list(expected)}",
    )
    worst = layer.K * ((1 << export.act_bits) - 1) * ((1 << export.base_bits) - 1)
    _require(
        worst < 1 << (export.acc_bits - 1), f"{where}: K = {layer.K} can overflow a {export.acc_bits}-bit accumulator"
    )
    half_acc = 1 << (export.acc_bits - 1)
    limits = {
        "bias": (-half_acc, half_acc - 1),
        "mult": (-MULT_MAX - 1, MULT_MAX),
        "shift": (0, export.acc_bits + MULT_BITS - 2),
    }
    for name, (lo, hi) in limits.items():
        values = getattr(layer, name)
        _require(
            isinstance(values, np.ndarray) and values.dtype == np.int64 and values.shape == (export.base_bits, layer.N),
            f"{where}: {name} must be an int64 [{export.base_bits}, {layer.N}] array",
        )
        _require(
            values.size == 0 or (lo <= int(values.min()) and int(values.max()) <= hi),
            f"{where}: {name} values must lie in {lo}..{hi}",
        )


# --- from a trained model ----------------------------------------------------------------------------


def quantize_multiplier(real: float, acc_bits: int, where: str) -> tuple[int, int]:
    """(mult, shift) with mult / 2^shift the closest 16-bit signed fraction to `real`: the largest shift
    (at most ACC + MULT_BITS - 2) whose rounded multiplier still fits."""
    _require(math.isfinite(real) and real != 0, f"{where}: requantization multiplier is {real}")
    for shift in range(acc_bits + MULT_BITS - 2, -1, -1):
        mult = round(real * 2.0**shift)
        if abs(mult) <= MULT_MAX:
            return mult, shift
    raise ExportError(f"{where}: requantization multiplier {real:.6g} does not fit {MULT_BITS} signed bits")


def _integer_bias(value: float, acc_bits: int, where: str) -> int:
    limit = 1 << (acc_bits - 1)
    _require(
        math.isfinite(value) and -limit <= round(value) < limit,
        f"{where}: bias {value:.6g} does not fit {acc_bits} signed bits",
    )
    return round(value)


def _requant_params(layer, k: int, act_bits: int, acc_bits: int, pool: int, where: str) -> tuple[list, list, list]:
    """Per output channel (bias, mult, shift) at precision k and j = A (Sx = 1 / (2^A - 1)). A linear layer's
    folded global average pooling over `pool` pixels divides its real scale by `pool`."""
    sx = 1.0 / ((1 << act_bits) - 1)
    sw = layer.weight_scale(k)
    _require(math.isfinite(sw) and sw > 0, f"{where}: weight scale {sw} is not positive")
    if isinstance(layer, QConv2d):
        g, h = (v.tolist() for v in layer.folded_bn(k))
    else:  # y = Sx * Sw / pool * t + b: a unit BatchNorm with the linear bias as its shift
        g, h = [1.0 / pool] * layer.out_features, layer.bias.detach().double().tolist()
    bias, mult, shift = [], [], []
    for gn, hn in zip(g, h, strict=True):
        _require(gn != 0, f"{where}: BatchNorm scale is zero")
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
            graph.append(GraphNode(node.name, "add" if node.op == "add" else "gemm", node.inputs))
            if node.op == "add":
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
                )
            )
        controllers = tuple(_exported_controller(model, c, acc_bits) for c in model.controllers.values())
    return Export(
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


# --- files -------------------------------------------------------------------------------------------


def write_export(export: Export, directory, inputs=()) -> None:
    """Write model.json and model.npz atomically: `directory` is replaced only when both are complete, and only
    if it is new or an earlier export (contract.cli's output policy; never one of `inputs`)."""
    arrays = {}
    for layer in (*export.layers, *(controller.layer for controller in export.controllers)):
        arrays[f"{layer.name}.weight_codes"] = layer.weight_codes
        arrays.update({f"{layer.name}.{name}": getattr(layer, name) for name in ("bias", "mult", "shift")})
    with atomic_dir(directory, "golden.export", FORMAT, inputs) as tmp:
        (tmp / JSON_NAME).write_text(json.dumps(export.describe(), indent=1) + "\n")
        np.savez(tmp / NPZ_NAME, **arrays)


def _read_json(path: Path) -> dict:
    meta = read_json(path)
    _require(isinstance(meta, dict), f"{path} must hold a JSON object")
    _require(meta.get("format") == FORMAT, f"{path}: format is {meta.get('format')!r}, expected {FORMAT!r}")
    _require(
        meta.get("format_version") in READABLE_VERSIONS,
        f"{path}: format version {meta.get('format_version')!r} is not one of {', '.join(map(str, READABLE_VERSIONS))}",
    )
    _require(
        meta.get("numerics_contract") == CONTRACT_VERSION,
        f"{path}: numerics contract {meta.get('numerics_contract')!r} is not {CONTRACT_VERSION}",
    )
    for key in ("method", "scheme", "base_bits", "act_bits", "acc_bits", "layers"):
        _require(key in meta, f"{path}: missing key {key!r}")
    _require(
        isinstance(meta["layers"], list) and all(isinstance(e, dict) for e in meta["layers"]),
        f"{path}: 'layers' must be a list of objects",
    )
    return meta


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except FileNotFoundError:
        raise ExportError(f"{path} not found") from None
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
        raise ExportError(f"{path} is not a readable npz archive ({type(exc).__name__})") from None


def _layer_from_files(entry: dict, arrays: dict[str, np.ndarray], where: Path) -> ExportedLayer:
    required = ("name", "kind", "in_shape", "out_shape", "mode") + (
        ("kernel", "stride", "padding") if entry.get("kind") == "conv" else ()
    )
    for key in required:
        _require(key in entry, f"{where}: a layer is missing key {key!r}")
    name = entry["name"]
    _require(isinstance(name, str) and name != "", f"{where}: layer names must be non-empty strings")
    _require(
        all(isinstance(entry[key], list) for key in ("in_shape", "out_shape")),
        f"{where}: layer {name}: shapes must be lists",
    )
    found = {}
    for array in ("weight_codes", "bias", "mult", "shift"):
        key = f"{name}.{array}"
        _require(key in arrays, f"{where.parent / NPZ_NAME}: missing array {key!r}")
        found[array] = arrays[key]
        # Rank and dtype before anything reads a shape: a 0-d or float array is a bad file, not a crash.
        _require(
            found[array].ndim == 2 and found[array].dtype.kind in "iu",
            f"{where.parent / NPZ_NAME}: {key!r} must be a 2-D integer array, got {found[array].ndim}-D "
            f"{found[array].dtype}",
        )
    layer = ExportedLayer(
        name,
        entry["kind"],
        tuple(entry["in_shape"]),
        tuple(entry["out_shape"]),
        entry.get("kernel"),
        entry.get("stride"),
        entry.get("padding"),
        entry["mode"],
        **found,
    )
    _require(
        entry.get("K", layer.K) == layer.K and entry.get("N", layer.N) == layer.N,
        f"{where}: layer {name}: K and N disagree with the weight codes' shape",
    )
    return layer


def load_export(directory) -> Export:
    """Read and validate an export directory; ExportError (one line) for anything wrong."""
    directory = Path(directory)
    _require(directory.is_dir(), f"export directory not found: {directory}")
    meta = _read_json(directory / JSON_NAME)
    arrays = _read_npz(directory / NPZ_NAME)
    layers = tuple(_layer_from_files(entry, arrays, directory / JSON_NAME) for entry in meta["layers"])
    graph = _graph_from_json(meta, directory / JSON_NAME) if meta["format_version"] >= 2 else ()
    controllers = _controllers_from_files(meta, arrays, directory / JSON_NAME) if meta["format_version"] >= 3 else ()
    dataset = _dataset_from_json(meta, directory / JSON_NAME) if meta["format_version"] >= 4 else None
    return Export(
        meta["method"],
        meta["scheme"],
        meta["base_bits"],
        meta["act_bits"],
        meta["acc_bits"],
        layers,
        graph,
        controllers,
        dataset,
    )


def _dataset_from_json(meta: dict, where: Path) -> str | None:
    """The data set a version-4 export records, checked against the pixel scale it states beside it."""
    entry = meta.get("input")
    _require(
        isinstance(entry, dict) and "dataset" in entry and "pixel_max" in entry,
        f"{where}: format version 4 needs an 'input' object with 'dataset' and 'pixel_max'",
    )
    dataset = entry["dataset"]
    _require(
        dataset is None or dataset in DATASETS,
        f"{where}: unknown data set {dataset!r}; expected one of {', '.join(DATASETS)} or null",
    )
    expected = None if dataset is None else PIXEL_MAX[dataset]
    _require(
        entry["pixel_max"] == expected and not isinstance(entry["pixel_max"], bool),
        f"{where}: pixel_max {entry['pixel_max']!r} is not {expected} (the scale of data set {dataset})",
    )
    return dataset


def _controllers_from_files(meta: dict, arrays: dict[str, np.ndarray], where: Path) -> tuple[ExportedController, ...]:
    entries = meta.get("controllers")
    _require(isinstance(entries, list), f"{where}: format version 3 needs a 'controllers' list (it may be empty)")
    controllers = []
    for entry in entries:
        keys = ("name", "budget", "reads", "candidates", "controls", "fixed", "k", "layer")
        _require(
            isinstance(entry, dict) and all(key in entry for key in keys),
            f"{where}: a controller needs the keys {', '.join(keys)}",
        )
        _require(
            isinstance(entry["candidates"], list)
            and isinstance(entry["controls"], list)
            and isinstance(entry["fixed"], dict)
            and isinstance(entry["layer"], dict)
            and isinstance(entry["budget"], int | float)
            and not isinstance(entry["budget"], bool),
            f"{where}: controller {entry['name']!r}: candidates and controls must be lists, fixed and layer objects, "
            "budget a number",
        )
        layer = _layer_from_files(entry["layer"], arrays, where)
        controllers.append(
            ExportedController(
                entry["name"],
                float(entry["budget"]),
                entry["reads"],
                tuple(entry["candidates"]),
                tuple(entry["controls"]),
                dict(entry["fixed"]),
                entry["k"],
                layer,
            )
        )
    return tuple(controllers)


def _graph_from_json(meta: dict, where: Path) -> tuple[GraphNode, ...]:
    entries = meta.get("graph")
    _require(isinstance(entries, list) and entries, f"{where}: format version 2 needs a non-empty 'graph' list")
    nodes = []
    for entry in entries:
        _require(
            isinstance(entry, dict)
            and isinstance(entry.get("name"), str)
            and isinstance(entry.get("op"), str)
            and isinstance(entry.get("inputs"), list)
            and all(isinstance(name, str) for name in entry["inputs"]),
            f"{where}: a graph node needs a string 'name' and 'op' and a list of string 'inputs'",
        )
        nodes.append(GraphNode(entry["name"], entry["op"], tuple(entry["inputs"])))
    return tuple(nodes)


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
        f"{sum(node.op == 'add' for node in export.nodes)} host adds, {len(export.controllers)} controllers, "
        f"{export.scheme} scheme, "
        f"B = {export.base_bits}, A = {export.act_bits}, ACC = {export.acc_bits}, k = {export.base_bits}..1, "
        f"inputs {export.dataset or 'of an unrecorded data set'} (pixel / {export.pixel_max or 'PIXEL_MAX'})"
    )


if __name__ == "__main__":
    raise SystemExit(run_main(main))
