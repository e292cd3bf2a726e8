"""The top a board bitstream is built from: a design (the engine, or the SoC wrapper) whose hundreds to
thousands of port bits cannot all reach package pins, clocked from the board's oscillator through a PLL.

- Clock: the ECP5 PLL (EHXPLLL, as `ecppll` configures it in the module `pll`) makes the design's clock
  `clk` from the board's; the design runs in reset while the PLL is unlocked or the reset button is
  pressed (an asynchronous reset, released synchronously).
- Inputs: a 31-bit LFSR feeds a shift register with one flip-flop per input bit of the design, so every
  input is driven by a register of its own that the placer can put beside its loads.
- Outputs: every output bit goes into a tree of registered four-input XORs whose last eight bits light
  the LEDs, so that synthesis keeps all of the design and every output path ends in a register.

The bitstream is therefore the design placed and timed in context (I/O, global clock, PLL) at the
frequency it was built for, exercised by pseudo-random stimulus: a check that it fits and closes timing on
the board, not an application (the SoC's host and memory would replace the LFSR and the XOR tree).
"""

from __future__ import annotations

from amaranth.hdl import Cat, ClockDomain, ClockSignal, Instance, Module, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.cdc import ResetSynchronizer
from amaranth.lib.wiring import In, Out

#: x^31 + x^28 + 1, a maximal-length LFSR: the taps are bits 30 and 27.
LFSR_BITS, LFSR_TAPS = 31, (30, 27)
XOR_FAN_IN = 4  # one LUT4 per XOR of the output tree


def design_ports(design: wiring.Component) -> tuple[list[Value], list[Value]]:
    """The design's input and output port bits (as flat values), in its signature's order."""
    inputs, outputs = [], []
    for _, member, value in design.signature.flatten(design):
        (inputs if member.flow == wiring.In else outputs).append(Value.cast(value))
    return inputs, outputs


class BoardTop(wiring.Component):
    """The design between a PLL, an LFSR-fed input shift register and an XOR tree onto the LEDs (module
    docstring). The ports are named after the board's pins (eda/boards.py): the clock, the reset button and
    `led`, a bus of `leds` bits."""

    def __init__(self, design: wiring.Component, clock_name: str, reset_name: str, leds: int):
        self._design = design
        self._clock_name, self._reset_name = clock_name, reset_name
        super().__init__({clock_name: In(1), reset_name: In(1), "led": Out(leds)})

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = ClockDomain("sync")  # its clock net is `clk`, the name eda.report reads
        locked = Signal()
        m.submodules.pll = Instance(
            "pll", i_clkin=getattr(self, self._clock_name), o_clkout0=ClockSignal("sync"), o_locked=locked
        )
        m.submodules.reset_sync = ResetSynchronizer(~locked | getattr(self, self._reset_name), domain="sync")
        m.submodules.design = design = self._design
        inputs, outputs = design_ports(design)

        lfsr = Signal(LFSR_BITS, init=1)
        m.d.sync += lfsr.eq(Cat(lfsr[LFSR_TAPS[0]] ^ lfsr[LFSR_TAPS[1]], lfsr[:-1]))
        width = sum(len(value) for value in inputs)
        chain = Signal(width)
        m.d.sync += chain.eq(Cat(lfsr[-1], chain[:-1]))
        start = 0
        for value in inputs:
            m.d.comb += value.eq(chain[start : start + len(value)])
            start += len(value)

        level = Cat(*outputs)
        while len(level) > len(self.led):
            groups = [level[i : i + XOR_FAN_IN].xor() for i in range(0, len(level), XOR_FAN_IN)]
            folded = Signal(len(groups))
            m.d.sync += folded.eq(Cat(*groups))
            level = folded
        m.d.comb += self.led.eq(level)
        return m
