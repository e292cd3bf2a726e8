"""External memory per inference of the ResNet-20 as a layer program with bit-plane weights, at each uniform k.

The ResNet-20 of Fashion-MNIST (input 1x28x28, built untrained: traffic and cycles depend on shapes and k) on an
R x C program engine (D = --digit-bits; B for the bit-parallel engine), batch 1, its weights fetched as
bit-planes (contract.bitplanes) over the bus of sim.memory_traffic, with an accumulator of --max-m rows (a layer
with more output pixels runs in M-blocks, contract.program; the default is the program engine as built).
Prints, per k from 8 to 1: the bytes each stream moves, the engine's cycles and the bus-bound cycles, and the
energy split engine / on-chip / DRAM; then the weight bytes ratio k = 8 / k = 1 (issue 23: exactly 8) and
E(k=1)/E(k=8) with DRAM (issue 23 target <= 1/4), where the energy at k = 1 goes, and the ratio at Horowitz's
upper DRAM figure (2.6 nJ per 64 bits, twice the shipped table's). Asserts nothing.
Usage: python bench/memory_traffic.py [--array 16x16] [--digit-bits 1] [--bus-bytes 8] [--burst-beats 16]
       [--latency 32] [--outstanding 4] [--act-kib 16] [--max-m 256] [--energy-table FILE]
"""

from __future__ import annotations

from apps.bench_networks import DEFAULT_MAX_M, FASHION, engine_for, resnet20_programs
from contract.cli import Parser, run_main
from contract.config import parse_array
from sim.energy_table import DEFAULT_TABLE, load_energy_table
from sim.memory_traffic import ENGINE_PARTS, STREAMS, Bus, memory_energy, memory_traffic
from sim.program_cost import program_cost

PRECISIONS = tuple(range(8, 0, -1))


def main(argv: list[str] | None = None) -> None:
    parser = Parser(prog="python bench/memory_traffic.py", description=__doc__.splitlines()[0])
    parser.add_argument("--array", default="16x16")
    parser.add_argument("--digit-bits", type=int, default=1, help="D of the engine (8 = B: bit-parallel)")
    parser.add_argument("--bus-bytes", type=int, default=Bus.bus_bytes)
    parser.add_argument("--burst-beats", type=int, default=Bus.burst_beats)
    parser.add_argument("--latency", type=int, default=Bus.latency, help="cycles from a read address to its data")
    parser.add_argument("--outstanding", type=int, default=Bus.outstanding, help="bursts in flight")
    parser.add_argument("--act-kib", type=float, default=16.0, help="the program engine's scratchpad")
    parser.add_argument(
        "--max-m", type=int, default=DEFAULT_MAX_M, help="accumulator depth; a layer with a larger M runs in M-blocks"
    )
    parser.add_argument("--energy-table", default=None, help="a format 2 energy table (default: the shipped one)")
    args = parser.parse_args(argv)
    rows, cols = parse_array(args.array)
    bus = Bus(args.bus_bytes, args.burst_beats, args.latency, args.outstanding)
    table = DEFAULT_TABLE if args.energy_table is None else load_energy_table(args.energy_table)
    table.dram_bit_pj()  # a format 1 table has no DRAM price: one error line before any work
    export, limits, programs = resnet20_programs(rows, cols, args.act_kib, PRECISIONS, args.max_m)
    cfg = engine_for(export, rows, cols, args.digit_bits, programs.values(), args.max_m)
    kind = "bit-parallel" if cfg.digit_bits is None else f"digit-serial D = {cfg.digit_bits}"
    extra = sum(len(d.blocks()) - 1 for d in programs[8].descriptors)
    print(
        f"ResNet-20, input {list(FASHION)}, {rows}x{cols} {kind}, accumulator {cfg.max_m} rows ({extra} extra "
        f"M-blocks), batch 1, weights as bit-planes; bus "
        f"{bus.bus_bytes} bytes, bursts of {bus.burst_beats} beats, latency {bus.latency} cycles, "
        f"{bus.outstanding} outstanding; energy from table {table.name} ({table.technology}), DRAM "
        f"{table.dram_bit_pj():.2f} pJ/bit"
    )
    traffic, energy, costs = {}, {}, {}
    for k in PRECISIONS:
        costs[k] = program_cost(cfg, programs[k], export, limits.words, table)
        traffic[k] = memory_traffic(cfg, programs[k], bus)
        energy[k] = memory_energy(costs[k], traffic[k], table)

    print("\nbytes per inference (whole bus words; logits written, the rest read)")
    print(f"  {'k':>2} " + " ".join(f"{s:>9}" for s in STREAMS) + f" {'total':>9}")
    for k in PRECISIONS:
        streams = traffic[k].stream_bytes()
        print(f"  {k:>2} " + " ".join(f"{streams[s]:>9,}" for s in STREAMS) + f" {sum(streams.values()):>9,}")

    print("\ncycles per inference and energy per inference (uJ)")
    print(
        f"  {'k':>2} {'engine':>9} {'bus-bound':>9} {'bus steps':>9} | {'engine':>7} {'on-chip':>7} {'DRAM':>7} "
        f"{'total':>7} {'E/E(8)':>7} {'engine/E(8)':>11}"
    )
    for k in PRECISIONS:
        t, e = traffic[k], energy[k]
        bound = sum(step.bus_cycles > step.engine_cycles for step in t.steps)
        print(
            f"  {k:>2} {t.engine_cycles:>9,} {t.cycles:>9,} {bound:>4} of {len(t.steps):<2} | {e.engine / 1e6:>7.2f} "
            f"{e.onchip / 1e6:>7.2f} {e.dram / 1e6:>7.2f} {e.total / 1e6:>7.2f} {e.total / energy[8].total:>7.3f} "
            f"{e.engine / energy[8].engine:>11.3f}"
        )

    w8, w1 = (traffic[k].stream_bytes()["weights"] for k in (8, 1))
    print(f"\nweight bytes k = 8 / k = 1: {w8:,} / {w1:,} = {w8 / w1:g} (issue 23: exactly 8)")
    ratio = energy[1].total / energy[8].total
    print(
        f"E(k=1)/E(k=8) with DRAM: {ratio:.3f} (target <= 0.25: {'met' if ratio <= 0.25 else 'missed'}); "
        f"engine and on-chip only: {(energy[1].total - energy[1].dram) / (energy[8].total - energy[8].dram):.3f}"
    )
    parts = costs[1].energy
    engine_parts = ", ".join(f"{part} {getattr(parts, part) / 1e6:.2f}" for part in ENGINE_PARTS)
    streams = traffic[1].stream_bytes()
    dram = ", ".join(f"{s} {streams[s] * 8 * table.dram_bit_pj() / 1e6:.2f}" for s in STREAMS)
    print(f"at k = 1 (uJ): engine {energy[1].engine / 1e6:.2f} ({engine_parts})")
    print(f"               DRAM {energy[1].dram / 1e6:.2f} ({dram})")
    doubled = [energy[k].total + energy[k].dram for k in (1, 8)]
    print(f"with DRAM at 2.6 nJ per 64 bits (Horowitz's upper figure): E(k=1)/E(k=8) = {doubled[0] / doubled[1]:.3f}")


if __name__ == "__main__":
    raise SystemExit(run_main(main))
