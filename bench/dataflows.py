"""Dataflows side by side on the same GEMMs: cycles and pJ/MAC by part, and the issue-13 energy targets.

Rows, per GEMM (and per inference of an exported network with --export):
- nestmac WS, max_m = 256 / 64 / 32 / 16: the engine as generated with that accumulator depth; the host
  splits M into commands of at most max_m rows (sim.network.group_cost). Cycles are the cycle model's
  (exact against the RTL), energy sim.energy's events.
- SCALE-Sim WS and OS: the published first-order cycle model (sim.dataflow, ISPASS 2020), and an OS
  engine's energy priced with the same table (an estimate of a design nestmac does not build).
Prints figures and the targets as met or missed; asserts nothing.
Usage: python bench/dataflows.py [--array 16x16] [--gemm 256x1024x256] [--k 8] [--pipelined] [--export DIR]
"""

from __future__ import annotations

from contract.cli import Parser, run_main
from contract.config import EngineConfig, parse_array, parse_gemm
from contract.timing import overlap_cycles
from sim.dataflow import output_stationary_energy, scalesim_cycles
from sim.energy import Energy
from sim.energy_table import DEFAULT_TABLE
from sim.network import group_cost

DEPTHS = (256, 64, 32, 16)
#: The issue's baseline: steady-state pJ/MAC at k = 8 of the 16x16 engine, and its accumulator part.
BASELINE_PJ, BASELINE_ACCUMULATOR_PJ = 1.464, 0.877
PARTS = ("multiply", "add", "registers", "accumulator", "requant", "buffers")


def nestmac(rows: int, cols: int, depth: int, pipelined: bool, shapes, k: int) -> tuple[int, Energy]:
    """Cycles (commands back to back) and energy of the GEMMs on an engine with accumulator depth `depth`."""
    largest_k, largest_n = max(s[1] for s in shapes), max(s[2] for s in shapes)
    cfg = EngineConfig(rows=rows, cols=cols, max_m=depth, max_k=largest_k, max_n=largest_n, pipelined=pipelined)
    groups = [group_cost(cfg, *shape, k) for shape in shapes]
    cycles = sum(g.cycles for g in groups) - overlap_cycles(cfg) * (sum(g.commands for g in groups) - 1)
    return cycles, sum((g.energy for g in groups), Energy())


def table(title: str, rows: int, cols: int, shapes, k: int, pipelined: bool) -> dict:
    macs = sum(m * k_dim * n for m, k_dim, n in shapes)
    pipe = ", pipelined" if pipelined else ""
    print(f"{title}: {macs / 1e6:.2f} M MACs on {rows}x{cols}, k = {k}{pipe}, energy table {DEFAULT_TABLE.name}")
    print(f"  {'dataflow':<24} {'cycles':>9} {'vs WS-256':>9} {'pJ/MAC':>7} " + " ".join(f"{p:>8.8}" for p in PARTS))
    figures = {}
    for depth in DEPTHS:
        cycles, energy = nestmac(rows, cols, depth, pipelined, shapes, k)
        figures[f"nestmac WS, max_m {depth}"] = (cycles, energy)
    cfg = EngineConfig(rows=rows, cols=cols, max_k=max(s[1] for s in shapes), max_n=max(s[2] for s in shapes))
    figures["SCALE-Sim WS (formula)"] = (sum(scalesim_cycles("ws", rows, cols, *s) for s in shapes), None)
    os_energy = sum((output_stationary_energy(cfg, *s, k) for s in shapes), Energy())
    figures["SCALE-Sim OS (+estimate)"] = (sum(scalesim_cycles("os", rows, cols, *s) for s in shapes), os_energy)
    today = figures["nestmac WS, max_m 256"][0]
    for name, (cycles, energy) in figures.items():
        line = f"  {name:<24} {cycles:>9} {cycles / today - 1:>+9.2%}"
        if energy is not None:
            parts = energy.as_dict()
            line += f" {energy.total / macs:>7.3f} " + " ".join(f"{parts[p] / macs:>8.3f}" for p in PARTS)
        print(line)
    return {
        name: (cycles, energy and energy.total / macs, energy and energy.accumulator / macs)
        for name, (cycles, energy) in figures.items()
    }


def targets(figures: dict) -> None:
    """Issue 13: >= 1.5x lower pJ/MAC than 1.464, accumulator >= 2x lower than 0.877, cycles within 2%."""
    today = figures["nestmac WS, max_m 256"][0]
    print("issue 13 energy targets (steady state, against 1.464 pJ/MAC and its 0.877 accumulator part):")
    for depth in DEPTHS:
        cycles, pj, accumulator = figures[f"nestmac WS, max_m {depth}"]
        verdicts = (
            BASELINE_PJ / pj >= 1.5,
            BASELINE_ACCUMULATOR_PJ / accumulator >= 2,
            abs(cycles / today - 1) <= 0.02,
        )
        print(
            f"  max_m {depth:>3}: {BASELINE_PJ / pj:.2f}x lower, accumulator "
            f"{BASELINE_ACCUMULATOR_PJ / accumulator:.2f}x lower, cycles {cycles / today - 1:+.2%}: "
            + ("met" if all(verdicts) else "missed")
        )


def main(argv: list[str] | None = None) -> None:
    parser = Parser(prog="python bench/dataflows.py", description=__doc__.splitlines()[0])
    parser.add_argument("--array", default="16x16")
    parser.add_argument("--gemm", default="256x1024x256", help="MxKxN, the steady-state GEMM")
    parser.add_argument("--k", type=int, default=8, help="weight precision of every command")
    parser.add_argument("--pipelined", action="store_true", help="the engines built with --pipelined")
    parser.add_argument(
        "--export", help="also one inference of this golden.export directory, every layer at k (default: none)"
    )
    args = parser.parse_args(argv)
    rows, cols = parse_array(args.array)
    shape = parse_gemm(args.gemm)
    figures = table(f"GEMM {'x'.join(map(str, shape))}", rows, cols, [shape], args.k, args.pipelined)
    targets(figures)
    if args.export:
        from contract.model_files import load_export

        export = load_export(args.export)
        table(f"one inference of {args.export}", rows, cols, export.engine_shapes(), args.k, args.pipelined)


if __name__ == "__main__":
    raise SystemExit(run_main(main))
