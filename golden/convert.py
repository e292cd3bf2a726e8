"""From a user's float PyTorch model to the nested-quantized `golden.model.QuantNet` (via torch.fx).

Supported operations, as a user writes them (modules or functions):
  - Conv2d (square kernel, stride and padding, no groups or dilation, zero padding), optionally followed by
    BatchNorm2d (affine, with running statistics): becomes a QConv2d with one BatchNorm per trained
    precision, initialised from the model's weights and BatchNorm; a convolution without a BatchNorm gets a
    fresh one (the engine folds BatchNorm into the requantizer, so the conv bias is dropped either way);
  - ReLU (module, F.relu, torch.relu, .relu()): the requantizer's ReLU, which also clamps to [0, 1] at the
    activation grid 1/(2^A - 1) (docs/numerics.md): every activation between layers is an unsigned code;
  - residual add (`a + b`, torch.add) of two activations or conv(+BN) pre-activations, followed by ReLU:
    a host operation between engine commands (docs/numerics.md, "Host operations");
  - global average pooling (AdaptiveAvgPool2d(1), F.adaptive_avg_pool2d(x, 1), an AvgPool2d over the whole
    map, x.mean((2, 3))) then flatten then Linear: folded into the linear layer's GEMM on the engine;
  - flatten (nn.Flatten(), torch.flatten(x, 1), x.flatten(1)) then Linear; Linear followed by ReLU inside
    the network, or last (its raw output is the logits).
Anything else is an InputError naming the operation and the graph node (and module path) where it is.
"""

from __future__ import annotations

import contextlib
import io
import operator
import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from contract.cli import InputError
from golden.layers import QuantSpec
from golden.model import INPUT, Node, QuantNet
from golden.nets import float_net

_RELU_FUNCTIONS = (F.relu, torch.relu)
_ADD_FUNCTIONS = (operator.add, operator.iadd, torch.add)
_FLATTEN_FUNCTIONS = (torch.flatten,)
_POOL_FUNCTIONS = (F.adaptive_avg_pool2d, F.avg_pool2d)


@dataclass
class _Value:
    """What an fx node's output is, for the quantized network: `kind` is "act" (codes on [0, 1]), "pre" (a
    pre-activation of `source`, awaiting its BatchNorm or ReLU, or an add's input), "pooled" (globally
    average-pooled codes), "flat" or "pooled_flat" (flattened for a Linear)."""

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
    bias: torch.Tensor | None = None
    batchnorm: nn.BatchNorm2d | None = None


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
        return f"node {node.name!r}" + (f" (module {node.target!r})" if node.op == "call_module" else "")

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
        if not isinstance(arg, fx.Node) or arg not in self.values:
            raise InputError(f"{self.where(node)}: operand {index} is not a tensor the converter follows")
        return self.values[arg]

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
        if len(value.fx_node.users) != 1:
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
        value = self._activation(node, "Conv2d")
        square = all(len(set(p)) == 1 for p in (conv.kernel_size, conv.stride, conv.padding))
        if isinstance(conv.padding, str) or not square or conv.groups != 1 or set(conv.dilation) != {1}:
            raise InputError(
                f"{self.where(node)}: only Conv2d with square kernel, stride and padding, groups 1 and dilation 1 "
                "lowers to the engine"
            )
        if conv.padding_mode != "zeros":
            raise InputError(f"{self.where(node)}: padding_mode {conv.padding_mode!r}; only 'zeros' lowers (code 0)")
        builder = _Builder(
            "conv",
            (value.source,),
            value.shape,
            self._shape(node),
            kernel=conv.kernel_size[0],
            stride=conv.stride[0],
            padding=conv.padding[0],
            weight=conv.weight.detach().clone(),
        )
        self._new(node, builder)

    def batchnorm(self, node: fx.Node, bn: nn.BatchNorm2d) -> None:
        value = self._arg(node)
        builder = self.builders.get(value.source) if value.kind == "pre" else None
        if builder is None or builder.op != "conv" or builder.batchnorm is not None:
            raise InputError(f"{self.where(node)}: BatchNorm2d must directly follow a Conv2d")
        self._pre(node, value, "BatchNorm2d")
        if not bn.affine or not bn.track_running_stats:
            raise InputError(f"{self.where(node)}: BatchNorm2d needs affine=True and track_running_stats=True")
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
        if self._shape(node) != (int(torch.Size(self._shape(node)).numel()),):
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

    # --- the walk ------------------------------------------------------------------------------------

    def run(self) -> list[tuple[str, _Builder]]:
        output = None
        for node in self.graph_module.graph.nodes:
            if node.op == "placeholder":
                if any(v.source == INPUT for v in self.values.values()):
                    raise InputError(f"{self.where(node)}: the model must take exactly one input tensor")
                self.values[node] = _Value(INPUT, "act", self.input_shape, node)
            elif node.op == "output":
                output = node
            else:
                self._dispatch(node)
        result = self.values.get(output.args[0]) if output is not None else None
        names = list(self.builders)
        if result is None or result.kind != "pre" or self.builders[result.source].op != "linear":
            raise InputError("the model's output must be the raw output of a Linear layer (the logits)")
        if result.source != names[-1]:
            raise InputError(f"the model computes {names[-1]!r} after its output; nothing may follow the logits")
        return list(self.builders.items())

    def _dispatch(self, node: fx.Node) -> None:
        if node.op == "call_module":
            module = self.modules[node.target]
            handlers = {
                nn.Conv2d: lambda: self.conv(node, module),
                nn.BatchNorm2d: lambda: self.batchnorm(node, module),
                nn.ReLU: lambda: self.relu(node),
                nn.AdaptiveAvgPool2d: lambda: self.pool(node),
                nn.AvgPool2d: lambda: self.pool(node),
                nn.Flatten: lambda: self._flatten_module(node, module),
                nn.Linear: lambda: self.linear(node, module),
                nn.Identity: lambda: self.values.__setitem__(node, self._arg(node)),
            }
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
        elif node.op == "call_method" and node.target in ("relu", "relu_"):
            self.relu(node)
        elif node.op == "call_method" and node.target in ("add", "add_", "__add__"):
            self.add(node)
        elif node.op == "call_method" and node.target == "flatten":
            self._flatten_call(node)
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
        if sorted(d % 4 for d in dims) != [2, 3]:
            raise InputError(f"{self.where(node)}: only the mean over (H, W), i.e. x.mean((2, 3)), lowers")
        self.pool(node)


def convert(module: nn.Module, spec: QuantSpec, input_shape: tuple[int, int, int]) -> QuantNet:
    """The nested-quantized network of `module` (see the module docstring), initialised from its weights."""
    builders = _Converter(module, input_shape).run()
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
            elif b.batchnorm is not None:
                for bn in layer.bns.values():
                    bn.load_state_dict(b.batchnorm.state_dict())
            layer.reset_step()
    return model


def build_net(name: str, spec: QuantSpec, input_shape: tuple[int, int, int] = (1, 8, 8)) -> QuantNet:
    """A built-in network (golden.nets), converted like any user model."""
    return convert(float_net(name, input_shape), spec, input_shape)
