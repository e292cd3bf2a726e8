"""Simulation speed of the emitted Verilog: per-cycle cocotb drivers and the stream players, side by side.

For each simulator and array: build both testbench tops (timed: wall and CPU seconds of generating the
Verilog, Verilator or Icarus, make and the C++ compiler; a build whose Verilog is unchanged is a cache hit,
`--fresh` deletes the builds first), then run random commands with every stream pausing on a fraction
`--stall` of cycles, the same commands both ways (the per-cycle drivers only the first
`--driven-commands` of them: at some 500 cycles/s they would take hours). Cycles/s is simulated clock
cycles per wall-clock second of the whole run: the simulator's start (Python and cocotb inside it), the
batch files and reading the capture back included, the build excluded; and per CPU second of the simulator
process (user + system), which a machine shared with other jobs does not distort. Both runs' outputs are
checked against the model (the players' also beat for beat and handshake by handshake).
Usage: python bench/rtl_speed.py [--runs verilator:16x16,icarus:4x4] [--stall 0.5] [--commands 300] [--fresh]
"""

from __future__ import annotations

import resource
import shutil
import time

import numpy as np

from contract.cli import Parser, number, run_main
from contract.config import EngineConfig, parse_array
from contract.streams import STREAMS
from eda.tools import SIMULATORS, ToolError
from sim.model import EngineModel
from verif.rtl.execute import execute_on_rtl
from verif.rtl.players import DEPTHS, Batch, play, problems, split
from verif.rtl.runner import BUILD, build, build_name, check_simulator
from verif.scenarios import random_command


def parse_runs(text: str) -> list[tuple[str, int, int]]:
    runs = []
    for item in text.split(","):
        simulator, _, array = item.partition(":")
        if simulator not in SIMULATORS:
            raise ValueError(f"unknown simulator {simulator!r} in --runs; expected one of {', '.join(SIMULATORS)}")
        runs.append((simulator, *parse_array(array)))
    return runs


def _cpu(*who: int) -> float:
    return sum(usage.ru_utime + usage.ru_stime for usage in map(resource.getrusage, who))


def timed(function, *args, own: bool = False):
    """`function(*args)`, its wall-clock seconds and the CPU seconds of the processes it ran (the simulator;
    with `own`, this process's too: a build generates the Verilog here, then runs Verilator, make, g++)."""
    who = (resource.RUSAGE_CHILDREN, resource.RUSAGE_SELF) if own else (resource.RUSAGE_CHILDREN,)
    start, before = time.perf_counter(), _cpu(*who)
    result = function(*args)
    return result, time.perf_counter() - start, _cpu(*who) - before


def line(simulator: str, rows: int, cols: int, method: str, build: tuple, cycles: int, wall, cpu) -> str:
    return (
        f"{simulator:>10} {rows}x{cols:<4} {method:>10} {build[1]:7.1f}/{build[2]:<7.1f} {cycles:9d} {wall:8.1f} "
        f"{cycles / wall:9.0f} {cpu:8.1f} {cycles / cpu:10.0f}"
    )


def main(argv=None):
    parser = Parser(prog="python bench/rtl_speed.py", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=parse_runs, default="verilator:16x16,icarus:4x4", help="SIM:RxC,...")
    parser.add_argument("--stall", type=number(float, 0, 0.95), default=0.5, help="pause probability, every stream")
    parser.add_argument("--commands", type=number(int, 1, 100_000), default=300)
    parser.add_argument("--driven-commands", type=number(int, 1, 100_000), default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--methods", default="per-cycle,players", help="which of per-cycle,players to run (default both)"
    )
    parser.add_argument("--fresh", action="store_true", help="delete the builds first, to time them from scratch")
    args = parser.parse_args(argv)
    print(f"every stream pauses on {100 * args.stall:g}% of cycles; seed {args.seed}")
    print(
        f"{'simulator':>10} {'array':>6} {'method':>10} {'build wall/CPU s':>15} {'cycles':>9} {'wall s':>8} "
        f"{'cycles/s':>9} {'sim CPU s':>8} {'cycles/CPU-s':>10}"
    )
    for simulator, rows, cols in args.runs:
        check_simulator(simulator)
        cfg = EngineConfig(rows=rows, cols=cols, max_m=64, max_k=512, max_n=512)  # as bench/soak.py: one build
        if args.fresh:
            shutil.rmtree(BUILD / simulator / build_name(cfg), ignore_errors=True)
        rng = np.random.default_rng(args.seed)
        commands = [random_command(cfg, rng, 64, 3 * rows, 2 * cols) for _ in range(args.commands)]
        model = EngineModel(cfg).run(commands)

        if "per-cycle" in args.methods:
            per_cycle(args, simulator, cfg, commands, model)
        if "players" in args.methods:
            players(args, simulator, cfg, commands)


def per_cycle(args, simulator: str, cfg: EngineConfig, commands, model) -> None:
    """The first `--driven-commands` commands through the per-cycle cocotb drivers."""
    rows, cols = cfg.rows, cfg.cols
    driven_build = timed(build, simulator, cfg, own=True)
    driven = commands[: args.driven_commands]
    execution, wall, cpu = timed(execute_on_rtl, simulator, cfg, driven, "bench-speed", args.seed, args.stall)
    for index, output in enumerate(execution.outputs):
        if not np.array_equal(output, model[index].outputs.numpy()):
            raise ToolError(f"per-cycle run: command {index} differs from the model")
    cycles = execution.cycles[-1][1] + 1
    print(line(simulator, rows, cols, "per-cycle", driven_build, cycles, wall, cpu), flush=True)


def players(args, simulator: str, cfg: EngineConfig, commands) -> None:
    """All the commands through the stream players, in batches that fit their memories."""
    rows, cols = cfg.rows, cfg.cols
    players_build = timed(build, simulator, cfg, DEPTHS, own=True)
    stall = dict.fromkeys(STREAMS, args.stall)
    batches = [Batch(part, stall, args.seed + i) for i, part in enumerate(split(cfg, commands))]
    captures, wall, cpu = timed(play, simulator, cfg, batches, "bench-speed")
    found = [p for batch, capture in zip(batches, captures, strict=True) for p in problems(cfg, batch, capture)]
    if found:
        raise ToolError(f"players run: {found[0]}")
    cycles = sum(capture.status["cycles"] for capture in captures)
    print(line(simulator, rows, cols, "players", players_build, cycles, wall, cpu), flush=True)


if __name__ == "__main__":
    raise SystemExit(run_main(main))
