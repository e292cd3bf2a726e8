"""Digit-serial engines at iso-area: what each digit width D buys in the ASIC area of the 16x16 bit-parallel
engine (issue 9, item 4).

Reads the ASIC reports that `python -m eda.synth --target asic --array RxC --digit-bits D` writes under
build/synth/. The 16x16 report of every D must exist. For each D < B the array is, among R x C with R, C in
8, 12, .., 64 whose ASIC logic is not above the 16x16 bit-parallel engine's, the one with the most PEs (the
closest in logic on a tie). An array with a report is priced as measured, any other one by scaling its D's
measured 16x16 breakdown
(PE array per PE, accumulators and requantizer per column, skews as their triangles, control fixed) and
is marked "scaled" in the table, so synthesise the chosen arrays and run again until none is.

On those engines: peak MACs per cycle at k = 8, 4, 2, 1; for the digits model (an export of golden.export),
accuracy on the test set (golden integer path, which every D computes exactly), inferences per second per
mm^2 (cycles from sim.model, `--batch` images per pass, one clock for every D) and nJ per inference
(sim.energy) at k = 8..1; steady-state pJ/MAC on a 256x1024x256 GEMM; the issue-9 iso-area targets as met
or missed. Writes build/bench/digit_serial_area.png. Asserts nothing.

Usage: python bench/digit_serial_area.py [--export build/models/d] [--batch 16] [--clock-mhz 500]
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless backend)

from contract.cli import InputError, Parser, atomic_file, number, run_main  # noqa: E402
from contract.config import EngineConfig  # noqa: E402
from contract.model_files import load_export  # noqa: E402
from contract.paths import build_dir  # noqa: E402
from eda.report import NAND2_UM2, format_table, memory_estimate  # noqa: E402
from eda.synth import DEFAULT_OUT as SYNTH_OUT  # noqa: E402
from eda.synth import tag_for  # noqa: E402
from eda.targets import DEFAULT_MAX_M  # noqa: E402
from golden.data import digits_split  # noqa: E402
from golden.evaluate import fraction_equal, integer_predictions  # noqa: E402
from hw.engine import BLOCK_ORDER  # noqa: E402
from sim.energy import gemms_energy  # noqa: E402
from sim.energy_table import DEFAULT_TABLE  # noqa: E402
from sim.events import split_rows  # noqa: E402
from sim.model import sequence_cycles  # noqa: E402

DIGITS = (1, 2, 4, 8)
BITS = 8  # B = A = 8, ACC = 32: the engines eda.synth builds by default, and the digits export's widths
PEAK_PRECISIONS = (8, 4, 2, 1)
SIDES = range(8, 65, 4)
BASE = 16  # the 16x16 engines every D's breakdown is measured on
GEMM = (256, 1024, 256)
OUT = build_dir("bench")


def engine(rows: int, cols: int, digit_bits: int) -> EngineConfig:
    return EngineConfig(rows=rows, cols=cols, max_m=DEFAULT_MAX_M, digit_bits=digit_bits)


def read_report(cfg: EngineConfig) -> dict | None:
    path = SYNTH_OUT / tag_for(cfg, "asic") / "report.json"
    return json.loads(path.read_text()) if path.is_file() else None


@dataclass(frozen=True)
class Area:
    logic_nand2_eq: float
    total_mm2: float  # logic and the accumulator SRAM
    measured: bool


def scaled_logic(blocks: dict, rows: int, cols: int) -> float:
    """An R x C array's logic from the same D's measured 16x16 blocks: the PE array grows with R*C, the
    accumulators and requantizers with C; the skews are triangles of registers, the activation skew's in R
    (R(R+1)/2 stages) and the weight-load skew's and the output de-skew's in C (about C^2 together); the
    control is shared. The partial sums' few extra bits in taller arrays are ignored."""
    skew = blocks["skew"]["nand2_eq"] * (rows * (rows + 1) / 2 + cols**2) / (BASE * (BASE + 1) / 2 + BASE**2)
    return (
        blocks["pe_array"]["nand2_eq"] * rows * cols / BASE**2
        + (blocks["accumulators"]["nand2_eq"] + blocks["requantization"]["nand2_eq"]) * cols / BASE
        + skew
        + blocks["control"]["nand2_eq"]
    )


def area_of(cfg: EngineConfig, base_blocks: dict) -> Area:
    report = read_report(cfg)
    if report is not None:
        return Area(report["gates"]["total_nand2_eq"], report["area"]["total_mm2"], True)
    logic = scaled_logic(base_blocks, cfg.rows, cfg.cols)
    sram = memory_estimate(cfg.max_m * cfg.cols * cfg.acc_bits)["sram_um2"]
    return Area(logic, (logic * NAND2_UM2 + sram) / 1e6, False)


def iso_area_engine(digit_bits: int, budget: float, base_blocks: dict) -> tuple[EngineConfig, Area]:
    """The R x C array of this D with the most PEs among those whose logic is not above `budget` (the closest
    to it on a tie). Closeness alone would pick a wide, shallow array whose logic is mostly per-column
    requantizers and which has fewer PEs than the 16x16 bit-parallel one."""
    candidates = []
    for rows in SIDES:
        for cols in SIDES:
            cfg = engine(rows, cols, digit_bits)
            area = area_of(cfg, base_blocks)
            if area.logic_nand2_eq <= budget:
                candidates.append((cfg.pe_count, area.logic_nand2_eq, cfg, area))
    if not candidates:
        raise InputError(f"no array of D = {digit_bits} with sides in {SIDES.start}..{SIDES.stop - 1} fits")
    _, _, cfg, area = max(candidates, key=lambda c: c[:2])
    return cfg, area


@dataclass(frozen=True)
class ModelPoint:
    inferences_per_s_mm2: float
    nj_per_inference: float


def model_point(cfg: EngineConfig, area: Area, shapes, k: int, batch: int, clock_mhz: float) -> ModelPoint:
    """`batch` images per pass: every layer's M grows by `batch`, split into commands of at most max_m rows,
    run back to back at precision k."""
    batched = [(m * batch, k_dim, n) for m, k_dim, n in shapes]
    commands = [(*command, k) for shape in batched for command in split_rows(cfg, *shape)]
    seconds = sequence_cycles(cfg, commands) / (clock_mhz * 1e6)
    energy_pj = gemms_energy(cfg, batched, k).total
    return ModelPoint(batch / seconds / area.total_mm2, energy_pj / batch / 1000)


def sixteen_table(reports: dict[int, dict]) -> None:
    print(
        "16x16 engines, ASIC logic NAND2-eq per block (python -m eda.synth --target asic --array 16x16 --digit-bits D)"
    )
    rows = [
        [d]
        + [reports[d]["gates"]["blocks"][block]["nand2_eq"] for block in BLOCK_ORDER]
        + [reports[d]["gates"]["total_nand2_eq"], reports[d]["area"]["total_mm2"]]
        for d in DIGITS
    ]
    print(format_table(["D", *BLOCK_ORDER, "logic", "mm2 (with SRAM)"], rows))


def plot(path: Path, engines: dict, points: dict, accuracy: dict[int, float], precisions: list[int]) -> None:
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for d, (cfg, _) in engines.items():
        label = f"D = {d}, {cfg.rows}x{cfg.cols}" + (" (bit-parallel)" if d == BITS else "")
        axes[0].plot(precisions, [points[d, k].inferences_per_s_mm2 for k in precisions], "o-", label=label)
        axes[1].plot(precisions, [points[d, k].nj_per_inference for k in precisions], "o-", label=label)
    for ax, ylabel in zip(axes, ("inferences/s per mm2", "nJ per inference"), strict=True):
        ax.set_xticks(precisions, [f"{k}\n{100 * accuracy[k]:.1f}%" for k in precisions])
        ax.set(xlabel="weight precision k (and the model's test accuracy)", ylabel=ylabel)
        ax.invert_xaxis()
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set(title="digits model, iso-area engines: throughput per mm2")
    axes[1].set(title=f"energy per inference (table {DEFAULT_TABLE.name})")
    figure.tight_layout()
    with atomic_file(path, lambda p: p.resolve().parent == OUT.resolve()) as tmp:
        figure.savefig(tmp, format="png", dpi=120)
    plt.close(figure)


def main(argv: list[str] | None = None) -> None:
    parser = Parser(prog="python bench/digit_serial_area.py", description=__doc__.splitlines()[0])
    parser.add_argument("--export", type=Path, default=Path("build/models/d"), help="golden.export directory")
    parser.add_argument("--batch", type=number(int, 1, 4096), default=16, help="images per engine pass")
    parser.add_argument("--clock-mhz", type=number(float, 0, 10_000, above=True), default=500.0)
    args = parser.parse_args(argv)
    export = load_export(args.export)
    if (export.base_bits, export.act_bits, export.acc_bits) != (BITS, BITS, 32):
        raise InputError(f"the engines are B = A = {BITS}, ACC = 32; {args.export} is not")
    reports = {d: read_report(engine(BASE, BASE, d)) for d in DIGITS}
    missing = [d for d, report in reports.items() if report is None]
    if missing:
        raise InputError(
            f"no 16x16 ASIC report for D = {', '.join(map(str, missing))}: run "
            f"python -m eda.synth --target asic --array 16x16 --digit-bits D"
        )
    sixteen_table(reports)
    budget = reports[BITS]["gates"]["total_nand2_eq"]
    engines = {d: iso_area_engine(d, budget, reports[d]["gates"]["blocks"]) for d in DIGITS if d != BITS}
    engines[BITS] = engine(BASE, BASE, BITS), area_of(engine(BASE, BASE, BITS), {})
    print(f"\niso-area engines: the most PEs in ASIC logic not above the 16x16 bit-parallel engine's {budget:,.0f}")
    print(
        format_table(
            ["D", "array", "PEs", "logic NAND2-eq", "priced", "mm2", *(f"MACs/cyc k={k}" for k in PEAK_PRECISIONS)],
            [
                [d, f"{cfg.rows}x{cfg.cols}", cfg.pe_count, area.logic_nand2_eq]
                + ["measured" if area.measured else "SCALED", area.total_mm2]
                + [cfg.pe_count / cfg.digits(k) for k in PEAK_PRECISIONS]
                for d, (cfg, area) in sorted(engines.items())
            ],
        )
    )
    split, shapes = digits_split(), export.gemm_shapes()
    precisions = list(range(BITS, 0, -1))
    accuracy = {k: fraction_equal(integer_predictions(export, split.test_x, k), split.test_y) for k in precisions}
    points = {
        (d, k): model_point(cfg, area, shapes, k, args.batch, args.clock_mhz)
        for d, (cfg, area) in engines.items()
        for k in precisions
    }
    print(
        f"\ndigits model ({args.export}, {len(split.test_y)} test images), batch {args.batch}, "
        f"{args.clock_mhz:g} MHz for every D: inferences/s per mm2 | nJ per inference"
    )
    print(
        format_table(
            ["k", "accuracy %", *(f"D={d} inf/s/mm2" for d in DIGITS), *(f"D={d} nJ" for d in DIGITS)],
            [
                [k, round(100 * accuracy[k], 1)]
                + [round(points[d, k].inferences_per_s_mm2) for d in DIGITS]
                + [points[d, k].nj_per_inference for d in DIGITS]
                for k in precisions
            ],
        )
    )
    macs = GEMM[0] * GEMM[1] * GEMM[2]
    print(
        f"\nsteady-state pJ/MAC, {'x'.join(map(str, GEMM))} GEMM on the iso-area engines (table {DEFAULT_TABLE.name})"
    )
    print(
        format_table(
            ["D", "array", *(f"k={k}" for k in PEAK_PRECISIONS)],
            [
                [d, f"{cfg.rows}x{cfg.cols}", *(gemms_energy(cfg, [GEMM], k).total / macs for k in PEAK_PRECISIONS)]
                for d, (cfg, _) in sorted(engines.items())
            ],
        )
    )
    targets(points, precisions)
    path = OUT / "digit_serial_area.png"
    plot(path, dict(sorted(engines.items())), points, accuracy, precisions)
    print(f"wrote {path}")


def targets(points: dict, precisions: list[int]) -> None:
    """The issue-9 iso-area targets, each with the best digit-serial D's figure against bit-parallel."""

    def best(k: int, better) -> tuple[int, float]:
        return max(((d, better(points[d, k], points[BITS, k])) for d in DIGITS if d != BITS), key=lambda p: p[1])

    speed = {k: best(k, lambda p, q: p.inferences_per_s_mm2 / q.inferences_per_s_mm2) for k in precisions}
    energy = {k: best(k, lambda p, q: q.nj_per_inference / p.nj_per_inference) for k in precisions}
    print("\nissue 9 iso-area targets (best D: its figure over the bit-parallel engine's):")
    print("  inferences/s/mm2, k = 1..3: " + ", ".join(f"k={k} D={speed[k][0]} {speed[k][1]:.2f}x" for k in (3, 2, 1)))
    met = all(speed[k][1] > 1 for k in (1, 2, 3))
    print(f"    beats bit-parallel at every k <= 3: {'met' if met else 'missed'}")
    print(f"    k = 1 by >= 2x: {speed[1][1]:.2f}x ({'met' if speed[1][1] >= 2 else 'missed'})")
    print("  energy per inference, k = 1..4 (bit-parallel nJ / D's):")
    print("    " + ", ".join(f"k={k} D={energy[k][0]} {energy[k][1]:.2f}x" for k in (4, 3, 2, 1)))
    met = all(energy[k][1] > 1 for k in (1, 2, 3, 4))
    print(f"    beats bit-parallel at every k <= 4: {'met' if met else 'missed'}")


if __name__ == "__main__":
    raise SystemExit(run_main(main))
