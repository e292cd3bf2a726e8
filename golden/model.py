"""The nested-quantized network: a small graph of engine GEMMs and host operations, and its checkpoint format.

`golden.convert.convert` builds it from a float PyTorch model. Every convolution and linear layer is a
GEMM after lowering (convolutions by im2col) followed by folded BatchNorm and ReLU+clamp, which the
requantizer does in one step. A convolution whose output feeds a residual add stays a pre-activation
(rounded to the activation grid, unclamped; the engine's raw mode plus a host requantization); the add's
sum is clamped to [0, 1] and quantized, as ReLU+clamp, or, for a linear add (no ReLU), clamped to the signed
codes' range (golden.quant.signed_activation). Global average pooling is folded into the linear layer after
it; any other max or average pooling is a host operation on activation codes (golden.pooling), and so is a
concat along channels.
All layers are quantized, the first and last included, and the input is quantized to A-bit codes, so the
float model and the integer path see the same numbers everywhere. A network may also
hold precision controllers (golden.controller), which the checkpoint and the export carry with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from torch import nn

from contract.cli import InputError, atomic_file
from contract.datasets import DATASETS
from contract.model_format import POOL_OPS, Pooling
from golden.controller import Controller, ControllerSpec, Mixer, check_controller_spec
from golden.layers import WEIGHT_VIEWS, QConv2d, QLinear, QuantSpec
from golden.pooling import pool_activation
from golden.quant import grid_activation, quantize_activation, signed_activation

CHECKPOINT_FORMAT = "nestmac-golden-checkpoint"
CHECKPOINT_VERSION = 5
# Version 3 added "controllers" (a version-2 checkpoint has none); version 4 the pooling nodes and a
# convolution's pairs, dilation and groups, which a reader of version 3 refuses by the version; version 5 the
# linear add (an add node with relu false) and the concat node.
READABLE_CHECKPOINTS = (2, 3, 4, 5)
INPUT = "input"  # the name under which nodes refer to the network's input
OPS = ("conv", "linear", "add", *POOL_OPS, "concat")
HOST_OPS = ("add", *POOL_OPS, "concat")  # the nodes that are no GEMM layer
_GEOMETRY = ("kernel", "stride", "padding", "dilation")


@dataclass(frozen=True)
class Node:
    """One operation of a quantized network, reading the outputs of earlier nodes (or INPUT) by name."""

    name: str
    op: str
    inputs: tuple[str, ...]
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    relu: bool  # False: a pre-activation (a conv feeding an add), raw logits (the last layer) or a linear add
    kernel: int | tuple[int, int] = 0  # conv only, each an integer or a (height, width) pair
    stride: int | tuple[int, int] = 0
    padding: int | tuple[int, int] = 0
    pool: bool = False  # linear only: global average pooling over in_shape's H x W comes first
    dilation: int | tuple[int, int] = 1  # conv only
    groups: int = 1  # conv only
    pooling: Pooling | None = None  # maxpool and avgpool only: the window

    def as_dict(self) -> dict:
        entry = asdict(self)
        return entry | {key: list(entry[key]) for key in ("inputs", "in_shape", "out_shape")}

    @classmethod
    def from_dict(cls, entry: dict) -> Node:
        """A node as as_dict wrote it (torch.save keeps tuples; lists are accepted too)."""
        entry = entry | {key: tuple(entry[key]) for key in ("inputs", "in_shape", "out_shape")}
        entry |= {key: tuple(entry[key]) for key in _GEOMETRY if isinstance(entry.get(key), list | tuple)}
        if entry.get("pooling") is not None:
            window = entry["pooling"]
            entry["pooling"] = Pooling(**window | {key: tuple(window[key]) for key in _GEOMETRY})
        return cls(**entry)


def _make_layer(node: Node, spec: QuantSpec) -> nn.Module:
    if node.op == "conv":
        return QConv2d(
            node.in_shape[0],
            node.out_shape[0],
            node.kernel,
            node.stride,
            node.padding,
            spec,
            node.dilation,
            node.groups,
        )
    features = node.in_shape[0] if node.pool else int(torch.Size(node.in_shape).numel())
    return QLinear(features, node.out_shape[0], spec)


class QuantNet(nn.Module):
    def __init__(
        self,
        spec: QuantSpec,
        input_shape: tuple[int, ...],
        nodes: Sequence[Node],
        controllers: Sequence[ControllerSpec] = (),
    ):
        super().__init__()
        self.spec, self.input_shape, self.nodes = spec, tuple(input_shape), tuple(nodes)
        self.layers = nn.ModuleDict({n.name: _make_layer(n, spec) for n in self.nodes if n.op not in HOST_OPS})
        self.controllers = nn.ModuleDict()
        for controller in controllers:
            self.add_controller(controller)

    def add_controller(self, spec: ControllerSpec) -> Controller:
        """A new, randomly initialised controller (golden.controller) under spec.name; InputError if it does not
        fit this network or the name is taken."""
        names = [node.name for node in self.gemm_nodes]
        check_controller_spec(spec, self.spec, names, {node.name for node in self.gemm_nodes if node.relu})
        if spec.name in self.controllers or spec.name in self.layers:
            raise InputError(f"the network already has a controller or layer named {spec.name!r}")
        reads = next(node for node in self.gemm_nodes if node.name == spec.reads)
        self.controllers[spec.name] = Controller(spec, reads.out_shape[0], self.spec)
        return self.controllers[spec.name]

    @property
    def gemm_nodes(self) -> list[Node]:
        return [node for node in self.nodes if node.op not in HOST_OPS]

    @property
    def quant_layers(self) -> list[QConv2d | QLinear]:
        """In execution order, as the export lists them."""
        return [self.layers[node.name] for node in self.gemm_nodes]

    def set_precision(self, k: int | Sequence[int], view: str = "trunc") -> None:
        """Select the weight precision k, one for all layers or one per layer in execution order (and, for
        QAT models, how its k-bit weights are obtained)."""
        layers = self.quant_layers
        ks = per_layer_precisions(k, len(layers))
        for value in ks:
            self.spec.check_precision(value)
        if view not in WEIGHT_VIEWS:
            raise InputError(f"unknown weight view {view!r}; expected one of {', '.join(WEIGHT_VIEWS)}")
        for layer, value in zip(layers, ks, strict=True):
            layer.bits, layer.view = value, view

    def forward(self, images: torch.Tensor, mixer: Mixer | None = None) -> torch.Tensor:
        """Logits at the set precisions. With a `mixer` (a controller's, golden.controller), each layer it
        controls is computed at every candidate k and its outputs mixed by the mixer's per-image weights."""
        values = {INPUT: quantize_activation(images, self.spec.act_bits)}
        for node in self.nodes:
            weights = None if mixer is None else mixer.weights(node.name)
            if weights is None:
                values[node.name] = self._node_value(node, values)
            else:
                values[node.name] = self._mixed_value(node, values, mixer.candidates, weights)
            if mixer is not None:
                mixer.seen(node.name, values[node.name])
        return values[self.nodes[-1].name]

    def _mixed_value(self, node: Node, values: dict, candidates: Sequence[int], weights: torch.Tensor) -> torch.Tensor:
        layer, bits = self.layers[node.name], self.layers[node.name].bits
        mixed = 0.0
        for column, k in enumerate(candidates):
            layer.bits = k
            out = self._node_value(node, values)
            mixed = mixed + weights[:, column].reshape(-1, *([1] * (out.dim() - 1))) * out
        layer.bits = bits
        return mixed

    def _node_value(self, node: Node, values: dict) -> torch.Tensor:
        act_bits = self.spec.act_bits
        if node.op in POOL_OPS:
            return pool_activation(values[node.inputs[0]], node.op, node.pooling, act_bits)
        if node.op == "concat":
            return torch.cat([values[name] for name in node.inputs], dim=1)
        if node.op == "add":
            z = sum(values[name] for name in node.inputs)
            if not node.relu:
                return signed_activation(z, act_bits)
        elif node.op == "conv":
            z = self.layers[node.name](values[node.inputs[0]])
        else:
            x = values[node.inputs[0]]
            z = self.layers[node.name](x.mean(dim=(2, 3)) if node.pool else x.flatten(1))
        if node.relu:  # ReLU and clamp to [0, 1] are inside the quantizer
            return quantize_activation(z, act_bits)
        if node is self.nodes[-1]:
            return z  # logits
        return grid_activation(z, act_bits)


def per_layer_precisions(k: int | Sequence[int], layers: int) -> list[int]:
    """k for every GEMM layer: one k for all, or a sequence with exactly one k per layer."""
    if isinstance(k, Sequence) and not isinstance(k, str):
        if len(k) != layers:
            raise InputError(f"{len(k)} weight precisions given for {layers} layers")
        return list(k)
    return [k] * layers


def save_checkpoint(model: QuantNet, path, training: dict) -> None:
    """Atomically write weights, quantization spec and training record (torch.save of plain types only,
    so it loads with weights_only=True), over nothing but an earlier checkpoint. A model whose training
    diverged (NaN or infinite parameters) is refused: it would export as garbage codes without complaint."""
    state = model.state_dict()
    if not all(torch.isfinite(value).all() for value in state.values() if value.is_floating_point()):
        raise InputError("training diverged (non-finite parameters); no checkpoint written, try a smaller --lr")
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "spec": asdict(model.spec),
        "input_shape": list(model.input_shape),
        "nodes": [node.as_dict() for node in model.nodes],
        "controllers": [controller.spec.as_dict() for controller in model.controllers.values()],
        "training": training,
        "state_dict": state,
    }
    with atomic_file(path, is_checkpoint) as tmp:
        torch.save(payload, tmp)


def is_checkpoint(path) -> bool:
    try:
        _read_payload(path)
    except InputError:
        return False
    return True


def _read_payload(path) -> dict:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InputError(f"model file not found: {path}") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a directory, not a model checkpoint") from None
    except Exception as exc:  # torch reports corrupt archives with several unrelated exception types
        raise InputError(f"{path} is not a readable model checkpoint ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise InputError(f"{path} is not a nestmac golden checkpoint")
    return payload


def trained_on(training: object) -> str | None:
    """The data set a checkpoint's training record names (None for a record from before it did, or a bad one)."""
    data = training.get("data") if isinstance(training, dict) else None
    return data if data in DATASETS else None


def load_checkpoint(path) -> tuple[QuantNet, dict]:
    """(model in eval mode, training record); InputError with one line for anything unusable."""
    payload = _read_payload(path)
    if payload.get("version") not in READABLE_CHECKPOINTS:
        raise InputError(
            f"{path}: checkpoint version {payload.get('version')!r} is not "
            f"{' or '.join(map(str, READABLE_CHECKPOINTS))} (version 1 held the fixed digits net without its graph); "
            "retrain it with golden.train"
        )
    try:
        nodes = [Node.from_dict(entry) for entry in payload["nodes"]]
        controllers = [ControllerSpec.from_dict(entry) for entry in payload.get("controllers", [])]
        model = QuantNet(QuantSpec(**payload["spec"]), tuple(payload["input_shape"]), nodes, controllers)
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as exc:
        raise InputError(f"{path}: checkpoint does not match the model ({type(exc).__name__})") from None
    model.eval()
    return model, payload.get("training", {})
