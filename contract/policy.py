"""Weight-precision policies: which k each engine layer runs at, the per-layer half of DQT.

The engine takes k per command, so mixing precisions across layers costs no hardware; what a tool needs is
one spelling of the choice, checked before any work starts:

  uniform:K          every layer at k = K (what `--bits K` meant before);
  static:K1,K2,...   one k per GEMM layer, in execution order (the export's layer order);
  dynamic[:BUDGET]   a k per layer and per image, chosen by the export's controller at a mean BitOPs budget
                     given as the equivalent uniform k (dynamic:3 = the BitOPs of uniform k = 3).

BitOPs are counted as DQT and the mixed-precision literature count them: MACs x weight bits x activation
bits, per image. They say what a precision choice costs independently of the engine; cycles and energy then
say what it costs on a given engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from contract.numerics import NumericsError

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

    def __str__(self) -> str:
        if self.kind == "dynamic":
            return "dynamic" if self.budget is None else f"dynamic:{self.budget:g}"
        return f"{self.kind}:{','.join(map(str, self.bits))}"


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


def precision_label(k: int | Sequence[int]) -> int | str:
    """How tables name a run: k itself for one precision, "K1,K2,..." for one k per layer."""
    return k if isinstance(k, int) else ",".join(map(str, k))


def bitops(shapes: Sequence[tuple[int, int, int]], ks: Sequence[int], act_bits: int) -> int:
    """Sum of M*K*N*k*j over GEMMs of shape (M, K, N) at weight bits k and activation bits j = act_bits."""
    if len(shapes) != len(ks):
        raise NumericsError(f"{len(shapes)} GEMM shapes but {len(ks)} precisions")
    return sum(m * k_dim * n * k * act_bits for (m, k_dim, n), k in zip(shapes, ks, strict=True))
