"""`python -m apps.sweep`: area and Fmax against array size, and (with --model) accuracy against energy per
inference for every weight precision k, as CSV files and PNG plots under build/sweep/.

Each (array, bits, digit bits) point is one `eda.synth.synthesize` run in its own process (--jobs at a time), so a
sweep costs what its points cost. A failing point does not stop the others: every point's numbers or error
are printed, and then the sweep exits with status 2 and writes nothing, since a table with holes would be
read as the whole story.
"""

from __future__ import annotations

import csv
import sys
from concurrent.futures import ProcessPoolExecutor
from itertools import product
from pathlib import Path

from contract.cli import CommandError, InputError, Parser, atomic_dir, number, one_line, run_main
from contract.config import EngineConfig, parse_array
from contract.paths import build_dir
from eda.report import format_table
from eda.synth import synthesize
from eda.targets import DEFAULT_MAX_M, TARGETS
from golden.data import digits_split
from golden.evaluate import fraction_equal, integer_predictions
from golden.export import load_export
from sim.energy import gemms_energy, inference_shapes
from sim.network import engine_config_for

DEFAULT_OUT = build_dir("sweep")
AREA_FIELDS = [
    "target",
    "array",
    "pes",
    "bits",
    "digit_bits",
    "fits",
    "luts",
    "ffs",
    "dsps",
    "brams",
    "nand2_eq",
    "area_mm2",
    "fmax_mhz",
    "error",
]


def parse_list(text: str, parse, label: str) -> list:
    """A non-empty comma-separated list: an empty sweep would write empty tables and plots and look like success."""
    try:
        items = [parse(part.strip()) for part in text.split(",") if part.strip()]
    except ValueError:
        raise InputError(f"{label} must be a comma-separated list, got {text!r}") from None
    if not items:
        raise InputError(f"{label} must name at least one value, got {text!r}")
    return items


def area_point(target: str, rows: int, cols: int, bits: int, digit_bits: int | None, max_m: int, out: Path) -> dict:
    """One synthesis run, flattened into a CSV row (in a worker process: progress goes to stdout)."""
    row = dict.fromkeys(AREA_FIELDS, "") | {
        "target": target,
        "array": f"{rows}x{cols}",
        "pes": rows * cols,
        "bits": bits,
        "digit_bits": digit_bits or bits,
    }
    try:
        cfg = EngineConfig(rows=rows, cols=cols, base_bits=bits, max_m=max_m, digit_bits=digit_bits)
        report = synthesize(cfg, target, out / "synth", emit=lambda line: print(line, flush=True))
    except CommandError as exc:
        return row | {"error": one_line(exc)}
    if "gates" in report:
        return row | {
            "fits": True,
            "nand2_eq": report["gates"]["total_nand2_eq"],
            "area_mm2": report["area"]["total_mm2"],
        }
    resources = report["resources"]
    return row | {
        "fits": report["fits"],
        "luts": resources["lut"],
        "ffs": resources["ff"],
        "dsps": resources["dsp"],
        "brams": resources["bram"],
        "fmax_mhz": report["fmax_mhz"] or "",
    }


def write_csv(path: Path, fieldnames: list[str], rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(rows)


def plot_area(path: Path, target: str, rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    asic = target == "asic"
    metric, label = ("nand2_eq", "NAND2 equivalents (logic)") if asic else ("luts", "LUT4s")
    panels = 1 if asic else 2
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4), squeeze=False)
    for bits, digit_bits in sorted({(r["bits"], r["digit_bits"]) for r in rows}):
        points = [r for r in rows if (r["bits"], r["digit_bits"]) == (bits, digit_bits) and r[metric] != ""]
        pes = [r["pes"] for r in points]
        label = f"B = {bits}" + (f", D = {digit_bits}" if digit_bits != bits else "")
        axes[0][0].plot(pes, [r[metric] for r in points], "o-", label=label)
        if not asic:
            timed = [r for r in points if r["fmax_mhz"] != ""]
            axes[0][1].plot([r["pes"] for r in timed], [r["fmax_mhz"] for r in timed], "o-", label=label)
    axes[0][0].set(xscale="log", yscale="log", xlabel="PEs", ylabel=label, title=f"{target}: area")
    if not asic:
        axes[0][1].set(xscale="log", xlabel="PEs", ylabel="Fmax (MHz)", title=f"{target}: Fmax (placed designs)")
    for ax in axes[0]:
        ax.legend()
        ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def energy_rows(
    export_dir: Path, arrays: list[tuple[int, int]], digit_widths: list[int | None], max_m: int
) -> list[dict]:
    """Accuracy (golden integer path, digits test set) and energy per inference for k = B..1, per array and
    digit width (the accuracy is the same on every engine: the digits compute exactly the truncation)."""
    export = load_export(export_dir)
    split = digits_split()
    shapes = inference_shapes(export)
    macs = sum(m * k * n for m, k, n in shapes)
    rows = []
    for k in range(export.base_bits, 0, -1):
        accuracy = fraction_equal(integer_predictions(export, split.test_x, k), split.test_y)
        for (r, c), digit_bits in product(arrays, digit_widths):
            cfg = engine_config_for(export, r, c, max_m, digit_bits)
            energy = gemms_energy(cfg, shapes, k)
            rows.append(
                {
                    "array": f"{r}x{c}",
                    "digit_bits": cfg.digit_width,
                    "k": k,
                    "accuracy": round(accuracy, 4),
                    "energy_nj": round(energy.total / 1000, 3),
                    "pj_per_mac": round(energy.total / macs, 3),
                    "macs": macs,
                }
                | {f"{name}_nj": round(value / 1000, 3) for name, value in energy.as_dict().items() if name != "total"}
            )
    return rows


def plot_energy(path: Path, rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for array, digit_bits in dict.fromkeys((r["array"], r["digit_bits"]) for r in rows):
        points = [r for r in rows if (r["array"], r["digit_bits"]) == (array, digit_bits)]
        label = f"{array}, D = {digit_bits}"
        ax.plot([r["energy_nj"] for r in points], [100 * r["accuracy"] for r in points], "o-", label=label)
        for r in points:
            ax.annotate(
                f"k={r['k']}",
                (r["energy_nj"], 100 * r["accuracy"]),
                fontsize=7,
                textcoords="offset points",
                xytext=(3, 3),
            )
    ax.set(
        xlabel="energy per inference (nJ, 45 nm model)",
        ylabel="test accuracy (%)",
        title="digits: accuracy against energy per weight precision k",
    )
    ax.legend(title="array, digit bits")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = Parser(prog="python -m apps.sweep", description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True, choices=list(TARGETS))
    parser.add_argument("--arrays", default="4x4,8x8,16x16,32x32", help="comma-separated ROWSxCOLS")
    parser.add_argument("--bits", default="4,8", help="comma-separated base weight bits B")
    parser.add_argument(
        "--digit-bits",
        help="comma-separated digit widths D, each in {1, 2, 4, B} and dividing every B (default: B, the "
        "bit-parallel engine only)",
    )
    parser.add_argument("--max-m", type=int, default=DEFAULT_MAX_M, help=f"accumulator depth (default {DEFAULT_MAX_M})")
    parser.add_argument("--jobs", type=number(int, 1, 64), default=1, help="synthesis runs in parallel (1..64)")
    parser.add_argument("--model", type=Path, help="export directory (golden.export) for accuracy vs energy")
    parser.add_argument("-o", "--out", type=Path, default=DEFAULT_OUT, help="output directory (default build/sweep)")
    args = parser.parse_args(argv)
    arrays = [parse_array(a) for a in parse_list(args.arrays, str, "--arrays")]
    bits = parse_list(args.bits, int, "--bits")
    digit_widths = [None] if args.digit_bits is None else parse_list(args.digit_bits, int, "--digit-bits")
    for (r, c), b, d in product(arrays, bits, digit_widths):  # validate every point before starting any tool
        EngineConfig(rows=r, cols=c, base_bits=b, max_m=args.max_m, digit_bits=d)
    inputs = [] if args.model is None else [args.model]
    with atomic_dir(args.out, "apps.sweep", "sweep", inputs) as staging:
        if args.model is not None:
            energy_sweep(args.model, arrays, digit_widths, args.max_m, staging)
        area_sweep(args.target, arrays, bits, digit_widths, args.max_m, args.jobs, staging)
    print(f"wrote {args.out}")


def energy_sweep(
    model: Path, arrays: list[tuple[int, int]], digit_widths: list[int | None], max_m: int, out: Path
) -> None:
    rows = energy_rows(model, arrays, digit_widths, max_m)
    write_csv(out / "energy.csv", list(rows[0]), rows)
    plot_energy(out / "energy.png", rows)
    print(
        format_table(
            ["array", "D", "k", "accuracy %", "nJ/inference", "pJ/MAC"],
            [
                [r["array"], r["digit_bits"], r["k"], round(100 * r["accuracy"], 1), r["energy_nj"], r["pj_per_mac"]]
                for r in rows
            ],
        )
    )


def area_sweep(
    target: str,
    arrays: list[tuple[int, int]],
    bits: list[int],
    digit_widths: list[int | None],
    max_m: int,
    jobs: int,
    out: Path,
):
    """Synthesise every point; a failing point is shown with its error and fails the whole sweep, which then
    writes nothing (all or nothing, like every tool), after the others have run so their numbers are seen."""
    points = [(target, r, c, b, d, max_m, out) for b, d, (r, c) in product(bits, digit_widths, arrays)]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        rows = list(pool.map(area_point, *zip(*points, strict=True)))
    shown = (
        ["array", "bits", "digit_bits", "fits", "nand2_eq", "area_mm2"]
        if target == "asic"
        else ["array", "bits", "digit_bits", "fits", "luts", "ffs", "dsps", "brams", "fmax_mhz"]
    )
    print(format_table(shown + ["error"], [[r[f] for f in shown + ["error"]] for r in rows]))
    failed = [r for r in rows if r["error"]]
    if failed:
        raise InputError(f"{len(failed)} of {len(rows)} points failed (see the error column above); nothing written")
    write_csv(out / f"area-{target}.csv", AREA_FIELDS, rows)
    plot_area(out / f"area-{target}.png", target, rows)


if __name__ == "__main__":
    sys.exit(run_main(main))
