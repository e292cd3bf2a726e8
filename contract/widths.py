"""Widths of the engine's internal sums, as functions of the generation parameters.

The HDL sizes its adders and registers by these rules and the energy model (`sim.events`) prices the same
adders, so both read them here and the cycle/energy model needs no HDL. The payload widths of the ports
are in `contract.streams`. `ceil_div` is the one rounding every tile count uses (ceil(K/R), ceil(N/C)).
"""

from __future__ import annotations

from contract.config import EngineConfig


def ceil_div(a: int, b: int) -> int:
    """ceil(a / b) for integers, exactly (no float)."""
    return -(-a // b)


def psum_bits(cfg: EngineConfig) -> int:
    """Width of a partial sum inside the array: a column adds at most R masked products of one digit.

    Each masked product is bounded by the full-precision one (docs/numerics.md), so this never exceeds
    what the ACC-bit accumulator needs and saves flip-flops on every PE. A decoded D-bit digit has
    magnitude at most 2^D - 1, so a digit-serial array's partial sums are B - D bits narrower.
    """
    digit_product = ((1 << cfg.act_bits) - 1) * ((1 << cfg.digit_width) - 1)
    return min(cfg.acc_bits, (cfg.rows * digit_product).bit_length() + 1)


def column_sum_bits(cfg: EngineConfig) -> int:
    """Width of one column's sum of R full products, which the accumulator adds: the digit-serial
    engine's shift-and-add stage rebuilds it from the digit sums."""
    return min(cfg.acc_bits, (cfg.rows * cfg.max_product).bit_length() + 1)
