"""The numerics contract's fixed facts (docs/numerics.md): its version, ranges, schemes, modes, and its error.

Everything that every layer must agree on and that needs no arithmetic library lives here, so the HDL
(amaranth only), the model and the PyTorch golden reference all read one definition: a width or a range
cannot differ between the Verilog and the reference that checks it.
"""

from __future__ import annotations

import numbers

from contract.errors import NestmacError

CONTRACT_VERSION = 1
SCHEMES = ("offset", "twos")
#: How a model was trained for nested precisions (golden.layers); an export records it.
METHODS = ("truncquant", "qat")
#: The requantizer's output modes (docs/numerics.md, "Output mode"): the A-bit code, the ACC-bit t, or the
#: requantized value y without the clamp (a raw layer's u that a layer program keeps on chip).
MODES = ("relu", "raw", "linear")
#: The modes an exported layer may have: `linear` is the engine's, chosen by the program compiler.
LAYER_MODES = ("relu", "raw")
BASE_BITS_RANGE = (2, 16)
ACT_BITS_RANGE = (1, 16)
ACC_BITS_RANGE = (8, 40)
MULT_BITS = 16
SHIFT_BITS = 6


class NumericsError(NestmacError, ValueError):
    """A parameter outside the contract (bad k, scheme, width or code): callers print it as one line."""


def check_range(name: str, value: int, lo: int, hi: int) -> None:
    """Raise NumericsError unless `value` is an integer (not a bool) in lo..hi."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or not lo <= value <= hi:
        raise NumericsError(f"{name} must be an integer in {lo}..{hi}, got {value!r}")


def check_scheme(scheme: str) -> None:
    if scheme not in SCHEMES:
        raise NumericsError(f"unknown scheme {scheme!r}; expected one of {', '.join(SCHEMES)}")


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise NumericsError(f"unknown output mode {mode!r}; expected one of {', '.join(MODES)}")
