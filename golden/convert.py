"""From a user's float PyTorch model to the nested-quantized `golden.model.QuantNet` (via torch.fx).

Supported operations, as a user writes them (modules or functions); docs/user-guide.md, "Bring your own
model", has them as a table:
  - Conv2d (any kernel, stride, padding, dilation and groups, depthwise included; padding="same" when it pads
    evenly, i.e. an odd dilated kernel; zero padding), optionally followed by BatchNorm2d (affine, with
    running statistics): becomes a QConv2d with one BatchNorm per trained precision, initialised from the
    model's weights and BatchNorm; a convolution without a BatchNorm gets a fresh one. The engine folds
    BatchNorm into the requantizer and the QConv2d has no bias of its own, so a conv bias b is folded into the
    BatchNorm's running mean (BN(z + b) = BN'(z) with mean' = mean - b): it lands in the layer's
    requantization bias, and the converted model computes what the source model does. A grouped convolution
    runs as one engine GEMM per group (golden.lowering);
  - ReLU (module, F.relu, torch.relu, .relu(), clamp(x, min=0)): the requantizer's ReLU, which also clamps to
    [0, 1] at the activation grid 1/(2^A - 1) (docs/numerics.md): every activation between layers is an
    unsigned code;
  - a clamp at a bound b > 0 (ReLU6, F.relu6, Hardtanh(0, b), F.hardtanh(x, 0, b), torch.clamp(x, 0, b),
    x.clamp(0, b), x.clamp(min=0, max=b)): the same ReLU at a fixed scale, the bound being the unit of the
    codes it makes (code 2^A - 1 means b). The converter divides the producing layer's BatchNorm affine (or a
    Linear's weight and bias) by b and multiplies what reads the codes by b (a conv's BatchNorm statistics, a
    Linear's weights), so the converted model computes what the source model does (docs/numerics.md, "A clamp
    at a bound"); the integer numerics are the relu mode's, unchanged;
  - residual add (`a + b`, torch.add) of two activations or conv(+BN) pre-activations, followed by ReLU (or a
    clamp): a host operation between engine commands (docs/numerics.md, "Host operations");
  - the same add with no ReLU after it (MobileNetV2's linear bottleneck), and a conv(+BN) output read with no
    ReLU: a linear add, whose output is signed codes of the unit of its activation operands (SIGNED_UNIT when
    none); an unpadded conv, a Linear (global pooling included), a max pooling, an add or a concat may read
    them, a padded conv or an average pooling may not (docs/numerics.md, "A residual add without ReLU");
  - concat along channels (torch.cat(tensors, dim=1)) of activations of one H x W and one bound: a host
    concat of the codes;
  - max and average pooling (MaxPool2d, F.max_pool2d with any kernel, stride, padding, dilation and
    ceil_mode; AvgPool2d, F.avg_pool2d with any kernel, stride, padding, ceil_mode, count_include_pad and
    divisor_override; AdaptiveMaxPool2d(1)) of activations: host operations on the codes;
  - global average pooling (AdaptiveAvgPool2d(1), F.adaptive_avg_pool2d(x, 1), an AvgPool2d over the whole
    map without padding, x.mean((2, 3))) then flatten then Linear: folded into the linear layer's GEMM on the
    engine;
  - flatten (nn.Flatten(), torch.flatten(x, 1), x.flatten(1), and the views that mean the same:
    x.view(x.size(0), -1), x.reshape(x.shape[0], -1), x.view(-1, C*H*W), torch.reshape) then Linear; Linear
    followed by ReLU inside the network, or last (its raw output is the logits);
  - Dropout (nn.Dropout, Dropout1d/2d/3d, AlphaDropout, F.dropout...) and nn.Identity: removed, as they are
    no-ops at inference.
Hardswish and SiLU are refused with their reason (negative and curved: neither the requantizer nor a host
operation computes them). Anything else is refused with one InputError listing every node that does not
convert (the operation, the graph node and its module path), so a user fixes a model in one round rather than
one node per attempt.

`python -m golden.convert MODEL.py:CLASS --input-shape C,H,W` (or MODEL.onnx, a float ONNX model read by
golden.onnx_import) converts a model and prints the converted graph and what the engine runs (GEMM M, K, N
per layer; host adds and poolings), or the refusal as one `error:` line.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import operator
import re
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from contract.cli import InputError, Parser, run_main
from contract.model_format import ConcatStep, GemmStep, Pooling, PoolStep, compact, pair, steps
from contract.numerics import METHODS, SCHEMES
from golden.export import build_export
from golden.layers import QConv2d, QuantSpec
from golden.model import INPUT, Node, QuantNet
from golden.nets import NETS, float_net

_RELU_FUNCTIONS = (F.relu, torch.relu)
_ADD_FUNCTIONS = (operator.add, operator.iadd, torch.add)
_FLATTEN_FUNCTIONS = (torch.flatten,)
_GLOBAL_POOL_FUNCTIONS = (F.adaptive_avg_pool2d,)
_CLAMP_FUNCTIONS = (F.relu6, F.hardtanh, torch.clamp, torch.clip)
_CLAMP_METHODS = ("clamp", "clamp_", "clip", "clip_")
_CONCAT_FUNCTIONS = (torch.cat, torch.concat, torch.concatenate)
#: Activations with negative outputs, refused with this reason (docs/user-guide.md, "Bring your own model").
_SIGNED_ACTIVATIONS = {
    nn.Hardswish: "Hardswish",
    nn.SiLU: "SiLU",
    F.hardswish: "Hardswish",
    F.silu: "SiLU",
}
_SIGNED_ACTIVATION_REASON = (
    "is negative for some inputs and not piecewise linear at a clamp: the requantizer makes unsigned codes (a ReLU "
    "or a clamp to [0, b]) and no host operation computes it; replace it by ReLU6 (F.relu6) and fine-tune"
)
# Parameter names of the functional forms, in positional order, after the input.
_MAX_POOL_ARGS = ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")
_AVG_POOL_ARGS = ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override")
#: No-ops at inference, removed at conversion.
_REMOVED_MODULES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.Identity)
_REMOVED_FUNCTIONS = (F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout)
_VIEW_METHODS = ("view", "reshape")
MAX_INPUT_VALUES = 1 << 20  # the CLI's bound on C*H*W (3x512x512 fits): shape propagation runs one such image
#: The unit of signed codes that no activation operand sets (a linear add of raw outputs only): code
#: 2^(A-1) + c stands for c * SIGNED_UNIT / (2^A - 1), so the range is about [-4, 4] (docs/numerics.md).
SIGNED_UNIT = 8.0


@dataclass
class _Value:
    """What an fx node's output is, for the quantized network: `kind` is "act" (codes on [0, 1]), "pre" (a
    pre-activation of `source`, awaiting its BatchNorm or ReLU, or an add's input), "pooled" (globally
    average-pooled codes), "flat" or "pooled_flat" (flattened for a Linear); or not a tensor but the sizes
    of `source`'s output ("sizes": x.shape, x.size()) or its batch size ("batch": x.size(0), x.shape[0]), which
    only a view may read."""

    source: str
    kind: str
    shape: tuple[int, ...]  # of the activation `source` produced (before pooling or flattening)
    fx_node: fx.Node | None = None
    unit: float = 1.0  # an activation's bound in the source model: code 2^A - 1 stands for `unit`
    signed: bool = False  # signed codes (a linear add's output): code a stands for (a - 2^(A-1)) * unit / (2^A - 1)


@dataclass
class _Builder:
    op: str
    inputs: tuple[str, ...]
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    relu: bool = False
    kernel: int | tuple[int, int] = 0
    stride: int | tuple[int, int] = 0
    padding: int | tuple[int, int] = 0
    pool: bool = False
    dilation: int | tuple[int, int] = 1
    groups: int = 1
    pooling: Pooling | None = None
    weight: torch.Tensor | None = None
    bias: torch.Tensor | None = None  # a linear layer's bias, or a conv bias to fold into its BatchNorm
    batchnorm: nn.BatchNorm2d | None = None
    in_unit: float = 1.0  # the bound of the activations it reads (a clamp's, _Value.unit)
    out_unit: float = 1.0  # the bound of the clamp after it
    operands: list[_Builder] = field(default_factory=list)  # an add's conv pre-activation operands
    act_units: tuple[float, ...] = ()  # an add's activation operands' bounds


class _Downstream(Exception):
    """A node reads the output of a node that was refused: only the refused node's problem is reported, since
    whether this one would convert depends on what the refused one becomes."""


@dataclass(frozen=True)
class Conversion:
    """A converted network and the nodes removed from the source model (no-ops at inference), each described
    as "node 'NAME' (module 'PATH'): TYPE"."""

    model: QuantNet
    removed: tuple[str, ...]


class _Converter:
    def __init__(self, module: nn.Module, input_shape: tuple[int, ...]):
        try:  # a graph already built (golden.onnx_import) keeps its node names, which the messages quote
            self.graph_module = module if isinstance(module, fx.GraphModule) else fx.symbolic_trace(module)
        except Exception as exc:  # fx reports untraceable code with many exception types
            raise InputError(f"the model cannot be traced by torch.fx ({type(exc).__name__}: {exc})") from None
        self.modules = dict(self.graph_module.named_modules())
        self.input_shape = tuple(input_shape)
        self._propagate_shapes(module)
        self.values: dict[fx.Node, _Value] = {}
        self.builders: dict[str, _Builder] = {}
        self.refused: set[fx.Node] = set()  # nodes that do not convert, and those reading them (_Downstream)
        self.removed: dict[fx.Node, str] = {}  # no-ops passed through: their readers read their input

    def _propagate_shapes(self, module: nn.Module) -> None:
        """Every node's output shape for one input of `input_shape` (ShapeProp, in eval mode). ShapeProp prints a
        traceback itself before re-raising; that is swallowed, and the failing operation's own error reported."""
        training = module.training
        module.eval()
        try:
            with torch.no_grad(), contextlib.redirect_stderr(io.StringIO()):
                ShapeProp(self.graph_module).propagate(torch.zeros(1, *self.input_shape))
        except Exception as exc:  # a shape mismatch surfaces as whatever the failing op raises
            cause = exc.__cause__ or exc
            raise InputError(
                f"the model does not run on input shape {list(self.input_shape)} ({type(cause).__name__}: {cause})"
            ) from None
        finally:
            module.train(training)

    # --- helpers -------------------------------------------------------------------------------------

    @staticmethod
    def where(node: fx.Node) -> str:
        """The node and its module path: the module it calls, or the one whose forward() holds the call."""
        if node.op == "call_module":
            return f"node {node.name!r} (module {node.target!r})"
        stack = node.meta.get("nn_module_stack") or {}
        return f"node {node.name!r}" + (f" (in module {next(reversed(stack.values()))[0]!r})" if stack else "")

    def _shape(self, node: fx.Node) -> tuple[int, ...]:
        return tuple(node.meta["tensor_meta"].shape[1:])

    def _name(self, node: fx.Node) -> str:
        return self._unique(re.sub(r"\W", "_", str(node.target) if node.op == "call_module" else node.name))

    def _unique(self, base: str) -> str:
        name, suffix = base, 1
        while name in self.builders or name == INPUT:
            name, suffix = f"{base}_{suffix}", suffix + 1
        return name

    def _arg(self, node: fx.Node, index: int = 0) -> _Value:
        arg = node.args[index] if index < len(node.args) else None
        if isinstance(arg, fx.Node) and arg in self.refused:
            raise _Downstream
        if not isinstance(arg, fx.Node) or arg not in self.values:
            raise InputError(f"{self.where(node)}: operand {index} is not a tensor the converter follows")
        return self.values[arg]

    def _readers(self, node: fx.Node) -> list[fx.Node]:
        """The nodes reading `node`'s output, looking through removed no-ops to their own readers; a read of its
        sizes only (x.size(0), x.shape) does not count."""
        readers = []
        for user in node.users:
            if user in self.removed:
                readers += self._readers(user)
            elif (user.op, user.target) not in (("call_method", "size"), ("call_function", getattr)):
                readers.append(user)
        return readers

    def _activation(self, node: fx.Node, what: str, kinds=("act",), index: int = 0) -> _Value:
        value = self._arg(node, index)
        if value.kind == "pre":
            value = self._linear(node, value, what)
        if value.kind not in kinds:
            raise InputError(f"{self.where(node)}: {what} cannot read a {value.kind.replace('_', ' ')} tensor")
        return value

    def _linear(self, node: fx.Node, value: _Value, what: str) -> _Value:
        """A pre-activation read as it is (no ReLU after it): signed codes. An add becomes a linear add; a conv
        output (after its BatchNorm) gets a linear add of its raw output alone. Every later reader reads the
        signed codes. A linear layer's output is refused: inside the network it must pass through a ReLU."""
        builder = self.builders[value.source]
        if builder.op not in ("add", "conv"):
            raise InputError(
                f"{self.where(node)}: {what} reads {value.source!r} before a ReLU; a linear layer's output inside the "
                "network must pass through a ReLU (only a conv or add output may be read without one, as signed codes)"
            )
        units = set(builder.act_units)
        if len(units) > 1:
            raise InputError(
                f"{self.where(node)}: the add {value.source!r} without a ReLU after it has operands bounded at "
                f"{', '.join(map(str, sorted(units)))}: the operands of a linear add must share one bound"
            )
        unit = units.pop() if units else SIGNED_UNIT
        if builder.op == "conv":
            name = self._unique(f"{value.source}_signed")
            builder = _Builder("add", (value.source,), value.shape, value.shape, operands=[builder])
            self.builders[name] = builder
            value = replace(value, source=name)
        for operand in builder.operands:
            operand.out_unit = unit
        signed = replace(value, kind="act", unit=unit, signed=True)
        self.values[value.fx_node] = signed
        return signed

    def _pre(self, node: fx.Node, value: _Value, what: str) -> _Builder:
        """The builder of a pre-activation operand, which only this consumer may read."""
        if len(self._readers(value.fx_node)) != 1:
            raise InputError(
                f"{self.where(node)}: the pre-activation {value.source!r} is used by several operations; only its "
                f"{what} may read it"
            )
        return self.builders[value.source]

    def _new(self, node: fx.Node, builder: _Builder, kind: str = "pre") -> None:
        name = self._name(node)
        self.builders[name] = builder
        self.values[node] = _Value(name, kind, builder.out_shape, node)

    # --- operations ----------------------------------------------------------------------------------

    def conv(self, node: fx.Node, conv: nn.Conv2d) -> None:
        if conv.padding_mode != "zeros":
            raise InputError(f"{self.where(node)}: padding_mode {conv.padding_mode!r}; only 'zeros' lowers (code 0)")
        padding = self._conv_padding(node, conv)  # its own problems first: they are reported even downstream
        value = self._activation(node, "Conv2d")
        if value.signed and pair(padding) != (0, 0):
            raise InputError(
                f"{self.where(node)}: a conv with zero padding reads signed codes ({value.source!r}: an output without "
                "a ReLU), whose code 0 is not the value 0; only an unpadded conv (a 1x1, as MobileNetV2's) reads them"
            )
        builder = _Builder(
            "conv",
            (value.source,),
            value.shape,
            self._shape(node),
            kernel=_geometry(conv.kernel_size),
            stride=_geometry(conv.stride),
            padding=_geometry(padding),
            dilation=_geometry(conv.dilation),
            groups=conv.groups,
            weight=conv.weight.detach().clone(),
            bias=None if conv.bias is None else conv.bias.detach().clone(),
            in_unit=value.unit,
        )
        self._new(node, builder)

    def _conv_padding(self, node: fx.Node, conv: nn.Conv2d) -> tuple[int, int]:
        """The padding per dimension; padding="same" (stride 1) pads d*(k-1)/2 on each side, which must be even."""
        if conv.padding == "valid":
            return 0, 0
        if conv.padding != "same":
            return conv.padding
        total = [d * (k - 1) for k, d in zip(conv.kernel_size, conv.dilation, strict=True)]
        if any(t % 2 for t in total):
            raise InputError(
                f"{self.where(node)}: padding='same' with kernel {list(conv.kernel_size)} and dilation "
                f"{list(conv.dilation)} pads one side more than the other, which does not lower; use an odd kernel "
                "or explicit padding"
            )
        return tuple(t // 2 for t in total)

    def batchnorm(self, node: fx.Node, bn: nn.BatchNorm2d) -> None:
        if not bn.affine or not bn.track_running_stats:
            raise InputError(f"{self.where(node)}: BatchNorm2d needs affine=True and track_running_stats=True")
        value = self._arg(node)
        builder = self.builders.get(value.source) if value.kind == "pre" else None
        if builder is None or builder.op != "conv" or builder.batchnorm is not None:
            raise InputError(f"{self.where(node)}: BatchNorm2d must directly follow a Conv2d")
        self._pre(node, value, "BatchNorm2d")
        builder.batchnorm = bn
        self.values[node] = _Value(value.source, "pre", value.shape, node)

    def relu(self, node: fx.Node, bound: float | None = None) -> None:
        """ReLU, or a clamp to [0, bound] (module docstring): the requantizer's ReLU, at the unit `bound`."""
        value = self._arg(node)
        what = "ReLU" if bound is None else f"a clamp at {bound:g}"
        if value.kind == "act":
            if value.signed:
                raise InputError(
                    f"{self.where(node)}: {what} of signed codes (an output read before it as well) does not lower; "
                    "apply it to the add or conv output that only it reads"
                )
            if bound is not None and bound < value.unit:
                raise InputError(
                    f"{self.where(node)}: {what} of activations bounded at {value.unit:g} does not lower (a second "
                    "clamp below the first)"
                )
            self.values[node] = value  # codes are already non-negative and within their bound
            return
        if value.kind != "pre":
            raise InputError(f"{self.where(node)}: {what} of a {value.kind.replace('_', ' ')} tensor does not lower")
        builder = self._pre(node, value, what)
        unit = 1.0 if bound is None else bound
        for operand in builder.operands:
            operand.out_unit = unit
        units = set(builder.act_units)
        if units - {unit}:
            raise InputError(
                f"{self.where(node)}: {what} after an add of activations bounded at {', '.join(map(str, units))}: "
                "the operands of an add and the clamp after it must share one bound"
            )
        builder.relu, builder.out_unit = True, unit
        self.values[node] = replace(value, kind="act", fx_node=node, unit=unit)

    def clamp(self, node: fx.Node) -> None:
        """ReLU6, hardtanh and clamp: a clamp at a bound when the lower end is 0 and the upper a positive number;
        clamp(x, min=0) with no upper end is a ReLU."""
        if node.target is F.relu6 or node.op == "call_module" and isinstance(self.modules[node.target], nn.ReLU6):
            low, high = 0.0, 6.0
        elif node.op == "call_module":
            module = self.modules[node.target]
            low, high = module.min_val, module.max_val
        elif node.target is F.hardtanh:
            low, high = _bound_args(node, ("min_val", "max_val"), (-1.0, 1.0))
        else:
            low, high = _bound_args(node, ("min", "max"), (None, None))
        if _is_number(low) and low == 0 and high is None:
            self.relu(node)
            return
        if not (_is_number(low) and low == 0 and _is_number(high) and high > 0):
            raise InputError(
                f"{self.where(node)}: only a clamp to [0, b] with a number b > 0 lowers (ReLU6, Hardtanh(0, b), "
                f"clamp(x, 0, b)), got [{low}, {high}]"
            )
        self.relu(node, float(high))

    def add(self, node: fx.Node) -> None:
        if len(node.args) != 2 or node.kwargs:
            raise InputError(f"{self.where(node)}: only a plain sum of two tensors (a residual add) is supported")
        operands = [self._arg(node, index) for index in (0, 1)]
        for index, value in enumerate(operands):
            if value.kind == "pre" and len(self._readers(value.fx_node)) > 1:  # read elsewhere too: signed codes
                operands[index] = value = self._linear(node, value, "residual add")
            if value.kind == "pre":
                if self._pre(node, value, "residual add").op != "conv":
                    raise InputError(f"{self.where(node)}: an add operand must be an activation or a conv output")
            elif value.kind != "act":
                raise InputError(f"{self.where(node)}: an add operand cannot be a {value.kind.replace('_', ' ')}")
        if operands[0].shape != operands[1].shape or len(operands[0].shape) != 3:
            raise InputError(
                f"{self.where(node)}: a residual add needs two [C, H, W] operands of one shape, got "
                f"{list(operands[0].shape)} and {list(operands[1].shape)}"
            )
        shape = operands[0].shape
        builder = _Builder("add", tuple(v.source for v in operands), shape, shape)
        builder.operands = [self.builders[v.source] for v in operands if v.kind == "pre"]
        builder.act_units = tuple(v.unit for v in operands if v.kind == "act")
        self._new(node, builder)

    def concat(self, node: fx.Node) -> None:
        """torch.cat of activations along channels: a host concat of their codes (one bound, all signed or none)."""
        options = _options(node, ("dim",))
        tensors = node.args[0] if node.args else node.kwargs.get("tensors")
        if options.get("dim", 0) not in (1, -3) or not isinstance(tensors, (list, tuple)) or len(tensors) < 2:
            raise InputError(f"{self.where(node)}: only a concat of two or more tensors along channels (dim=1) lowers")
        values = [self._operand(node, tensor, "concat") for tensor in tensors]
        shapes = [value.shape for value in values]
        if any(len(shape) != 3 for shape in shapes) or len({shape[1:] for shape in shapes}) != 1:
            raise InputError(f"{self.where(node)}: a concat needs [C, H, W] maps of one H x W, got {list(shapes)}")
        if len({value.unit for value in values}) != 1 or len({value.signed for value in values}) != 1:
            raise InputError(
                f"{self.where(node)}: the operands of a concat must share one bound and be all signed or all unsigned "
                "codes (clamp them alike)"
            )
        builder = _Builder("concat", tuple(value.source for value in values), shapes[0], self._shape(node))
        self._new(node, builder, kind="act")
        self.values[node].unit, self.values[node].signed = values[0].unit, values[0].signed

    def _operand(self, node: fx.Node, tensor: object, what: str) -> _Value:
        """An operand given inside a list (torch.cat's), read as activations (a pre-activation as signed codes)."""
        if isinstance(tensor, fx.Node) and tensor in self.refused:
            raise _Downstream
        value = self.values.get(tensor) if isinstance(tensor, fx.Node) else None
        if value is None:
            raise InputError(f"{self.where(node)}: a {what} operand is not a tensor the converter follows")
        value = self._linear(node, value, what) if value.kind == "pre" else value
        if value.kind != "act":
            raise InputError(f"{self.where(node)}: a {what} cannot read a {value.kind.replace('_', ' ')} tensor")
        return value

    def pool(self, node: fx.Node) -> None:
        """Global average pooling (to 1x1), folded into the Linear that reads it."""
        value = self._activation(node, "average pooling")
        if len(value.shape) != 3 or self._shape(node)[1:] not in ((1, 1), ()):
            raise InputError(
                f"{self.where(node)}: only global average pooling (to 1x1) lowers (folded into the next Linear)"
            )
        kind = "pooled" if self._shape(node)[1:] == (1, 1) else "pooled_flat"
        self.values[node] = replace(value, kind=kind, fx_node=node)

    def window_pool(self, node: fx.Node, op: str, options: dict) -> None:
        """MaxPool2d / AvgPool2d with torch's `options` (kernel_size, stride, ...): a host pooling of the codes, or
        for an average over the whole map without padding, the global pooling folded into the next Linear."""
        if options.get("return_indices"):
            raise InputError(f"{self.where(node)}: max pooling with return_indices=True does not lower")
        value = self._activation(node, "max pooling" if op == "maxpool" else "average pooling")
        if len(value.shape) != 3:
            raise InputError(f"{self.where(node)}: pooling reads a [C, H, W] map, got {list(value.shape)}")
        kernel = pair(options["kernel_size"])
        stride = kernel if options.get("stride") in (None, ()) else pair(options["stride"])
        pooling = Pooling(
            kernel,
            stride,
            pair(options.get("padding", 0)),
            pair(options.get("dilation", 1)),
            bool(options.get("ceil_mode", False)),
            bool(options.get("count_include_pad", True)),
            options.get("divisor_override"),
        )
        if (
            op == "avgpool"
            and kernel == value.shape[1:]
            and pooling.padding == (0, 0)
            and not options.get("divisor_override")
        ):
            self.pool(node)
            return
        if op == "avgpool" and value.signed:
            raise InputError(
                f"{self.where(node)}: an average pooling of signed codes ({value.source!r}: an output without a ReLU) "
                "does not lower: its divisor would count padding and the signed codes' zero point apart"
            )
        builder = _Builder(op, (value.source,), value.shape, self._shape(node), pooling=pooling)
        self._new(node, builder, kind="act")
        self.values[node].unit, self.values[node].signed = value.unit, value.signed

    def _pool_module(self, node: fx.Node, module: nn.Module) -> None:
        if isinstance(module, nn.AdaptiveMaxPool2d):
            self._adaptive_max(node, module.output_size, module.return_indices)
        elif isinstance(module, nn.MaxPool2d):
            self.window_pool(node, "maxpool", {name: getattr(module, name) for name in _MAX_POOL_ARGS})
        else:
            self.window_pool(node, "avgpool", {name: getattr(module, name) for name in _AVG_POOL_ARGS})

    def _adaptive_max(self, node: fx.Node, size, return_indices: bool) -> None:
        """AdaptiveMaxPool2d(1): a max pooling over the whole map."""
        if pair(size) != (1, 1):
            raise InputError(f"{self.where(node)}: only AdaptiveMaxPool2d(1) (global max pooling) lowers")
        shape = self._arg(node).shape
        window = shape[1:] if len(shape) == 3 else 1
        self.window_pool(node, "maxpool", {"kernel_size": window, "return_indices": return_indices})

    def flatten(self, node: fx.Node) -> None:
        value = self._activation(node, "flatten", kinds=("act", "pooled", "flat", "pooled_flat"))
        if self._shape(node) != (math.prod(self._shape(node.args[0])),):  # a view may move the batch dimension
            raise InputError(f"{self.where(node)}: only flattening everything but the batch dimension is supported")
        kind = "pooled_flat" if value.kind.startswith("pooled") else "flat"  # flattening twice changes nothing
        self.values[node] = replace(value, kind=kind, fx_node=node)

    def linear(self, node: fx.Node, linear: nn.Linear) -> None:
        value = self._activation(node, "Linear", kinds=("act", "flat", "pooled_flat"))
        if value.kind == "act" and len(value.shape) != 1:
            raise InputError(f"{self.where(node)}: a Linear needs flattened input (flatten or global pooling first)")
        bias = linear.bias.detach().clone() if linear.bias is not None else torch.zeros(linear.out_features)
        builder = _Builder(
            "linear",
            (value.source,),
            value.shape,
            self._shape(node),
            pool=value.kind == "pooled_flat",
            weight=linear.weight.detach().clone(),
            bias=bias,
            in_unit=value.unit,
        )
        self._new(node, builder)

    def remove(self, node: fx.Node, what: str) -> None:
        """A no-op at inference (Dropout, Identity): its readers read its input."""
        self.values[node] = self._arg(node)
        self.removed[node] = f"{self.where(node)}: {what}"

    def view(self, node: fx.Node) -> None:
        """x.view / x.reshape / torch.reshape to (batch, features): flatten(x, 1) when the batch is -1 or read
        from a tensor (x.size(0), x.shape[0]) and the features a number or -1 (the output shape is checked)."""
        dims = node.args[1:]
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            dims = tuple(dims[0])
        batch = len(dims) == 2 and (dims[0] == -1 if isinstance(dims[0], int) else self._is_batch(dims[0]))
        if node.kwargs or not batch or not isinstance(dims[1], int):
            raise InputError(
                f"{self.where(node)}: only a view that flattens everything but the batch dimension lowers, as "
                "x.view(x.size(0), -1) or x.view(-1, C*H*W) before a Linear"
            )
        self.flatten(node)

    def _is_batch(self, dim: object) -> bool:
        if isinstance(dim, fx.Node) and dim in self.refused:
            raise _Downstream
        value = self.values.get(dim) if isinstance(dim, fx.Node) else None
        return value is not None and value.kind == "batch"

    def sizes(self, node: fx.Node, dim: object = None) -> None:
        """x.shape, x.size() and x.size(0): a tensor's sizes, which only a view may read (`dim`: which one)."""
        value = self._arg(node)
        if dim not in (None, 0):
            raise InputError(f"{self.where(node)}: only the batch size x.size(0) may be read, not dimension {dim}")
        self.values[node] = _Value(value.source, "sizes" if dim is None else "batch", value.shape, node)

    def getitem(self, node: fx.Node) -> None:
        value = self._arg(node)
        if value.kind != "sizes" or node.args[1] != 0:
            raise InputError(
                f"unsupported operation getitem (indexing) at {self.where(node)}: only the batch size x.shape[0] "
                "may be read"
            )
        self.values[node] = _Value(value.source, "batch", value.shape, node)

    # --- the walk ------------------------------------------------------------------------------------

    def run(self) -> list[tuple[str, _Builder]]:
        """The builders of the network's GEMMs and adds in execution order; InputError listing every problem."""
        problems, output = [], None
        for node in self.graph_module.graph.nodes:
            if node.op == "output":
                output = node
                continue
            try:
                self._dispatch(node)
            except _Downstream:
                self.refused.add(node)
            except InputError as exc:
                problems.append(str(exc))
                self.refused.add(node)
        result = output.args[0] if output is not None and isinstance(output.args[0], fx.Node) else None
        if result not in self.refused:
            problems += self._output_problems(self.values.get(result))
        if len(problems) == 1:
            raise InputError(problems[0])
        if problems:
            raise InputError(f"{len(problems)} problems: " + "; ".join(f"({n}) {p}" for n, p in enumerate(problems, 1)))
        return list(self.builders.items())

    def _output_problems(self, result: _Value | None) -> list[str]:
        names = list(self.builders)
        if result is None or result.kind != "pre" or self.builders[result.source].op != "linear":
            return ["the model's output must be the raw output of a Linear layer (the logits)"]
        if result.source != names[-1]:
            return [f"the model computes {names[-1]!r} after its output; nothing may follow the logits"]
        return []

    def _placeholder(self, node: fx.Node) -> None:
        if any(v.source == INPUT for v in self.values.values()):
            raise InputError(f"{self.where(node)}: the model must take exactly one input tensor")
        self.values[node] = _Value(INPUT, "act", self.input_shape, node)

    def _dispatch(self, node: fx.Node) -> None:
        if node.op == "placeholder":
            self._placeholder(node)
        elif node.op == "call_module":
            module = self.modules[node.target]
            handlers = {
                nn.Conv2d: lambda: self.conv(node, module),
                nn.BatchNorm2d: lambda: self.batchnorm(node, module),
                nn.ReLU: lambda: self.relu(node),
                nn.ReLU6: lambda: self.clamp(node),
                nn.Hardtanh: lambda: self.clamp(node),
                nn.AdaptiveAvgPool2d: lambda: self.pool(node),
                nn.AvgPool2d: lambda: self._pool_module(node, module),
                nn.MaxPool2d: lambda: self._pool_module(node, module),
                nn.AdaptiveMaxPool2d: lambda: self._pool_module(node, module),
                nn.Flatten: lambda: self._flatten_module(node, module),
                nn.Linear: lambda: self.linear(node, module),
            } | {kind: lambda: self.remove(node, type(module).__name__) for kind in _REMOVED_MODULES}
            handler = handlers.get(type(module))
            if type(module) in _SIGNED_ACTIVATIONS:
                raise InputError(f"{self.where(node)}: {_SIGNED_ACTIVATIONS[type(module)]} {_SIGNED_ACTIVATION_REASON}")
            if handler is None:
                raise InputError(f"unsupported operation {type(module).__name__} at {self.where(node)}")
            handler()
        elif node.op == "call_function" and node.target in _RELU_FUNCTIONS:
            self.relu(node)
        elif node.op == "call_function" and node.target in _ADD_FUNCTIONS:
            self.add(node)
        elif node.op == "call_function" and node.target in _GLOBAL_POOL_FUNCTIONS:
            self.pool(node)
        elif node.op == "call_function" and node.target is F.avg_pool2d:
            self.window_pool(node, "avgpool", _options(node, _AVG_POOL_ARGS))
        elif node.op == "call_function" and node.target is F.max_pool2d:
            self.window_pool(node, "maxpool", _options(node, _MAX_POOL_ARGS))
        elif node.op == "call_function" and node.target is F.adaptive_max_pool2d:
            options = _options(node, ("output_size", "return_indices"))
            self._adaptive_max(node, options["output_size"], options.get("return_indices", False))
        elif node.op == "call_function" and node.target in _CLAMP_FUNCTIONS:
            self.clamp(node)
        elif node.op == "call_function" and node.target in _CONCAT_FUNCTIONS:
            self.concat(node)
        elif node.op == "call_function" and node.target in _SIGNED_ACTIVATIONS:
            raise InputError(f"{self.where(node)}: {_SIGNED_ACTIVATIONS[node.target]} {_SIGNED_ACTIVATION_REASON}")
        elif node.op == "call_function" and node.target in _FLATTEN_FUNCTIONS:
            self._flatten_call(node)
        elif node.op == "call_function" and node.target in _REMOVED_FUNCTIONS:
            self.remove(node, node.target.__name__)
        elif node.op == "call_function" and node.target is torch.reshape:
            self.view(node)
        elif node.op == "call_function" and node.target is getattr and node.args[1:] == ("shape",):
            self.sizes(node)
        elif node.op == "call_function" and node.target is operator.getitem:
            self.getitem(node)
        elif node.op == "call_method" and node.target in ("relu", "relu_"):
            self.relu(node)
        elif node.op == "call_method" and node.target in _CLAMP_METHODS:
            self.clamp(node)
        elif node.op == "call_method" and node.target in ("add", "add_", "__add__"):
            self.add(node)
        elif node.op == "call_method" and node.target == "flatten":
            self._flatten_call(node)
        elif node.op == "call_method" and node.target in _VIEW_METHODS:
            self.view(node)
        elif node.op == "call_method" and node.target == "size":
            self.sizes(node, node.args[1] if len(node.args) > 1 else node.kwargs.get("dim"))
        elif node.op == "call_method" and node.target == "mean":
            self._mean(node)
        else:
            what = getattr(node.target, "__name__", str(node.target))
            raise InputError(f"unsupported operation {what} ({node.op}) at {self.where(node)}")

    def _flatten_module(self, node: fx.Node, module: nn.Flatten) -> None:
        if module.start_dim != 1 or module.end_dim != -1:
            raise InputError(f"{self.where(node)}: only Flatten(start_dim=1) lowers")
        self.flatten(node)

    def _flatten_call(self, node: fx.Node) -> None:
        start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
        if start != 1 or len(node.args) > 2 or "end_dim" in node.kwargs:
            raise InputError(f"{self.where(node)}: only flatten(x, 1) lowers")
        self.flatten(node)

    def _mean(self, node: fx.Node) -> None:
        dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
        dims = tuple(dims) if isinstance(dims, (list, tuple)) else (dims,)
        if not all(isinstance(d, int) for d in dims) or sorted(d % 4 for d in dims) != [2, 3]:
            raise InputError(f"{self.where(node)}: only the mean over (H, W), i.e. x.mean((2, 3)), lowers")
        self.pool(node)


def _geometry(value) -> int | tuple[int, int]:
    """A conv's kernel, stride, padding or dilation as the converted network keeps it: an integer when square."""
    value = compact(value)
    return tuple(value) if isinstance(value, list) else value


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _options(node: fx.Node, names: tuple[str, ...]) -> dict:
    """A functional call's arguments after the input, by parameter name (positional ones in `names`' order)."""
    return dict(zip(names, node.args[1:], strict=False)) | dict(node.kwargs)


def _bound_args(node: fx.Node, names: tuple[str, str], defaults: tuple) -> tuple:
    """A clamp's lower and upper bound: its arguments `names` (positional after the input, or by keyword)."""
    options = _options(node, names)
    return tuple(options.get(name, default) for name, default in zip(names, defaults, strict=True))


def conversion(module: nn.Module, spec: QuantSpec, input_shape: tuple[int, int, int]) -> Conversion:
    """The nested-quantized network of `module` (see the module docstring), initialised from its weights, and
    the no-ops removed from it."""
    converter = _Converter(module, input_shape)
    builders = converter.run()
    nodes = [
        Node(
            name,
            b.op,
            b.inputs,
            b.in_shape,
            b.out_shape,
            b.relu,
            b.kernel,
            b.stride,
            b.padding,
            b.pool,
            b.dilation,
            b.groups,
            b.pooling,
        )
        for name, b in builders
    ]
    model = QuantNet(spec, input_shape, nodes)
    with torch.no_grad():
        for name, b in builders:
            if b.op not in ("conv", "linear"):
                continue
            layer = model.layers[name]
            layer.weight.copy_(b.weight.reshape(layer.weight.shape))
            if b.op == "linear":  # reads codes of unit in_unit, makes codes of unit out_unit (module docstring)
                layer.weight.mul_(b.in_unit / b.out_unit)
                layer.bias.copy_(b.bias / b.out_unit)
            else:
                _init_batchnorms(layer, b)
            layer.reset_step()
    return Conversion(model, tuple(converter.removed.values()))


def _init_batchnorms(layer: QConv2d, builder: _Builder) -> None:
    """Every precision's BatchNorm from the source model's (or a fresh one), with the conv bias b folded in:
    BN(z + b) with running mean m is BN(z) with running mean m - b, so the bias-free QConv2d computes what the
    source conv (+ BatchNorm) computes, and the export carries b in the layer's requantization bias. (A fresh
    BatchNorm scales by 1 / sqrt(1 + eps) as ever; training then re-estimates its statistics.) Clamp bounds
    (module docstring): codes of unit u in scale z by 1/u, so the mean is divided by u and var + eps by u^2
    (exactly, unless the variance is below eps * (u^2 - 1), which is clamped at 0); a clamp at b after the
    layer divides its affine weight and bias by b."""
    for bn in layer.bns.values():
        if builder.batchnorm is not None:
            bn.load_state_dict(builder.batchnorm.state_dict())
        if builder.bias is not None:
            bn.running_mean -= builder.bias
        bn.running_mean /= builder.in_unit
        bn.running_var.copy_(((bn.running_var + bn.eps) / builder.in_unit**2 - bn.eps).clamp(min=0))
        bn.weight /= builder.out_unit
        bn.bias /= builder.out_unit


def convert(module: nn.Module, spec: QuantSpec, input_shape: tuple[int, int, int]) -> QuantNet:
    """The nested-quantized network of `module` (see the module docstring), initialised from its weights."""
    return conversion(module, spec, input_shape).model


def build_net(
    name: str, spec: QuantSpec, input_shape: tuple[int, int, int] = (1, 8, 8), act_bound: float | None = None
) -> QuantNet:
    """A built-in network (golden.nets; `act_bound` its activations' bound), converted like any user model."""
    return convert(float_net(name, input_shape, act_bound=act_bound), spec, input_shape)


# --- command line ------------------------------------------------------------------------------------


def input_shape(text: str) -> tuple[int, int, int]:
    """An argparse `type`: C,H,W, three positive integers with at most MAX_INPUT_VALUES values in all."""
    parts = text.split(",")
    if len(parts) != 3 or not all(part.strip().isdigit() for part in parts):
        raise argparse.ArgumentTypeError(f"expected C,H,W (three positive integers), got {text!r}")
    shape = tuple(int(part) for part in parts)
    if min(shape) < 1 or math.prod(shape) > MAX_INPUT_VALUES:
        raise argparse.ArgumentTypeError(f"C, H and W must be positive with C*H*W at most {MAX_INPUT_VALUES}")
    return shape


def _dims(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


def graph_lines(result: Conversion) -> list[str]:
    """One line per node of the converted network, in columns: its name, operation, what it reads, its output
    shape and what runs it (the engine's GEMM M x K x N for one image at any k, from the export, once per group
    of a grouped convolution; or the host)."""
    model = result.model
    rows = [("node", "op", "reads", "output", "runs as")]
    for node, step in zip(model.nodes, steps(build_export(model.eval())), strict=True):
        after = "ReLU" if node.relu else "raw"
        if isinstance(step, GemmStep):
            m, k, n = step.layer.group_shapes()[0]
            op = _conv_label(node) if node.op == "conv" else "linear"
            op += " (pooled)" if node.pool else ""
            times = f"{node.groups} x " if node.groups > 1 else ""
            engine = f"engine GEMM {times}M={m} K={k} N={n}, {after}" + (" (logits)" if step.last else "")
        elif isinstance(step, PoolStep):
            op, engine = _window_label(step.op, step.pooling.kernel, step.pooling.stride, step.pooling.padding), "host"
            engine += " pooling of codes"
        elif isinstance(step, ConcatStep):
            op, engine = "concat", "host concat of codes"
        else:
            op, engine = "add", "host add, " + ("ReLU" if step.relu else "linear (signed codes)")
        rows.append((node.name, op, ",".join(node.inputs), _dims(node.out_shape), engine))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return ["  ".join([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[4]]) for row in rows]


def _window_label(op: str, kernel, stride, padding) -> str:
    """A window as the graph prints it: OP 3x3/2 pad 1 (a stride or padding that differs per axis as 2x1)."""
    kernel, stride, padding = (pair(v) for v in (kernel, stride, padding))
    stride_text = str(stride[0]) if len(set(stride)) == 1 else _dims(stride)
    padding_text = str(padding[0]) if len(set(padding)) == 1 else _dims(padding)
    return f"{op} {_dims(kernel)}/{stride_text} pad {padding_text}"


def _conv_label(node) -> str:
    """A conv's geometry as the graph prints it: 3x3/2 pad 1, and its dilation and groups when not 1."""
    label = _window_label("conv", node.kernel, node.stride, node.padding)
    if pair(node.dilation) != (1, 1):
        label += f" dil {_dims(pair(node.dilation))}"
    return label + (f" groups {node.groups}" if node.groups > 1 else "")


def main(argv: list[str] | None = None) -> None:
    parser = Parser(
        prog="python -m golden.convert",
        description="Convert a float PyTorch model to the nested-quantized network (as golden.train does before "
        "training) and print its graph: each node, its output shape and what runs it (a GEMM on the engine, "
        "M x K x N per image, or an add or pooling on the host). A model that does not convert is refused with every "
        "unsupported node in one error line.",
    )
    parser.add_argument(
        "model",
        help="FILE.py:CLASS, your own torch.nn.Module constructed without arguments; FILE.onnx, a float ONNX model "
        f"(golden.onnx_import); or {' or '.join(NETS)} (golden.nets)",
    )
    parser.add_argument(
        "--input-shape", type=input_shape, required=True, metavar="C,H,W", help="one input's shape, e.g. 1,28,28"
    )
    parser.add_argument("--method", choices=METHODS, default="truncquant", help="as golden.train's --method")
    parser.add_argument("--scheme", choices=SCHEMES, default="offset", help="as golden.train's --scheme")
    args = parser.parse_args(argv)
    spec = QuantSpec(args.method, args.scheme)
    result = conversion(float_net(args.model, args.input_shape), spec, args.input_shape)
    layers = len(result.model.gemm_nodes)
    adds, concats = (sum(node.op == op for node in result.model.nodes) for op in ("add", "concat"))
    concat_text = f", {concats} host concats" if concats else ""
    print(
        f"{args.model}, input {_dims(args.input_shape)}: {layers} GEMM layers on the engine, {adds} host adds, "
        f"{len(result.model.nodes) - layers - adds - concats} host poolings{concat_text} ({spec.method}/{spec.scheme}, "
        f"B = {spec.base_bits}, A = {spec.act_bits}; every ReLU clamps at 1, docs/numerics.md)"
    )
    print("\n".join(graph_lines(result)))
    for what in result.removed:
        print(f"removed (a no-op at inference): {what}")


if __name__ == "__main__":
    raise SystemExit(run_main(main))
