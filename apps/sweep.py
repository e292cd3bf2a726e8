"""`python -m apps.sweep`: the design space (arrays, bits, digit widths, targets, switchable/fixed, and with a
model every weight precision k) as one tidy CSV and Pareto-front plots under build/sweep/.

Each point is one `eda.synth.synthesize` run. With --jobs N > 1 the points are Dask tasks on a local cluster of N
workers (at most one per core), with --scheduler on an existing Dask cluster, and with --jobs 1 they run one after
another in this process. Every finished point is cached (apps.sweep_points), so a re-run or a crashed sweep redoes
only what is missing. A failing point is shown with its error and the tool's last lines as soon as it fails, the
sweep goes on, and then nothing is written unless --allow-failed: a table with holes would be read as the whole
story, but with --allow-failed the failed points are rows whose `error` column says why.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from itertools import product
from pathlib import Path

from apps.sweep_cluster import Progress, dask_client, local_workers, run_points
from apps.sweep_points import Outcome, Point, cached_outcome
from apps.sweep_table import plot_area, plot_energy, tidy_rows, write_csv
from contract.cli import CommandError, InputError, Parser, add_base_bits, atomic_dir, number, require_extra, run_main
from contract.config import parse_array
from contract.paths import build_dir
from eda.report import format_table
from eda.targets import DEFAULT_MAX_M, TARGETS
from sim.energy_table import DEFAULT_TABLE, EnergyTable, load_energy_table

DEFAULT_OUT = build_dir("sweep")
DEFAULT_CACHE = build_dir("sweep-cache")
ENGINES = ("switchable", "fixed")
MAX_JOBS = 64


def parse_list(text: str, parse, label: str) -> list:
    """A non-empty comma-separated list: an empty sweep would write empty tables and plots and look like success."""
    try:
        items = [parse(part.strip()) for part in text.split(",") if part.strip()]
    except InputError:
        raise
    except ValueError:
        raise InputError(f"{label} must be a comma-separated list, got {text!r}") from None
    if not items:
        raise InputError(f"{label} must name at least one value, got {text!r}")
    return items


def choice(label: str, options) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in options:
            raise InputError(f"{label}: {text!r} is not one of {', '.join(options)}")
        return text

    return parse


def plan(args) -> list[Point]:
    """Every point of the axes, each checked (EngineConfig) before any tool starts. The fixed-precision engine
    is bit-parallel only, so it is one point per (target, array, bits), whatever --digit-bits says; D = B is the
    bit-parallel engine (digit_bits None), one point however it is named."""
    targets = parse_list(args.target, choice("--target", TARGETS), "--target")
    arrays = [parse_array(a) for a in parse_list(args.arrays, str, "--arrays")]
    bits = parse_list(args.base_bits, int, "--base-bits")
    digit_widths = [None] if args.digit_bits is None else parse_list(args.digit_bits, int, "--digit-bits")
    engines = parse_list(args.engines, choice("--engines", ENGINES), "--engines")
    points = (
        Point(target, r, c, b, d if engine == "switchable" and d != b else None, engine == "switchable", args.max_m)
        for target, b, engine, d, (r, c) in product(targets, bits, engines, digit_widths, arrays)
    )
    return list(dict.fromkeys(points))


def check_cache(cache: Path, out: Path) -> Path:
    """The cache directory, refused when it is a file or overlaps the output (replacing one would delete the other)."""
    cache, out = Path(os.path.abspath(cache)), Path(os.path.abspath(out))
    if cache.exists() and not cache.is_dir():
        raise InputError(f"--cache {cache} is not a directory")
    if cache == out or out in cache.parents or cache in out.parents:
        raise InputError(f"--cache {cache} and the output {out} must not contain each other")
    return cache


def default_settings(args, energy_table: EnergyTable) -> dict | None:
    """What a sweep at the default output records, so that a sweep over other points, or a model's energy
    priced with another table, refuses to replace its table (None with an explicit -o, whose earlier sweep the
    user chose to replace)."""
    if args.out != DEFAULT_OUT:
        return None
    model = None if args.model is None else str(Path(args.model).resolve())
    names = ("target", "arrays", "bits", "digit_bits", "engines", "max_m")
    settings = {name: getattr(args, name) for name in names} | {"model": model}
    if args.model is None:  # no energy to price: the table is not a setting of this sweep
        return settings
    return settings | {"energy_table": {"name": energy_table.name, "sha256": energy_table.sha256}}


def main(argv: list[str] | None = None) -> None:
    parser = Parser(prog="python -m apps.sweep", description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True, help=f"comma-separated targets: {', '.join(TARGETS)}")
    parser.add_argument("--arrays", default="4x4,8x8,16x16,32x32", help="comma-separated ROWSxCOLS")
    add_base_bits(parser, str, default="4,8", help="comma-separated base weight bits B")
    parser.add_argument(
        "--digit-bits",
        help="comma-separated digit widths D, each in {1, 2, 4, B} and dividing every B (default: B, the "
        "bit-parallel engine only)",
    )
    parser.add_argument("--engines", default="switchable", help="comma-separated: switchable, fixed")
    parser.add_argument("--max-m", type=int, default=DEFAULT_MAX_M, help=f"accumulator depth (default {DEFAULT_MAX_M})")
    parser.add_argument(
        "--jobs",
        type=number(int, 1, MAX_JOBS),
        default=1,
        help=f"local Dask workers (1..{MAX_JOBS}, at most one per core); 1 runs the points in this process",
    )
    parser.add_argument(
        "--scheduler",
        help="address of an existing Dask scheduler, e.g. tcp://host:8786 (default: a local cluster of --jobs workers)",
    )
    parser.add_argument(
        "--scheduler-timeout",
        type=number(float, 0, 600, above=True),
        default=10.0,
        help="seconds to wait for the scheduler and a worker (default 10)",
    )
    parser.add_argument(
        "--model",
        type=Path,
        help="export directory (golden.export): accuracy, energy, cycles per k (default: no model columns)",
    )
    parser.add_argument(
        "--energy-table",
        type=Path,
        metavar="FILE",
        help='with --model: energy table (JSON, docs/estimates.md "Energy model") to price the energy with '
        "(default: the shipped horowitz-45nm, 45 nm)",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=DEFAULT_CACHE,
        help="point cache that every worker sees (default build/sweep-cache)",
    )
    parser.add_argument(
        "--allow-failed", action="store_true", help="write the table even if points failed (their error column)"
    )
    parser.add_argument(
        "-o",
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="output directory (default: build/sweep, which refuses to replace the table of a sweep over other points)",
    )
    args = parser.parse_args(argv)
    require_extra("matplotlib", "plots")
    points = plan(args)
    cache = check_cache(args.cache, args.out)
    energy_table = prices(args)
    if args.scheduler is None and local_workers(args.jobs) < args.jobs:
        print(f"--jobs {args.jobs}: {local_workers(args.jobs)} workers, one per core of this machine")
    inputs = [path for path in (args.model, args.energy_table) if path is not None]
    with atomic_dir(args.out, "apps.sweep", "sweep", inputs, run=default_settings(args, energy_table)) as staging:
        # A bad model fails before any synthesis.
        model = None if args.model is None else model_costs(args.model, energy_table)
        outcomes = sweep_points(points, cache, args)
        failed = [o for o in outcomes if o.failed]
        show(outcomes)
        if failed and not args.allow_failed:
            raise CommandError(
                f"{len(failed)} of {len(outcomes)} points failed (see above); nothing written (the finished points "
                f"are cached: a re-run computes only the failed ones; --allow-failed writes the table with them)"
            )
        write_sweep(staging, outcomes, model)
    print(f"wrote {args.out}")


def sweep_points(points: list[Point], cache: Path, args) -> list[Outcome]:
    """Every point's outcome in plan order: cached ones looked up here, the rest computed (a cluster is
    started, or reached, only when some point is missing)."""
    progress = Progress(len(points), print)
    outcomes = [cached_outcome(point, cache) for point in points]
    for outcome in filter(None, outcomes):
        progress.finished(outcome, running=0)
    missing = [index for index, outcome in enumerate(outcomes) if outcome is None]
    if missing:
        with executor(args) as client:
            computed = run_points([points[i] for i in missing], cache, client, progress)
        for index, outcome in zip(missing, computed, strict=True):
            outcomes[index] = outcome
    return outcomes


@contextlib.contextmanager
def executor(args):
    """A Dask client, or None for --jobs 1 without --scheduler (the points then run in this process)."""
    if args.scheduler is None and args.jobs == 1:
        yield None
        return
    with dask_client(args.scheduler, args.jobs, args.scheduler_timeout) as client:
        yield client


def prices(args) -> EnergyTable:
    """The energy table the model's energy is priced with: --energy-table's, checked before any work, or the
    shipped one. Without --model there is no energy to price, so naming a table is a mistake."""
    if args.energy_table is None:
        return DEFAULT_TABLE
    if args.model is None:
        raise InputError("--energy-table prices the model's energy: it needs --model")
    return load_energy_table(args.energy_table)


def model_costs(export_dir: Path, energy_table: EnergyTable):
    """apps.sweep_model.ModelCosts, imported here: torch costs seconds to import, which a sweep without a model
    (and a re-run from the cache) need not pay."""
    require_extra("torch", "train")
    from apps.sweep_model import ModelCosts

    costs = ModelCosts(export_dir, energy_table)
    print(f"energy from table {energy_table.name} ({energy_table.technology}): {energy_table.path}")
    return costs


def write_sweep(out: Path, outcomes: list[Outcome], model) -> None:
    """sweep.csv, one area Pareto plot per target and, with a model, the energy-accuracy Pareto plot."""
    rows = tidy_rows(outcomes, model)
    write_csv(out / "sweep.csv", rows)
    for target in dict.fromkeys(o.point.target for o in outcomes if not o.failed):
        plot_area(out / f"pareto-{target}.png", target, [r for r in rows if r["target"] == target])
    if model is not None and rows:
        plot_energy(out / "pareto-energy.png", rows)


def show(outcomes: list[Outcome]) -> None:
    columns = ["fits", "luts", "ffs", "dsps", "brams", "nand2_eq", "area_mm2", "fmax_mhz"]
    print(
        format_table(
            ["point", *columns, "cached", "error"],
            [
                [o.point.name, *(o.area[c] for c in columns), "yes" if o.cached else "", o.area["error"][:80]]
                for o in outcomes
            ],
        )
    )


if __name__ == "__main__":
    sys.exit(run_main(main))
