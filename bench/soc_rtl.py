"""Test images through the driver on the SoC wrapper's Verilog: mismatches, cycles and the counters.

Networks (`--net`):
- `digits`: the digits network trained as the test suite trains it (4 epochs, seed 0), on the digits test set,
  on the 4x4 SoC of rtl_tests/test_soc_rtl.py (bus 8 bytes);
- `resnet20`: the ResNet-20 of Fashion-MNIST as bench/program_rtl.py builds it (untrained: its seeded
  initialisation, BatchNorms calibrated; bit-exactness does not depend on training), on the first Fashion-MNIST
  test images, on a 16x16 SoC with bench/program_rtl.py's engine and program limits and a 16-byte bus;
  with `--export DIR`, a trained Fashion-MNIST ResNet-20's export instead (e.g. the 8-epoch model of
  docs/estimates.md, "TruncQuant's table").
Each image runs through apps.driver on the SoC's Verilog (Verilator, cocotbext-axi's AxiRam and
AxiLiteMaster, every memory channel paused at random with probability --stall, the AXI handshake rules
checked). Per k it prints the images whose logits differ from golden.fastpath's, the mean CYCLES register
against the program engine's cycles with every stream ideal (sim.program_cost), the counters against the model
(MACS, which must equal the model's in every run, and ACTIVE_CYCLES: equal to the model's when the program's
output path keeps pace with the engine, else within verif.counters' bound, which the table says; and the mean
waits by class, the waits for each stream among them), the bytes read per stream (equal to the regions, but the
weights: checked), the weight bytes the hardware's WEIGHT_BYTES counter read against the k = 8 layout's region
and the model's figure (contract.bitplanes: each layer's k bit-planes; checked equal), and the simulation's
wall time. Exit status 1 on any mismatch.
Usage: PYTHONPATH=. python bench/soc_rtl.py [--net digits] [--images 10] [--k 8,2] [--stall 0.3] [--seed 0]
       [--export DIR]
"""

from __future__ import annotations

import time

import numpy as np

from bench.program_rtl import network, precisions
from contract import soc
from contract.bitplanes import weight_fetch_bytes
from contract.cli import InputError, Parser, number, run_main
from contract.model_files import load_export
from contract.program import ProgramLimits
from golden.data import input_codes, load_split
from golden.fastpath import fast_logits
from rtl_tests.test_soc_rtl import DIGITS_SOC, SocSetup, network_runs, run_on_verilator
from sim.program_cost import program_cost
from verif.counters import counter_mismatches, keeps_pace
from verif.rtl.program_top import NETWORK_PROGRAM

#: The SoCs per --net: the digits network's is the tests'; the ResNet-20's has bench/program_rtl.py's engine
#: and program limits, a 16-byte bus, 2 MiB of RAM (its B = 8 weight planes alone are about 280 KB) and an hour
#: of wall time per run (an image is 40k to 55k cycles, which Verilator ran at about 6k per second).
SOCS = {
    "digits": DIGITS_SOC,
    "resnet20": SocSetup(
        NETWORK_PROGRAM.cfg,
        ProgramLimits(
            NETWORK_PROGRAM.depth,
            max_size=NETWORK_PROGRAM.max_size,
            max_channels=NETWORK_PROGRAM.max_channels,
            max_n_tiles=NETWORK_PROGRAM.max_n_tiles,
            max_operands=NETWORK_PROGRAM.max_operands,
        ),
        bus_bytes=16,
        memory=1 << 21,
        timeout=3600.0,
    ),
}
#: bench/program_rtl.py's name of each network.
PROGRAM_RTL_NAMES = {"digits": "digits", "resnet20": "fashion-resnet20"}


def print_counters(rows) -> None:
    """Per k, the counters against the model: ACTIVE_CYCLES and MACS (their range over the images; MACS must be
    the model's exactly, ACTIVE_CYCLES too when the output path keeps pace, else within verif.counters' bound)
    and the mean cycles of each wait class."""
    waits = [name for name in soc.CYCLE_CLASSES if name != "active"]
    print("counters against the model (MACS must equal the model's; ACTIVE_CYCLES per the check column):")
    print(
        f"  {'k':>2} {'active':>15} {'model':>7} {'check':>6} {'MACS':>23} {'model':>11} {'wrong runs':>10}"
        + "".join(f" {name + ' wait':>12}" for name in waits)
    )
    for k, cost, exact, done, wrong in rows:
        active = [result["counters"]["active_cycles"] for result in done]
        macs = [result["counters"]["macs"] for result in done]
        means = [np.mean([result["counters"][f"{name}_cycles"] for result in done]) for name in waits]
        print(
            f"  {k:>2} {min(active):>7}..{max(active):<6} {cost.cycles:>7} {'equal' if exact else 'bound':>6} "
            f"{min(macs):>11,}..{max(macs):<10,} {cost.macs:>11,} {wrong:>10}"
            + "".join(f" {value:>12.1f}" for value in means)
        )


def main(argv: list[str] | None = None) -> None:
    parser = Parser(prog="PYTHONPATH=. python bench/soc_rtl.py", description=__doc__.splitlines()[0])
    parser.add_argument("--net", choices=tuple(SOCS), default="digits", help="the network and its SoC")
    parser.add_argument("--images", type=number(int, 1, 360), default=10, help="test images (first N)")
    parser.add_argument("--k", default="8,2", help="weight precisions: 8 or 8,4,1")
    parser.add_argument("--stall", type=number(float, 0.0, 0.9), default=0.3, help="pause probability per channel")
    parser.add_argument("--seed", type=number(int, 0, 1 << 30), default=0, help="the pause generators' seed")
    parser.add_argument(
        "--export",
        default=None,
        help="a trained ResNet-20 export, --net resnet20 only (default: the untrained, seeded one)",
    )
    args = parser.parse_args(argv)
    setup = SOCS[args.net]
    cfg = setup.cfg
    ks = precisions(args.k, cfg.base_bits)
    start = time.perf_counter()
    if args.export is not None and args.net != "resnet20":
        raise InputError("--export takes a trained ResNet-20: give --net resnet20")
    if args.export is None:
        export, images = network(PROGRAM_RTL_NAMES[args.net])
    else:  # the test images alone: the untrained model network() builds would be thrown away
        export, images = load_export(args.export), load_split("fashion-mnist").test_x
        if export.input_shape != tuple(images.shape[1:]):
            raise InputError(f"--export {args.export}: input {list(export.input_shape)}, expected Fashion-MNIST's")
    codes = input_codes(images[: args.images], export.act_bits)
    runs = network_runs(export, codes.numpy(), ks, setup)
    prepared = time.perf_counter()
    name = f"bench-{args.net}-{args.images}-{args.k}-{args.stall}-{args.seed}"
    results = run_on_verilator(runs, name, args.stall, args.seed, setup)
    simulated = time.perf_counter()
    trained = "trained 4 epochs" if args.net == "digits" else "untrained (seeded initialisation, calibrated BN)"
    if args.export is not None:
        trained = f"trained, {args.export}"
    print(
        f"{args.net} ({trained}): {len(codes)} test images through apps.driver on the {cfg.rows}x{cfg.cols} SoC "
        f"wrapper's Verilog (Verilator, bus {setup.bus_bytes} bytes), AXI channels paused {args.stall:.0%} of "
        f"cycles (seed {args.seed})"
    )
    header = f"  {'k':>2} {'mismatches':>10} {'cycles':>8} {'ideal':>7} {'overhead':>8}"
    print(header + "  bytes read per stream")
    failed, total_cycles, weights, counter_rows = False, 0, [], []
    for index, k in enumerate(ks):
        chunk = slice(index * len(codes), (index + 1) * len(codes))
        done = results["runs"][chunk]
        golden = fast_logits(export, codes, k).numpy()
        wrong = sum(result["logits"] != golden[i].tolist() for i, result in enumerate(done))
        wrong += sum(result["status"] != soc.STATUS_DONE for result in done)
        program = runs[chunk][0][0]
        cost = program_cost(cfg, program, export, setup.limits.words)
        exact = keeps_pace(cfg, program)
        cycles = np.mean([result["counters"]["cycles"] for result in done])
        read = {name: done[0]["counters"][f"{name}_bytes"] for name in soc.READ_REGIONS}
        streams = [name for name in read if name != "weight"]
        if any(
            result["counters"][f"{name}_bytes"] != result["regions"][name][2] for result in done for name in streams
        ):
            wrong += 1
        fetched = sum(weight_fetch_bytes(program, setup.bus_bytes).values())
        wrong += sum(result["counters"]["weight_bytes"] != fetched for result in done)
        weights.append((k, read["weight"], done[0]["regions"]["weight"][2]))
        wrong_counters = sum(bool(counter_mismatches(result["counters"], cost, exact)) for result in done)
        counter_rows.append((k, cost, exact, done, wrong_counters))
        print(
            f"  {k:>2} {wrong + wrong_counters:>10} {cycles:>8.0f} {cost.cycles:>7} {cycles / cost.cycles - 1:>8.1%}"
            + "  "
            + ", ".join(f"{name} {value:,}" for name, value in read.items())
        )
        failed |= bool(wrong + wrong_counters)
        total_cycles += sum(result["counters"]["cycles"] for result in done)
    print("  weight bytes read per image (the WEIGHT_BYTES counter; the region holds all B planes):")
    for k, read, region in weights:
        print(f"  {k:>2} {read:>8,} of {region:,} bytes = {read / region:.4f} (k/B = {k}/{cfg.base_bits})")
    read_at = {k: read for k, read, _ in weights}
    if 1 in read_at and cfg.base_bits in read_at:
        ratio = read_at[1] / read_at[cfg.base_bits]
        exact = read_at[1] * cfg.base_bits == read_at[cfg.base_bits]
        print(f"  k = 1 reads {ratio:.6f} of k = {cfg.base_bits}'s weight bytes: exactly 1/{cfg.base_bits}: {exact}")
        failed |= not exact
    print_counters(counter_rows)
    seconds = simulated - prepared
    print(
        f"wall time: {prepared - start:.1f} s network and programs, {seconds:.1f} s build and simulation "
        f"({total_cycles:,} cycles of runs, {total_cycles / seconds:,.0f} per wall second)"
    )
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    raise SystemExit(run_main(main))
