"""`python -m apps.run EXPORT`: the digits test set through the engine, per weight precision k.

Prints, per k, accuracy, cycles per inference, MAC utilisation and latency at a stated clock, from the
cycle-exact model, and saves them as CSV and JSON. `--rtl N` also runs the first N images' commands on the
emitted Verilog and checks every layer's output against the model and the golden integer path, and every
command's cycles against the model.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from pathlib import Path

from contract.cli import Parser, atomic_dir, number, parse_bits, require_extra, run_main
from contract.config import EngineConfig, parse_array
from contract.paths import build_dir
from eda.tools import SIMULATORS

# Flag ranges: more images than any test set holds, and a clock no engine reaches, are typing mistakes.
MAX_IMAGES = 1 << 20
MAX_CLOCK_MHZ = 10_000.0


def parse_args(argv):
    parser = Parser(prog="python -m apps.run", description=__doc__.splitlines()[0])
    parser.add_argument("export", type=Path, help="export directory written by python -m golden.export")
    parser.add_argument("--array", default="16x16", help="ROWSxCOLS of the engine")
    parser.add_argument("--bits", default="8,6,4,3,2,1", help="weight precisions k to run")
    parser.add_argument("--max-m", type=int, default=1024, help="accumulator depth of the engine")
    parser.add_argument(
        "--digit-bits",
        type=int,
        help="D in {1, 2, 4, B}, dividing the model's B: a digit-serial engine, whose cycles fall with k "
        "(default B: the bit-parallel engine)",
    )
    parser.add_argument(
        "--batch", type=number(int, 1, MAX_IMAGES), default=1, help="images per engine pass (1 = latency mode)"
    )
    parser.add_argument("--images", type=number(int, 1, MAX_IMAGES), help="run only the first N test images")
    parser.add_argument(
        "--clock-mhz",
        type=number(float, 0, MAX_CLOCK_MHZ, above=True),
        default=100.0,
        help="clock for the latency column",
    )
    parser.add_argument(
        "--rtl",
        type=lambda text: text if text == "all" else number(int, 0, MAX_IMAGES)(text),
        default=0,
        metavar="N|all",
        help="also run the first N images (or all) on the Verilog, through the stream players",
    )
    parser.add_argument("--simulator", choices=SIMULATORS, default="verilator")
    parser.add_argument("-o", "--out", type=Path, help="output directory (default build/run/EXPORT_NAME)")
    return parser.parse_args(argv)


class Progress:
    """One line on stderr, redrawn at most every half second, for long runs."""

    def __init__(self, label: str, total: int):
        self.label, self.total = label, total
        self.start = self.shown = time.perf_counter()

    def __call__(self, done: int):
        now = time.perf_counter()
        if now - self.shown >= 0.5 or done == self.total:
            self.shown = now
            print(
                f"\r{self.label}: {done}/{self.total} images, {now - self.start:.1f} s",
                end="",
                file=sys.stderr,
                flush=True,
            )

    def close(self):
        print(file=sys.stderr)


def table(summaries, clock_mhz: float) -> list[dict]:
    return [
        {
            "k": s.k,
            "accuracy": s.accuracy,
            "cycles_per_inference": s.cycles_per_inference,
            "mac_utilisation": s.mac_utilisation,
            "latency_us": s.cycles_per_pass / clock_mhz,
            "us_per_inference": s.cycles_per_inference / clock_mhz,
        }
        for s in summaries
    ]


def main(argv=None):
    args = parse_args(argv)
    # The model needs torch (the `train` extra) and --rtl needs cocotb (the `rtl` extra). Importing them only
    # now keeps --help and argument errors instant and working on a base install, and a run without --rtl
    # free of cocotb.
    require_extra("torch", "train")
    from golden.export import load_export
    from sim.network import engine_config_for

    # The engine is built, and so every flag checked against the model's widths (--bits against B,
    # --digit-bits in {1, 2, 4, B}), before the output is claimed: a bad flag writes nothing.
    export = load_export(args.export)
    rows, cols = parse_array(args.array)
    ks = parse_bits(args.bits, export.base_bits)
    cfg = engine_config_for(export, rows, cols, args.max_m, args.digit_bits)
    out = args.out or build_dir("run", args.export.resolve().name)
    # The output is claimed before the run, so a path the output policy refuses costs no simulation.
    with atomic_dir(out, "apps.run", "results", inputs=[args.export]) as staging:
        run(args, export, cfg, ks, staging)
    print(f"wrote {out / 'results.csv'} and {out / 'results.json'}")


def run(args, export, cfg: EngineConfig, ks: list[int], staging: Path) -> None:
    """Simulate every requested precision, print the table, and write it into `staging`."""
    from golden.data import digits_split, input_codes
    from sim.network import run_precision

    rows, cols = cfg.rows, cfg.cols
    split = digits_split()
    codes, labels = input_codes(split.test_x[: args.images], export.act_bits), split.test_y[: args.images]
    if args.rtl:  # checked before the model runs: a bad count or a missing simulator costs nothing
        require_extra("cocotb", "rtl")
        from apps.run_rtl import rtl_check, rtl_images

        rtl_count = rtl_images(args.rtl, len(codes), args.simulator)
    summaries = []
    for k in ks:
        progress = Progress(f"k={k}", len(codes))
        summaries.append(run_precision(cfg, export, codes, labels, k, args.batch, progress))
        progress.close()
    rows_out = table(summaries, args.clock_mhz)
    kind = f"digit-serial D = {cfg.digit_bits}" if cfg.digit_serial else "bit-parallel"
    print(
        f"{export.method}/{export.scheme} model on a {rows}x{cols} {kind} engine, {len(codes)} test images, "
        f"batch {args.batch}, {args.clock_mhz:g} MHz"
    )
    print(
        f"{'k':>2} {'accuracy %':>10} {'cycles/inference':>17} {'MAC util %':>10} {'latency us':>10} "
        f"{'us/inference':>12}"
    )
    for row in rows_out:
        print(
            f"{row['k']:>2} {100 * row['accuracy']:10.1f} {row['cycles_per_inference']:17.1f} "
            f"{100 * row['mac_utilisation']:10.1f} {row['latency_us']:10.2f} {row['us_per_inference']:12.2f}"
        )
    rtl = None
    if args.rtl:
        rtl = rtl_check(cfg, export, codes[:rtl_count], ks, args.batch, args.simulator)
    with open(staging / "results.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows_out[0]))
        writer.writeheader()
        writer.writerows(rows_out)
    summary = {
        "export": str(args.export),
        "engine": cfg.as_dict(),
        "batch": args.batch,
        "clock_mhz": args.clock_mhz,
        "precisions": rows_out,
        "rtl": rtl,
    }
    (staging / "results.json").write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    raise SystemExit(run_main(main))
