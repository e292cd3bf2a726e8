"""Simulation speed of the emitted Verilog under cocotb: simulated clock cycles per wall-clock second.

Runs the same back-to-back commands (ideal streams) on each simulator and array size; the build is done
first and not timed. The figure includes cocotb's Python stream drivers, which touch every port on every
cycle, so it is the speed a user of this testbench sees, not the simulator's raw speed; the ~5 s start-up of
the simulator process (Python, torch) is included, amortised over some 10^4 cycles.
Usage: python bench/rtl_speed.py [--arrays 4x4,16x16] [--simulators verilator,icarus]
"""

from __future__ import annotations

import time

import numpy as np

from contract.cli import Parser, run_main
from contract.config import EngineConfig, parse_array
from eda.tools import SIMULATORS
from sim.model import EngineModel
from verif.rtl.execute import execute_on_rtl
from verif.rtl.runner import build, check_simulator
from verif.scenarios import random_command


def main(argv=None):
    parser = Parser(prog="python bench/rtl_speed.py", description=__doc__.splitlines()[0])
    parser.add_argument("--arrays", default="4x4,16x16")
    parser.add_argument("--simulators", default=",".join(SIMULATORS))
    args = parser.parse_args(argv)
    print(f"{'simulator':>10} {'array':>6} {'cycles':>8} {'seconds':>8} {'cycles/s':>9}")
    for simulator in args.simulators.split(","):
        check_simulator(simulator)
        for rows, cols in map(parse_array, args.arrays.split(",")):
            cfg = EngineConfig(rows=rows, cols=cols, max_m=64, max_k=256, max_n=256)
            rng = np.random.default_rng(0)
            commands = [random_command(cfg, rng, 64, 3 * rows, 2 * cols) for _ in range(30)]
            build(simulator, cfg)
            start = time.perf_counter()
            execute_on_rtl(simulator, cfg, commands, "bench-speed")
            seconds = time.perf_counter() - start
            cycles = EngineModel(cfg).run(commands)[-1].last_result_cycle + 1
            print(f"{simulator:>10} {rows}x{cols:<4} {cycles:8d} {seconds:8.1f} {cycles / seconds:9.0f}", flush=True)


if __name__ == "__main__":
    raise SystemExit(run_main(main))
