"""What Dask buys a sweep on this machine, and what the cache buys a re-run (issue 15 targets).

Runs `python -m apps.sweep` as users do (a fresh interpreter each time, imports included) on a 4-point ASIC
sweep, each from an empty cache: --jobs 1 (the points one after another in one process, the cheapest 1-worker
run there is, so the ratio is conservative) and --jobs 2 (a 2-worker local Dask cluster); then the --jobs 2
sweep again, answered from its cache. Prints the times, the ratio and the load average around each run (the
machine may be shared: a loaded machine stretches every figure), checks the two CSVs are the same. Targets:
2 workers <= 0.6x the time of 1; the re-run under 5 s. Asserts nothing.

Usage: python bench/sweep_speed.py [--arrays 2x2,2x3,3x3,4x4] [--bits 4] [--max-m 64]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from contract.cli import Parser, run_main
from contract.paths import build_dir
from eda.report import format_table


def timed_sweep(points: list[str], root: Path, name: str, jobs: int) -> tuple[float, str]:
    """Wall seconds of one sweep into root/<name> with its cache root/cache-<jobs>, and the load it ran under."""
    argv = [*points, "--jobs", str(jobs), "--cache", str(root / f"cache-{jobs}"), "-o", str(root / name)]
    before = os.getloadavg()[0]
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "apps.sweep", *argv], check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    return seconds, f"{before:.1f} -> {os.getloadavg()[0]:.1f}"


def main(argv: list[str] | None = None) -> None:
    parser = Parser(prog="python bench/sweep_speed.py", description=__doc__.splitlines()[0])
    parser.add_argument("--arrays", default="2x2,2x3,3x3,4x4")
    parser.add_argument("--bits", default="4")
    parser.add_argument("--max-m", default="64")
    args = parser.parse_args(argv)
    points = ["--target", "asic", "--arrays", args.arrays, "--bits", args.bits, "--max-m", args.max_m]
    build_dir().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sweep-speed-", dir=build_dir()) as scratch:
        root = Path(scratch)
        one, one_load = timed_sweep(points, root, "one", 1)
        two, two_load = timed_sweep(points, root, "two", 2)
        again, again_load = timed_sweep(points, root, "two", 2)
        same = (root / "one" / "sweep.csv").read_bytes() == (root / "two" / "sweep.csv").read_bytes()
    print(f"{os.cpu_count()} cores; ASIC sweep of {args.arrays}, B = {args.bits}, max_m = {args.max_m}")
    print(
        format_table(
            ["run", "seconds", "load average (1 min) before -> after"],
            [
                ["--jobs 1 (in process), empty cache", round(one, 1), one_load],
                ["--jobs 2 (local Dask cluster), empty cache", round(two, 1), two_load],
                ["--jobs 2 again, from the cache", round(again, 1), again_load],
            ],
        )
    )
    print(f"2 workers / 1 worker: {two / one:.2f}x (target <= 0.6x: {'met' if two <= 0.6 * one else 'missed'})")
    print(f"re-run from the cache: {again:.1f} s (target < 5 s: {'met' if again < 5 else 'missed'})")
    print(f"same CSV from 1 and 2 workers: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    sys.exit(run_main(main))
