"""Copies of the engine's stall enable `advance`, one per region of the datapath (docs/architecture.md,
"Stalls").

`advance` enables every datapath register. As one net it spans the whole placed design, and its routing
limited Fmax on the ECP5 (docs/estimates.md, "Issue 13", has the figures). Each region
(the PE array, a skew, the column stage, the accumulator, the requantizer, the output FIFO's write) gets
a copy of its own, which the placer can put near that region's loads. (Finer regions, one per array row
or per PE, placed worse on the 8x8 ECP5: docs/estimates.md, issue 13, step 8.)

The copies must be distinct logic, or synthesis merges them back into one net: Yosys's opt_merge merges
cells with identical inputs (a `keep` attribute on the signal does not stop it, only one on the cells)
and ABC merges identical functions. So copy i is `running_i & ready`, with its own copy of the
sequencer's `running` flag (a command runs or rows drain), a register updated from copy i's own
`advance`: a register whose next value depends on itself is never structurally identical to another,
so nothing merges them. Every
copy equals `sequencer.running & ready` in every cycle (same reset, same transitions), so cycle
counts and behaviour are those of a single enable.
"""

from __future__ import annotations

from amaranth.hdl import EnableInserter, Module, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out


class StallCopies(wiring.Component):
    """`advance[i]` = running_i & `ready`, where running_i follows the sequencer's `running`: set by
    `starting` (a command is accepted), cleared when `ending` (the last drain slot, no command running)
    advances unless a command is accepted in the same cycle (which it may be while the last rows drain).

    Parameters
    ----------
    count : int
        How many equal copies of the enable to build (one per region of the pipeline).

    Members
    -------
    ready : In(1)
        Every stream the slot needs is ready (an AND of flip-flops and input valids).
    starting : In(1)
        A command is accepted in this cycle.
    ending : In(1)
        The last drain slot, with no command running.
    advance : Out(count)
        One copy of the global enable per region, each from its own running flag.
    """

    def __init__(self, count: int):
        super().__init__({"ready": In(1), "starting": In(1), "ending": In(1), "advance": Out(count)})

    def elaborate(self, platform):
        m = Module()
        for i, advance in enumerate(self.advance):
            running = Signal(name=f"running_{i}")
            m.d.comb += advance.eq(running & self.ready)
            m.d.sync += running.eq(self.starting | (running & ~(advance & self.ending)))
        return m


def region(m: Module, name: str, advance: Value) -> Module:
    """A submodule of `m` named `name` whose registers move only when `advance` (one copy) is high."""
    sub = Module()
    m.submodules[name] = EnableInserter(advance)(sub)
    return sub
