"""Digit-serial engines: cycles, throughput and energy per MAC against the weight precision k.

For each digit width D on one R x C engine, a large GEMM at k = 8, 4, 2, 1: the modelled cycles (sim.model,
exact against the RTL, tests/hw/test_digit_serial.py) against the ideal M*K*N*ceil(k/D)/(R*C) plus the fixed
overhead, the throughput relative to k = B, and the steady-state pJ/MAC (sim.energy). Prints figures and
the issue-9 targets as met or missed; asserts nothing.
Usage: python bench/digit_serial.py [--array 16x16] [--gemm 256x1024x256] [--digits 1,2,4,8]
"""

from __future__ import annotations

from contract.cli import Parser, run_main
from contract.config import EngineConfig, parse_array, parse_gemm
from contract.timing import overlap_cycles
from sim.energy import gemms_energy
from sim.energy_table import DEFAULT_TABLE
from sim.events import split_rows
from sim.model import command_cycles

PRECISIONS = (8, 4, 2, 1)


def gemm_cycles(cfg: EngineConfig, shape: tuple[int, int, int], k: int) -> tuple[int, int]:
    """(cycles, fixed overhead) of a GEMM run as back-to-back commands of at most max_m rows at precision k."""
    commands = [command_cycles(cfg, *command, k) for command in split_rows(cfg, *shape)]
    cycles = sum(c.total for c in commands) - overlap_cycles(cfg) * (len(commands) - 1)
    return cycles, cycles - sum(c.steady + c.weight_wait for c in commands)


def table(array: tuple[int, int], shape: tuple[int, int, int], digit_widths: list[int]) -> dict:
    rows, cols = array
    m, k_dim, n = shape
    macs = m * k_dim * n
    print(
        f"{rows}x{cols} engine, B = A = 8, GEMM {m}x{k_dim}x{n} ({macs / 1e6:.0f} M MACs), "
        f"energy table {DEFAULT_TABLE.name}"
    )
    print(
        f"{'D':>2} {'k':>2} {'cycles':>10} {'ideal+ovh':>10} {'off by':>7} "
        f"{'MACs/cycle':>10} {'x k=8':>6} {'pJ/MAC':>7}"
    )
    figures = {}
    for digit_bits in digit_widths:
        cfg = EngineConfig(rows=rows, cols=cols, max_m=min(m, 1024), max_k=k_dim, max_n=n, digit_bits=digit_bits)
        for k in PRECISIONS:
            cycles, overhead = gemm_cycles(cfg, shape, k)
            ideal = macs * cfg.digits(k) / (rows * cols) + overhead
            pj = gemms_energy(cfg, [shape], k).total / macs
            figures[digit_bits, k] = (cycles, pj)
            speedup = figures[digit_bits, PRECISIONS[0]][0] / cycles
            print(
                f"{digit_bits:>2} {k:>2} {cycles:>10} {ideal:>10.0f} {cycles / ideal - 1:>7.2%} "
                f"{macs / cycles:>10.1f} {speedup:>6.2f} {pj:>7.3f}"
            )
    return figures


def targets(figures: dict, shape: tuple[int, int, int], array: tuple[int, int]) -> None:
    if (1, 8) not in figures or (1, 1) not in figures:
        return
    m, k_dim, n = shape
    rows, cols = array
    worst = max(
        abs(cycles / (m * k_dim * n * -(-k // d) / (rows * cols)) - 1)
        for (d, k), (cycles, _) in figures.items()
        if d != 8
    )
    print("where the D = 1 engine's pJ/MAC go (sim.energy parts):")
    cfg = EngineConfig(rows=rows, cols=cols, max_m=min(m, 1024), max_k=k_dim, max_n=n, digit_bits=1)
    for k in (8, 1):
        parts = gemms_energy(cfg, [shape], k).as_dict()
        print(f"  k = {k}: " + ", ".join(f"{name} {value / (m * k_dim * n):.3f}" for name, value in parts.items()))
    speedup = figures[1, 8][0] / figures[1, 1][0]
    energy = figures[1, 1][1] / figures[1, 8][1]
    print("issue 9 targets:")
    print(f"  cycles within 2% of M*K*N*ceil(k/D)/(R*C), overhead excluded: worst {worst:.2%}")
    print(f"  D = 1 throughput k=1 / k=8 >= 7x: {speedup:.2f}x ({'met' if speedup >= 7 else 'missed'})")
    print(f"  D = 1 pJ/MAC k=1 / k=8 <= 1/3: {energy:.3f} ({'met' if energy <= 1 / 3 else 'missed'})")


def main(argv: list[str] | None = None) -> None:
    parser = Parser(prog="python bench/digit_serial.py", description=__doc__.splitlines()[0])
    parser.add_argument("--array", default="16x16")
    parser.add_argument("--gemm", default="256x1024x256", help="MxKxN")
    parser.add_argument("--digits", default="1,2,4,8", help="digit widths D (8 = the bit-parallel engine)")
    args = parser.parse_args(argv)
    array, shape = parse_array(args.array), parse_gemm(args.gemm)
    figures = table(array, shape, [int(d) for d in args.digits.split(",")])
    targets(figures, shape, array)


if __name__ == "__main__":
    raise SystemExit(run_main(main))
