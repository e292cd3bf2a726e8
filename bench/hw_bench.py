"""Engine benchmark: Verilog generation time per array size, the cycle model's speed, and utilisation.

Prints figures; asserts nothing (speed targets belong here, not in timed tests).
Usage: python bench/hw_bench.py [--arrays 8x8,16x16,32x32,48x48] [--skip-generate]
"""

from __future__ import annotations

import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from contract.cli import Parser, run_main
from contract.config import EngineConfig, parse_array
from hw.generate import generate
from sim.model import EngineModel, command_cycles
from verif.scenarios import random_command

UTILISATION_SHAPES = [
    (1, 4096, 4096),
    (16, 1024, 1024),
    (64, 256, 256),
    (256, 256, 256),
    (196, 576, 64),
    (1024, 1024, 1024),
]


def generation_times(arrays: list[tuple[int, int]]):
    print("Verilog generation (python -m hw.generate code path)")
    print(f"{'array':>8} {'seconds':>8} {'peak RSS MB':>12} {'Verilog MB':>11}")
    with tempfile.TemporaryDirectory() as tmp:
        for rows, cols in arrays:
            result = generate(EngineConfig(rows=rows, cols=cols), Path(tmp) / f"{rows}x{cols}")
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            size = result.verilog.stat().st_size / 2**20
            print(f"{rows}x{cols:<5} {result.seconds:8.1f} {rss:12.0f} {size:11.1f}", flush=True)


def model_speed():
    """MACs the model simulates per wall-clock second, on GEMMs the size of real layers."""
    cfg = EngineConfig(rows=16, cols=16, max_m=4096)
    rng = np.random.default_rng(0)
    commands = [random_command(cfg, rng, 1024, 576, 256, 4, 8, "offset", "relu") for _ in range(4)]
    model = EngineModel(cfg)
    start = time.perf_counter()
    results = model.run(commands)
    seconds = time.perf_counter() - start
    macs = sum(c.m * c.k_dim * c.n for c in commands)
    cycles = sum(r.cycles.total for r in results)
    print(
        f"\ncycle model: {macs / seconds / 1e6:.0f} million simulated MACs/s "
        f"({macs / 1e6:.0f} M MACs, {cycles} engine cycles, {seconds:.2f} s)"
    )


def utilisation_table():
    print("\nMAC utilisation with ideal streams (useful cycles / all cycles)")
    arrays = [EngineConfig(rows=16, cols=16, max_m=1024), EngineConfig(rows=48, cols=48, max_m=1024)]
    print(f"{'M x K x N':>18} " + " ".join(f"{c.rows}x{c.cols:<8}" for c in arrays))
    for shape in UTILISATION_SHAPES:
        cells = [f"{command_cycles(cfg, *shape).utilisation:>10.1%}" for cfg in arrays]
        print(f"{' x '.join(map(str, shape)):>18} " + " ".join(cells))


def main(argv=None):
    parser = Parser(prog="python bench/hw_bench.py", description=__doc__.splitlines()[0])
    parser.add_argument("--arrays", default="8x8,16x16,32x32,48x48")
    parser.add_argument("--skip-generate", action="store_true")
    args = parser.parse_args(argv)
    if not args.skip_generate:
        generation_times([parse_array(text) for text in args.arrays.split(",")])
    model_speed()
    utilisation_table()


if __name__ == "__main__":
    raise SystemExit(run_main(main))
