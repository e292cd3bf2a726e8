"""Energy per command, per inference and per MAC at each weight precision k, priced with an energy table.

Event counts come from the cycle-exact schedule (sim.events); each event is priced with an energy table
(sim.energy_table), by default the shipped one: M. Horowitz, "Computing's energy problem (and what we can do
about it)", ISSCC 2014, p. 10-14, 45 nm, 0.9 V: integer add 8 bit 0.03 pJ, 32 bit 0.1 pJ; integer multiply
8 bit 0.2 pJ, 32 bit 3.1 pJ; 64-bit cache read 10 pJ (8 KB), 20 pJ (32 KB), 100 pJ (1 MB). Scaling to other
widths (docs/estimates.md):

- multiply: proportional to the product of the operand widths, 0.2 pJ * (a * b) / 64 (gives 3.2 pJ
  for 32 x 32, against the measured 3.1);
- add: proportional to the width, 0.1 pJ * bits / 32 (gives 0.025 pJ for 8 bits, against 0.03);
- SRAM: per bit, 10 pJ / 64 at 8 KB, times sqrt(size / 8 KB) (Horowitz's three sizes follow the square
  root within 15%);
- a flip-flop bit clocked for one cycle: 0.1 pJ / 32, one bit of a 32-bit adder. This one is an
  assumption, not a Horowitz figure.

Another technology's table (--energy-table) changes the prices, never the counts or the rules.

What depends on k here is only the multiplier: the PE multiplies `a AND hi_j` by the masked weight, whose
low B-k bits are constant zero, so only k x j partial-product bits can toggle. Everything else is charged
at full width at every k, because the bit-parallel engine really does spend it: the same cycles, the same
clocked registers (the partial sums keep their width), the same ACC-bit accumulator words and the same
B-bit weight codes on the weight stream.

A digit-serial engine (D < B) is where k pays: its array, PE adders and registers run ceil(k/D) cycles per
activation row instead of one, with partial sums only as wide as one digit's products, plus a C-column
shift-and-add stage of column-sum width per cycle; its multipliers toggle j x k bits per MAC in total (j x D
per full digit). The accumulator, requantizer and stream traffic stay per row, as in the bit-parallel engine.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from contract.config import EngineConfig
from contract.numerics import NumericsError
from sim.energy_table import DEFAULT_TABLE, EnergyTable
from sim.events import CommandEvents, command_events, split_rows

#: Operand buffer the streams are read from and results written to (an assumption: 32 KB on chip).
BUFFER_BYTES = 32 * 1024


@dataclass(frozen=True)
class Energy:
    """pJ by where it is spent."""

    multiply: float = 0.0  # PE multipliers, k x j toggling partial-product bits per useful MAC
    add: float = 0.0  # PE partial-sum adders, every PE slot, full partial-sum width; shift-and-add adders
    registers: float = 0.0  # PE array (and shift-and-add) flip-flops, every bit every cycle
    accumulator: float = 0.0  # accumulator SRAM reads and write-backs, C x ACC-bit words
    requant: float = 0.0  # ACC x MULT multiply and two ACC-bit adds per output value
    buffers: float = 0.0  # operand buffer reads (activations, weights, parameters), result writes
    scratchpad: float = 0.0  # the program engine's activation scratchpad: reads and writes (sim.program_cost)

    @property
    def total(self) -> float:
        return sum(getattr(self, f.name) for f in fields(self))

    def __add__(self, other: Energy) -> Energy:
        return Energy(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    def scaled(self, factor: float) -> Energy:
        return Energy(**{f.name: getattr(self, f.name) * factor for f in fields(self)})

    def as_dict(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self)} | {"total": self.total}


def events_energy(
    cfg: EngineConfig, events: CommandEvents, k: int, j: int, table: EnergyTable = DEFAULT_TABLE
) -> Energy:
    """Price one command's events at weight precision k and activation precision j with `table`'s prices."""
    acc_memory_bytes = cfg.max_m * events.acc_word_bits / 8
    streamed = events.act_bits + events.weight_bits + events.param_bits + events.result_bits
    return Energy(
        multiply=events.macs * table.multiply_pj(j, k),
        add=events.pe_slots * table.add_pj(events.psum_bits) + events.shift_adds * table.add_pj(events.shift_add_bits),
        registers=events.cycles * (events.pe_register_bits + cfg.cols * events.shift_add_bits) * table.register_bit_pj,
        accumulator=(events.acc_reads + events.acc_writes) * events.acc_word_bits * table.sram_bit_pj(acc_memory_bytes),
        requant=events.requant_outputs * requant_pj(cfg, table),
        buffers=streamed * table.sram_bit_pj(BUFFER_BYTES),
    )


def requant_pj(cfg: EngineConfig, table: EnergyTable) -> float:
    """One output value's requantization: an ACC x MULT multiply and two ACC-bit adds."""
    return table.multiply_pj(cfg.acc_bits, cfg.mult_bits) + 2 * table.add_pj(cfg.acc_bits)


def gemms_energy(
    cfg: EngineConfig,
    shapes: list[tuple[int, int, int]],
    k: int,
    j: int | None = None,
    table: EnergyTable = DEFAULT_TABLE,
) -> Energy:
    """Energy of GEMMs (M, K, N) at precision (k, j), each split into commands of at most max_m rows, priced
    with `table` (the shipped one unless a user named another)."""
    j = cfg.act_bits if j is None else j
    if not 1 <= k <= cfg.base_bits or not 1 <= j <= cfg.act_bits:
        raise NumericsError(f"precision k={k}, j={j} outside 1..{cfg.base_bits}, 1..{cfg.act_bits}")
    total = Energy()
    for shape in shapes:
        for command in split_rows(cfg, *shape):
            total = total + events_energy(cfg, command_events(cfg, *command, k), k, j, table)
    return total
