"""A float ONNX model (as torch.onnx.export writes one) as a torch.nn.Module that golden.convert converts like
any user model, so every check of the converter applies to it.

Each ONNX node becomes the PyTorch module or function the converter knows (golden.convert's docstring), with
the model's weights, in a torch.fx graph of the same shape: Conv -> Conv2d, BatchNormalization ->
BatchNorm2d, Gemm and MatMul (+ Add of a constant bias) -> Linear, Relu -> ReLU, Clip -> torch.clamp,
Add -> `+`, MaxPool / AveragePool -> MaxPool2d / AvgPool2d, GlobalAveragePool and ReduceMean over H and W ->
global average pooling, Concat of tensors computed from the input -> torch.cat (the converter takes dim 1),
Flatten (axis 1) and a Reshape to [batch, rest] -> flatten (its target a constant or computed from x.size(0):
Shape, Gather, Unsqueeze... are read only as such), Identity and Dropout removed. A submodule is named
after its ONNX node ("/layer1/conv1/Conv" -> "layer1_conv1_Conv"), so the converter's messages name it.
Anything else, and a node this mapping cannot express (a weight that is not a constant, asymmetric padding,
auto_pad that pads unevenly), is refused with one InputError listing every such node (operation and name) at once.

QONNX models (Brevitas, FINN: `Quant`, `BipolarQuant`, `Trunc` nodes of the qonnx domain) are recognised and
refused in one line: their quantizers are not mapped to nestmac's nested codes (not done).
"""

from __future__ import annotations

import math
import operator
import re
from pathlib import Path

import numpy as np
import torch
from torch import fx, nn

from contract.cli import InputError

SUPPORTED = (
    "Conv",
    "BatchNormalization",
    "Gemm",
    "MatMul",
    "Add",
    "Relu",
    "Clip",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "ReduceMean",
    "Flatten",
    "Reshape",
    "Identity",
    "Dropout",
    "Constant",
)
#: The exporter's arithmetic on sizes (x.view(x.size(0), -1) with a dynamic batch): read only as a Reshape's
#: target, whose result shape inference knows.
SHAPE_OPS = ("Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Slice", "Cast")
QONNX_OPS = ("Quant", "BipolarQuant", "Trunc", "MultiThreshold")
MAX_BYTES = 1 << 30  # larger than any model this engine runs; onnx.load would otherwise read anything


class _Unsupported(Exception):
    """A node that does not map; the message says why, when the operation itself is supported."""


def onnx_module(path: Path, input_shape: tuple[int, int, int] | None = None) -> fx.GraphModule:
    """The float ONNX model at `path` as an fx.GraphModule of standard modules, in eval mode (BatchNorm uses
    its running statistics, as the ONNX node does); `input_shape` (C, H, W), when given, must agree with the
    model's declared input."""
    return _Importer(path, _load(Path(path)), input_shape).module()


def _load(path: Path):
    """The model, checked and with its shapes inferred; a QONNX model is refused before the checker (which
    does not know its operations)."""
    onnx = _onnx()
    if not path.is_file():
        raise InputError(f"ONNX model not found: {path}")
    if path.stat().st_size > MAX_BYTES:
        raise InputError(f"{path}: larger than {MAX_BYTES} bytes")
    try:
        model = onnx.load(str(path))
        _refuse_qonnx(path, model)
        onnx.checker.check_model(model)
        return onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    except InputError:
        raise
    except Exception as exc:  # protobuf and the checker raise several unrelated types
        raise InputError(f"{path}: not a valid ONNX model ({type(exc).__name__}: {_first_line(exc)})") from None


def _onnx():
    try:
        import onnx
    except ImportError:
        raise InputError("reading an ONNX model needs the onnx package (pip install 'nestmac[onnx]')") from None
    return onnx


def _refuse_qonnx(path, model) -> None:
    quantizers = [node for node in model.graph.node if node.op_type in QONNX_OPS or "qonnx" in node.domain]
    if quantizers:
        raise InputError(
            f"{path} is a QONNX quantized model ({len(quantizers)} {quantizers[0].op_type} nodes, the first "
            f"{quantizers[0].name or '(unnamed)'}): nestmac imports float ONNX only; export the float model "
            "(before Brevitas quantization) and let golden.train quantize it"
        )


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:200]


class _Importer:
    """One pass over the graph's nodes (ONNX keeps them in topological order), building the fx graph."""

    def __init__(self, path, model, input_shape):
        from onnx import numpy_helper

        self.path, self.graph = path, model.graph
        self.to_array = numpy_helper.to_array
        self.constants = {init.name: self.to_array(init) for init in self.graph.initializer}
        self.shapes = {info.name: _dims_of(info) for info in (*self.graph.value_info, *self.graph.output)}
        self.fx_graph, self.root = fx.Graph(), nn.Module()
        self.values: dict[str, fx.Node] = {}
        self.uses = _use_counts(self.graph)
        self.linear_of: dict[str, nn.Linear] = {}  # MatMul outputs awaiting their bias Add
        self.sizes: set[str] = set()  # outputs of SHAPE_OPS
        self.problems: list[str] = []
        self._bind_input(input_shape)

    def _bind_input(self, input_shape) -> None:
        inputs = [value for value in self.graph.input if value.name not in self.constants]
        outputs = list(self.graph.output)
        if len(inputs) != 1 or len(outputs) != 1:
            raise InputError(
                f"{self.path}: expected one input image tensor and one output, found {len(inputs)} and {len(outputs)}"
            )
        dims = _dims_of(inputs[0])
        if dims is None or len(dims) != 4:
            raise InputError(f"{self.path}: the input {inputs[0].name!r} is not an N x C x H x W tensor ({dims})")
        declared = tuple(dims[1:])
        if input_shape is not None and all(isinstance(d, int) for d in declared) and declared != tuple(input_shape):
            raise InputError(
                f"{self.path} takes inputs {'x'.join(map(str, declared))}, not {'x'.join(map(str, input_shape))}"
            )
        self.shapes[inputs[0].name] = dims
        self.values[inputs[0].name] = self.fx_graph.placeholder("x")

    def module(self) -> fx.GraphModule:
        for node in self.graph.node:
            try:
                self._map(node)
            except _Unsupported as why:
                reason = f" ({why})" if str(why) else ""
                self.problems.append(f"{node.op_type} {node.name or '(unnamed)'}{reason}")
                for output in node.output:  # let the nodes after it be checked on their own
                    self.values[output] = self._first_value(node)
        if self.problems:
            raise InputError(
                f"{self.path}: {len(self.problems)} ONNX node(s) do not convert: {'; '.join(self.problems)} "
                f"(supported: {', '.join(SUPPORTED)})"
            )
        output = self.graph.output[0].name
        if output not in self.values:
            raise InputError(f"{self.path}: the output {output!r} is a constant or sizes, not computed from the input")
        self.fx_graph.output(self.values[output])
        return fx.GraphModule(self.root, self.fx_graph, class_name="OnnxModel").eval()  # an inference model

    def _first_value(self, node) -> fx.Node | None:
        return next((self.values[name] for name in node.input if name in self.values), None)

    # --- the operations ---------------------------------------------------------------------------------

    def _map(self, node) -> None:
        if node.op_type == "Concat" and all(name in self.values for name in node.input):  # of tensors, not sizes
            axis = _attributes(node).get("axis")
            tensors = [self._value(name) for name in node.input]
            self.values[node.output[0]] = self._call(node, "call_function", torch.cat, (tensors, axis))
            return
        if node.domain in ("", "ai.onnx") and node.op_type in SHAPE_OPS:
            self.sizes.update(node.output)
            return
        if node.domain not in ("", "ai.onnx") or node.op_type not in SUPPORTED:
            raise _Unsupported("")
        if node.op_type == "Constant":
            self.constants[node.output[0]] = self._constant_attribute(node)
            return
        if node.op_type in ("Identity", "Dropout") and node.input[0] in self.constants:  # exporters alias weights
            self.constants[node.output[0]] = self.constants[node.input[0]]
            return
        handler = getattr(self, f"_{node.op_type.lower()}")
        result = handler(node, _attributes(node))
        if node.op_type in ("MaxPool", "Dropout") and len(node.output) > 1 and self.uses.get(node.output[1]):
            raise _Unsupported("its second output is used")
        self.values[node.output[0]] = result

    def _constant_attribute(self, node) -> np.ndarray:
        attribute = node.attribute[0] if len(node.attribute) == 1 else None
        if attribute is None or attribute.name != "value":
            raise _Unsupported("only a tensor 'value' is read")
        return self.to_array(attribute.t)

    def _conv(self, node, attrs) -> fx.Node:
        weight, bias = self._constant(node, 1), self._constant(node, 2, optional=True)
        if weight.ndim != 4:
            raise _Unsupported(f"a {weight.ndim - 2}-d convolution")
        groups = attrs.get("group", 1)
        conv = nn.Conv2d(
            weight.shape[1] * groups,
            weight.shape[0],
            tuple(weight.shape[2:]),
            stride=tuple(attrs.get("strides", (1, 1))),
            padding=_symmetric_padding(attrs, weight.shape[2:], self._hw(node)),
            dilation=tuple(attrs.get("dilations", (1, 1))),
            groups=groups,
            bias=bias is not None,
        )
        _set(conv, weight=weight, bias=bias)
        return self._module(node, conv)

    def _batchnormalization(self, node, attrs) -> fx.Node:
        if attrs.get("training_mode", 0) or len(node.output) > 1:
            raise _Unsupported("training mode")
        scale, shift, mean, var = (self._constant(node, index) for index in range(1, 5))
        rank = len(self._shape(node.input[0]) or ())
        norm = (nn.BatchNorm2d if rank == 4 else nn.BatchNorm1d)(len(scale), eps=attrs.get("epsilon", 1e-5))
        _set(norm, weight=scale, bias=shift, running_mean=mean, running_var=var)
        return self._module(node, norm)

    def _gemm(self, node, attrs) -> fx.Node:
        if attrs.get("transA", 0):
            raise _Unsupported("transA")
        weight = self._constant(node, 1) * attrs.get("alpha", 1.0)
        weight = weight if attrs.get("transB", 0) else weight.T
        bias = self._constant(node, 2, optional=True)
        if bias is not None:
            bias = np.broadcast_to(bias * attrs.get("beta", 1.0), (weight.shape[0],))
        linear = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
        _set(linear, weight=weight, bias=bias)
        return self._module(node, linear)

    def _matmul(self, node, attrs) -> fx.Node:
        weight = self._constant(node, 1)
        if weight.ndim != 2:
            raise _Unsupported("a MatMul by a non-constant or non-2-d operand")
        linear = nn.Linear(weight.shape[0], weight.shape[1], bias=False)
        _set(linear, weight=weight.T)
        self.linear_of[node.output[0]] = linear
        return self._module(node, linear)

    def _add(self, node, attrs) -> fx.Node:
        constant = [name for name in node.input if name in self.constants]
        if not constant:
            return self._call(node, "call_function", operator.add, tuple(self._value(name) for name in node.input))
        other = next(name for name in node.input if name not in constant)
        linear = self.linear_of.get(other)
        if linear is None or linear.bias is not None or self.uses[other] != 1:
            raise _Unsupported("an Add of a constant that is not a MatMul's bias")
        bias = np.broadcast_to(self.constants[constant[0]], (linear.out_features,))
        linear.bias = nn.Parameter(torch.from_numpy(np.array(bias, dtype=np.float32)))
        return self._value(other)

    def _relu(self, node, attrs) -> fx.Node:
        return self._module(node, nn.ReLU())

    def _clip(self, node, attrs) -> fx.Node:
        low, high = attrs.get("min"), attrs.get("max")  # opset < 11: attributes; later: optional inputs
        if len(node.input) > 1 and node.input[1]:
            low = float(self._constant(node, 1))
        if len(node.input) > 2 and node.input[2]:
            high = float(self._constant(node, 2))
        if high is None or math.isinf(high):
            if low == 0:
                return self._module(node, nn.ReLU())
            raise _Unsupported("a clip with no upper bound and a lower bound other than 0")
        return self._call(node, "call_function", torch.clamp, (self._value(node.input[0]),), {"min": low, "max": high})

    def _maxpool(self, node, attrs) -> fx.Node:
        if attrs.get("storage_order", 0):
            raise _Unsupported("storage_order")
        pool = nn.MaxPool2d(
            tuple(attrs["kernel_shape"]),
            tuple(attrs.get("strides", (1, 1))),
            _symmetric_padding(attrs, attrs["kernel_shape"], self._hw(node)),
            tuple(attrs.get("dilations", (1, 1))),
            ceil_mode=bool(attrs.get("ceil_mode", 0)),
        )
        return self._module(node, pool)

    def _averagepool(self, node, attrs) -> fx.Node:
        if tuple(attrs.get("dilations", (1, 1))) != (1, 1):
            raise _Unsupported("a dilated average pooling")
        pool = nn.AvgPool2d(
            tuple(attrs["kernel_shape"]),
            tuple(attrs.get("strides", (1, 1))),
            _symmetric_padding(attrs, attrs["kernel_shape"], self._hw(node)),
            ceil_mode=bool(attrs.get("ceil_mode", 0)),
            count_include_pad=bool(attrs.get("count_include_pad", 0)),  # ONNX's default is 0, torch's True
        )
        return self._module(node, pool)

    def _globalaveragepool(self, node, attrs) -> fx.Node:
        return self._module(node, nn.AdaptiveAvgPool2d(1))

    def _reducemean(self, node, attrs) -> fx.Node:
        """The mean over H and W (x.mean((2, 3))): global average pooling, kept [N, C, 1, 1] or not."""
        axes = attrs.get("axes")  # opset < 18: an attribute; later: an optional input
        if len(node.input) > 1 and node.input[1]:
            axes = self._constant(node, 1).astype(int).tolist()
        rank = len(self._shape(node.input[0]) or ())
        if rank != 4 or axes is None or sorted(axis % 4 for axis in axes) != [2, 3]:
            raise _Unsupported(f"a mean over axes {axes}, not over H and W")
        if attrs.get("keepdims", 1):
            return self._module(node, nn.AdaptiveAvgPool2d(1))
        return self._call(node, "call_method", "mean", (self._value(node.input[0]), (2, 3)))

    def _flatten(self, node, attrs) -> fx.Node:
        if attrs.get("axis", 1) != 1:
            raise _Unsupported(f"axis {attrs.get('axis')}, not 1")
        return self._module(node, nn.Flatten())

    def _reshape(self, node, attrs) -> fx.Node:
        """A reshape to [batch, everything else] is a flatten; the batch size is free, whatever the file says. The
        target is what shape inference makes of it: a constant, or sizes computed from x (SHAPE_OPS), where the
        second dimension may stay unknown (a -1) if the first is the input's batch dimension."""
        source, target = self._shape(node.input[0]), self._shape(node.output[0])
        if source is None or target is None or len(target) != 2 or len(source) < 2:
            raise _Unsupported("only a reshape to [batch, C*H*W] is read")
        rest = source[1:]
        flat = target[1] == math.prod(rest) or (target[1] is None and target[0] == source[0] is not None)
        if not all(isinstance(d, int) for d in rest) or not flat:
            raise _Unsupported(f"a reshape of {source} to {target}, not to [batch, C*H*W]")
        return self._module(node, nn.Flatten())

    def _identity(self, node, attrs) -> fx.Node:
        return self._value(node.input[0])

    def _dropout(self, node, attrs) -> fx.Node:
        return self._value(node.input[0])

    # --- helpers ----------------------------------------------------------------------------------------

    def _module(self, node, module: nn.Module) -> fx.Node:
        name = _module_name(node, self.root)
        self.root.add_module(name, module)
        return self.fx_graph.call_module(name, (self._value(node.input[0]),))

    def _call(self, node, kind: str, target, args: tuple, kwargs: dict | None = None) -> fx.Node:
        """A function or method call, its fx node named after the ONNX node (the converter's messages name it)."""
        return self.fx_graph.create_node(kind, target, args, kwargs or {}, name=_module_name(node, self.root))

    def _value(self, name: str) -> fx.Node:
        if name in self.sizes:
            raise _Unsupported(f"input {name!r} is computed from sizes (Shape), not a tensor of the network")
        if name not in self.values:
            raise _Unsupported(f"input {name!r} is a constant where a tensor of the network is expected")
        return self.values[name]

    def _constant(self, node, index: int, optional: bool = False) -> np.ndarray | None:
        name = node.input[index] if index < len(node.input) else ""
        if not name:
            if optional:
                return None
            raise _Unsupported(f"input {index} is missing")
        if name not in self.constants:
            raise _Unsupported(f"input {name!r} is not a constant (an initializer)")
        return self.constants[name].astype(np.float32)

    def _shape(self, name: str) -> tuple | None:
        return self.shapes.get(name)

    def _hw(self, node) -> tuple | None:
        """The height and width of the node's (image) input, as far as shape inference knows them."""
        shape = self._shape(node.input[0])
        return None if shape is None or len(shape) != 4 else shape[2:]


def _attributes(node) -> dict:
    from onnx import helper

    values = {attribute.name: helper.get_attribute_value(attribute) for attribute in node.attribute}
    auto_pad = values.get("auto_pad", b"NOTSET")
    values["auto_pad"] = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    return values


def _pads(attrs, kernel, in_hw) -> tuple[int, int, int, int]:
    """(top, left, bottom, right): the node's pads, or what its auto_pad comes to on an input of `in_hw`
    (SAME: the output is ceil(in / stride), the total padding split evenly, the odd pixel after or before)."""
    mode = attrs["auto_pad"]
    if mode == "NOTSET":
        return tuple(attrs.get("pads", (0, 0, 0, 0)))
    if mode == "VALID":
        return (0, 0, 0, 0)
    if not all(isinstance(size, int) for size in in_hw or ()) or mode not in ("SAME_UPPER", "SAME_LOWER"):
        raise _Unsupported(f"auto_pad {mode} on an input of unknown size")
    strides, dilations = attrs.get("strides", (1, 1)), attrs.get("dilations", (1, 1))
    totals = [
        max((-(-size // stride) - 1) * stride + dilation * (k - 1) + 1 - size, 0)
        for size, stride, dilation, k in zip(in_hw, strides, dilations, kernel, strict=True)
    ]
    small = [total // 2 for total in totals]
    large = [total - half for total, half in zip(totals, small, strict=True)]
    return (*small, *large) if mode == "SAME_UPPER" else (*large, *small)


def _symmetric_padding(attrs, kernel, in_hw) -> tuple[int, int]:
    """torch pads both sides of an axis alike; ONNX pads are (top, left, bottom, right)."""
    top, left, bottom, right = _pads(attrs, kernel, in_hw)
    if (top, left) != (bottom, right):
        raise _Unsupported(f"asymmetric pads {[top, left, bottom, right]}")
    return top, left


def _set(module: nn.Module, **tensors) -> None:
    """Copy the ONNX arrays into `module`'s parameters and buffers (None: the module has none by that name)."""
    with torch.no_grad():
        for name, array in tensors.items():
            if array is not None:
                getattr(module, name).copy_(torch.from_numpy(np.array(array, dtype=np.float32)))


def _dims_of(value_info) -> tuple | None:
    """The static shape of a typed value: an int per known dimension, its symbol (the batch's "N"), or None
    where nothing is known (shape inference's own "unk__" symbols stand for no two equal sizes)."""
    tensor = value_info.type.tensor_type
    if not tensor.HasField("shape"):
        return None
    return tuple(d.dim_value if d.HasField("dim_value") else _symbol(d.dim_param) for d in tensor.shape.dim)


def _symbol(name: str) -> str | None:
    return None if not name or name.startswith("unk__") else name


def _use_counts(graph) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            counts[name] = counts.get(name, 0) + 1
    for output in graph.output:
        counts[output.name] = counts.get(output.name, 0) + 1
    return counts


def _module_name(node, root: nn.Module) -> str:
    """A submodule name from the ONNX node's name, unique in `root`."""
    base = re.sub(r"\W+", "_", node.name).strip("_") or node.op_type.lower()
    base = base if not base[0].isdigit() else f"n{base}"
    name, index = base, 1
    while hasattr(root, name):
        name, index = f"{base}_{index}", index + 1
    return name
