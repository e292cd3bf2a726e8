"""Convolution and linear layers whose weights are fake-quantized at a run-time precision k.

One float weight tensor stands behind every precision; `bits` (k) and `view` select which k-bit weight the
forward pass uses, so switching precision at evaluation time is a setting, exactly as on the hardware.
The same layer also reports what the export needs (base codes, weight scale Sw(k), folded BatchNorm),
so the float model and the integer parameters derive from one set of numbers.

Views (they only differ for a conventional QAT model on the offset scheme):
  - "trunc": the value of the stored B-bit code truncated to its top k bits -- what the engine computes.
  - "quant": the float weights re-quantized directly at k, as a separately quantized model would be.
TruncQuant's floor quantizer and the twos scheme's shifted code are nested by construction, so for them
both views are the same number.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from contract.cli import InputError
from contract.numerics import ACT_BITS_RANGE, BASE_BITS_RANGE, METHODS, check_scheme
from golden.quant import (
    offset_value,
    qat_code,
    qat_weight,
    truncquant_normalize,
    truncquant_weight,
    twos_step_init,
    twos_weight,
    weight_code,
)

WEIGHT_VIEWS = ("trunc", "quant")


@dataclass(frozen=True)
class QuantSpec:
    """How a model is quantized. `method` decides which precisions are trained (truncquant: all of
    B..1, nested; qat: B only) and, on the offset scheme, floor versus round; `scheme` how codes read."""

    method: str
    scheme: str
    base_bits: int = 8
    act_bits: int = 8

    def __post_init__(self):
        if self.method not in METHODS:
            raise InputError(f"unknown method {self.method!r}; expected one of {', '.join(METHODS)}")
        check_scheme(self.scheme)
        for name, value, (lo, hi) in (
            ("base_bits", self.base_bits, BASE_BITS_RANGE),
            ("act_bits", self.act_bits, ACT_BITS_RANGE),
        ):
            if not isinstance(value, int) or not lo <= value <= hi:
                raise InputError(f"{name} must be an integer in {lo}..{hi}, got {value!r}")

    @property
    def trained_precisions(self) -> tuple[int, ...]:
        """Highest first: the order of the distillation chain."""
        if self.method == "qat":
            return (self.base_bits,)
        return tuple(range(self.base_bits, 0, -1))

    def check_precision(self, k: int) -> None:
        if not isinstance(k, int) or not 1 <= k <= self.base_bits:
            raise InputError(f"weight precision k must be an integer in 1..{self.base_bits}, got {k!r}")


def truncated_qat_weight(weight: torch.Tensor, k: int, base_bits: int) -> torch.Tensor:
    """The value a nested engine gets from a QAT (round-to-nearest) base code by keeping its top k bits.
    Evaluation only: it has no straight-through gradient because nobody trains through it."""
    code = qat_code(truncquant_normalize(weight), base_bits)
    return offset_value(torch.floor(code / (1 << (base_bits - k))), k, weight.abs().mean())


class NestedWeightMixin:
    """Fake quantization of `self.weight` at precision `self.bits`, shared by QConv2d and QLinear."""

    weight: nn.Parameter

    def _init_quant(self, spec: QuantSpec) -> None:
        self.spec = spec
        self.bits = spec.base_bits
        self.view = "trunc"
        if spec.scheme == "twos":
            # Learned in the log domain: Adam then moves the step by relative amounts whatever its
            # magnitude, and it can never become zero or negative.
            self.log_step = nn.Parameter(torch.log(twos_step_init(self.weight, spec.base_bits)))

    def reset_step(self) -> None:
        """Recalibrate the twos scheme's step to the current weights (after they were set from a float model)."""
        if self.spec.scheme == "twos":
            with torch.no_grad():
                self.log_step.copy_(torch.log(twos_step_init(self.weight, self.spec.base_bits)))

    @property
    def step(self) -> torch.Tensor:
        return torch.exp(self.log_step)

    def quantized_weight(self) -> torch.Tensor:
        spec, k = self.spec, self.bits
        if spec.scheme == "twos":
            return twos_weight(self.weight, self.step, k, spec.base_bits)
        if spec.method == "truncquant":
            return truncquant_weight(self.weight, k)
        if self.view == "quant" or k == spec.base_bits:  # truncating by zero bits is the trained quantizer
            return qat_weight(self.weight, k)
        return truncated_qat_weight(self.weight, k, spec.base_bits)

    def weight_codes(self) -> torch.Tensor:
        """The stored unsigned B-bit codes, int64, in the weight tensor's shape."""
        step = self.step if self.spec.scheme == "twos" else None
        return weight_code(self.weight.detach(), self.spec.method, self.spec.scheme, self.spec.base_bits, step)

    def weight_scale(self, k: int) -> float:
        """Sw(k): the real value of one unit of the k-bit integer weight (docs/numerics.md)."""
        if self.spec.scheme == "twos":
            return float(self.step.detach()) * 2.0 ** (self.spec.base_bits - k)
        return float(self.weight.detach().abs().mean()) / ((1 << k) - 1)


class QConv2d(nn.Conv2d, NestedWeightMixin):
    """Bias-free convolution (any kernel, stride, padding, dilation and groups; kernel, stride, padding and
    dilation each an integer or a (height, width) pair) followed by a BatchNorm per trained precision
    (TruncQuant keeps one BN per bit-width because the pre-activation statistics change with k). A QAT model
    has a single BN, used at every k: a conventional model knows nothing about lower precisions."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride,
        padding,
        spec: QuantSpec,
        dilation=1,
        groups: int = 1,
    ):
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            bias=False,
        )
        self._init_quant(spec)
        self.bns = nn.ModuleDict({str(k): nn.BatchNorm2d(out_channels) for k in spec.trained_precisions})

    def bn_for(self, k: int) -> nn.BatchNorm2d:
        """The BN of the lowest trained precision >= k."""
        return self.bns[str(min(p for p in self.spec.trained_precisions if p >= k))]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = F.conv2d(x, self.quantized_weight(), None, self.stride, self.padding, self.dilation, self.groups)
        return self.bn_for(self.bits)(z)

    def folded_bn(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(g, h) in float64 with BN(z) = g * z + h in evaluation mode."""
        bn = self.bn_for(k)
        g = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)
        return g, bn.bias.detach().double() - g * bn.running_mean.double()


class QLinear(nn.Linear, NestedWeightMixin):
    """Linear layer with a float bias, used as the network's last layer (raw logits, no BatchNorm)."""

    def __init__(self, in_features: int, out_features: int, spec: QuantSpec):
        super().__init__(in_features, out_features, bias=True)
        self._init_quant(spec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.quantized_weight(), self.bias)
