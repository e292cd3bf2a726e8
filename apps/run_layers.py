"""Where a policy's engine cycles, energy and stream traffic go, layer by layer: the per-layer part of
apps.run's results.json, which `nestmac report` draws.

apps.run prices a test set per distinct pass (sim.network.run_policy); this module splits the same costs by
GEMM layer (and the controller's GEMM, for a dynamic policy) from what the run recorded: each layer's images
at each k (`PrecisionSummary.k_counts`) and the batch. A layer's cycles are its commands' cycles, each less
the cycles it overlaps the command before it (contract.timing.overlap_cycles, sim.model.sequence_cycles),
except the first command of a pass: so the layers add up to the run's engine cycles exactly, and their
energies to its engine energy.

A dynamic policy with several images per pass mixes k within a pass, and what a layer costs then depends
on which images shared a pass, which the summary does not keep: its breakdown is left out (None). With one
image per pass (the default), or a fixed k per layer, it is exact.
"""

from __future__ import annotations

from dataclasses import dataclass

from contract.config import EngineConfig
from contract.timing import overlap_cycles
from sim.energy_table import EnergyTable
from sim.events import command_events, split_rows
from sim.network import group_cost

#: The engine's input and output streams, as results.json names their bytes.
STREAMS = ("activations", "weights", "parameters", "results")


@dataclass(frozen=True)
class LayerGroup:
    """`passes` engine passes in each of which `images` images run one GEMM layer at weight precision k."""

    images: int
    k: int
    passes: int


def layer_groups(counts, batch: int, fixed: bool) -> list[LayerGroup] | None:
    """The groups of one layer, from its images at each k (counts[k - 1]) when passes hold `batch` images;
    None when a pass mixes k (dynamic, batch > 1) and so the groups cannot be told from the counts."""
    if not fixed and batch > 1:
        return None
    groups = []
    for k, count in enumerate(counts, 1):
        full, rest = divmod(count, batch)
        groups += [LayerGroup(batch, k, full)] if full else []
        groups += [LayerGroup(rest, k, 1)] if rest else []
    return groups


def stream_bytes(cfg: EngineConfig, m: int, k_dim: int, n: int, k: int) -> dict[str, float]:
    """Bytes on each stream of an M x K by K x N GEMM at precision k, split into commands as the host splits it."""
    events = [command_events(cfg, *shape, k) for shape in split_rows(cfg, m, k_dim, n)]
    bits = {
        "activations": sum(e.act_bits for e in events),
        "weights": sum(e.weight_bits for e in events),
        "parameters": sum(e.param_bits for e in events),
        "results": sum(e.result_bits for e in events),
    }
    return {stream: value / 8 for stream, value in bits.items()}


def layer_row(
    cfg: EngineConfig, name: str, shape, groups: list[LayerGroup], images: int, table, passes_led: int = 0
) -> dict:
    """One layer's figures per inference: commands, cycles (each command less its overlapped cycles, but
    for the `passes_led` passes this layer's first command starts), MACs, utilisation, engine energy and
    bytes per stream, over `groups`."""
    m, k_dim, n = shape
    overlap = overlap_cycles(cfg)
    commands, cycles, macs = 0, passes_led * overlap, 0
    energy_pj, streamed = 0.0, dict.fromkeys(STREAMS, 0.0)
    for group in groups:
        cost = group_cost(cfg, m * group.images, k_dim, n, group.k, table)
        commands += cost.commands * group.passes
        cycles += (cost.cycles - cost.commands * overlap) * group.passes
        macs += cost.macs * group.passes
        energy_pj += cost.energy.total * group.passes
        for stream, value in stream_bytes(cfg, m * group.images, k_dim, n, group.k).items():
            streamed[stream] += value * group.passes
    return {
        "name": name,
        "gemm": [m, k_dim, n],
        "commands_per_inference": commands / images,
        "cycles_per_inference": cycles / images,
        "macs_per_inference": macs / images,
        "mac_utilisation": macs / (cycles * cfg.pe_count) if cycles else 0.0,
        "energy_nj_per_inference": energy_pj / 1000 / images,
        "bytes_per_inference": {stream: value / images for stream, value in streamed.items()},
    }


def layer_breakdown(cfg: EngineConfig, export, policy, summary, batch: int, table: EnergyTable) -> list[dict] | None:
    """Per GEMM layer (then the controller's GEMM, if the policy has one), its share of `summary`'s engine
    costs per inference; None for a dynamic policy with several images per pass (see the module's doc)."""
    fixed = policy.controller is None
    columns = [
        (layer.name, layer.gemm_shape(), counts) for layer, counts in zip(export.layers, summary.k_counts, strict=True)
    ]
    if policy.controller is not None:
        counts = [summary.images if k == policy.controller.k else 0 for k in range(1, export.base_bits + 1)]
        columns.append(("controller", policy.controller.layer.gemm_shape(), counts))
    rows = []
    for index, (name, shape, counts) in enumerate(columns):
        groups = layer_groups(counts, batch, fixed)
        if groups is None:
            return None
        # The first command of each pass overlaps nothing before it: those cycles are the first layer's.
        led = summary.passes if index == 0 else 0
        rows.append(layer_row(cfg, name, shape, groups, summary.images, table, led))
    return rows


def stream_totals(layers: list[dict] | None) -> dict[str, float] | None:
    """Bytes per inference on each stream, over all layers."""
    if layers is None:
        return None
    return {stream: sum(layer["bytes_per_inference"][stream] for layer in layers) for stream in STREAMS}
