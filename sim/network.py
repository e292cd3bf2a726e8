"""A whole exported network on the engine: each layer's GEMM as engine commands, run on the cycle model.

The layers are lowered by `golden.lowering.lower` (the same lowering the golden integer path uses), and
each GEMM becomes one command, or several when its M exceeds the accumulator depth (row chunks of at
most max_m, which is how a host would split it). Commands run back to back, so a batch of images takes
sum(cycles) - O * (commands - 1) cycles (sim.model; O = contract.timing.overlap_cycles, by which each command
overlaps the drain of the one before it), each at its own weight precision, which a digit-serial
engine turns into time. A grouped convolution is one GEMM per group, so as many commands (or row chunks of
them). Residual adds and poolings run on the host between commands (sim.host), counted beside.

A precision policy (contract.policy.ResolvedPolicy) is one k per GEMM layer (uniform or static), or a
run-time controller (dynamic, golden.dynamic): the controller's GEMM runs on the engine after the layers it
reads, the host takes the argmax of its outputs, and every later layer runs as one command group per
distinct k among the pass's images. Every policy is costed the same way, from the [images, L] table of the
k each image ran each layer at (a static policy's rows are all equal).

`run_batch` runs every command through the cycle-exact model (what the RTL is compared with);
`run_policy` scores a whole test set fast: outputs from the batched integer path (golden.fastpath and
golden.dynamic, equal to the commands' outputs) and cycles from the formula for each distinct pass, which
depend only on the shapes and the k, never on the data. Tests hold the two to each other on a sample.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache

import torch

from contract.config import EngineConfig
from contract.model_format import Export
from contract.policy import ResolvedPolicy, bitops
from contract.timing import overlap_cycles
from golden.dynamic import fast_dynamic_logits, lower_dynamic
from golden.fastpath import fast_logits
from golden.lowering import Gemm, LayerRun, lower, precisions_for
from sim.command import Command, row_slices
from sim.energy import Energy, gemms_energy
from sim.energy_table import DEFAULT_TABLE, EnergyTable
from sim.host import HostOps, decision_ops, host_ops
from sim.model import EngineModel, command_cycles, sequence_cycles


def gemm_commands(cfg: EngineConfig, gemm: Gemm) -> list[Command]:
    """The engine commands of one layer GEMM: row chunks of at most max_m rows."""
    X, W = gemm.act_codes.numpy(), gemm.weight_codes.numpy()
    params = dict(bias=gemm.bias.numpy(), mult=gemm.mult.numpy(), shift=gemm.shift.numpy())
    return [
        Command(X=X[rows], W=W, wbits=gemm.k, abits=gemm.j, scheme=gemm.scheme, mode=gemm.mode, **params)
        for rows in row_slices(cfg, gemm.M)
    ]


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


def lower_policy(
    export: Export, input_codes: torch.Tensor, policy: ResolvedPolicy, execute
) -> tuple[list[LayerRun], torch.Tensor]:
    """(every GEMM run in engine order, raw logits) of a batch under `policy`: its k per GEMM layer, or its
    controller (golden.dynamic's engine order: the layers it reads at fixed k, its GEMM, then each remaining
    layer as one GEMM per distinct k among the images, ascending)."""
    if policy.controller is not None:
        run = lower_dynamic(export, input_codes, policy.controller, execute)
        return run.runs, run.logits
    runs = lower(export, input_codes, policy.ks, None, execute)
    return runs, runs[-1].output


def run_batch(cfg: EngineConfig, export: Export, input_codes: torch.Tensor, policy: ResolvedPolicy) -> BatchRun:
    """One batch of images (input codes [batch, C, H, W]) through every layer under `policy` (lower_policy),
    every command on the cycle-exact model."""
    executor = ModelExecutor(cfg)
    _, logits = lower_policy(export, input_codes, policy, executor)
    # Each command's own wbits: on a digit-serial engine its cycles fall with k (M*T*ceil(k/D) steady slots).
    shapes = [(c.m, c.k_dim, c.n, c.wbits) for c, _ in executor.log]
    host = host_ops(export, len(input_codes))
    if policy.controller is not None:
        host = host + decision_ops(export, policy.controller, len(input_codes))
    return BatchRun(logits, executor.log, sequence_cycles(cfg, shapes), host)


@dataclass(frozen=True)
class PassCost:
    """What one engine pass of some images costs (independent of the images' values)."""

    cycles: int
    macs: int
    energy: Energy
    host: HostOps
    steady: int  # of `cycles`, the slots that feed an activation row (digit) into the array: M*T*ceil(k/D)


@dataclass(frozen=True)
class GroupCost:
    """One command group (a layer's GEMM for some images at one k): its commands' total cycles (each
    counted alone), steady slots, MACs and engine energy."""

    commands: int
    cycles: int
    steady: int
    macs: int
    energy: Energy


@lru_cache(maxsize=4096)
def group_cost(cfg: EngineConfig, m: int, k_dim: int, n: int, k: int, table: EnergyTable = DEFAULT_TABLE) -> GroupCost:
    """The cost of an M x K by K x N GEMM at weight precision k, split into commands of at most max_m rows,
    its energy priced with `table`. Cached: a test set has few distinct groups (layers x k x images per pass),
    however many passes."""
    shapes = [(rows.stop - rows.start, k_dim, n, k) for rows in row_slices(cfg, m)]
    breakdowns = [command_cycles(cfg, *shape) for shape in shapes]
    return GroupCost(
        len(shapes),
        sum(cycles.total for cycles in breakdowns),
        sum(cycles.steady for cycles in breakdowns),
        m * k_dim * n,
        gemms_energy(cfg, [(m, k_dim, n)], k, table=table),
    )


def grouped_cost(
    cfg: EngineConfig, export: Export, ks: torch.Tensor, controller=None, table: EnergyTable = DEFAULT_TABLE
) -> PassCost:
    """One engine pass of len(ks) images in which image i runs GEMM layer l at ks[i, l]: each layer is one
    command group per distinct k among the images (per group of a grouped convolution: its `group_shapes`;
    the rows of those images, split at max_m), as
    golden.dynamic lowers it; a controller (contract.model_format.ExportedController) adds its own GEMM, one row per
    image, at its k, and its decision on the host. Cycles are the cycle model's formula for the commands
    back to back (sim.model.sequence_cycles: the sum of each command's cycles less its overlap with the one
    before it, contract.timing.overlap_cycles, per command after the first, whatever the order), energy
    sim.energy's per command group, priced with `table`."""
    images = len(ks)
    columns = [(layer.group_shapes(), column) for layer, column in zip(export.layers, ks.T.tolist(), strict=True)]
    if controller is not None:
        columns.append((controller.layer.group_shapes(), [controller.k] * images))
    groups = [
        group_cost(cfg, m * count, k_dim, n, k, table)
        for shapes, column in columns
        for k, count in sorted(Counter(column).items())
        for m, k_dim, n in shapes
    ]
    host = host_ops(export, images) + (decision_ops(export, controller, images) if controller else HostOps())
    return PassCost(
        sum(group.cycles for group in groups) - overlap_cycles(cfg) * (sum(group.commands for group in groups) - 1),
        sum(group.macs for group in groups),
        sum((group.energy for group in groups), Energy()),
        host,
        sum(group.steady for group in groups),
    )


def static_precisions(export: Export, k, images: int) -> torch.Tensor:
    """k (one for all layers, or one per GEMM layer) as the [images, L] table of a dynamic run: equal rows."""
    return torch.tensor(precisions_for(export, k), dtype=torch.int64).expand(images, -1)


def pass_cost(cfg: EngineConfig, export: Export, images: int, k) -> PassCost:
    """Engine cycles, MACs, engine energy and host ops of a pass of `images` images all at k."""
    return grouped_cost(cfg, export, static_precisions(export, k, images))


@dataclass(frozen=True)
class PrecisionSummary:
    """A policy over a test set: what it scored, what it cost, and which k its images ran at."""

    label: str  # the policy as tables name it: k, "K1,K2,..." or "dynamic:BUDGET"
    images: int
    passes: int  # engine passes of `batch` images (the last may be partial)
    correct: int
    cycles: int  # engine
    steady_cycles: int  # of `cycles`, those that feed the array (the rest: per-command overheads, weight waits)
    macs: int
    pe_count: int
    bitops: int  # over all images, MACs x k x j, the controller's included
    k_counts: tuple[tuple[int, ...], ...]  # per GEMM layer, images that ran it at k = 1..B
    host: HostOps = HostOps()
    energy: Energy = Energy()  # engine, pJ
    host_energy_pj: float = 0.0

    @property
    def accuracy(self) -> float:
        return self.correct / self.images

    @property
    def bitops_per_inference(self) -> float:
        return self.bitops / self.images

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


def infer(export: Export, input_codes: torch.Tensor, policy: ResolvedPolicy) -> tuple[torch.Tensor, torch.Tensor]:
    """(raw logits [batch, classes], k [batch, L] each image ran each GEMM layer at) under `policy`: its k per
    GEMM layer, or its controller, which chooses per image (golden.dynamic's exact batched path)."""
    if policy.controller is not None:
        return fast_dynamic_logits(export, input_codes, policy.controller)
    return fast_logits(export, input_codes, policy.ks), static_precisions(export, policy.ks, len(input_codes))


def score(
    export: Export, input_codes: torch.Tensor, labels: torch.Tensor, policy: ResolvedPolicy, progress=None
) -> tuple[int, torch.Tensor]:
    """(images classified correctly, the k [images, L] each ran each GEMM layer at) under `policy`, from the
    batched integer path in chunks of CHUNK images, `progress` told the images done after each."""
    correct, chosen = 0, []
    for first in range(0, len(input_codes), CHUNK):
        logits, ks = infer(export, input_codes[first : first + CHUNK], policy)
        correct += int((logits.argmax(dim=1) == labels[first : first + CHUNK]).sum())
        chosen.append(ks)
        if progress:
            progress(min(first + CHUNK, len(input_codes)))
    return correct, torch.cat(chosen)


def run_policy(
    cfg: EngineConfig,
    export: Export,
    input_codes: torch.Tensor,
    labels: torch.Tensor,
    policy: ResolvedPolicy,
    batch: int,
    progress=None,
    table: EnergyTable = DEFAULT_TABLE,
) -> PrecisionSummary:
    """All images under `policy` (one k per GEMM layer, or a controller), `batch` images per engine pass
    (cycles are per pass, back to back). Outputs and each image's k come from the batched integer path in
    chunks, costs from `grouped_cost` once per distinct pass (the same images' k give the same cost), energy
    (engine and host) priced with `table`."""
    total = len(input_codes)
    correct, ks = score(export, input_codes, labels, policy, progress)
    controller = policy.controller
    passes = Counter(tuple(sorted(map(tuple, ks[first : first + batch].tolist()))) for first in range(0, total, batch))
    energy, host, cycles, steady, macs = Energy(), HostOps(), 0, 0, 0
    for rows, count in passes.items():
        cost = grouped_cost(cfg, export, torch.tensor(rows, dtype=torch.int64), controller, table)
        energy = energy + cost.energy.scaled(count)
        host = host + cost.host.scaled(count)
        cycles, steady, macs = cycles + cost.cycles * count, steady + cost.steady * count, macs + cost.macs * count
    controller_bitops = (
        bitops([controller.layer.gemm_shape(total)], [controller.k], export.act_bits) if controller else 0
    )
    counts = torch.stack([torch.bincount(column, minlength=export.base_bits + 1)[1:] for column in ks.T])
    return PrecisionSummary(
        policy.label,
        total,
        sum(passes.values()),
        correct,
        cycles,
        steady,
        macs,
        cfg.pe_count,
        bitops(export.gemm_shapes(), ks.sum(dim=0).tolist(), export.act_bits) + controller_bitops,
        tuple(map(tuple, counts.tolist())),
        host,
        energy,
        host.energy_pj(cfg, table),
    )
