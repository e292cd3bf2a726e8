"""The digits CNN, built only from operations the engine runs, and its checkpoint format.

Every layer is a GEMM after lowering (convolutions by im2col), followed by folded BatchNorm and
ReLU+clamp, which the requantizer does in one step; downsampling is by strided convolution because the
engine has no pooling. All layers are quantized, the first and last included, and the input is quantized
to A-bit codes, so the float model and the integer path see the same numbers everywhere.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from contract.cli import InputError, atomic_file
from golden.data import CLASSES, IMAGE_SHAPE
from golden.layers import WEIGHT_VIEWS, QConv2d, QLinear, QuantSpec
from golden.quant import quantize_activation

CHECKPOINT_FORMAT = "nestmac-golden-checkpoint"
CHECKPOINT_VERSION = 1


@dataclass(frozen=True)
class ConvGeometry:
    out_channels: int
    kernel: int
    stride: int
    padding: int


# 8x8 -> 8x8 -> 4x4 -> 2x2, then a linear layer on the 32*2*2 flattened codes.
CONVS = (ConvGeometry(16, 3, 1, 1), ConvGeometry(32, 3, 2, 1), ConvGeometry(32, 3, 2, 1))


def conv_output_size(size: int, geometry: ConvGeometry) -> int:
    return math.floor((size + 2 * geometry.padding - geometry.kernel) / geometry.stride) + 1


class DigitsNet(nn.Module):
    def __init__(self, spec: QuantSpec):
        super().__init__()
        self.spec = spec
        channels, size = IMAGE_SHAPE[0], IMAGE_SHAPE[1]
        convs = []
        for geometry in CONVS:
            convs.append(
                QConv2d(channels, geometry.out_channels, geometry.kernel, geometry.stride, geometry.padding, spec)
            )
            channels, size = geometry.out_channels, conv_output_size(size, geometry)
        self.convs = nn.ModuleList(convs)
        self.fc = QLinear(channels * size * size, CLASSES, spec)

    @property
    def quant_layers(self) -> list[QConv2d | QLinear]:
        """In execution order, as the export lists them."""
        return [*self.convs, self.fc]

    def set_precision(self, k: int, view: str = "trunc") -> None:
        """Select the weight precision k (and, for QAT models, how its k-bit weights are obtained)."""
        self.spec.check_precision(k)
        if view not in WEIGHT_VIEWS:
            raise InputError(f"unknown weight view {view!r}; expected one of {', '.join(WEIGHT_VIEWS)}")
        for layer in self.quant_layers:
            layer.bits, layer.view = k, view

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        act_bits = self.spec.act_bits
        x = quantize_activation(images, act_bits)
        for conv in self.convs:
            x = quantize_activation(conv(x), act_bits)  # ReLU and clamp to [0, 1] are inside the quantizer
        return self.fc(x.flatten(1))


def save_checkpoint(model: DigitsNet, path, training: dict) -> None:
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


def load_checkpoint(path) -> tuple[DigitsNet, dict]:
    """(model in eval mode, training record); InputError with one line for anything unusable."""
    payload = _read_payload(path)
    if payload.get("version") != CHECKPOINT_VERSION:
        raise InputError(f"{path}: checkpoint version {payload.get('version')!r} is not {CHECKPOINT_VERSION}")
    try:
        model = DigitsNet(QuantSpec(**payload["spec"]))
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, RuntimeError) as exc:
        raise InputError(f"{path}: checkpoint does not match the model ({type(exc).__name__})") from None
    model.eval()
    return model, payload.get("training", {})
