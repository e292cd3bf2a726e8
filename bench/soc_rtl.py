"""Digits test images through the driver on the SoC wrapper's Verilog: mismatches, cycles and the counters.

The digits network trained as the test suite trains it (4 epochs, seed 0) runs image by image through
apps.driver on the 4x4 SoC of rtl_tests/test_soc_rtl.py (Verilator, cocotbext-axi's AxiRam and AxiLiteMaster,
every memory channel paused at random with probability --stall, the AXI handshake rules checked). Per k it
prints the images whose logits differ from golden.fastpath's, the mean CYCLES register against the program
engine's cycles with every stream ideal (sim.program_cost), the counters against the model (ACTIVE_CYCLES and
MACS, which must equal the model's in every run, verif.counters, and the mean waits by class), the mean stall
cycles per stream, the bytes read per stream (equal to the regions, but the weights: checked), the weight
bytes the hardware's WEIGHT_BYTES counter read against the k = 8 layout's region and the model's figure
(contract.bitplanes, sim.memory_traffic: each layer's k bit-planes; checked equal), and the simulation's wall
time. Exit status 1 on any mismatch. Usage: python bench/soc_rtl.py [--images 10] [--k 8,2] [--stall 0.3]
[--seed 0]
"""

from __future__ import annotations

import time

import numpy as np

from contract import soc
from contract.bitplanes import weight_fetch_bytes
from contract.cli import InputError, Parser, number, run_main
from golden.data import digits_split, input_codes
from golden.export import build_export
from golden.fastpath import fast_logits
from golden.layers import QuantSpec
from golden.train import train
from rtl_tests.test_soc_rtl import BUS_BYTES, CONFIG, SOC_LIMITS, digits_runs, run_on_verilator
from sim.program_cost import program_cost
from verif.counters import counter_mismatches


def precisions(text: str) -> list[int]:
    try:
        ks = [int(part) for part in text.split(",")]
    except ValueError:
        raise InputError(f"--k takes precisions like 8 or 8,2, got {text!r}") from None
    if not all(1 <= k <= CONFIG.base_bits for k in ks):
        raise InputError(f"--k precisions must be in 1..{CONFIG.base_bits}, got {text!r}")
    return ks


def print_counters(rows) -> None:
    """Per k, the counters against the model: ACTIVE_CYCLES and MACS (their range over the images, which must be
    the model's exactly) and the mean cycles of each wait class."""
    waits = [name for name in soc.CYCLE_CLASSES if name != "active"]
    print("counters against the model (every run's ACTIVE_CYCLES and MACS must equal the model's):")
    print(
        f"  {'k':>2} {'active':>13} {'model':>7} {'MACS':>19} {'model':>9} {'wrong runs':>10}"
        + "".join(f" {name + ' wait':>12}" for name in waits)
    )
    for k, cost, done, wrong in rows:
        active = [result["counters"]["active_cycles"] for result in done]
        macs = [result["counters"]["macs"] for result in done]
        means = [np.mean([result["counters"][f"{name}_cycles"] for result in done]) for name in waits]
        print(
            f"  {k:>2} {min(active):>6}..{max(active):<5} {cost.cycles:>7} {min(macs):>9,}..{max(macs):<8,} "
            f"{cost.macs:>9,} {wrong:>10}" + "".join(f" {value:>12.1f}" for value in means)
        )


def main(argv: list[str] | None = None) -> None:
    parser = Parser(prog="python bench/soc_rtl.py", description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=number(int, 1, 360), default=10, help="digits test images (first N)")
    parser.add_argument("--k", default="8,2", help="weight precisions: 8 or 8,4,1")
    parser.add_argument("--stall", type=number(float, 0.0, 0.9), default=0.3, help="pause probability per channel")
    parser.add_argument("--seed", type=number(int, 0, 1 << 30), default=0, help="the pause generators' seed")
    args = parser.parse_args(argv)
    ks = precisions(args.k)
    start = time.perf_counter()
    export = build_export(train(QuantSpec("truncquant", "offset"), epochs=4, seed=0, log=lambda line: None))
    codes = input_codes(digits_split().test_x[: args.images], export.act_bits).numpy()
    runs = digits_runs(export, codes, ks)
    prepared = time.perf_counter()
    results = run_on_verilator(runs, f"bench-digits-{args.images}-{args.stall}-{args.seed}", args.stall, args.seed)
    simulated = time.perf_counter()
    print(
        f"digits: {len(codes)} test images through apps.driver on the {CONFIG.rows}x{CONFIG.cols} SoC wrapper's "
        f"Verilog (Verilator), AXI channels paused {args.stall:.0%} of cycles (seed {args.seed})"
    )
    header = f"  {'k':>2} {'mismatches':>10} {'cycles':>8} {'ideal':>7} {'overhead':>8}"
    print(header + "".join(f" {name + ' stalls':>14}" for name in soc.READ_REGIONS) + "  bytes read per stream")
    failed, total_cycles, weights, counter_rows = False, 0, [], []
    for index, k in enumerate(ks):
        chunk = slice(index * len(codes), (index + 1) * len(codes))
        done = results["runs"][chunk]
        golden = fast_logits(export, input_codes(digits_split().test_x[: args.images], export.act_bits), k).numpy()
        wrong = sum(result["logits"] != golden[i].tolist() for i, result in enumerate(done))
        wrong += sum(result["status"] != soc.STATUS_DONE for result in done)
        program = runs[chunk][0][0]
        cost = program_cost(CONFIG, program, export, SOC_LIMITS.words)
        cycles = np.mean([result["counters"]["cycles"] for result in done])
        stalls = [np.mean([result["counters"][f"{name}_stalls"] for result in done]) for name in soc.READ_REGIONS]
        read = {name: done[0]["counters"][f"{name}_bytes"] for name in soc.READ_REGIONS}
        streams = [name for name in read if name != "weight"]
        if any(
            result["counters"][f"{name}_bytes"] != result["regions"][name][2] for result in done for name in streams
        ):
            wrong += 1
        fetched = sum(weight_fetch_bytes(program, BUS_BYTES).values())
        wrong += sum(result["counters"]["weight_bytes"] != fetched for result in done)
        weights.append((k, read["weight"], done[0]["regions"]["weight"][2]))
        wrong_counters = sum(bool(counter_mismatches(result["counters"], cost)) for result in done)
        counter_rows.append((k, cost, done, wrong_counters))
        print(
            f"  {k:>2} {wrong + wrong_counters:>10} {cycles:>8.0f} {cost.cycles:>7} {cycles / cost.cycles - 1:>8.1%}"
            + "".join(f" {value:>14.1f}" for value in stalls)
            + "  "
            + ", ".join(f"{name} {value:,}" for name, value in read.items())
        )
        failed |= bool(wrong + wrong_counters)
        total_cycles += sum(result["counters"]["cycles"] for result in done)
    print("  weight bytes read per image (the WEIGHT_BYTES counter; the region holds all B planes):")
    for k, read, region in weights:
        print(f"  {k:>2} {read:>8,} of {region:,} bytes = {read / region:.4f} (k/B = {k}/{CONFIG.base_bits})")
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
