"""Copies of the engine's stall enable `advance`, one per region of the design, each computed from
registers of its own (docs/architecture.md, "Stalls").

`advance` enables every datapath register. A slot happens when a command is running, every input beat it
needs is valid and, if a result row leaves the requantizer, the output FIFO has room. As one net from one
AND of those conditions it spans the whole placed design, and its routing limited Fmax on the ECP5
(docs/estimates.md, "Issue 13" and "Issue 25"): the FIFO's level, the sequencer's wants and the parameter
request sit in different corners of the chip, and each region's enables were a chain of routing from them.

So each region (the sequencer, a skew, the PE array, the column stage, the accumulator, the requantizer,
the output FIFO's write) gets a copy `advance_i` computed only from registers of its own, which the placer
can put beside that region's loads, and the input `valid`s:

    advance_i = running_i & room_i & (~want_act_i | act.valid) & (~want_weight_i | weight.valid)
                & (~param_wanted_i | param.valid)

`running_i` follows the sequencer's `running` (a command runs or rows drain): set when a command is
accepted, cleared when the last drain slot advances with no command accepted in the same cycle (which it
may be while the last rows drain). `want_act_i`, `want_weight_i` and `param_wanted_i` follow the sequencer's
and the datapath's registers: each loads its original's next value in the cycles where that original may change (a
slot of copy i's, or a command's acceptance) and holds otherwise, when the original holds too. `room_i` is
the output room `~result_valid | FIFO level < depth` of the next cycle, computed one cycle early from the
FIFO's level, the read of this cycle and copy i's own write.

Where an original's next value depends on whether the pipeline advances (the datapath's parameter request,
the requantizer's `result_valid`), copy i forms it from its own `advance_i` and the original's registers
(its value after a slot, and its value held), not from the region's copy: every copy is equal, so the value
is the same, but no copy's registers wait on another copy's enable. In the program engine the input `valid`s
come from registers, and a path from one of them through one copy's enable into another copy's registers
limited Fmax (docs/estimates.md, "Issue 22"). So every copy equals the single enable
`running & inputs present & output room` in every cycle (same reset, same transitions), and cycle counts
and behaviour are those of one enable.

The copies must stay distinct logic, or synthesis merges them back into one net: Yosys's opt_merge merges
cells with identical inputs (a `keep` attribute on the signal does not stop it, only one on the cells) and
ABC merges identical functions. Every register of copy i is updated under copy i's own `advance_i`, which
depends on those registers themselves, so no two copies are structurally identical.
"""

from __future__ import annotations

from amaranth.hdl import EnableInserter, Module, Mux, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out


class StallCopies(wiring.Component):
    """`count` equal copies of the engine's `advance`, each from its own registers (module docstring).

    Parameters
    ----------
    count : int
        How many copies of the enable to build (one per region of the design).
    fifo_depth : int
        Entries of the output FIFO whose room the copies track.

    Members
    -------
    starting : In(1)
        A command is accepted in this cycle.
    ending : In(1)
        The last drain slot, with no command running.
    want_act_after_slot, want_weight_after_slot : In(1)
        The sequencer's `want_act` and `want_weight` after a slot (or a command's acceptance).
    param_wanted, param_wanted_after_slot : In(1)
        The datapath's `param_wanted` (a register), and its value after a slot.
    result_valid : In(1)
        A result row leaves the requantizer in this cycle's slot (a register).
    result_due : In(1)
        `result_valid` after a slot.
    fifo_level : In(range(fifo_depth + 1))
        The output FIFO's level.
    fifo_read : In(1)
        The output FIFO gives a beat in this cycle.
    act_valid, weight_valid, param_valid : In(1)
        The input streams' `valid`s.
    advance : Out(count)
        The copies of the global enable.
    """

    def __init__(self, count: int, fifo_depth: int):
        self._fifo_depth = fifo_depth
        super().__init__(
            {
                "starting": In(1),
                "ending": In(1),
                "want_act_after_slot": In(1),
                "want_weight_after_slot": In(1),
                "param_wanted": In(1),
                "param_wanted_after_slot": In(1),
                "result_valid": In(1),
                "result_due": In(1),
                "fifo_level": In(range(fifo_depth + 1)),
                "fifo_read": In(1),
                "act_valid": In(1),
                "weight_valid": In(1),
                "param_valid": In(1),
                "advance": Out(count),
            }
        )

    def elaborate(self, platform):
        m = Module()
        for i, advance in enumerate(self.advance):
            running = Signal(name=f"running_{i}")
            room = Signal(init=1, name=f"room_{i}")  # the FIFO is empty after reset
            want_act = Signal(name=f"want_act_{i}")
            want_weight = Signal(name=f"want_weight_{i}")
            param_wanted = Signal(name=f"param_wanted_{i}")
            m.d.comb += advance.eq(
                running
                & room
                & (~want_act | self.act_valid)
                & (~want_weight | self.weight_valid)
                & (~param_wanted | self.param_valid)
            )
            # A command may be accepted while the last rows drain (its `starting` wins over `ending`).
            m.d.sync += running.eq(self.starting | (running & ~(advance & self.ending)))
            # The followed registers change only in a slot or when a command is accepted.
            with m.If(advance | self.starting):
                m.d.sync += [
                    want_act.eq(self.want_act_after_slot),
                    want_weight.eq(self.want_weight_after_slot),
                    param_wanted.eq(Mux(advance, self.param_wanted_after_slot, self.param_wanted)),
                ]
            result_valid_next = Mux(advance, self.result_due, self.result_valid)
            level_next = self.fifo_level + (advance & self.result_valid) - self.fifo_read
            m.d.sync += room.eq(~result_valid_next | (level_next != self._fifo_depth))
        return m


def region(m: Module, name: str, advance: Value) -> Module:
    """A submodule of `m` named `name` whose registers move only when `advance` (one copy) is high."""
    sub = Module()
    m.submodules[name] = EnableInserter(advance)(sub)
    return sub
