"""Products with a constant or a small factor as shifts and adds, without the DSP block (a MULT18X18D on an
ECP5, one however narrow the operands) that synthesis spends on a multiplication.

`times` multiplies by a constant: one add per set bit beyond the first. `small_times` multiplies by a factor of
a few values (a stride of at most 4, a padding of at most 6): each constant product is formed beside the
others, and the factor selects one, so the delay is one constant product's adds and a multiplexer.
"""

from __future__ import annotations

from amaranth.hdl import Mux, Value


def times(value, constant: int) -> Value:
    """`value` * `constant` as a sum of shifts."""
    return sum((value << bit for bit in range(constant.bit_length()) if constant >> bit & 1), Value.cast(0))


def small_times(value, factor, largest: int) -> Value:
    """`value` * `factor` for a factor in 0..largest (beyond it, 0), as constant products and a multiplexer."""
    product = Value.cast(0)
    for constant in range(1, largest + 1):
        product = Mux(factor == constant, times(value, constant), product)
    return product
