"""`python -m apps.run EXPORT`: a test set (digits, Fashion-MNIST or your own) through the engine, per precision policy.

A policy is a weight precision k for every layer (`--bits`, `--policy uniform:K`), one k per GEMM layer
(`--policy static:...`), or the export's run-time controller (`--policy dynamic[:BUDGET]`), which picks a k
per layer for each image (contract.policy). Prints, per policy, accuracy, BitOPs, engine and host cycles per
inference, MAC utilisation, latency at a stated clock and energy per inference (engine and host operations, priced
with the shipped 45 nm energy table or `--energy-table FILE`, which the output names), the engine's GOPS and
TOPS/W beside its MACs (2 ops per MAC, on the named engine and clock), and for a controller the share of
images at each k per layer; saves them as CSV and JSON (results.csv, results.json), and the engine's costs
per GEMM layer as layers.json (apps.run_layers), which `nestmac report` draws. Outputs come from the
batched integer path and cycles from the cycle model's formula per distinct pass (sim.network.run_policy),
so the 10,000 Fashion-MNIST test images take seconds. `--rtl N` also runs the first N images' commands on the emitted
Verilog and checks every layer's output against the model and the golden integer path, every command's
cycles against the model, and measures what changing k between consecutive commands costs.
"""

from __future__ import annotations

import csv
import hashlib
import json
import time
from pathlib import Path

from contract.cli import InputError, Parser, atomic_dir, number, parse_bits, require_extra, run_main
from contract.config import EngineConfig, engine_tag, parse_array
from contract.datasets import add_data_arguments
from contract.paths import build_dir
from contract.policy import Policy, ResolvedPolicy, parse_policy
from contract.progress import Progress
from eda.tools import SIMULATORS

# Flag ranges: more images than any test set holds, and a clock no engine reaches, are typing mistakes.
MAX_IMAGES = 1 << 20
MAX_CLOCK_MHZ = 10_000.0


def parse_args(argv):
    parser = Parser(prog="python -m apps.run", description=__doc__.splitlines()[0])
    parser.add_argument("export", type=Path, help="export directory written by python -m golden.export")
    parser.add_argument("--array", default="16x16", help="ROWSxCOLS of the engine")
    precision = parser.add_mutually_exclusive_group()
    precision.add_argument("--bits", help="weight precisions k to run, each as uniform:k (default 8,6,4,3,2,1)")
    precision.add_argument(
        "--policy",
        action="append",
        help="a precision policy to run (contract.policy): uniform:K, or static:K1,K2,... with one k per GEMM "
        "layer; repeat for several. dynamic[:BUDGET] needs an export with a controller (default: uniform "
        "policies, --bits)",
    )
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
    add_data_arguments(parser, limit_help="run only the first N test images", limit_aliases=("--images",))
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
    parser.add_argument(
        "--program",
        action="store_true",
        help="run each policy as a layer program on the program engine (activations in an on-chip scratchpad, "
        "no host work between layers; apps.run_program) instead of GEMM commands with host adds",
    )
    parser.add_argument(
        "--act-kib",
        type=number(float, 0, 1 << 20, above=True),
        default=16.0,
        help="with --program: the scratchpad's KiB",
    )
    parser.add_argument("--simulator", choices=SIMULATORS, default="verilator")
    parser.add_argument(
        "--energy-table",
        type=Path,
        metavar="FILE",
        help='energy table (JSON, docs/estimates.md "Energy model") to price the events with: another '
        "technology's action energies (default: the shipped horowitz-45nm, 45 nm)",
    )
    parser.add_argument(
        "-o",
        "--out",
        type=Path,
        help="output directory (default: build/run/EXPORT_NAME/ENGINE/POLICIES, named after the engine variant and "
        "the policies run; it refuses to replace the results of a run with other settings there)",
    )
    return parser.parse_args(argv)


#: Operations per MAC in the GOPS and TOPS/W columns: a multiply and an add, as BISMO and UNPU count them.
OPS_PER_MAC = 2


def table(summaries, clock_mhz: float) -> list[dict]:
    """One row per policy. GOPS and TOPS/W are the engine's, in peers' units: OPS_PER_MAC x its MACs over its
    own cycles at `clock_mhz` and over its own energy (ops per pJ are TOPS/W); the host adds are left out, as
    an accelerator's figures leave out its host."""
    return [
        {
            "k": s.label,
            "accuracy": s.accuracy,
            "mbitops_per_inference": s.bitops_per_inference / 1e6,
            "cycles_per_inference": s.cycles_per_inference,
            "host_cycles_per_inference": s.host_cycles_per_inference,
            "mac_utilisation": s.mac_utilisation,
            "latency_us": s.cycles_per_pass / clock_mhz,
            "us_per_inference": (s.cycles_per_inference + s.host_cycles_per_inference) / clock_mhz,
            "energy_nj_per_inference": s.energy_per_inference_pj / 1000,
            "host_energy_nj_per_inference": s.host_energy_per_inference_pj / 1000,
            "macs_per_inference": s.macs / s.images,
            "gops": OPS_PER_MAC * s.macs * clock_mhz / s.cycles / 1000,
            "tops_per_w": OPS_PER_MAC * s.macs / s.energy.total,
        }
        for s in summaries
    ]


def k_distribution(export, summary) -> dict[str, dict[str, float]]:
    """Per GEMM layer, the fraction of images that ran it at each k they used."""
    return {
        layer.name: {str(k): count / summary.images for k, count in enumerate(counts, 1) if count}
        for layer, counts in zip(export.layers, summary.k_counts, strict=True)
    }


def energy_by_part(summary) -> dict[str, float]:
    """The engine energy per inference, nJ, by where it is spent (sim.energy.Energy), and its total."""
    return {part: pj / 1000 / summary.images for part, pj in summary.energy.as_dict().items()}


def print_distribution(export, summary) -> None:
    print(f"{summary.label}: share of images at each k, per layer")
    for layer, shares in k_distribution(export, summary).items():
        print(f"  {layer:>12}  " + "  ".join(f"k={k}: {100 * share:5.1f}%" for k, share in shares.items()))


def policies(args, export) -> list[ResolvedPolicy]:
    """What to run, each resolved against the export (contract.policy): one k per GEMM layer (uniform,
    static), or the export's controller for the budget asked (dynamic)."""
    if not args.policy:
        bits = parse_bits(args.bits or "8,6,4,3,2,1", export.base_bits)
        return [Policy("uniform", (k,)).resolve(export) for k in bits]
    chosen = []
    for text in args.policy:
        policy = parse_policy(text, export.base_bits)
        if policy.kind == "dynamic" and not export.controllers:
            raise InputError(f"{args.export} holds no controller, so it cannot run {text!r}: dynamic needs one")
        chosen.append(policy.resolve(export))
    return chosen


#: Longest policy part of a default output's name; longer ones (many static vectors) are cut and hashed.
MAX_POLICY_NAME = 100


def default_output(
    args, cfg: EngineConfig, chosen: list[ResolvedPolicy], energy_table, limits=None
) -> tuple[Path, dict]:
    """Where a run without -o writes, named after the export, the engine variant and the policies, so that a
    digit-serial run never lands on the bit-parallel results; and the other settings the output records, so
    that a run that differs only in those (data, images, batch, clock, RTL check, energy table: its name and
    contents, not where the file lies) refuses to replace it."""
    labels = [policy.label for policy in chosen]
    uniform = [label for label in labels if label.isdigit()]
    parts = ([f"k{','.join(uniform)}"] if uniform else []) + [
        label.replace(":", "-") if label.startswith("dynamic") else f"static-{label}"
        for label in labels
        if not label.isdigit()
    ]
    name = "_".join(parts)
    if len(name) > MAX_POLICY_NAME:
        name = f"{name[: MAX_POLICY_NAME - 11]}-{hashlib.sha1(name.encode()).hexdigest()[:10]}"
    settings = {
        "export": str(args.export.resolve()),
        "engine": cfg.as_dict(),
        "policies": labels,
        "data": args.data,
        "data_dir": None if args.data_dir is None else str(Path(args.data_dir).resolve()),
        "images": args.limit,
        "batch": args.batch,
        "clock_mhz": args.clock_mhz,
        "rtl": args.rtl,
        "simulator": args.simulator if args.rtl else None,
        "energy_table": {"name": energy_table.name, "sha256": energy_table.sha256},
    }
    engine = engine_tag(cfg)
    if limits is not None:
        engine, settings["program"] = f"{engine}-program{limits.words}w", limits.as_dict()
    return build_dir("run", args.export.resolve().name, engine, name), settings


def main(argv=None):
    args = parse_args(argv)
    # The model needs torch (the `train` extra) and --rtl needs cocotb (the `rtl` extra). Importing them only
    # now keeps --help and argument errors instant and working on a base install, and a run without --rtl
    # free of cocotb.
    require_extra("torch", "train")
    from contract.model_files import load_export
    from golden.data import data_split
    from sim.energy_table import DEFAULT_TABLE, load_energy_table

    # The engine is built, and so every flag checked against the model's widths (--bits against B,
    # --digit-bits in {1, 2, 4, B}), before the output is claimed: a bad flag writes nothing.
    export = load_export(args.export)
    split = data_split(args, export.dataset)
    if tuple(split.test_x.shape[1:]) != export.input_shape:
        raise InputError(
            f"{args.export} takes inputs {list(export.input_shape)}, but {args.data} images are "
            f"{list(split.test_x.shape[1:])}"
        )
    rows, cols = parse_array(args.array)
    chosen = policies(args, export)
    cfg = EngineConfig.from_export(export, rows, cols, args.max_m, args.digit_bits)
    limits = None
    if args.program:  # every program compiled and checked to fit before the output is claimed
        from apps.run_program import program_setup

        cfg, limits = program_setup(args, export, cfg, chosen)
    energy_table = DEFAULT_TABLE if args.energy_table is None else load_energy_table(args.energy_table)
    out, settings = (args.out, None) if args.out else default_output(args, cfg, chosen, energy_table, limits)
    inputs = [args.export] + ([] if args.energy_table is None else [args.energy_table])
    # The output is claimed before the run, so a path the output policy refuses costs no simulation.
    with atomic_dir(out, "apps.run", "results", inputs=inputs, run=settings) as staging:
        run(args, export, cfg, chosen, split, energy_table, staging, limits)
    print(f"wrote {out / 'results.csv'}, {out / 'results.json'} and {out / 'layers.json'}")


def run(
    args, export, cfg: EngineConfig, chosen: list[ResolvedPolicy], split, energy_table, staging: Path, limits=None
) -> None:
    """Simulate every requested policy, energy priced with `energy_table` (sim.energy_table.EnergyTable),
    print the table, and write it into `staging`; with `limits` (contract.program.ProgramLimits), as layer
    programs on the program engine (apps.run_program)."""
    from apps.run_layers import layer_breakdown, stream_totals
    from apps.run_program import print_external_memory, print_program_layers
    from golden.data import input_codes
    from golden.train import one_thread
    from sim.network import run_policy

    rows, cols = cfg.rows, cfg.cols
    codes, labels = input_codes(split.test_x, export.act_bits), split.test_y
    if args.rtl:  # checked before the model runs: a bad count or a missing simulator costs nothing
        require_extra("cocotb", "rtl")
        from apps.run_rtl import rtl_check, rtl_images

        rtl_count = rtl_images(args.rtl, len(codes), args.simulator)
    summaries, seconds, program_breakdowns, memories = [], [], [], []
    for policy in chosen:
        started = time.perf_counter()
        with one_thread(), Progress(f"k={policy.label}", len(codes), "images") as progress:
            if limits is None:
                summaries.append(run_policy(cfg, export, codes, labels, policy, args.batch, progress, energy_table))
            else:
                layers, memory = _run_program(
                    cfg, export, limits, codes, labels, policy, progress, energy_table, summaries
                )
                program_breakdowns.append(layers)
                memories.append(memory)
        seconds.append(time.perf_counter() - started)
    rows_out = table(summaries, args.clock_mhz)
    kind = f"digit-serial D = {cfg.digit_bits}" if cfg.digit_serial else "bit-parallel"
    where = (
        "host adds and poolings on a scalar host at the same clock"
        if limits is None
        else f"layer programs on the program engine, a {limits.words}-word ({args.act_kib:g} KiB) scratchpad, "
        "no host work"
    )
    print(
        f"{export.method}/{export.scheme} model on a {rows}x{cols} {kind} engine, {args.data}, {len(codes)} test "
        f"images, batch {args.batch}, {args.clock_mhz:g} MHz; {where}"
    )
    print(f"energy from table {energy_table.name} ({energy_table.technology}): {energy_table.path}")
    print(
        f"device: engine {engine_tag(cfg)} at {args.clock_mhz:g} MHz, energy table {energy_table.name}; GOPS and "
        f"TOPS/W count {OPS_PER_MAC} ops per MAC (BISMO, UNPU), the engine's MACs over its own cycles and energy"
    )
    print(
        f"{'accuracy %':>10} {'MBitOPs':>8} {'engine cyc/inf':>14} {'host cyc/inf':>12} {'MAC util %':>10} "
        f"{'latency us':>10} {'us/inf':>8} {'engine nJ/inf':>13} {'host nJ/inf':>11} {'MMAC/inf':>9} {'GOPS':>8} "
        f"{'TOPS/W':>7}  k (per layer)"
    )
    for row in rows_out:
        print(
            f"{100 * row['accuracy']:10.2f} {row['mbitops_per_inference']:8.2f} {row['cycles_per_inference']:14.1f} "
            f"{row['host_cycles_per_inference']:12.1f} {100 * row['mac_utilisation']:10.1f} "
            f"{row['latency_us']:10.2f} {row['us_per_inference']:8.2f} {row['energy_nj_per_inference']:13.1f} "
            f"{row['host_energy_nj_per_inference']:11.2f} {row['macs_per_inference'] / 1e6:9.3f} {row['gops']:8.2f} "
            f"{row['tops_per_w']:7.3f}  {row['k']}"
        )
    for policy, summary in zip(chosen, summaries, strict=True):
        if policy.controller is not None:  # a fixed k needs no distribution
            print_distribution(export, summary)
    for summary, spent in zip(summaries, seconds, strict=True):
        print(f"{summary.label}: simulated {summary.macs:.3g} MACs in {spent:.1f} s: {summary.macs / spent:.3g} MAC/s")
    macs = sum(summary.macs for summary in summaries)
    print(f"simulated {macs:.3g} MACs in {sum(seconds):.1f} s: {macs / sum(seconds):.3g} MAC/s")
    rtl = None
    if args.rtl:
        with one_thread():  # the commands' golden and model outputs: 20x slower on two threads here
            rtl = rtl_check(cfg, export, codes[:rtl_count], chosen, args.batch, args.simulator)
    # Per GEMM layer (per program step), each policy's share of its engine costs (for `nestmac report`; None
    # where not recorded).
    breakdowns = program_breakdowns or [
        layer_breakdown(cfg, export, policy, s, args.batch, energy_table)
        for policy, s in zip(chosen, summaries, strict=True)
    ]
    for summary, layers, memory in zip(summaries, program_breakdowns, memories, strict=False):
        print_program_layers(summary.label, layers, args.clock_mhz)
        print_external_memory(summary.label, memory)
    with open(staging / "results.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows_out[0]))
        writer.writeheader()
        writer.writerows(rows_out)
    summary = {
        "export": str(args.export),
        "engine": cfg.as_dict(),
        "program": None if limits is None else limits.as_dict(),
        "data": args.data,
        "images": len(codes),
        "batch": args.batch,
        "clock_mhz": args.clock_mhz,
        "energy_table": energy_table.identity(),
        "model": {"method": export.method, "scheme": export.scheme, "layers": len(export.layers)},
        "precisions": [
            row
            | {
                "k_distribution": k_distribution(export, s),
                "energy_nj_by_part": energy_by_part(s),
                "bytes_per_inference": stream_totals(layers),
                "external_memory": memory,
            }
            for row, s, layers, memory in zip(
                rows_out, summaries, breakdowns, memories or [None] * len(summaries), strict=True
            )
        ],
        "rtl": rtl,
        "transition_cycles": rtl["transition_cycles"] if rtl else None,
    }
    (staging / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    per_layer = [{"k": s.label, "layers": layers} for s, layers in zip(summaries, breakdowns, strict=True)]
    (staging / "layers.json").write_text(json.dumps({"precisions": per_layer}, indent=2) + "\n")


def _run_program(cfg, export, limits, codes, labels, policy, progress, energy_table, summaries):
    """One policy as a layer program: its summary appended to `summaries`; its per-step rows and its external
    memory figures returned."""
    from apps.run_program import external_memory, program_layers
    from sim.program_cost import run_program_policy

    summary, program, cost = run_program_policy(cfg, export, limits, codes, labels, policy, progress, energy_table)
    summaries.append(summary)
    return program_layers(cfg, export, program, cost), external_memory(cfg, program, cost, energy_table)


if __name__ == "__main__":
    raise SystemExit(run_main(main))
