"""A soak of the engine Verilog through the stream players: random everything, counted and checked.

Batches of random shapes, every command at a random precision (k, j, scheme and mode, so each command
switches), each batch with its own random stall probability on every stream, some with none (then the
cycles must be the model's), and some cut off by a reset at a random cycle (then the beats before it must be
right, and the next batch, after a reset, must run exactly as modelled). Every result beat is compared with
the cycle-exact model, whose outputs are golden's integer path. Deterministic in the seed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from contract.config import EngineConfig
from contract.streams import STREAMS
from sim.model import command_cycles
from verif.rtl.player_top import Depths
from verif.rtl.players import Batch, play, problems, split
from verif.scenarios import random_command, random_shape

#: Chance that a batch runs on ideal streams (cycle-exact) and that a batch is cut off by a reset.
IDEAL_SHARE = 0.25
ABORT_SHARE = 0.15
STALL_CHOICES = (0.0, 0.1, 0.3, 0.5, 0.7, 0.9)


@dataclass(frozen=True)
class SoakResult:
    seed: int
    macs: int  # M*K*N of every command whose result beats were all checked
    commands: int
    batches: int
    aborted: int
    cycles: int
    seconds: float  # the simulation, batch files and checks
    mismatches: list[str]


def _precision(command) -> tuple:
    return command.wbits, command.abits, command.scheme, command.mode


def soak_batches(cfg: EngineConfig, macs: int, seed: int, commands_per_batch: int = 12) -> list[Batch]:
    """Batches whose uncut commands add up to at least `macs` multiply-accumulates."""
    rng = np.random.default_rng(seed)
    batches, total, previous = [], 0, None
    while total < macs:
        commands = []
        for _ in range(int(rng.integers(1, commands_per_batch + 1))):
            command = random_command(cfg, rng, *random_shape(cfg, rng, cfg.max_m, 6, 3))
            while _precision(command) == previous:  # every command switches precision
                command = random_command(cfg, rng, command.m, command.k_dim, command.n)
            commands.append(command)
            previous = _precision(command)
        ideal = rng.random() < IDEAL_SHARE
        stall = {s: 0.0 if ideal else float(rng.choice(STALL_CHOICES)) for s in STREAMS}
        abort_at = 0
        if rng.random() < ABORT_SHARE:
            modelled = sum(command_cycles(cfg, c.m, c.k_dim, c.n, c.wbits).total for c in commands)
            abort_at = int(rng.integers(1, modelled + 1))
        for part in split(cfg, commands, Depths()):
            batch = Batch(part, stall, int(rng.integers(1 << 31)), abort_at)
            batches.append(batch)
            if not abort_at:
                total += sum(c.m * c.k_dim * c.n for c in part)
    return batches


def soak(simulator: str, cfg: EngineConfig, macs: int, seed: int, run_name: str) -> SoakResult:
    batches = soak_batches(cfg, macs, seed)
    start = time.perf_counter()
    captures = play(simulator, cfg, batches, run_name)
    mismatches = []
    for index, (batch, capture) in enumerate(zip(batches, captures, strict=True)):
        mismatches += [f"batch {index}: {problem}" for problem in problems(cfg, batch, capture)]
    checked = [b for b, c in zip(batches, captures, strict=True) if not c.status["aborted"]]
    return SoakResult(
        seed=seed,
        macs=sum(c.m * c.k_dim * c.n for b in checked for c in b.commands),
        commands=sum(len(b.commands) for b in batches),
        batches=len(batches),
        aborted=len(batches) - len(checked),
        cycles=sum(c.status["cycles"] for c in captures),
        seconds=time.perf_counter() - start,
        mismatches=mismatches,
    )
