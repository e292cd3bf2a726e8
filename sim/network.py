"""A whole exported network on the engine: each layer's GEMM as engine commands, run on the cycle model.

The layers are lowered by `golden.lowering.lower` (the same lowering the golden integer path uses), and
each GEMM becomes one command, or several when its M exceeds the accumulator depth (row chunks of at
most max_m, which is how a host would split it). Commands run back to back, so a batch of images takes
sum(cycles) - (commands - 1) cycles (sim.model), each at its own weight precision, which a digit-serial
engine turns into time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from contract.config import EngineConfig
from golden.export import Export
from golden.lowering import Gemm, lower
from sim.command import Command, row_slices
from sim.model import EngineModel, sequence_cycles


def gemm_commands(cfg: EngineConfig, gemm: Gemm) -> list[Command]:
    """The engine commands of one layer GEMM: row chunks of at most max_m rows."""
    X, W = gemm.act_codes.numpy(), gemm.weight_codes.numpy()
    params = dict(bias=gemm.bias.numpy(), mult=gemm.mult.numpy(), shift=gemm.shift.numpy())
    return [
        Command(X=X[rows], W=W, wbits=gemm.k, abits=gemm.j, scheme=gemm.scheme, mode=gemm.mode, **params)
        for rows in row_slices(cfg, gemm.M)
    ]


def engine_config_for(export: Export, rows: int, cols: int, max_m: int, digit_bits: int | None = None) -> EngineConfig:
    """An engine that can run `export`: its widths, and K/N limits that cover every layer; `digit_bits` D < B
    builds the digit-serial engine (None or B, the bit-parallel one)."""
    return EngineConfig(
        rows=rows,
        cols=cols,
        base_bits=export.base_bits,
        act_bits=export.act_bits,
        acc_bits=export.acc_bits,
        max_m=max_m,
        max_k=max(layer.K for layer in export.layers),
        max_n=max(layer.N for layer in export.layers),
        digit_bits=digit_bits,
    )


@dataclass
class ModelExecutor:
    """A `golden.lowering` executor that runs each GEMM on the cycle-exact model and logs every command
    with its output, in the order the engine runs them."""

    cfg: EngineConfig
    log: list[tuple[Command, torch.Tensor]] = field(default_factory=list)

    def __call__(self, gemm: Gemm) -> torch.Tensor:
        commands = gemm_commands(self.cfg, gemm)
        outputs = [result.outputs for result in EngineModel(self.cfg).run(commands)]
        self.log += zip(commands, outputs, strict=True)
        return torch.cat(outputs)


@dataclass(frozen=True)
class BatchRun:
    logits: torch.Tensor  # [batch, classes], raw ACC-bit values of the last layer
    log: list[tuple[Command, torch.Tensor]]  # every command and its model output, in engine order
    cycles: int  # back to back, first acceptance to last result beat

    @property
    def macs(self) -> int:
        return sum(c.m * c.k_dim * c.n for c, _ in self.log)


def run_batch(cfg: EngineConfig, export: Export, input_codes: torch.Tensor, k: int) -> BatchRun:
    """One batch of images (input codes [batch, C, H, W]) through every layer at weight precision k."""
    executor = ModelExecutor(cfg)
    runs = lower(export, input_codes, k, None, executor)
    # Each command's own wbits: on a digit-serial engine its cycles fall with k (M*T*ceil(k/D) steady slots).
    shapes = [(c.m, c.k_dim, c.n, c.wbits) for c, _ in executor.log]
    return BatchRun(runs[-1].output, executor.log, sequence_cycles(cfg, shapes))


@dataclass(frozen=True)
class PrecisionSummary:
    k: int
    images: int
    passes: int  # engine passes of `batch` images (the last may be partial)
    correct: int
    cycles: int
    macs: int
    pe_count: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.images

    @property
    def cycles_per_inference(self) -> float:
        return self.cycles / self.images

    @property
    def cycles_per_pass(self) -> float:
        """The latency of an image: its whole pass (batch) has to finish."""
        return self.cycles / self.passes

    @property
    def mac_utilisation(self) -> float:
        """Useful MACs over the MACs the array could have done in those cycles."""
        return self.macs / (self.cycles * self.pe_count)


def run_precision(
    cfg: EngineConfig,
    export: Export,
    input_codes: torch.Tensor,
    labels: torch.Tensor,
    k: int,
    batch: int,
    progress=None,
) -> PrecisionSummary:
    """All images at precision k, `batch` images per engine pass (cycles are per pass, back to back)."""
    correct = cycles = macs = 0
    for first in range(0, len(input_codes), batch):
        run = run_batch(cfg, export, input_codes[first : first + batch], k)
        correct += int((run.logits.argmax(dim=1) == labels[first : first + batch]).sum())
        cycles += run.cycles
        macs += run.macs
        if progress:
            progress(min(first + batch, len(input_codes)))
    passes = -(-len(input_codes) // batch)
    return PrecisionSummary(k, len(input_codes), passes, correct, cycles, macs, cfg.pe_count)
