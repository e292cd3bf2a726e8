"""A whole exported network on the engine: each layer's GEMM as engine commands, run on the cycle model.

The layers are lowered by `golden.lowering.lower` (the same lowering the golden integer path uses), and
each GEMM becomes one command, or several when its M exceeds the accumulator depth (row chunks of at
most max_m, which is how a host would split it). Commands run back to back, so a batch of images takes
sum(cycles) - (commands - 1) cycles (sim.model), each at its own weight precision, which a digit-serial
engine turns into time. Residual adds run on the host between commands (sim.host), counted beside.

`run_batch` runs every command through the cycle-exact model (what the RTL is compared with);
`run_precision` scores a whole test set fast: outputs from the batched integer path (golden.fastpath,
equal to the commands' outputs) and cycles from the formula for each distinct pass shape, which depend
only on the shapes and k, never on the data. Tests hold the two to each other on a sample.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass, field, fields

import torch

from contract.config import EngineConfig
from golden.export import Export
from golden.fastpath import fast_logits
from golden.lowering import Gemm, lower, precisions_for
from sim.command import Command, row_slices
from sim.energy import Energy, gemms_energy
from sim.host import HostOps, host_ops
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
    cycles: int  # engine, back to back, first acceptance to last result beat
    host: HostOps = HostOps()  # the residual adds between commands

    @property
    def macs(self) -> int:
        return sum(c.m * c.k_dim * c.n for c, _ in self.log)


def run_batch(cfg: EngineConfig, export: Export, input_codes: torch.Tensor, k) -> BatchRun:
    """One batch of images (input codes [batch, C, H, W]) through every layer at weight precision k (one k,
    or one per GEMM layer in execution order)."""
    executor = ModelExecutor(cfg)
    runs = lower(export, input_codes, k, None, executor)
    # Each command's own wbits: on a digit-serial engine its cycles fall with k (M*T*ceil(k/D) steady slots).
    shapes = [(c.m, c.k_dim, c.n, c.wbits) for c, _ in executor.log]
    return BatchRun(runs[-1].output, executor.log, sequence_cycles(cfg, shapes), host_ops(export, len(input_codes)))


def layer_shapes(export: Export, images: int) -> list[tuple[int, int, int]]:
    """(M, K, N) of every layer's GEMM for a pass of `images` images, from the export's shapes alone."""
    return [
        (images * (layer.out_shape[1] * layer.out_shape[2] if layer.kind == "conv" else 1), layer.K, layer.N)
        for layer in export.layers
    ]


@dataclass(frozen=True)
class PassCost:
    """What one engine pass of a given number of images costs (independent of the images)."""

    cycles: int
    macs: int
    energy: Energy
    host: HostOps


def pass_cost(cfg: EngineConfig, export: Export, images: int, k) -> PassCost:
    """Engine cycles (the cycle model's formula over the pass's commands), MACs, engine energy and host ops."""
    ks = precisions_for(export, k)
    commands, energy = [], Energy()
    for (m, k_dim, n), layer_k in zip(layer_shapes(export, images), ks, strict=True):
        commands += [(rows.stop - rows.start, k_dim, n, layer_k) for rows in row_slices(cfg, m)]
        energy = energy + gemms_energy(cfg, [(m, k_dim, n)], layer_k)
    macs = sum(m * k_dim * n for m, k_dim, n, _ in commands)
    return PassCost(sequence_cycles(cfg, commands), macs, energy, host_ops(export, images))


@dataclass(frozen=True)
class PrecisionSummary:
    k: int | tuple[int, ...]
    images: int
    passes: int  # engine passes of `batch` images (the last may be partial)
    correct: int
    cycles: int  # engine
    macs: int
    pe_count: int
    host: HostOps = HostOps()
    energy: Energy = Energy()  # engine, pJ
    host_energy_pj: float = 0.0

    @property
    def accuracy(self) -> float:
        return self.correct / self.images

    @property
    def cycles_per_inference(self) -> float:
        return self.cycles / self.images

    @property
    def host_cycles_per_inference(self) -> float:
        return self.host.cycles / self.images

    @property
    def cycles_per_pass(self) -> float:
        """The latency of an image: its whole pass (batch) has to finish, host adds included."""
        return (self.cycles + self.host.cycles) / self.passes

    @property
    def mac_utilisation(self) -> float:
        """Useful MACs over the MACs the array could have done in the engine's cycles."""
        return self.macs / (self.cycles * self.pe_count)

    @property
    def energy_per_inference_pj(self) -> float:
        return self.energy.total / self.images

    @property
    def host_energy_per_inference_pj(self) -> float:
        return self.host_energy_pj / self.images


#: Images per chunk of the batched integer path (memory, not arithmetic: any size gives the same results).
CHUNK = 500


def run_precision(
    cfg: EngineConfig,
    export: Export,
    input_codes: torch.Tensor,
    labels: torch.Tensor,
    k,
    batch: int,
    progress=None,
) -> PrecisionSummary:
    """All images at precision k (one, or one per GEMM layer), `batch` images per engine pass (cycles are
    per pass, back to back). Outputs come from golden.fastpath in chunks, costs from `pass_cost` per
    distinct pass size (module docstring)."""
    total = len(input_codes)
    correct = 0
    for first in range(0, total, CHUNK):
        logits = fast_logits(export, input_codes[first : first + CHUNK], k)
        correct += int((logits.argmax(dim=1) == labels[first : first + CHUNK]).sum())
        if progress:
            progress(min(first + CHUNK, total))
    full, rest = divmod(total, batch)
    costs = [(pass_cost(cfg, export, batch, k), full)] + ([(pass_cost(cfg, export, rest, k), 1)] if rest else [])
    energy, host = Energy(), HostOps()
    for cost, count in costs:
        energy = energy + Energy(**{f.name: getattr(cost.energy, f.name) * count for f in fields(Energy)})
        host = HostOps(*(a + b for a, b in zip(astuple(host), astuple(cost.host.scaled(count)), strict=True)))
    return PrecisionSummary(
        tuple(k) if not isinstance(k, int) else k,
        total,
        full + (1 if rest else 0),
        correct,
        sum(cost.cycles * count for cost, count in costs),
        sum(cost.macs * count for cost, count in costs),
        cfg.pe_count,
        host,
        energy,
        host.energy_pj(cfg),
    )
