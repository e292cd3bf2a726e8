"""Weight-precision policies: which k each engine layer runs at, the per-layer half of DQT.

The engine takes k per command, so mixing precisions across layers costs no hardware; what a tool needs is
one spelling of the choice, checked before any work starts:

  uniform:K          every layer at k = K (what `--bits K` meant before);
  static:K1,K2,...   one k per GEMM layer, in execution order (the export's layer order);
  dynamic[:BUDGET]   a k per layer and per image, chosen by the export's controller at a mean BitOPs budget
                     given as the equivalent uniform k (dynamic:3 = the BitOPs of uniform k = 3).

A tool parses the spelling once (`parse_policy`) and resolves it against the export it runs
(`Policy.resolve`): the ResolvedPolicy it gets, one k per GEMM layer or the export's controller, is what it
hands whole to the cycle model and the RTL flow, and its `label` is the one name tables give it.

BitOPs are counted as DQT and the mixed-precision literature count them: MACs x weight bits x activation
bits, per image. They say what a precision choice costs independently of the engine; cycles and energy then
say what it costs on a given engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from contract.numerics import NumericsError

if TYPE_CHECKING:  # only named: the applications parse policies before they import numpy (instant --help)
    from contract.model_format import Export, ExportedController

POLICY_KINDS = ("uniform", "static", "dynamic")


@dataclass(frozen=True)
class Policy:
    kind: str
    bits: tuple[int, ...] = ()  # uniform: (K,); static: one k per layer
    budget: float | None = None  # dynamic: the equivalent uniform k of the mean BitOPs budget

    def per_layer(self, layers: int) -> tuple[int, ...]:
        """The k of each of `layers` GEMM layers; a static vector must have exactly one entry per layer."""
        if self.kind == "uniform":
            return self.bits * layers
        if self.kind == "static":
            if len(self.bits) != layers:
                raise NumericsError(
                    f"the precision vector has {len(self.bits)} entries for a network of {layers} GEMM layers"
                )
            return self.bits
        raise NumericsError("a dynamic policy chooses k per image; it has no fixed per-layer vector")

    def resolve(self, export: Export) -> ResolvedPolicy:
        """This policy for `export`: its k per GEMM layer (NumericsError if a static vector does not fit the
        layers), or for dynamic the export's controller for the budget (InputError naming the budgets there are)."""
        if self.kind == "dynamic":
            return ResolvedPolicy(self, controller=export.controller(self.budget))
        return ResolvedPolicy(self, self.per_layer(len(export.layers)))

    def __str__(self) -> str:
        if self.kind == "dynamic":
            return "dynamic" if self.budget is None else f"dynamic:{self.budget:g}"
        return f"{self.kind}:{','.join(map(str, self.bits))}"


@dataclass(frozen=True)
class ResolvedPolicy:
    """A policy resolved against one export (Policy.resolve), passed whole from the application to the model
    and the RTL flow: uniform and static carry `ks`, one k per GEMM layer in execution order; dynamic carries
    `controller`, the export's controller, which chooses k per image."""

    policy: Policy
    ks: tuple[int, ...] = ()
    controller: ExportedController | None = None

    @property
    def label(self) -> str:
        """How tables and output names call it: k (uniform), "K1,K2,..." (static), "dynamic:BUDGET" (the
        controller's budget, also when the policy named none)."""
        if self.controller is not None:
            return f"dynamic:{self.controller.budget:g}"
        return ",".join(map(str, self.policy.bits))


def _bits(text: str, base_bits: int, what: str) -> int:
    try:
        k = int(text)
    except ValueError:
        raise NumericsError(f"{what} must be an integer in 1..{base_bits}, got {text!r}") from None
    if not 1 <= k <= base_bits:
        raise NumericsError(f"{what} must be an integer in 1..{base_bits}, got {k}")
    return k


def parse_policy(text: str, base_bits: int) -> Policy:
    """`uniform:K`, `static:K1,K2,...` or `dynamic[:BUDGET]` for weights of `base_bits` stored bits."""
    kind, _, argument = text.strip().partition(":")
    if kind not in POLICY_KINDS:
        raise NumericsError(f"unknown policy {text!r}; expected uniform:K, static:K1,K2,... or dynamic[:BUDGET]")
    if kind == "uniform":
        return Policy("uniform", (_bits(argument, base_bits, "uniform:K"),))
    if kind == "static":
        entries = argument.split(",") if argument else []
        if not entries:
            raise NumericsError("static needs a precision vector, e.g. static:8,4,4,2")
        return Policy("static", tuple(_bits(e.strip(), base_bits, "each static k") for e in entries))
    if not argument:
        return Policy("dynamic")
    try:
        budget = float(argument)
    except ValueError:
        budget = float("nan")
    if not 1 <= budget <= base_bits:  # also refuses nan
        raise NumericsError(f"a dynamic budget is an equivalent uniform k in 1..{base_bits}, got {argument!r}")
    return Policy("dynamic", budget=budget)


def bitops(shapes: Sequence[tuple[int, int, int]], ks: Sequence[int], act_bits: int) -> int:
    """Sum of M*K*N*k*j over GEMMs of shape (M, K, N) at weight bits k and activation bits j = act_bits."""
    if len(shapes) != len(ks):
        raise NumericsError(f"{len(shapes)} GEMM shapes but {len(ks)} precisions")
    return sum(m * k_dim * n * k * act_bits for (m, k_dim, n), k in zip(shapes, ks, strict=True))
