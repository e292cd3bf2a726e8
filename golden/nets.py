"""The built-in networks as plain float PyTorch modules, written the way a user writes a model.

They are not quantized here: `golden.convert.convert` turns them (like any user model of the supported
operations) into the nested-quantized network that is trained, exported and lowered, so the built-in nets
and a user's model go through one path.

- `digits`: the small strided CNN for the 8x8 digits smoke set (8x8 -> 8x8 -> 4x4 -> 2x2, then a linear layer).
- `resnet20`: the TruncQuant table's ResNet-20 (3 stages of 3 basic blocks, 1x1-convolution shortcuts when
  the shape changes, global average pooling and a linear classifier), adapted to 28x28x1 for the CPU budget
  of this project: the stem convolution has stride 2 (28x28 -> 14x14) and the widths are 16/32/64 as in
  the original. Stages run at 14x14, 7x7 and 4x4: about 9.5M MACs per image instead of 41M for the
  stride-1 stem at full resolution.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from torch import nn

from contract.cli import InputError

NETS = ("digits", "resnet20")
RESIDUAL_BN_INIT = 0.1


def activation(bound: float | None) -> nn.Module:
    """A ReLU (bound None), or a clamp to [0, bound]: the unit of the activation codes it makes."""
    return nn.ReLU() if bound is None else nn.Hardtanh(0.0, bound)


class DigitsCNN(nn.Module):
    """Three conv-BN-ReLU layers (strides 1, 2, 2) and a linear layer; named conv0..conv2 and fc3."""

    def __init__(self, channels: int = 1, classes: int = 10, size: int = 8, act_bound: float | None = None):
        super().__init__()
        previous = channels
        for index, width in enumerate((16, 32, 32)):
            stride = 1 if index == 0 else 2
            setattr(self, f"conv{index}", nn.Conv2d(previous, width, 3, stride, 1, bias=False))
            setattr(self, f"bn{index}", nn.BatchNorm2d(width))
            previous, size = width, (size - 1) // stride + 1
        self.relu = activation(act_bound)
        self.fc3 = nn.Linear(previous * size * size, classes)

    def forward(self, x):
        for index in range(3):
            x = self.relu(getattr(self, f"bn{index}")(getattr(self, f"conv{index}")(x)))
        return self.fc3(x.flatten(1))


class BasicBlock(nn.Module):
    """conv-BN-ReLU, conv-BN, plus the input (or its 1x1 strided projection), then ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, act_bound: float | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        # A small residual-branch scale at the start (as torchvision's zero_init_residual, but not zero, so that
        # a BatchNorm of a precision never drawn in a short run still folds): every activation is clamped to
        # [0, 1], and a sum of a full-scale branch and the skip would saturate block after block.
        nn.init.constant_(self.bn2.weight, RESIDUAL_BN_INIT)
        self.relu = activation(act_bound)
        self.shortcut = None
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, 0, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        skip = x if self.shortcut is None else self.shortcut(x)
        return self.relu(out + skip)


class ResNet20(nn.Module):
    def __init__(
        self,
        channels: int = 1,
        classes: int = 10,
        widths=(16, 32, 64),
        blocks: int = 3,
        stem_stride=2,
        act_bound: float | None = None,
    ):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(channels, widths[0], 3, stem_stride, 1, bias=False),
            nn.BatchNorm2d(widths[0]),
            activation(act_bound),
        )
        stages, previous = [], widths[0]
        for index, width in enumerate(widths):
            for block in range(blocks):
                stride = 2 if index > 0 and block == 0 else 1
                stages.append(BasicBlock(previous, width, stride, act_bound))
                previous = width
        self.blocks = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(previous, classes)

    def forward(self, x):
        return self.fc(self.pool(self.blocks(self.stem(x))).flatten(1))


def float_net(
    name: str, input_shape: tuple[int, int, int], classes: int = 10, act_bound: float | None = None
) -> nn.Module:
    """A freshly initialised float network: a built-in by name (module docstring; `act_bound` is its
    activations' bound), a user's model given as FILE.py:CLASS, a torch.nn.Module subclass constructed without
    arguments, or a float ONNX model FILE.onnx with its weights (golden.onnx_import); those two have their own
    activations, and an `act_bound` for them is refused."""
    if name == "digits":
        return DigitsCNN(input_shape[0], classes, input_shape[1], act_bound)
    if name == "resnet20":
        return ResNet20(input_shape[0], classes, act_bound=act_bound)
    if act_bound is not None:
        raise InputError(
            f"an activation bound applies to the built-in networks ({', '.join(NETS)}) only; in {name} write the "
            "clamp into the model (nn.Hardtanh(0, b) or F.relu6)"
        )
    if name.lower().endswith(".onnx"):
        from golden.onnx_import import onnx_module  # onnx (an extra) is needed only for an ONNX model

        return onnx_module(Path(name), input_shape)
    if ":" in name:
        return user_net(*name.rsplit(":", 1))
    raise InputError(f"unknown network {name!r}; expected one of {', '.join(NETS)}, FILE.py:CLASS or FILE.onnx")


def user_net(path: str, class_name: str) -> nn.Module:
    """Instantiate CLASS from the Python file at `path` (the user's own code, run as written)."""
    if not Path(path).is_file():
        raise InputError(f"model file not found: {path}")
    spec = importlib.util.spec_from_file_location(f"nestmac_user_model_{Path(path).stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the user's file may fail in any way; name it in one line
        raise InputError(f"{path} failed to import ({type(exc).__name__}: {exc})") from None
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise InputError(f"{path} has no torch.nn.Module subclass named {class_name!r}")
    try:
        return cls()
    except Exception as exc:
        raise InputError(f"{path}: {class_name}() failed ({type(exc).__name__}: {exc})") from None
