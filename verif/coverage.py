"""Functional coverage: named bins, counted while the scoreboard checks a run, saved, merged and reported.

A passing regression proves only what it exercised: these bins name the corners that must have happened,
every precision (k, j, scheme, mode), both relu clamps, the ACC wrap of `acc + bias`, a full output FIFO,
M = 1, and K and N that leave a partial tile, and the report shows how often each one was hit.

The stimulus bins are sampled from the commands and golden's integer path (what the engine had to compute);
the FIFO bin from the result stream's handshakes, the only place the hardware shows it: `result.valid` high
and `ready` low, on ideal inputs, for longer than the whole command takes to compute, with at least two of
its beats still to come. By then the pipeline has produced every row it can, so the presented beat and
the next one are both in the 2-entry FIFO, which is full.
"""

from __future__ import annotations

import itertools
import json
import os
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from contract.config import EngineConfig
from contract.numerics import MODES, SCHEMES
from golden.nested import int_gemm, requantize
from sim.command import Command
from sim.model import EngineModel
from sim.streams import last_result_beats

CLAMP_LOW = "relu clamp at 0"
CLAMP_HIGH = "relu clamp at the top code"
ACC_WRAP = "ACC wrap of acc + bias"
FIFO_FULL = "output FIFO full"
M_ONE = "M = 1"
K_PARTIAL = "K not a multiple of R"
N_PARTIAL = "N not a multiple of C"
PRECISION_PREFIX = "precision"
SHOWN = 8  # missing precision bins listed by name in a report


def precisions(cfg: EngineConfig) -> list[tuple[int, int, str, str]]:
    """Every (k, j, scheme, mode) a command can ask of `cfg`."""
    return list(itertools.product(range(1, cfg.base_bits + 1), range(1, cfg.act_bits + 1), SCHEMES, MODES))


def precision_bin(k: int, j: int, scheme: str, mode: str) -> str:
    return f"{PRECISION_PREFIX} k={k} j={j} {scheme} {mode}"


def precision_bins(cfg: EngineConfig) -> list[str]:
    return [precision_bin(*p) for p in precisions(cfg)]


def required_bins(cfg: EngineConfig) -> list[str]:
    """What a full regression of `cfg` must hit (no partial K-tile exists when R = 1, nor N-tile when C = 1)."""
    shape = [M_ONE, *([K_PARTIAL] if cfg.rows > 1 else []), *([N_PARTIAL] if cfg.cols > 1 else [])]
    return [*precision_bins(cfg), CLAMP_LOW, CLAMP_HIGH, ACC_WRAP, FIFO_FULL, *shape]


def fifo_fill_cycles(cfg: EngineConfig, commands: list[Command]) -> int:
    """A `result.ready`-low stretch this long fills the FIFO: longer than any of the commands takes."""
    return max(result.cycles.total for result in EngineModel(cfg).run(commands)) + 1


def fifo_full_cycles(cfg: EngineConfig, commands: list[Command], trace: list[tuple[int, int]]) -> list[int]:
    """The cycles (indices into `trace`, the result port's (valid, ready) per cycle) in which the handshakes
    prove the output FIFO full: a valid-and-not-ready stretch reaches `fifo_fill_cycles` with at least two
    of the presented beat's command's beats still to be taken."""
    ends = last_result_beats(cfg, commands)
    needed = fifo_fill_cycles(cfg, commands)
    full, taken, stretch = [], 0, 0
    for cycle, (valid, ready) in enumerate(trace):
        stretch = stretch + 1 if valid and not ready else 0
        if stretch == needed and next((e for e in ends if e >= taken), taken) - taken + 1 >= 2:
            full.append(cycle)
        taken += bool(valid and ready)
    return full


class Coverage:
    """Hit counts per bin; `sample_*` add to them, `merge` adds another run's, `report` prints them."""

    def __init__(self, hits: dict[str, int] | None = None):
        self.hits = Counter(hits or {})

    def sample_command(self, cfg: EngineConfig, command: Command) -> None:
        """The stimulus bins of one command, from golden's accumulator values before requantization."""
        hits, c = self.hits, command
        hits[precision_bin(c.wbits, c.abits, c.scheme, c.mode)] += 1
        hits[M_ONE] += c.m == 1
        hits[K_PARTIAL] += c.k_dim % cfg.rows != 0
        hits[N_PARTIAL] += c.n % cfg.cols != 0
        acc = int_gemm(c.X, c.W, c.wbits, c.abits, c.scheme, cfg.base_bits, cfg.act_bits, cfg.acc_bits).numpy()
        bias, mult, shift = (np.asarray(getattr(c, name), dtype=np.int64) for name in ("bias", "mult", "shift"))
        unwrapped = acc + bias  # int64: no wrap here
        half = 1 << (cfg.acc_bits - 1)
        hits[ACC_WRAP] += int(np.count_nonzero((unwrapped < -half) | (unwrapped >= half)))
        if c.mode == "relu":
            t = requantize(acc, bias, mult, shift, "raw", cfg.act_bits, cfg.acc_bits).numpy()
            y = (t * mult + ((1 << shift) >> 1)) >> shift  # before the clamp
            hits[CLAMP_LOW] += int(np.count_nonzero(y < 0))
            hits[CLAMP_HIGH] += int(np.count_nonzero(y > (1 << cfg.act_bits) - 1))

    def sample_result_stream(self, cfg: EngineConfig, commands: list[Command], trace: list[tuple[int, int]]) -> None:
        """The FIFO bin from the result port's (valid, ready) in every cycle; only meaningful on ideal inputs."""
        self.hits[FIFO_FULL] += len(fifo_full_cycles(cfg, commands, trace))

    def merge(self, other: Coverage) -> Coverage:
        self.hits.update(other.hits)
        return self

    def missing(self, bins: Iterable[str]) -> list[str]:
        return [name for name in bins if not self.hits[name]]

    def report(self, title: str, required: list[str]) -> str:
        """One line per bin with its hits; the precision bins summed up in one line unless some are missing."""
        lines = [title]
        precision = [b for b in required if b.startswith(PRECISION_PREFIX)]
        if precision:
            counts = [self.hits[b] for b in precision]
            hit = sum(1 for c in counts if c)
            status = "ok" if hit == len(counts) else "MISSING"
            lines.append(
                f"  {status:7} (k, j, scheme, mode): {hit} of {len(counts)} bins hit, {min(counts)} to {max(counts)} "
                "times each"
            )
            unhit = [name for name in precision if not self.hits[name]]
            lines += [f"  MISSING {name}" for name in unhit[:SHOWN]] + [f"  ... and {len(unhit) - SHOWN} more"] * (
                len(unhit) > SHOWN
            )
        for name in required:
            if not name.startswith(PRECISION_PREFIX):
                lines.append(f"  {'ok' if self.hits[name] else 'MISSING':7} {name}: {self.hits[name]}")
        return "\n".join(lines)

    def save(self, path: Path) -> None:
        _write_atomically(path, json.dumps(dict(sorted(self.hits.items())), indent=1))

    @classmethod
    def load(cls, path: Path) -> Coverage:
        return cls(json.loads(Path(path).read_text()))


def write_report(directory: Path, title: str, required: list[str]) -> tuple[str, list[str]]:
    """Merge the coverage files under `directory` into `directory`.txt; returns (report, missing bins)."""
    total = Coverage()
    for path in sorted(Path(directory).glob("*.json")):
        total.merge(Coverage.load(path))
    text = total.report(title, required)
    _write_atomically(Path(directory).with_suffix(".txt"), text + "\n")
    return text, total.missing(required)


def _write_atomically(path: Path, text: str) -> None:
    """Parallel test workers write reports side by side: never let one read another's half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(text)
    os.replace(partial, path)
