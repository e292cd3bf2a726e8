"""From a user's float PyTorch model to the nested-quantized `golden.model.QuantNet` (via torch.fx).

Supported operations, as a user writes them (modules or functions); docs/user-guide.md, "Bring your own
model", has them as a table:
  - Conv2d (square kernel, stride and padding, no groups or dilation, zero padding), optionally followed by
    BatchNorm2d (affine, with running statistics): becomes a QConv2d with one BatchNorm per trained
    precision, initialised from the model's weights and BatchNorm; a convolution without a BatchNorm gets a
    fresh one. The engine folds BatchNorm into the requantizer and the QConv2d has no bias of its own, so a
    conv bias b is folded into the BatchNorm's running mean (BN(z + b) = BN'(z) with mean' = mean - b): it
    lands in the layer's requantization bias, and the converted model computes what the source model does;
  - ReLU (module, F.relu, torch.relu, .relu()): the requantizer's ReLU, which also clamps to [0, 1] at the
    activation grid 1/(2^A - 1) (docs/numerics.md): every activation between layers is an unsigned code;
  - residual add (`a + b`, torch.add) of two activations or conv(+BN) pre-activations, followed by ReLU:
    a host operation between engine commands (docs/numerics.md, "Host operations");
  - global average pooling (AdaptiveAvgPool2d(1), F.adaptive_avg_pool2d(x, 1), an AvgPool2d over the whole
    map, x.mean((2, 3))) then flatten then Linear: folded into the linear layer's GEMM on the engine;
  - flatten (nn.Flatten(), torch.flatten(x, 1), x.flatten(1), and the views that mean the same:
    x.view(x.size(0), -1), x.reshape(x.shape[0], -1), x.view(-1, C*H*W), torch.reshape) then Linear; Linear
    followed by ReLU inside the network, or last (its raw output is the logits);
  - Dropout (nn.Dropout, Dropout1d/2d/3d, AlphaDropout, F.dropout...) and nn.Identity: removed, as they are
    no-ops at inference.
Anything else is refused with one InputError listing every node that does not convert (the operation, the
graph node and its module path), so a user fixes a model in one round rather than one node per attempt.

`python -m golden.convert MODEL.py:CLASS --input-shape C,H,W` converts a model and prints the converted
graph and what the engine runs (GEMM M, K, N per layer; host adds), or the refusal as one `error:` line.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import operator
import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from contract.cli import InputError, Parser, run_main
from contract.model_format import GemmStep, steps
from contract.numerics import METHODS, SCHEMES
from golden.export import build_export
from golden.layers import QConv2d, QuantSpec
from golden.model import INPUT, Node, QuantNet
from golden.nets import NETS, float_net

_RELU_FUNCTIONS = (F.relu, torch.relu)
_ADD_FUNCTIONS = (operator.add, operator.iadd, torch.add)
_FLATTEN_FUNCTIONS = (torch.flatten,)
_POOL_FUNCTIONS = (F.adaptive_avg_pool2d, F.avg_pool2d)
#: No-ops at inference, removed at conversion.
_REMOVED_MODULES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.Identity)
_REMOVED_FUNCTIONS = (F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout)
_VIEW_METHODS = ("view", "reshape")
MAX_INPUT_VALUES = 1 << 20  # the CLI's bound on C*H*W (3x512x512 fits): shape propagation runs one such image


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


@dataclass
class _Builder:
    op: str
    inputs: tuple[str, ...]
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    relu: bool = False
    kernel: int = 0
    stride: int = 0
    padding: int = 0
    pool: bool = False
    weight: torch.Tensor | None = None
    bias: torch.Tensor | None = None  # a linear layer's bias, or a conv bias to fold into its BatchNorm
    batchnorm: nn.BatchNorm2d | None = None


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
        try:
            self.graph_module = fx.symbolic_trace(module)
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
        base = re.sub(r"\W", "_", str(node.target) if node.op == "call_module" else node.name)
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

    def _activation(self, node: fx.Node, what: str, kinds=("act",)) -> _Value:
        value = self._arg(node)
        if value.kind == "pre":
            raise InputError(
                f"{self.where(node)}: {what} reads {value.source!r} before a ReLU; activations between layers are "
                "unsigned codes on [0, 1], so a conv, linear or add output must pass through ReLU (a conv output "
                "may instead be one operand of a residual add)"
            )
        if value.kind not in kinds:
            raise InputError(f"{self.where(node)}: {what} cannot read a {value.kind.replace('_', ' ')} tensor")
        return value

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
        square = all(len(set(p)) == 1 for p in (conv.kernel_size, conv.stride, conv.padding))
        if isinstance(conv.padding, str) or not square or conv.groups != 1 or set(conv.dilation) != {1}:
            raise InputError(
                f"{self.where(node)}: only Conv2d with square kernel, stride and padding, groups 1 and dilation 1 "
                "lowers to the engine"
            )
        if conv.padding_mode != "zeros":
            raise InputError(f"{self.where(node)}: padding_mode {conv.padding_mode!r}; only 'zeros' lowers (code 0)")
        value = self._activation(node, "Conv2d")
        builder = _Builder(
            "conv",
            (value.source,),
            value.shape,
            self._shape(node),
            kernel=conv.kernel_size[0],
            stride=conv.stride[0],
            padding=conv.padding[0],
            weight=conv.weight.detach().clone(),
            bias=None if conv.bias is None else conv.bias.detach().clone(),
        )
        self._new(node, builder)

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

    def relu(self, node: fx.Node) -> None:
        value = self._arg(node)
        if value.kind == "act":
            self.values[node] = value  # codes are already non-negative
            return
        if value.kind != "pre":
            raise InputError(f"{self.where(node)}: ReLU of a {value.kind.replace('_', ' ')} tensor does not lower")
        self._pre(node, value, "ReLU").relu = True
        self.values[node] = _Value(value.source, "act", value.shape, node)

    def add(self, node: fx.Node) -> None:
        if len(node.args) != 2 or node.kwargs:
            raise InputError(f"{self.where(node)}: only a plain sum of two tensors (a residual add) is supported")
        operands = [self._arg(node, index) for index in (0, 1)]
        for value in operands:
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
        self._new(node, _Builder("add", tuple(v.source for v in operands), shape, shape))

    def pool(self, node: fx.Node) -> None:
        value = self._activation(node, "average pooling")
        if len(value.shape) != 3 or self._shape(node)[1:] not in ((1, 1), ()):
            raise InputError(
                f"{self.where(node)}: only global average pooling (to 1x1) lowers (folded into the next Linear)"
            )
        kind = "pooled" if self._shape(node)[1:] == (1, 1) else "pooled_flat"
        self.values[node] = _Value(value.source, kind, value.shape, node)

    def flatten(self, node: fx.Node) -> None:
        value = self._activation(node, "flatten", kinds=("act", "pooled", "flat", "pooled_flat"))
        if self._shape(node) != (math.prod(self._shape(node.args[0])),):  # a view may move the batch dimension
            raise InputError(f"{self.where(node)}: only flattening everything but the batch dimension is supported")
        kind = "pooled_flat" if value.kind.startswith("pooled") else "flat"  # flattening twice changes nothing
        self.values[node] = _Value(value.source, kind, value.shape, node)

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
                nn.AdaptiveAvgPool2d: lambda: self.pool(node),
                nn.AvgPool2d: lambda: self.pool(node),
                nn.Flatten: lambda: self._flatten_module(node, module),
                nn.Linear: lambda: self.linear(node, module),
            } | {kind: lambda: self.remove(node, type(module).__name__) for kind in _REMOVED_MODULES}
            handler = handlers.get(type(module))
            if handler is None:
                raise InputError(f"unsupported operation {type(module).__name__} at {self.where(node)}")
            handler()
        elif node.op == "call_function" and node.target in _RELU_FUNCTIONS:
            self.relu(node)
        elif node.op == "call_function" and node.target in _ADD_FUNCTIONS:
            self.add(node)
        elif node.op == "call_function" and node.target in _POOL_FUNCTIONS:
            self.pool(node)
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
        )
        for name, b in builders
    ]
    model = QuantNet(spec, input_shape, nodes)
    with torch.no_grad():
        for name, b in builders:
            if b.op == "add":
                continue
            layer = model.layers[name]
            layer.weight.copy_(b.weight.reshape(layer.weight.shape))
            if b.op == "linear":
                layer.bias.copy_(b.bias)
            else:
                _init_batchnorms(layer, b)
            layer.reset_step()
    return Conversion(model, tuple(converter.removed.values()))


def _init_batchnorms(layer: QConv2d, builder: _Builder) -> None:
    """Every precision's BatchNorm from the source model's (or a fresh one), with the conv bias b folded in:
    BN(z + b) with running mean m is BN(z) with running mean m - b, so the bias-free QConv2d computes what the
    source conv (+ BatchNorm) computes, and the export carries b in the layer's requantization bias. (A fresh
    BatchNorm scales by 1 / sqrt(1 + eps) as ever; training then re-estimates its statistics.)"""
    for bn in layer.bns.values():
        if builder.batchnorm is not None:
            bn.load_state_dict(builder.batchnorm.state_dict())
        if builder.bias is not None:
            bn.running_mean -= builder.bias


def convert(module: nn.Module, spec: QuantSpec, input_shape: tuple[int, int, int]) -> QuantNet:
    """The nested-quantized network of `module` (see the module docstring), initialised from its weights."""
    return conversion(module, spec, input_shape).model


def build_net(name: str, spec: QuantSpec, input_shape: tuple[int, int, int] = (1, 8, 8)) -> QuantNet:
    """A built-in network (golden.nets), converted like any user model."""
    return convert(float_net(name, input_shape), spec, input_shape)


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
    shape and what runs it (the engine's GEMM M x K x N for one image at any k, from the export; or the host)."""
    model = result.model
    rows = [("node", "op", "reads", "output", "runs as")]
    for node, step in zip(model.nodes, steps(build_export(model.eval())), strict=True):
        after = "ReLU" if node.relu else "raw"
        if isinstance(step, GemmStep):
            m, k, n = step.layer.gemm_shape()
            op = f"conv {node.kernel}x{node.kernel}/{node.stride} pad {node.padding}" if node.op == "conv" else "linear"
            op += " (pooled)" if node.pool else ""
            engine = f"engine GEMM M={m} K={k} N={n}, {after}" + (" (logits)" if step.last else "")
        else:
            op, engine = "add", f"host add, {after}"
        rows.append((node.name, op, ",".join(node.inputs), _dims(node.out_shape), engine))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return ["  ".join([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[4]]) for row in rows]


def main(argv: list[str] | None = None) -> None:
    parser = Parser(
        prog="python -m golden.convert",
        description="Convert a float PyTorch model to the nested-quantized network (as golden.train does before "
        "training) and print its graph: each node, its output shape and what runs it (a GEMM on the engine, "
        "M x K x N per image, or an add on the host). A model that does not convert is refused with every "
        "unsupported node in one error line.",
    )
    parser.add_argument(
        "model",
        help=f"FILE.py:CLASS, your own torch.nn.Module constructed without arguments, or {' or '.join(NETS)} "
        "(golden.nets)",
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
    print(
        f"{args.model}, input {_dims(args.input_shape)}: {layers} GEMM layers on the engine, "
        f"{len(result.model.nodes) - layers} host adds ({spec.method}/{spec.scheme}, B = {spec.base_bits}, "
        f"A = {spec.act_bits}; every ReLU clamps at 1, docs/numerics.md)"
    )
    print("\n".join(graph_lines(result)))
    for what in result.removed:
        print(f"removed (a no-op at inference): {what}")


if __name__ == "__main__":
    raise SystemExit(run_main(main))
