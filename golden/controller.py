"""The DQT-style precision controller on the float side: what it is, and how it steers a forward pass.

A controller reads the ReLU output of one GEMM layer (`reads`, by default the first), pools it over H x W and
runs one nested-quantized linear layer at its own weight precision k; its outputs are one logit per
controlled layer and candidate precision, laid out layer-major (layer i's candidates at columns i*C..i*C+C-1).
Each controlled layer runs at the candidate with the largest logit (ties: the smaller k); every other layer
runs at a fixed k. The pooling is folded into the linear layer on export, exactly as the network's own global
average pooling, so the controller's GEMM runs on the engine and its cost is counted like any layer's.

During training the choice is relaxed (golden.train_controller): `QuantNet.forward(images, mixer)` asks a
`Mixer` for per-image weights over the candidates of each controlled layer, computes that layer at every
candidate k and mixes the outputs. With straight-through one-hot weights the forward value is exactly the
chosen precision's (1 * y + 0 * y' == y), so the relaxed network computes what the integer path will.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from contract.cli import InputError
from contract.model_format import controller_record
from golden.layers import QLinear, QuantSpec
from golden.quant import ste


@dataclass(frozen=True)
class ControllerSpec:
    """Everything about a controller but its weights (the export's "controllers" entry without "layer")."""

    name: str
    budget: float  # mean BitOPs budget as the equivalent uniform k (contract.policy, dynamic:B)
    reads: str  # the GEMM layer whose ReLU output codes it reads
    candidates: tuple[int, ...]  # ascending
    controls: tuple[str, ...]  # the layers it chooses k for, in execution order
    fixed: tuple[tuple[str, int], ...]  # (layer, k) for every other GEMM layer, in execution order
    k: int  # the controller's own weight precision

    def as_dict(self) -> dict:
        return controller_record(self)

    @classmethod
    def from_dict(cls, entry: dict) -> ControllerSpec:
        return cls(
            entry["name"],
            float(entry["budget"]),
            entry["reads"],
            tuple(entry["candidates"]),
            tuple(entry["controls"]),
            tuple((name, k) for name, k in entry["fixed"].items()),
            entry["k"],
        )

    @property
    def outputs(self) -> int:
        return len(self.controls) * len(self.candidates)


def controller_name(budget: float) -> str:
    """`controller_2`, `controller_2_5`: a name usable as a module key and an export array prefix."""
    return f"controller_{budget:g}".replace(".", "_").replace("-", "_")


def check_controller_spec(spec: ControllerSpec, quant: QuantSpec, layer_names: Sequence[str], relu: set[str]) -> None:
    """InputError (one line) unless `spec` fits a network with these GEMM layers in execution order."""
    where = f"controller {spec.name}"
    if spec.reads not in relu:
        raise InputError(f"{where}: reads {spec.reads!r}, which is not a GEMM layer with a ReLU output")
    after = layer_names[layer_names.index(spec.reads) + 1 :]
    if not spec.controls or list(spec.controls) != [name for name in after if name in spec.controls]:
        raise InputError(f"{where}: controls must be layers after {spec.reads}, in execution order")
    if sorted(set(spec.controls) | {name for name, _ in spec.fixed}) != sorted(layer_names) or len(spec.fixed) + len(
        spec.controls
    ) != len(layer_names):
        raise InputError(f"{where}: every GEMM layer must be either controlled or fixed, exactly once")
    if not spec.candidates or list(spec.candidates) != sorted(set(spec.candidates)):
        raise InputError(f"{where}: candidates must be distinct and ascending, got {list(spec.candidates)}")
    for k in (*spec.candidates, spec.k, *(k for _, k in spec.fixed)):
        quant.check_precision(k)
    if not 1 <= spec.budget <= quant.base_bits:
        raise InputError(f"{where}: budget {spec.budget!r} is not an equivalent uniform k in 1..{quant.base_bits}")


class Controller(nn.Module):
    """Global average pooling of the read layer's activations, then one nested-quantized linear layer."""

    def __init__(self, spec: ControllerSpec, features: int, quant: QuantSpec):
        super().__init__()
        self.spec = spec
        self.linear = QLinear(features, spec.outputs, quant)
        self.linear.bits = spec.k

    def forward(self, activations: torch.Tensor) -> torch.Tensor:
        """Logits [batch, len(controls), len(candidates)] from the read layer's output values."""
        self.linear.bits = self.spec.k
        logits = self.linear(activations.mean(dim=(2, 3)))
        return logits.reshape(len(activations), len(self.spec.controls), len(self.spec.candidates))


class Mixer:
    """How QuantNet.forward lets a controller steer it: `seen` receives every node's output as it is computed,
    `weights` gives a controlled layer's per-image weights [batch, len(candidates)] over the candidates."""

    def __init__(self, controller: Controller):
        self.controller = controller
        self.chosen: dict[str, torch.Tensor] = {}
        self.logits: torch.Tensor | None = None

    def seen(self, name: str, value: torch.Tensor) -> None:
        if name == self.controller.spec.reads:
            self.logits = self.controller(value)
            gates = self.gates(self.logits)
            self.chosen = {layer: gates[:, i] for i, layer in enumerate(self.controller.spec.controls)}

    def gates(self, logits: torch.Tensor) -> torch.Tensor:
        """Hard choice of the largest logit (first, i.e. smaller k, on ties), as the integer decision."""
        index = logits.argmax(dim=2)
        return nn.functional.one_hot(index, logits.shape[2]).to(logits.dtype)

    def weights(self, name: str) -> torch.Tensor | None:
        return self.chosen.get(name)

    @property
    def candidates(self) -> tuple[int, ...]:
        return self.controller.spec.candidates


class GumbelMixer(Mixer):
    """Straight-through Gumbel-softmax: the forward pass takes the one-hot argmax of logits + Gumbel noise, the
    backward pass the gradient of softmax((logits + noise) / tau)."""

    def __init__(self, controller: Controller, tau: float, generator: torch.Generator):
        super().__init__(controller)
        self.tau, self.generator = tau, generator

    def gates(self, logits: torch.Tensor) -> torch.Tensor:
        uniform = torch.rand(logits.shape, generator=self.generator).clamp(1e-9, 1 - 1e-9)
        noisy = (logits - torch.log(-torch.log(uniform))) / self.tau
        soft = torch.softmax(noisy, dim=2)
        hard = nn.functional.one_hot(noisy.argmax(dim=2), logits.shape[2]).to(logits.dtype)
        return ste(hard, soft)
