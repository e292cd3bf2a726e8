"""Other dataflows on the same GEMMs, to first order: what nestmac's weight-stationary schedule is compared with.

nestmac builds one dataflow, weight-stationary with double-buffered weights (docs/architecture.md), whose
cycles and events are exact (sim.model, sim.events). This module gives the published first-order model the
comparison is made against, SCALE-Sim's: A. Samajdar et al., "A Systematic Methodology for Characterizing
Scalability of DNN Accelerators using SCALE-Sim", ISPASS 2020. One fold of an S_R x S_C operand mapping on
an R x C array with temporal depth T takes 2R + C + T - 2 cycles (fill, T steps, drain), folds run one after
another, and there are ceil(S_R/R) * ceil(S_C/C) of them. For a GEMM M x K by K x N:

- weight-stationary (WS): S_R = K, S_C = N, T = M (each fold holds a K-tile x N-tile of weights);
- output-stationary (OS): S_R = M, S_C = N, T = K (each PE accumulates one output over all of K).

`output_stationary_energy` prices an OS engine with sim.energy's rules and an energy table
(sim.energy_table), as nestmac would build it (same PE multiplier, requantizer and buffers): its partial
sums never leave the PEs, so it has no accumulator memory, but every PE holds an ACC-bit accumulator clocked
every cycle, adds at ACC bits, and each fold re-reads its operands (activations once per N-fold, weights
once per M-fold). It is an estimate of a design nestmac does not build, for comparison only; nothing here is
checked against RTL.
"""

from __future__ import annotations

from contract.config import EngineConfig
from contract.widths import ceil_div
from sim.energy import BUFFER_BYTES, Energy, requant_pj
from sim.energy_table import DEFAULT_TABLE, EnergyTable

DATAFLOWS = ("ws", "os")


def scalesim_cycles(dataflow: str, rows: int, cols: int, m: int, k_dim: int, n: int) -> int:
    """SCALE-Sim's analytical runtime of an M x K by K x N GEMM on an R x C array (ISPASS 2020)."""
    spatial_rows, spatial_cols, temporal = {"ws": (k_dim, n, m), "os": (m, n, k_dim)}[dataflow]
    folds = ceil_div(spatial_rows, rows) * ceil_div(spatial_cols, cols)
    return folds * (2 * rows + cols + temporal - 2)


def output_stationary_energy(
    cfg: EngineConfig, m: int, k_dim: int, n: int, k: int, j: int | None = None, table: EnergyTable = DEFAULT_TABLE
) -> Energy:
    """pJ of the GEMM on an R x C output-stationary engine with cfg's widths, priced like sim.energy."""
    j = cfg.act_bits if j is None else j
    m_folds, n_folds = ceil_div(m, cfg.rows), ceil_div(n, cfg.cols)
    cycles = scalesim_cycles("os", cfg.rows, cfg.cols, m, k_dim, n)
    pe_slots = m_folds * n_folds * k_dim * cfg.pe_count  # every PE adds in each of a fold's K steps
    register_bits = cfg.pe_count * (cfg.act_bits + cfg.base_bits + cfg.acc_bits)  # operands passed on, sum
    outputs = m_folds * n_folds * cfg.pe_count  # padded PEs drain too
    streamed = (
        m * k_dim * cfg.act_bits * n_folds
        + k_dim * n * cfg.base_bits * m_folds
        + n_folds * cfg.cols * (cfg.acc_bits + cfg.mult_bits + cfg.shift_bits)
        + m * n_folds * cfg.cols * cfg.acc_bits
    )
    return Energy(
        multiply=m * k_dim * n * table.multiply_pj(j, k),
        add=pe_slots * table.add_pj(cfg.acc_bits),
        registers=cycles * register_bits * table.register_bit_pj,
        accumulator=0.0,
        requant=outputs * requant_pj(cfg, table),
        buffers=streamed * table.sram_bit_pj(BUFFER_BYTES),
    )
