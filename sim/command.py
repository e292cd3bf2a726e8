"""One engine command as the host sees it: the GEMM operands, precisions and requantization parameters."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from contract.config import EngineConfig
from contract.numerics import ACT_BITS_RANGE, BASE_BITS_RANGE, NumericsError, check_mode, check_range, check_scheme


def row_slices(cfg: EngineConfig, m: int) -> list[slice]:
    """How a host runs a GEMM with more rows than the accumulator holds: consecutive commands of at most
    max_m rows each. Every place that splits a layer (commands, event counts, reference outputs) uses this."""
    return [slice(first, min(first + cfg.max_m, m)) for first in range(0, m, cfg.max_m)]


@dataclass(frozen=True, eq=False)
class Command:
    """Y[m x n] = requant(X[m x k_dim] . W[k_dim x n]) at weight precision `wbits` and activation precision
    `abits`; X holds A-bit activation codes, W B-bit weight codes, bias/mult/shift one entry per column."""

    X: np.ndarray
    W: np.ndarray
    wbits: int
    abits: int
    scheme: str
    mode: str
    bias: np.ndarray
    mult: np.ndarray
    shift: np.ndarray

    def __post_init__(self):
        """Refuse wrong types at once (NumericsError), before any shape is read or value computed: numpy would
        otherwise truncate a float bias 0.7 to 0, run a bool shift as 1, or fail with an IndexError on a 1-D X."""
        for name, rank in (("X", 2), ("W", 2), ("bias", 1), ("mult", 1), ("shift", 1)):
            value = getattr(self, name)
            if not isinstance(value, np.ndarray) or value.dtype.kind not in "iu" or value.ndim != rank:
                shown = f"{value.ndim}-D {value.dtype}" if isinstance(value, np.ndarray) else type(value).__name__
                raise NumericsError(f"{name} must be a {rank}-D numpy array of integers, got {shown}")
        for name, (_, most) in (("wbits", BASE_BITS_RANGE), ("abits", ACT_BITS_RANGE)):
            check_range(name, getattr(self, name), 1, most)
        for name in ("scheme", "mode"):
            if not isinstance(getattr(self, name), str):
                raise NumericsError(f"{name} must be a string, got {getattr(self, name)!r}")

    @property
    def m(self) -> int:
        return self.X.shape[0]

    @property
    def k_dim(self) -> int:
        return self.X.shape[1]

    @property
    def n(self) -> int:
        return self.W.shape[1]

    def check(self, cfg: EngineConfig) -> None:
        """Raise NumericsError unless this command fits the engine built with `cfg` (codes are checked by
        golden.nested when the outputs are computed)."""
        check_scheme(self.scheme)
        check_mode(self.mode)
        if self.W.shape[0] != self.k_dim:
            raise NumericsError(f"X {self.X.shape} and W {self.W.shape} are not [M, K] and [K, N]")
        for name, value, limit in (
            ("m", self.m, cfg.max_m),
            ("k_dim", self.k_dim, cfg.max_k),
            ("n", self.n, cfg.max_n),
            ("wbits", self.wbits, cfg.base_bits),
            ("abits", self.abits, cfg.act_bits),
        ):
            if not 1 <= value <= limit:
                raise NumericsError(f"{name} must lie in 1..{limit} for this engine, got {value}")
        for name in ("bias", "mult", "shift"):
            if np.shape(getattr(self, name)) != (self.n,):
                raise NumericsError(f"{name} must have one entry per output column ({self.n})")
        fixed = (cfg.base_bits, cfg.act_bits, "twos")
        if not cfg.switchable and (self.wbits, self.abits, self.scheme) != fixed:
            raise NumericsError(
                f"a fixed-precision engine runs only wbits={fixed[0]}, abits={fixed[1]}, twos; "
                f"got wbits={self.wbits}, abits={self.abits}, {self.scheme}"
            )
