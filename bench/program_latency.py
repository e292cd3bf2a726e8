"""Latency, utilisation and energy per inference of the ResNet-20 as a layer program, against GEMM commands.

The ResNet-20 of Fashion-MNIST (input 1x28x28, built untrained: cycles depend on shapes and k, and on the
weights only through the raw regions' planes) on an R x C engine at batch 1, at each uniform k, both on the
bit-parallel engine and the digit-serial one (D = --digit-bits):
- GEMM commands (sim.network.pass_cost): the engine's cycles plus the host's residual adds (sim.host);
- the program engine (sim.program_cost): exact cycles of every step (sim.program_cycles), no host work.
Prints the issue 22 targets: host cycles 0, the D = 1 latency ratio k = 8 / k = 1 (>= 7x), the bit-parallel
MAC utilisation end to end (>= 85%), and energy per inference; with --layers also each layer's cycles both ways
at k = 8 and k = 1 (a layer's GEMM commands less the cycles each overlaps the command before it, as apps.run
counts them). Asserts nothing.
Usage: python bench/program_latency.py [--array 16x16] [--digit-bits 1] [--act-kib 16] [--max-m 256] [--layers]
"""

from __future__ import annotations

from apps.bench_networks import DEFAULT_MAX_M, FASHION, engine_for, resnet20_programs
from apps.run_layers import LayerGroup, layer_row
from contract.cli import Parser, run_main
from contract.config import parse_array
from sim.energy_table import DEFAULT_TABLE
from sim.network import pass_cost
from sim.program_cost import program_cost

PRECISIONS = (8, 6, 4, 3, 2, 1)
#: The precisions --layers prints per layer.
LAYER_PRECISIONS = (8, 1)


def print_layers(cfg, export, programs, words: int) -> None:
    """Per GEMM layer at each of LAYER_PRECISIONS: its GEMM commands' cycles (back to back, batch 1) and its
    program step's."""
    steps = {
        k: {step.name: step.cycles for step in program_cost(cfg, programs[k], export, words).steps}
        for k in LAYER_PRECISIONS
    }
    header = " ".join(f"{f'k = {k}: GEMM cmds':>16} {'program':>8}" for k in LAYER_PRECISIONS)
    print(f"  {'layer':<20} {'M x K x N':>12} {header}")
    for index, layer in enumerate(export.layers):
        shape = layer.gemm_shape()
        cells = []
        for k in LAYER_PRECISIONS:
            row = layer_row(cfg, layer.name, shape, [LayerGroup(1, k, 1)], 1, DEFAULT_TABLE, int(index == 0))
            cells.append(f"{round(row['cycles_per_inference']):>16,} {steps[k][layer.name]:>8,}")
        print(f"  {layer.name:<20} {'x'.join(map(str, shape)):>12} {' '.join(cells)}")


def main(argv: list[str] | None = None) -> None:
    parser = Parser(prog="python bench/program_latency.py", description=__doc__.splitlines()[0])
    parser.add_argument("--array", default="16x16")
    parser.add_argument("--digit-bits", type=int, default=1, help="D of the digit-serial engine compared")
    parser.add_argument("--act-kib", type=float, default=16.0, help="the program engine's scratchpad")
    parser.add_argument(
        "--max-m", type=int, default=DEFAULT_MAX_M, help="accumulator depth; a layer with a larger M runs in M-blocks"
    )
    parser.add_argument("--clock-mhz", type=float, default=100.0)
    parser.add_argument("--layers", action="store_true", help="also print each layer's cycles at k = 8 and 1")
    args = parser.parse_args(argv)
    rows, cols = parse_array(args.array)
    export, limits, programs = resnet20_programs(rows, cols, args.act_kib, PRECISIONS, args.max_m)
    macs = sum(m * k_dim * n for m, k_dim, n in export.gemm_shapes())
    print(
        f"ResNet-20, input {list(FASHION)}, {rows}x{cols} engine, batch 1, {args.clock_mhz:g} MHz, "
        f"{macs / 1e6:.2f} M MACs; program scratchpad {limits.words} words ({args.act_kib:g} KiB), "
        f"{max(p.words_used for p in programs.values())} used"
    )
    latency = {}
    for digit_bits in (None, args.digit_bits):
        cfg = engine_for(export, rows, cols, digit_bits, programs.values(), args.max_m)
        kind = "bit-parallel" if digit_bits is None else f"digit-serial D = {digit_bits}"
        print(f"\n{kind}")
        print(
            f"  {'k':>2} | {'GEMM cmds: engine':>17} {'host':>8} {'util %':>7} {'us':>8} {'uJ':>7} | "
            f"{'program: cycles':>15} {'host':>5} {'util %':>7} {'us':>8} {'uJ':>7} {'scratchpad uJ':>13}"
        )
        for k in PRECISIONS:
            gemm = pass_cost(cfg, export, 1, k)
            gemm_total = gemm.cycles + gemm.host.cycles
            gemm_util = 100 * macs / (gemm_total * cfg.pe_count)
            cost = program_cost(cfg, programs[k], export, limits.words)
            latency[digit_bits, k] = cost.cycles
            print(
                f"  {k:>2} | {gemm.cycles:>17,} {gemm.host.cycles:>8,} {gemm_util:>7.1f} "
                f"{gemm_total / args.clock_mhz:>8.1f} {(gemm.energy.total + gemm.host.energy_pj(cfg)) / 1e6:>7.2f} | "
                f"{cost.cycles:>15,} {0:>5} {100 * macs / (cost.cycles * cfg.pe_count):>7.1f} "
                f"{cost.cycles / args.clock_mhz:>8.1f} {cost.energy.total / 1e6:>7.2f} "
                f"{cost.energy.scratchpad / 1e6:>13.3f}"
            )
        if args.layers:
            print_layers(cfg, export, programs, limits.words)
    serial = args.digit_bits
    print(
        f"\ntargets: host cycles 0 (program); D = {serial} latency k = 8 / k = 1: "
        f"{latency[serial, 8] / latency[serial, 1]:.2f}x (target >= 7x); bit-parallel utilisation at k = 8: "
        f"{100 * macs / (latency[None, 8] * rows * cols):.1f}% (target >= 85%)"
    )


if __name__ == "__main__":
    raise SystemExit(run_main(main))
