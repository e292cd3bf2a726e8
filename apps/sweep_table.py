"""The sweep's results as one tidy table (one row per point and weight precision k) and its Pareto fronts.

Tidy rows (every column a variable, every row one observation) load straight into pandas, R or a spreadsheet
pivot, whichever question is asked of them; the plots show only the non-dominated designs: the least area (or
LUTs) for a given throughput at each k, and the least energy per inference for a given accuracy.
"""

from __future__ import annotations

import csv
from pathlib import Path

from apps.sweep_points import AREA_FIELDS, Outcome

#: Columns apps.sweep_model fills with --model, in CSV order (the energy breakdown: sim.energy.Energy's fields).
MODEL_FIELDS = [
    "cycles_per_inference",
    "inferences_per_mcycle",
    "accuracy",
    "energy_nj",
    "pj_per_mac",
    "multiply_nj",
    "add_nj",
    "registers_nj",
    "accumulator_nj",
    "requant_nj",
    "buffers_nj",
    "scratchpad_nj",  # 0 for GEMM commands: only the program engine has a scratchpad
    "energy_table",  # the name of the table the energy columns were priced with (sim.energy_table)
]
POINT_FIELDS = ["target", "array", "pes", "bits", "digit_bits", "engine", "k", "macs_per_cycle"]
FIELDS = POINT_FIELDS + AREA_FIELDS[:-1] + MODEL_FIELDS + ["inferences_per_s", "error"]


def tidy_rows(outcomes: list[Outcome], model) -> list[dict]:
    """One row per point and k (k = B only without a model), in the order of `outcomes`."""
    rows = []
    for outcome in outcomes:
        point, cfg = outcome.point, outcome.point.config
        for k in model.precisions(point) if model else [point.bits]:
            row = dict.fromkeys(FIELDS, "") | outcome.area | (model.figures(point, k) if model else {})
            row |= {
                "target": point.target,
                "array": f"{point.rows}x{point.cols}",
                "pes": cfg.pe_count,
                "bits": point.bits,
                "digit_bits": cfg.digit_width,
                "engine": "switchable" if point.switchable else "fixed",
                "k": k,
                "macs_per_cycle": round(cfg.pe_count / cfg.digits(k), 3),  # peak: one digit per PE per cycle
            }
            if row["fmax_mhz"] != "" and row["cycles_per_inference"] != "":
                row["inferences_per_s"] = round(row["fmax_mhz"] * 1e6 / row["cycles_per_inference"], 1)
            rows.append(row)
    return rows


def write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats on both counts (x larger is better, y smaller is better), by x."""
    front, best_y = [], float("inf")
    for x, y in sorted(points, key=lambda p: (-p[0], p[1])):
        if y < best_y:
            front.append((x, y))
            best_y = y
    return sorted(front)


def throughput_column(rows: list[dict]) -> tuple[str, str]:
    """The best throughput measure every row has: inferences/s (placed FPGA designs with a model), inferences
    per million cycles (a model, no Fmax: ASIC), else the peak MACs per cycle."""
    for column, label in (
        ("inferences_per_s", "inferences/s (at Fmax)"),
        ("inferences_per_mcycle", "inferences per million cycles"),
    ):
        if rows and all(r[column] != "" for r in rows):
            return column, label
    return "macs_per_cycle", "peak MACs per cycle"


def plot_area(path: Path, target: str, rows: list[dict]) -> None:
    """Area (ASIC NAND2-eq, FPGA LUT4s) against throughput, the Pareto front at each k drawn as a line."""
    plt = pyplot()
    metric, ylabel = ("nand2_eq", "NAND2 equivalents (logic)") if target == "asic" else ("luts", "LUT4s")
    rows = [r for r in rows if r[metric] != ""]
    column, xlabel = throughput_column(rows)
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for k in sorted({r["k"] for r in rows}, reverse=True):
        points = [(float(r[column]), float(r[metric])) for r in rows if r["k"] == k]
        dots = ax.scatter(*zip(*points, strict=True), s=14, alpha=0.35)
        front = pareto_front(points)
        ax.plot(*zip(*front, strict=True), "o-", color=dots.get_facecolor()[0][:3], label=f"k = {k}")
    ax.set(xscale="log", yscale="log", xlabel=xlabel, ylabel=ylabel, title=f"{target}: Pareto front of area")
    finish(fig, ax, path, "weight bits")


def plot_energy(path: Path, rows: list[dict]) -> None:
    """Energy per inference against accuracy over every point and k, the Pareto front drawn as a line."""
    plt = pyplot()
    rows = [r for r in rows if r["energy_nj"] != ""]
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for k in sorted({r["k"] for r in rows}, reverse=True):
        points = [(100 * r["accuracy"], r["energy_nj"]) for r in rows if r["k"] == k]
        ax.scatter(*zip(*points, strict=True), s=14, label=f"k = {k}")
    front = pareto_front([(100 * r["accuracy"], r["energy_nj"]) for r in rows])
    ax.plot(*zip(*front, strict=True), "k-", lw=1, label="Pareto front")
    ax.set(
        xlabel="test accuracy (%)",
        ylabel=f"energy per inference (nJ, table {', '.join(sorted({r['energy_table'] for r in rows}))})",
        yscale="log",
        title="digits: energy against accuracy (all arrays, digit widths)",
    )
    finish(fig, ax, path, "weight bits")


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def finish(fig, ax, path: Path, legend_title: str) -> None:
    ax.legend(title=legend_title, fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    pyplot().close(fig)
