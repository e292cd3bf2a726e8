"""Per-lane register delays: the activation skew, the weight-load skew and the output de-skew.

A weight-stationary systolic array touches lane i of a beat i cycles later than lane 0, so data entering
or leaving it must be staggered; the three places that do this differ only in the delay of each lane.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal, Value
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out


def delay_line(m: Module, value: Value, depth: int, name: str) -> list[Value]:
    """Taps [value, value delayed 1 cycle, ..., delayed `depth` cycles] through `depth` sync registers."""
    taps = [value]
    for stage in range(depth):
        register = Signal(value.shape(), name=f"{name}_d{stage + 1}")
        m.d.sync += register.eq(taps[-1])
        taps.append(register)
    return taps


class Skew(wiring.Component):
    """Delays lane i of an array-shaped input by `delays[i]` cycles.

    Parameters
    ----------
    shape : ShapeLike
        The shape of one lane.
    delays : list of int
        Register stages per lane.

    Members
    -------
    i : In(ArrayLayout(shape, len(delays)))
        The lanes in.
    o : Out(ArrayLayout(shape, len(delays)))
        Lane i delayed by `delays[i]` cycles.
    """

    def __init__(self, shape, delays: list[int]):
        self._delays = list(delays)
        super().__init__(
            {
                "i": In(data.ArrayLayout(shape, len(self._delays))),
                "o": Out(data.ArrayLayout(shape, len(self._delays))),
            }
        )

    def elaborate(self, platform):
        m = Module()
        for lane, depth in enumerate(self._delays):
            m.d.comb += self.o[lane].eq(delay_line(m, self.i[lane], depth, f"lane{lane}")[-1])
        return m
