"""What happens in the engine during one command, counted from the cycle-exact schedule (sim.model).

The energy model (sim.energy) prices these events; keeping the counting apart means the counts can be
checked against the schedule in docs/architecture.md without any energy figure involved. All counts
assume ideal streams, like `command_cycles`: every cycle from acceptance to the last result beat clocks
the whole datapath once. A digit-serial engine (EngineConfig.digit_bits = D < B) clocks its array once per
weight digit, ceil(k/D) times per activation row, with narrower partial sums, but reads its streams and
its accumulator once per row like the bit-parallel engine: so the counts take the command's k.
"""

from __future__ import annotations

from dataclasses import dataclass

from contract.config import EngineConfig
from contract.widths import ceil_div, column_sum_bits, psum_bits
from sim.command import row_slices
from sim.model import command_cycles


@dataclass(frozen=True)
class CommandEvents:
    cycles: int  # clock cycles of the command (sim.model.command_cycles)
    macs: int  # useful multiply-accumulates, M * K * N
    pe_slots: int  # PE-cycles that add a product (one digit's, digit-serial) into a partial sum: steady * R * C
    pe_register_bits: int  # flip-flop bits of the PE array, all clocked every cycle
    psum_bits: int  # width of the adder in each PE
    shift_adds: int  # digit-serial: column additions in the shift-and-add stage, C per steady slot (else 0)
    shift_add_bits: int  # width of each, and of its per-column register (0 for the bit-parallel engine)
    acc_reads: int  # accumulator memory words read (per activation row, every K-tile but the first)
    acc_writes: int  # ... and written back (every K-tile but the last)
    acc_word_bits: int  # C * ACC
    requant_outputs: int  # output values that go through the requantizer, padded columns included
    act_bits: int  # bits streamed in on each port
    weight_bits: int
    param_bits: int
    result_bits: int


def pe_register_bits(cfg: EngineConfig) -> int:
    """Per PE: activation (A), swap mark (1), partial sum, the active and shadow weight codes (2B),
    digit-serial, the digit's place that travels with the activation, and pipelined, the product register
    (A + B + 1 bits; A + D + 1 for a digit) and, digit-serial, the multiplier's weight register (D + 1
    bits; a bit-parallel PE's always equals its active weight register, and synthesis merges the two);
    the top row's second input registers are counted alike."""
    place_bits = (cfg.digit_count - 1).bit_length() if cfg.digit_serial else 0
    weight_bits = cfg.digit_width + 1 if cfg.digit_serial else 0
    pipeline_bits = cfg.act_bits + cfg.digit_width + 1 + weight_bits if cfg.pipelined else 0
    return cfg.pe_count * (cfg.act_bits + 1 + place_bits + psum_bits(cfg) + 2 * cfg.base_bits + pipeline_bits)


def command_events(cfg: EngineConfig, m: int, k_dim: int, n: int, wbits: int | None = None) -> CommandEvents:
    """Events of one M x K by K x N command at weight precision `wbits` (default B), weight loads included:
    every tile streams its R x C codes."""
    k_tiles, n_tiles = ceil_div(k_dim, cfg.rows), ceil_div(n, cfg.cols)
    tiles = k_tiles * n_tiles
    cycles = command_cycles(cfg, m, k_dim, n, wbits)
    rows_in = m * tiles  # activation rows fed, each for ceil(k/D) slots
    return CommandEvents(
        cycles=cycles.total,
        macs=m * k_dim * n,
        pe_slots=cycles.steady * cfg.pe_count,
        pe_register_bits=pe_register_bits(cfg),
        psum_bits=psum_bits(cfg),
        shift_adds=cycles.steady * cfg.cols if cfg.digit_serial else 0,
        shift_add_bits=column_sum_bits(cfg) if cfg.digit_serial else 0,
        acc_reads=m * (k_tiles - 1) * n_tiles,
        acc_writes=m * (k_tiles - 1) * n_tiles,
        acc_word_bits=cfg.cols * cfg.acc_bits,
        requant_outputs=m * n_tiles * cfg.cols,
        act_bits=rows_in * cfg.rows * cfg.act_bits,
        weight_bits=tiles * cfg.rows * cfg.cols * cfg.base_bits,
        param_bits=n_tiles * cfg.cols * (cfg.acc_bits + cfg.mult_bits + cfg.shift_bits),
        result_bits=m * n_tiles * cfg.cols * cfg.acc_bits,
    )


def split_rows(cfg: EngineConfig, m: int, k_dim: int, n: int) -> list[tuple[int, int, int]]:
    """The command shapes of a GEMM with more rows than the accumulator holds (sim.command.row_slices)."""
    return [(rows.stop - rows.start, k_dim, n) for rows in row_slices(cfg, m)]
