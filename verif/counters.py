"""The performance counters against the model: what a run's counters (apps.driver.NestmacDriver.counters, or
verif.amaranth_program's from the program engine's events) must equal (docs/architecture.md, "Performance
counters").

ACTIVE_CYCLES is the program's cycles on the cycle-exact model (sim.program_cost, every stream ideal) and MACS
its MAC count, whatever the streams' stalls, for a program whose output path keeps pace with the engine
(`keeps_pace`); for any other program ACTIVE_CYCLES lies between the model's cycles less the weight and
parameter waits and the model's cycles. With the SoC's CYCLES, every cycle of the run lies in exactly one class
but the first (contract.soc.UNCLASSIFIED_CYCLES).
"""

from __future__ import annotations

from contract import soc
from contract.program import Program
from sim.program_cost import ProgramCost
from sim.program_cycles import beat_steps


def keeps_pace(cfg, program: Program) -> bool:
    """Whether every layer's output path takes one step per result beat (sim.program_cycles.beat_steps), so
    that its FIFOs never fill and every wait of the engine delays the program by as much (exact ACTIVE_CYCLES
    under any stalls). Raw stores, fused adds of raw maps, decision stores and C not a multiple of R take more."""
    return all(set(beat_steps(cfg, d)) == {1} for d in program.descriptors)


def counter_mismatches(counters: dict[str, int], cost: ProgramCost, exact: bool = True) -> list[str]:
    """What `counters` get wrong against the model's `cost` (empty: nothing): MACS and ACTIVE_CYCLES equal to
    the model's (with `exact` False, the bound of the module docstring), and with CYCLES, the classes adding
    up to it."""
    wrong = []
    if counters["macs"] != cost.macs:
        wrong.append(f"MACS {counters['macs']:,}, the model's {cost.macs:,}")
    active = counters["active_cycles"]
    waits = counters["weight_cycles"] + counters["param_cycles"]
    if exact and active != cost.cycles or not cost.cycles - waits <= active <= cost.cycles:
        bound = "" if exact else f" - up to {waits} waits"
        wrong.append(f"ACTIVE_CYCLES {active:,}, the model's {cost.cycles:,}{bound}")
    if "cycles" in counters:
        classified = sum(counters[f"{name}_cycles"] for name in soc.CYCLE_CLASSES) + soc.UNCLASSIFIED_CYCLES
        if classified != counters["cycles"]:
            wrong.append(f"the cycle classes add up to {classified:,} with the first, CYCLES is {counters['cycles']:,}")
    return wrong
