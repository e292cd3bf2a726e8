"""Execute a list of engine commands on the emitted Verilog and return its outputs and cycle counts.

The commands travel to the simulator process as an .npz file (operands) plus JSON (precisions), and the
results come back the same way: a simulator runs in its own process, with its own Python.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from contract.config import EngineConfig
from sim.command import Command
from verif.rtl.runner import run_cocotb, run_directory

OPERANDS = ("X", "W", "bias", "mult", "shift")
SETTINGS = ("wbits", "abits", "scheme", "mode")


def save_commands(commands: list[Command], path: Path) -> None:
    arrays = {f"{i}.{name}": np.asarray(getattr(c, name)) for i, c in enumerate(commands) for name in OPERANDS}
    np.savez(path.with_suffix(".npz"), **arrays)
    path.with_suffix(".json").write_text(json.dumps([{s: getattr(c, s) for s in SETTINGS} for c in commands]))


def load_commands(path: str | Path) -> list[Command]:
    path = Path(path)
    settings = json.loads(path.with_suffix(".json").read_text())
    with np.load(path.with_suffix(".npz"), allow_pickle=False) as arrays:
        return [
            Command(**{name: arrays[f"{i}.{name}"] for name in OPERANDS}, **setting)
            for i, setting in enumerate(settings)
        ]


@dataclass(frozen=True)
class RtlExecution:
    outputs: list[np.ndarray]  # [M, N] per command
    cycles: list[tuple[int, int]]  # (acceptance, last result beat) relative to the first acceptance


def execute_on_rtl(
    simulator: str, cfg: EngineConfig, commands: list[Command], run_name: str, seed: int = 0, stall: float = 0.0
) -> RtlExecution:
    """Run `commands` back to back on the Verilog of `cfg`, driven cycle by cycle from Python, every stream
    pausing with probability `stall` (ideal streams by default). `verif.rtl.players` is the fast way; this
    one stays for the comparison in bench/rtl_speed.py."""
    run_dir = run_directory(simulator, cfg, run_name)
    save_commands(commands, run_dir / "commands")
    scenario = {
        "seed": seed,
        "stall": stall,
        "commands": str(run_dir / "commands"),
        "outputs": str(run_dir / "outputs.npz"),
        "cycles": str(run_dir / "cycles.json"),
    }
    run = run_cocotb(simulator, cfg, "verif.rtl.execute_tb", ["execute"], scenario, run_name)
    if run.tests != 1 or run.failures:
        raise run.failure(f"the {simulator} run of {len(commands)} commands (see {run.directory})")
    with np.load(run_dir / "outputs.npz", allow_pickle=False) as arrays:
        outputs = [arrays[f"arr_{i}"] for i in range(len(commands))]
    cycles = [tuple(pair) for pair in json.loads((run_dir / "cycles.json").read_text())]
    return RtlExecution(outputs, cycles)
