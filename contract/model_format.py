"""The exported model, the project's central contract: its format, validation and one graph walk.

An export directory holds two files and nothing executable (no pickle), so the hardware flow, the cycle
model and other languages can read it:

model.json  {"format": "nestmac-model", "format_version": 6, "numerics_contract": <contract version>,
             "method", "scheme", "base_bits" (B), "act_bits" (A), "acc_bits" (ACC),
             "weight_precisions": [B..1], "act_precision": A (requantization is derived for j = A),
             "input": {"shape": [C, H, W], "dataset": the data set trained on (contract.datasets: "digits",
                       "fashion-mnist", or the user's own "npz" or "folder", not its path; null if not recorded),
                       "pixel_max": its pixel scale (null likewise), "quantization": ...}, "lowering": ...,
             "layers": [{"name", "kind": "conv"|"linear", "in_shape", "out_shape",
                         "kernel", "stride", "padding", "dilation" (each an integer, or [height, width] when
                         they differ), "groups" (conv only), "K", "N", "mode": "relu"|"raw"}],
             "graph": [{"name", "op": "gemm"|"add"|"maxpool"|"avgpool"|"concat", "inputs": [names],
                        an add's "relu" (false: a linear add, signed codes), a pooling's "kernel", "stride",
                        "padding", "dilation" ([height, width] each), "ceil_mode", "count_include_pad",
                        "divisor_override"}], "host_ops": ...,
             "controllers": [{"name", "budget", "reads", "candidates", "controls", "fixed", "k",
                              "layer": {a layer entry as above}}]}
model.npz   per layer NAME: "NAME.weight_codes" uint16 [K, N] (unsigned B-bit codes) and
            "NAME.bias", "NAME.mult", "NAME.shift" int64 [B, N], row k-1 holding precision k; the same
            per controller under the controller's name.

Layers run in order, each one GEMM (golden.lowering), or one GEMM per group of a grouped convolution (its
weight codes [K, N] hold the groups side by side: K = C_in/groups * KH * KW, group g owns columns g*N/groups
.. (g+1)*N/groups - 1 and reads input channels g*C_in/groups ..). The graph says what each reads: a "gemm"
node (named like its layer) reads one earlier node's output or "input"; an "add" node is a host operation,
the residual add (with its ReLU, or linear: its output is signed codes, `signed_values`), a "maxpool" or
"avgpool" node a host pooling of activation codes and a "concat" node the host's concatenation of activation
codes along channels (docs/numerics.md, "Host operations"). Format version 1 had no graph (each layer read the
previous one); such exports still load, as that chain, and so do those of version 2 (no "controllers"), 3 (no
"dataset" or "pixel_max": the data set is unknown, and tools fall back to their --data default), 4 (square,
dense, undilated convolutions and no pooling nodes) and 5 (no linear add, no concat). Version 5 added the
pooling nodes and a convolution's non-square kernel, stride and padding, its dilation and groups; a reader of
version 4 refuses a version-5 export. Version 6 added the linear add (an add's "relu", true when absent) and
the concat node.

A controller (docs/numerics.md, "Dynamic precision: the controller"; golden.dynamic runs it) chooses a weight
precision per image for each layer in "controls" from "candidates" (ascending), at a mean BitOPs "budget"
given as the equivalent uniform k; every other layer runs at its k in "fixed". Its "layer" is a linear
layer with the global average pooling over the output of "reads" folded in, in raw mode, with N =
len(controls) * len(candidates) logits laid out layer-major; it runs at weight precision "k".

The parameters follow docs/numerics.md, "From a trained model to integer parameters"; global average pooling
before a linear layer is folded into it (its weight codes repeated over the pooled pixels, 1/(H*W) in its
requantization). golden.export builds an Export from a trained PyTorch model; contract.model_files reads and
writes the two files. Both need numpy only, so the cycle model, the RTL flow and other tools read exports without torch.

Everything that runs or prices a network walks it with `steps(export)`: its GEMMs and host operations in execution
order, with what each reads and the shapes resolved; and a layer's GEMM shape (M, K, N) is
`ExportedLayer.gemm_shape`, the one place it is computed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from contract.cli import InputError
from contract.datasets import DATASETS, PIXEL_MAX
from contract.numerics import (
    ACC_BITS_RANGE,
    ACT_BITS_RANGE,
    BASE_BITS_RANGE,
    CONTRACT_VERSION,
    LAYER_MODES,
    METHODS,
    MULT_BITS,
    SCHEMES,
)

FORMAT = "nestmac-model"
FORMAT_VERSION = 6
READABLE_VERSIONS = (1, 2, 3, 4, 5, 6)
#: Two budgets closer than this are the same budget (Export.controller).
BUDGET_TOLERANCE = 1e-9
INPUT = "input"
HOST_OPS = (
    "add: out = clamp(sum of operand values + Z if linear (relu false), 0, 2^A - 1) per element, Z = 2^(A-1); an "
    "operand's value is its activation code a, a - Z for signed codes (a linear add's output), or for a raw "
    "layer's t = acc + bias (t * mult + 2^(shift-1)) >> shift (round half up), without clamp. "
    "concat: the operands' codes side by side along channels. "
    "maxpool: out = the largest code of the window's taps inside the map (as torch.nn.MaxPool2d). avgpool: "
    "out = floor((S + floor(n/2)) / n), S the sum of the window's codes inside the map, n the divisor of "
    "torch.nn.AvgPool2d (divisor_override, else the window's taps inside the padded map with "
    "count_include_pad, else those inside the map)"
)
JSON_NAME, NPZ_NAME = "model.json", "model.npz"
MULT_MAX = (1 << (MULT_BITS - 1)) - 1
LOWERING = (
    "conv: X[M, K] = im2col of the input codes with zero padding (code 0), tap (kh, kw) of output pixel "
    "(oh, ow) at (oh*stride - padding + kh*dilation, ow*stride - padding + kw*dilation) per dimension; K "
    "index = (c_in, kh, kw) in PyTorch weight order, M index = (batch, oh, ow); the output [M, N] is NCHW "
    "after reshape(batch, oh, ow, N). A grouped conv is one such GEMM per group g: input channels "
    "g*C_in/groups .., weight columns and outputs g*N/groups ... linear: X = previous codes flattened per "
    "sample in (c, h, w) order."
)
POOL_OPS = ("maxpool", "avgpool")
OPS = ("gemm", "add", *POOL_OPS, "concat")


class ExportError(InputError):
    """An export that cannot be written or read as a valid model (one-line message)."""


def pair(value) -> tuple[int, int]:
    """A geometry value as (height, width): an integer stands for both."""
    return (value, value) if _is_int(value) else tuple(value)


def compact(value):
    """A geometry value as the export writes it: an integer when height and width agree, else [height, width]."""
    height, width = pair(value)
    return height if height == width else [height, width]


def conv_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """One output dimension of a convolution (torch.nn.Conv2d's formula)."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


@dataclass(frozen=True)
class ExportedLayer:
    """A GEMM layer. A convolution's `kernel`, `stride`, `padding` and `dilation` are each an integer (height and
    width alike) or a (height, width) pair: `kernel_hw` and the like give the pair."""

    name: str
    kind: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    kernel: int | tuple[int, int] | None
    stride: int | tuple[int, int] | None
    padding: int | tuple[int, int] | None
    mode: str
    weight_codes: np.ndarray  # uint16 [K, N]
    bias: np.ndarray  # int64 [B, N], row k-1
    mult: np.ndarray
    shift: np.ndarray
    dilation: int | tuple[int, int] = 1
    groups: int = 1

    @property
    def kernel_hw(self) -> tuple[int, int]:
        return pair(self.kernel)

    @property
    def stride_hw(self) -> tuple[int, int]:
        return pair(self.stride)

    @property
    def padding_hw(self) -> tuple[int, int]:
        return pair(self.padding)

    @property
    def dilation_hw(self) -> tuple[int, int]:
        return pair(self.dilation)

    @property
    def K(self) -> int:
        return int(self.weight_codes.shape[0])

    @property
    def N(self) -> int:
        return int(self.weight_codes.shape[1])

    def requant(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.bias[k - 1], self.mult[k - 1], self.shift[k - 1]

    def gemm_shape(self, images: int = 1) -> tuple[int, int, int]:
        """(M, K, N) of this layer's GEMM for `images` images: one row per output pixel of a convolution (the
        lowering's im2col), one per image of a linear layer; K products per output. M x K x N is the layer's
        multiply-accumulates also for a grouped convolution, which the engine runs as `groups` GEMMs
        (`group_shapes`). The shapes depend on neither the data nor k."""
        pixels = self.out_shape[1] * self.out_shape[2] if self.kind == "conv" else 1
        return images * pixels, self.K, self.N

    def group_shapes(self, images: int = 1) -> list[tuple[int, int, int]]:
        """(M, K, N) of each engine GEMM of this layer: one per group, each with N / groups output columns."""
        m, k_dim, n = self.gemm_shape(images)
        return [(m, k_dim, n // self.groups)] * self.groups

    @property
    def macs(self) -> int:
        """Multiply-accumulates of one image through this layer's GEMM: M x K x N."""
        return math.prod(self.gemm_shape())

    def describe(self) -> dict:
        entry = {
            "name": self.name,
            "kind": self.kind,
            "in_shape": list(self.in_shape),
            "out_shape": list(self.out_shape),
        }
        if self.kind == "conv":
            entry.update(
                kernel=compact(self.kernel),
                stride=compact(self.stride),
                padding=compact(self.padding),
                dilation=compact(self.dilation),
                groups=self.groups,
            )
        entry.update(K=self.K, N=self.N, mode=self.mode)
        return entry


@dataclass(frozen=True)
class Pooling:
    """A pooling window, as torch.nn.MaxPool2d / AvgPool2d take it, each geometry value a (height, width) pair.
    `dilation` is a max pooling's only; `count_include_pad` and `divisor_override` an average pooling's only."""

    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    ceil_mode: bool = False
    count_include_pad: bool = True
    divisor_override: int | None = None

    def describe(self) -> dict:
        return {
            "kernel": list(self.kernel),
            "stride": list(self.stride),
            "padding": list(self.padding),
            "dilation": list(self.dilation),
            "ceil_mode": self.ceil_mode,
            "count_include_pad": self.count_include_pad,
            "divisor_override": self.divisor_override,
        }

    def output_size(self, size: int, axis: int) -> int:
        """Output size along `axis` (0: height, 1: width) of an input of `size`, torch's pooling formula."""
        kernel, stride, padding, dilation = (v[axis] for v in (self.kernel, self.stride, self.padding, self.dilation))
        extra = stride - 1 if self.ceil_mode else 0
        out = (size + 2 * padding - dilation * (kernel - 1) - 1 + extra) // stride + 1
        if self.ceil_mode and (out - 1) * stride >= size + padding:
            out -= 1  # the last window must start inside the map or its left padding
        return out

    def windows(self, size: int, axis: int) -> list[list[int]]:
        """Per output index along `axis`, the input indices its taps read inside the map (0 .. size-1)."""
        kernel, stride, padding, dilation = (v[axis] for v in (self.kernel, self.stride, self.padding, self.dilation))
        starts = (o * stride - padding for o in range(self.output_size(size, axis)))
        return [[i for i in range(start, start + dilation * kernel, dilation) if 0 <= i < size] for start in starts]

    def divisors(self, size: int, axis: int) -> list[int]:
        """An average pooling's divisor factor per output index along `axis` (the divisor is the product of the
        two axes' factors, or divisor_override): torch's, the taps inside the padded map (the last window of
        ceil_mode may end beyond it) with count_include_pad, else the taps inside the map."""
        kernel, stride, padding = (v[axis] for v in (self.kernel, self.stride, self.padding))
        if not self.count_include_pad:
            return [len(window) for window in self.windows(size, axis)]
        starts = (o * stride - padding for o in range(self.output_size(size, axis)))
        return [min(start + kernel, size + padding) - start for start in starts]


@dataclass(frozen=True)
class GraphNode:
    """What one step of the network reads: a GEMM layer (same name), a host add (`relu` false: a linear add), a
    host pooling (`pooling` says its window) or a host concat, by node name or INPUT."""

    name: str
    op: str  # one of OPS
    inputs: tuple[str, ...]
    pooling: Pooling | None = None
    relu: bool = True  # an add's only

    def describe(self) -> dict:
        entry = {"name": self.name, "op": self.op, "inputs": list(self.inputs)}
        entry |= {"relu": self.relu} if self.op == "add" else {}
        return entry | (self.pooling.describe() if self.op in POOL_OPS else {})


def controller_record(controller) -> dict:
    """The JSON fields of a controller (a checkpoint's golden.controller.ControllerSpec or an export's
    ExportedController, which share them): the export adds its layer, the checkpoint its weights."""
    return {
        "name": controller.name,
        "budget": controller.budget,
        "reads": controller.reads,
        "candidates": list(controller.candidates),
        "controls": list(controller.controls),
        "fixed": dict(controller.fixed),
        "k": controller.k,
    }


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

    def gemm_shapes(self, images: int = 1) -> list[tuple[int, int, int]]:
        """(M, K, N) of every layer's GEMM, in execution order, for a pass of `images` images."""
        return [layer.gemm_shape(images) for layer in self.layers]

    def engine_shapes(self, images: int = 1) -> list[tuple[int, int, int]]:
        """(M, K, N) of every GEMM the engine runs, in execution order: gemm_shapes with each grouped convolution
        as one GEMM per group (ExportedLayer.group_shapes). Cycles and energy are priced on these."""
        return [shape for layer in self.layers for shape in layer.group_shapes(images)]

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


# --- the one walk of the graph ----------------------------------------------------------------------


@dataclass(frozen=True)
class GemmStep:
    """A layer's GEMM: it reads node `source` (a node name or INPUT), whose output has `source_shape`; `last`
    when it is the network's last node (its raw output is the logits)."""

    layer: ExportedLayer
    source: str
    source_shape: tuple[int, ...]
    last: bool
    signed_input: bool = False  # it reads signed codes (golden.export folds their zero point into its bias)

    @property
    def name(self) -> str:
        return self.layer.name

    @property
    def shape(self) -> tuple[int, ...]:
        return self.layer.out_shape


@dataclass(frozen=True)
class PoolStep:
    """A max or average pooling on the host (docs/numerics.md, "Host operations") of the activation codes of
    node `source`, whose output has `source_shape` [C, H, W]."""

    name: str
    op: str  # "maxpool" | "avgpool"
    source: str
    source_shape: tuple[int, ...]
    pooling: Pooling
    signed_input: bool = False  # it pools signed codes (a max pooling only, in a valid export)

    @property
    def shape(self) -> tuple[int, ...]:
        channels, height, width = self.source_shape
        return channels, self.pooling.output_size(height, 0), self.pooling.output_size(width, 1)


@dataclass(frozen=True)
class AddStep:
    """A residual add on the host (docs/numerics.md, "Host operations") of the nodes `operands`, whose outputs
    have `operand_shapes` (all equal in a valid export). With `relu` its sum is clamped to the activation codes;
    without, it is a linear add whose output is signed codes (the code a stands for a - 2^(A-1)). `signed`
    names the operands that are signed codes."""

    name: str
    operands: tuple[str, ...]
    operand_shapes: tuple[tuple[int, ...], ...]
    relu: bool = True
    signed: frozenset[str] = frozenset()

    @property
    def shape(self) -> tuple[int, ...]:
        return self.operand_shapes[0]

    def offset(self, act_bits: int) -> int:
        """What the host adds to the operands' sum before the clamp to 0 .. 2^A - 1: Z = 2^(A-1) for a linear
        add's own output, less Z per signed-code operand (whose code is its value + Z)."""
        zero = 1 << (act_bits - 1)
        return (0 if self.relu else zero) - zero * sum(name in self.signed for name in self.operands)


@dataclass(frozen=True)
class ConcatStep:
    """The host's concatenation along channels of the activation codes of `operands` [C_i, H, W]: a layout
    operation, the codes copied as they are (`signed` names the operands that are signed codes: in a valid
    export all of them, or none)."""

    name: str
    operands: tuple[str, ...]
    operand_shapes: tuple[tuple[int, ...], ...]
    signed: frozenset[str] = frozenset()

    @property
    def shape(self) -> tuple[int, ...]:
        return (sum(shape[0] for shape in self.operand_shapes), *self.operand_shapes[0][1:])


Step = GemmStep | AddStep | PoolStep | ConcatStep


def steps(export: Export) -> Iterator[Step]:
    """The network's nodes in execution order, each with what it reads and those values' shapes resolved: the
    one walk of the graph that executors (golden's integer path, the cycle model, the RTL flow), pricers (the
    host's adds) and the export's own validation share. It needs a well-formed graph (`_check_nodes`)."""
    shapes = {INPUT: export.input_shape}
    nodes = export.nodes
    signed: set[str] = set()  # the nodes whose output is signed codes (signed_values)
    for node in nodes:
        operands = frozenset(name for name in node.inputs if name in signed)
        if node.op == "add":
            step = AddStep(node.name, node.inputs, tuple(shapes[name] for name in node.inputs), node.relu, operands)
        elif node.op == "concat":
            step = ConcatStep(node.name, node.inputs, tuple(shapes[name] for name in node.inputs), operands)
        elif node.op in POOL_OPS:
            (source,) = node.inputs
            step = PoolStep(node.name, node.op, source, shapes[source], node.pooling, bool(operands))
        else:
            (source,) = node.inputs
            step = GemmStep(export.layer(node.name), source, shapes[source], node is nodes[-1], bool(operands))
        yield step  # before its shape is computed, so that the export's validation checks the step first
        shapes[step.name] = step.shape
        if _makes_signed(step):
            signed.add(step.name)


def _makes_signed(step: Step) -> bool:
    """Whether a step outputs signed codes: a linear add, or a pooling or concat of signed codes."""
    if isinstance(step, AddStep):
        return not step.relu
    if isinstance(step, ConcatStep):
        return bool(step.signed)
    return isinstance(step, PoolStep) and step.signed_input


def signed_values(export: Export) -> frozenset[str]:
    """The nodes whose output is signed codes (the code a stands for the value a - 2^(A-1)): every linear add,
    and a max pooling or concat of signed codes."""
    return frozenset(step.name for step in steps(export) if _makes_signed(step))


def extended_operation(step: Step) -> str | None:
    """What a step needs beyond the operations of format version 4 (square, dense, undilated convolutions,
    linear layers and adds with a ReLU), named for a refusal ("max pooling", "grouped convolution", ...), or
    None."""
    if isinstance(step, PoolStep):
        return "max pooling" if step.op == "maxpool" else "average pooling"
    if isinstance(step, ConcatStep):
        return "concat"
    if isinstance(step, AddStep):
        return None if step.relu and not step.signed else "a linear add (signed codes)"
    if step.layer.kind != "conv":
        return None
    layer = step.layer
    if layer.groups > 1:
        return "grouped convolution"
    if layer.dilation_hw != (1, 1):
        return "dilated convolution"
    geometry = (layer.kernel_hw, layer.stride_hw, layer.padding_hw)
    return None if all(len(set(v)) == 1 for v in geometry) else "a non-square convolution"


# --- validation --------------------------------------------------------------------------------------


def require(condition: bool, message: str) -> None:
    """ExportError(message) unless `condition`: every check of an export, here and in golden.export's build."""
    if not condition:
        raise ExportError(message)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _validate(export: Export) -> None:
    require(export.method in METHODS, f"unknown method {export.method!r}")
    require(
        export.dataset is None or export.dataset in DATASETS,
        f"unknown data set {export.dataset!r}; expected one of {', '.join(DATASETS)} (or none recorded)",
    )
    require(export.scheme in SCHEMES, f"unknown scheme {export.scheme!r}")
    for name, value, (lo, hi) in (
        ("base_bits", export.base_bits, BASE_BITS_RANGE),
        ("act_bits", export.act_bits, ACT_BITS_RANGE),
        ("acc_bits", export.acc_bits, ACC_BITS_RANGE),
    ):
        require(_is_int(value) and lo <= value <= hi, f"{name} must be an integer in {lo}..{hi}, got {value!r}")
    require(len(export.layers) > 0, "the export has no layers")
    names = [layer.name for layer in export.layers]
    require(len(set(names)) == len(names), "layer names must be unique")
    for layer in export.layers:
        _validate_layer(export, layer)
    _validate_graph(export)
    controllers = [controller.name for controller in export.controllers]
    require(
        len(set(controllers)) == len(controllers) and not set(controllers) & {*names, INPUT},
        "controller names must be unique and differ from the layers' names",
    )
    for controller in export.controllers:
        _validate_controller(export, controller)


def _validate_controller(export: Export, controller: ExportedController) -> None:
    where = f"controller {controller.name}"
    require(isinstance(controller.name, str) and controller.name != "", "controller names must be non-empty strings")
    names = [layer.name for layer in export.layers]
    require(
        controller.reads in names and export.layer(controller.reads).mode == "relu",
        f"{where}: reads {controller.reads!r}, which is not a layer with a ReLU output",
    )
    after = names[names.index(controller.reads) + 1 :]
    require(
        len(controller.controls) > 0
        and list(controller.controls) == [name for name in after if name in controller.controls],
        f"{where}: controls must be distinct layers after {controller.reads}, in execution order",
    )
    fixed = controller.fixed
    require(
        isinstance(fixed, dict) and sorted([*fixed, *controller.controls]) == sorted(names),
        f"{where}: every layer must be either controlled or fixed, exactly once",
    )
    base = export.base_bits
    candidates = controller.candidates
    require(
        len(candidates) > 0 and list(candidates) == sorted(set(candidates)),
        f"{where}: candidates must be distinct and ascending, got {list(candidates)}",
    )
    for k in (*candidates, *fixed.values(), controller.k):
        require(_is_int(k) and 1 <= k <= base, f"{where}: weight precision {k!r} is not an integer in 1..{base}")
    budget = controller.budget
    require(
        isinstance(budget, float) and 1 <= budget <= base,
        f"{where}: budget {budget!r} is not an equivalent uniform k in 1..{base}",
    )
    layer = controller.layer
    _validate_layer(export, layer)
    require(
        layer.name == controller.name and layer.kind == "linear" and layer.mode == "raw",
        f"{where}: its layer must be a raw linear layer named like the controller",
    )
    require(
        layer.in_shape == export.layer(controller.reads).out_shape,
        f"{where}: its input shape {list(layer.in_shape)} is not {controller.reads}'s output",
    )
    require(
        layer.N == len(controller.controls) * len(candidates),
        f"{where}: N = {layer.N}, expected len(controls) * len(candidates) = "
        f"{len(controller.controls) * len(candidates)}",
    )


def _check_nodes(export: Export) -> None:
    """The graph is well formed, as `steps` needs: every layer runs once, in the layers' order; every node has
    a known op, a new name and operands that run before it, at least two for an add and one otherwise; a
    pooling node has its window."""
    nodes = export.nodes
    require(
        [node.name for node in nodes if node.op == "gemm"] == [layer.name for layer in export.layers],
        "the graph must run every layer exactly once, in the order of 'layers'",
    )
    seen = {INPUT}
    for node in nodes:
        where = f"graph node {node.name}"
        require(node.op in OPS, f"{where}: unknown op {node.op!r}")
        require(node.name not in seen, f"{where}: the name is used twice (or is {INPUT!r})")
        require(all(name in seen for name in node.inputs), f"{where}: reads a node that does not run before it")
        if node.op == "add":
            least = 2 if node.relu else 1  # a linear add of one raw output makes it signed codes
            require(len(node.inputs) >= least, f"{where}: an add needs at least {least} operand(s)")
        elif node.op == "concat":
            require(len(node.inputs) >= 2, f"{where}: a concat needs at least two operands")
        else:
            require(len(node.inputs) == 1, f"{where}: a {node.op} reads exactly one node")
        require(isinstance(node.relu, bool) and (node.relu or node.op == "add"), f"{where}: only an add may be linear")
        require(
            (node.op in POOL_OPS) == isinstance(node.pooling, Pooling),
            f"{where}: a pooling node, and only one, has a pooling window",
        )
        seen.add(node.name)


def _validate_graph(export: Export) -> None:
    """A well-formed graph (`_check_nodes`) whose operands fit, in which a raw output is the network's last or
    feeds exactly one add, whose poolings and concats read activation codes [C, H, W] (a pooling through a
    window torch allows), and in which signed codes are read only where their zero point is exact: by an add,
    a max pooling, a concat of signed codes only, or a GEMM without zero padding (docs/numerics.md)."""
    _check_nodes(export)
    raw: dict[str, int] = {}
    for step in steps(export):
        where = f"graph node {step.name}"
        if isinstance(step, GemmStep):
            layer, source = step.layer, step.source
            require(
                source not in raw,
                f"{where}: reads {source}'s raw output; only the last layer, or one feeding exactly one add, "
                "may output raw values",
            )
            needed = step.source_shape if layer.kind == "conv" else (math.prod(step.source_shape),)
            got = layer.in_shape if layer.kind == "conv" else (math.prod(layer.in_shape),)
            require(
                got == needed,
                f"layer {layer.name}: input shape {list(layer.in_shape)} does not match "
                f"{source}'s output {list(step.source_shape)}",
            )
            require(
                not step.signed_input or layer.kind == "linear" or layer.padding_hw == (0, 0),
                f"{where}: a convolution with zero padding reads signed codes, whose code 0 is not the value 0",
            )
            if layer.mode == "raw":
                raw[step.name] = 0
        elif isinstance(step, PoolStep):
            require(
                step.source not in raw, f"{where}: a pooling reads activation codes, not {step.source}'s raw output"
            )
            require(len(step.source_shape) == 3, f"{where}: a pooling reads a [C, H, W] map")
            require(
                step.op == "maxpool" or not step.signed_input,
                f"{where}: an average pooling reads unsigned codes only (its divisor counts padding as 0)",
            )
            _validate_pooling(step)
        elif isinstance(step, ConcatStep):
            require(not set(step.operands) & set(raw), f"{where}: a concat reads activation codes, not raw outputs")
            require(
                all(len(shape) == 3 for shape in step.operand_shapes)
                and len({shape[1:] for shape in step.operand_shapes}) == 1,
                f"{where}: a concat reads [C, H, W] maps of one H x W, got {[list(s) for s in step.operand_shapes]}",
            )
            require(len(step.signed) in (0, len(step.operands)), f"{where}: a concat mixes signed and unsigned codes")
        else:
            require(
                len(set(step.operand_shapes)) == 1,
                f"{where}: operands of different shapes {sorted(set(step.operand_shapes))}",
            )
            for name in step.operands:
                if name in raw:
                    require(export.layer(name).kind == "conv", f"{where}: operand {name} is not a convolution")
                    raw[name] += 1
    last = export.nodes[-1]
    for name, readers in raw.items():
        require(
            readers == 1 or (name == last.name and readers == 0),
            f"layer {name}: only the last layer, or one feeding exactly one add, may output raw values",
        )
    require(last.op == "gemm", "the network's last node must be a GEMM (its raw output, the logits)")


def _validate_pooling(step: PoolStep) -> None:
    """The window as torch.nn.MaxPool2d / AvgPool2d accept it: positive kernel, stride and dilation, padding at
    most half the kernel, at least one output; dilation and the divisor options only where they apply."""
    where, pooling = f"graph node {step.name}", step.pooling
    values = (pooling.kernel, pooling.stride, pooling.padding, pooling.dilation)
    require(
        all(isinstance(v, tuple) and len(v) == 2 and all(_is_int(x) for x in v) for v in values)
        and min(*pooling.kernel, *pooling.stride, *pooling.dilation) > 0
        and all(0 <= 2 * p <= k for p, k in zip(pooling.padding, pooling.kernel, strict=True)),
        f"{where}: kernel, stride and dilation must be positive integer pairs, padding at most half the kernel",
    )
    require(
        isinstance(pooling.ceil_mode, bool) and isinstance(pooling.count_include_pad, bool),
        f"{where}: ceil_mode and count_include_pad must be booleans",
    )
    if step.op == "maxpool":
        require(
            pooling.count_include_pad and pooling.divisor_override is None,
            f"{where}: count_include_pad and divisor_override are an average pooling's",
        )
    else:
        require(pooling.dilation == (1, 1), f"{where}: an average pooling has no dilation")
        override = pooling.divisor_override
        require(
            override is None or (_is_int(override) and override > 0),
            f"{where}: divisor_override must be a positive integer or null",
        )
    sizes = step.source_shape[1:]
    require(
        min(step.shape) > 0 and all(all(pooling.windows(size, axis)) for axis, size in enumerate(sizes)),
        f"{where}: the window leaves no output of the {list(step.source_shape)} input, or a window with no tap in it",
    )


def _geometry(value, minimum: int) -> bool:
    """An integer, or a (height, width) pair of integers, each at least `minimum`."""
    values = [value] if _is_int(value) else list(value) if isinstance(value, tuple | list) and len(value) == 2 else []
    return bool(values) and all(_is_int(v) and v >= minimum for v in values)


def _validate_layer(export: Export, layer: ExportedLayer) -> None:
    where = f"layer {layer.name}"
    require(layer.kind in ("conv", "linear"), f"{where}: unknown kind {layer.kind!r}")
    require(layer.mode in LAYER_MODES, f"{where}: unknown mode {layer.mode!r}")
    shapes_ok = all(_is_int(d) and d > 0 for d in (*layer.in_shape, *layer.out_shape))
    require(shapes_ok, f"{where}: shapes must be positive integers")
    codes = layer.weight_codes
    require(
        isinstance(codes, np.ndarray) and codes.dtype == np.uint16 and codes.ndim == 2,
        f"{where}: weight codes must be a uint16 [K, N] array",
    )
    require(int(codes.max(initial=0)) < 1 << export.base_bits, f"{where}: weight codes exceed {export.base_bits} bits")
    if layer.kind == "conv":
        require(
            all(_geometry(v, 1) for v in (layer.kernel, layer.stride, layer.dilation)) and _geometry(layer.padding, 0),
            f"{where}: kernel, stride, padding and dilation must be integers or [height, width] pairs (kernel, stride "
            "and dilation > 0)",
        )
        require(len(layer.in_shape) == 3 and len(layer.out_shape) == 3, f"{where}: shapes must be [C, H, W]")
        c_in, h, w = layer.in_shape
        groups = layer.groups
        require(
            _is_int(groups) and groups > 0 and c_in % groups == 0 and layer.out_shape[0] % groups == 0,
            f"{where}: groups {groups!r} must be a positive integer dividing the input and output channels",
        )
        geometry = zip(layer.kernel_hw, layer.stride_hw, layer.padding_hw, layer.dilation_hw, strict=True)
        oh, ow = (conv_output_size(size, *g) for size, g in zip((h, w), geometry, strict=True))
        expected = (c_in // groups * math.prod(layer.kernel_hw), layer.out_shape[0])
        require(tuple(layer.out_shape[1:]) == (oh, ow), f"{where}: output size should be {oh}x{ow}")
    else:
        require(len(layer.out_shape) == 1, f"{where}: a linear layer's output shape is [N]")
        require(layer.groups == 1 and layer.dilation == 1, f"{where}: a linear layer has no groups or dilation")
        expected = (math.prod(layer.in_shape), layer.out_shape[0])
    require(
        codes.shape == expected,
        f"{where}: weight codes have shape {list(codes.shape)}, expected [K, N] = {list(expected)}",
    )
    worst = layer.K * ((1 << export.act_bits) - 1) * ((1 << export.base_bits) - 1)
    require(
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
        require(
            isinstance(values, np.ndarray) and values.dtype == np.int64 and values.shape == (export.base_bits, layer.N),
            f"{where}: {name} must be an int64 [{export.base_bits}, {layer.N}] array",
        )
        require(
            values.size == 0 or (lo <= int(values.min()) and int(values.max()) <= hi),
            f"{where}: {name} values must lie in {lo}..{hi}",
        )
