"""What Dask buys a sweep on this machine, and what the cache buys a re-run (issue 15 targets).

Runs `python -m apps.sweep` as users do (a fresh interpreter each time, imports included) on a 4-point ASIC
sweep, each from an empty cache: --jobs 1 (the points one after another in one process, the cheapest 1-worker
run there is, so the ratio is conservative) and --jobs 2 (a 2-worker local Dask cluster); then the --jobs 2
sweep again, answered from its cache. Prints wall and CPU times, the ratio and the load average around each run
(on a shared machine whose load is above its cores, 2 workers get no more CPU than 1, so only a run at a load
below 2 measures the speedup; the CPU times say what the work costs whatever the load), and checks the two
CSVs are the same. Targets:
2 workers <= 0.6x the time of 1; the re-run under 5 s. Asserts nothing.

Usage: python bench/sweep_speed.py [--arrays 3x3,3x4,4x3,4x4] [--bits 8] [--max-m 256]

The default points are alike in size (the 4x4 one is docs/estimates.md's 25 s point), so that two workers can
share them evenly; smaller points show the fixed cost of a local cluster (its worker processes' imports, about
10 CPU seconds) more than the speedup.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from contract.cli import Parser, add_base_bits, run_main
from contract.paths import build_dir
from eda.report import format_table


def timed_sweep(points: list[str], root: Path, name: str, jobs: int) -> list[str]:
    """One sweep into root/<name> with its cache root/cache-<jobs>: wall seconds, CPU seconds of it and every
    process it started (tools and Dask workers included), and the load average it ran under."""
    argv = [*points, "--jobs", str(jobs), "--cache", str(root / f"cache-{jobs}"), "-o", str(root / name)]
    before, cpu = os.getloadavg()[0], children_cpu()
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "apps.sweep", *argv], check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    return [f"{seconds:.1f}", f"{children_cpu() - cpu:.1f}", f"{before:.1f} -> {os.getloadavg()[0]:.1f}"]


def children_cpu() -> float:
    """User + system CPU seconds of every finished descendant (the sweep waits for its workers and tools)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> None:
    parser = Parser(prog="python bench/sweep_speed.py", description=__doc__.splitlines()[0])
    parser.add_argument("--arrays", default="3x3,3x4,4x3,4x4")
    add_base_bits(parser, str, default="8", help="comma-separated base weight bits B")
    parser.add_argument("--max-m", default="256")
    args = parser.parse_args(argv)
    points = ["--target", "asic", "--arrays", args.arrays, "--base-bits", args.base_bits, "--max-m", args.max_m]
    build_dir().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sweep-speed-", dir=build_dir()) as scratch:
        root = Path(scratch)
        one = timed_sweep(points, root, "one", 1)
        two = timed_sweep(points, root, "two", 2)
        again = timed_sweep(points, root, "two", 2)
        same = (root / "one" / "sweep.csv").read_bytes() == (root / "two" / "sweep.csv").read_bytes()
    print(f"{os.cpu_count()} cores; ASIC sweep of {args.arrays}, B = {args.base_bits}, max_m = {args.max_m}")
    print(
        format_table(
            ["run", "wall s", "CPU s", "load average (1 min) before -> after"],
            [
                ["--jobs 1 (in process), empty cache", *one],
                ["--jobs 2 (local Dask cluster), empty cache", *two],
                ["--jobs 2 again, from the cache", *again],
            ],
        )
    )
    ratio, rerun = float(two[0]) / float(one[0]), float(again[0])
    print(f"2 workers / 1 worker: {ratio:.2f}x (target <= 0.6x: {'met' if ratio <= 0.6 else 'missed'})")
    print(f"re-run from the cache: {rerun:.1f} s (target < 5 s: {'met' if rerun < 5 else 'missed'})")
    print(f"same CSV from 1 and 2 workers: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    sys.exit(run_main(main))
