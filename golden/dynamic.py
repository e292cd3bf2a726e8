"""Dynamic precision on the integer path: a controller chooses each image's k per layer, the engine runs it.

An export's controller (contract.model_format.ExportedController; docs/numerics.md, "Dynamic precision: the
controller") is one more GEMM: after the layer it reads has run, its raw outputs decide, per image and per
controlled layer, which candidate k to use (`decide`: the largest logit, ties to the smaller k, integers
only). Every later layer then runs once per distinct k among the images, on those images' rows, so each
engine command still has one k, and the images' outputs are put back in batch order for the next node.

Two executions of the same schedule, checked against each other by tests/golden/test_dynamic_golden.py:
  - `lower_dynamic`: the engine's commands (golden.lowering.Gemm) in engine order, computed by any executor
    (golden's integer reference, the cycle model, the RTL), as golden.lowering.lower does for one k;
  - `fast_dynamic_logits`: the same numbers by whole-batch convolutions (golden.fastpath), for test sets.

`attach_controller` adds an untrained controller to a model, so a test can build an export with a
controller in a second: for example

    model = attach_controller(build_net("digits", QuantSpec("truncquant", "offset")), 2.0, (1, 2, 4), images=x)
    export = build_export(model)          # golden.export; contract.model_format.write_export for files
    controller = export.controller(2.0)   # or export.controller(None): the only one
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from contract.cli import InputError
from contract.model_format import INPUT, Export, ExportedController, ExportedLayer, GemmStep, steps
from contract.numerics import NumericsError
from golden.controller import ControllerSpec, Mixer, controller_name
from golden.fastpath import fast_layer
from golden.lowering import Executor, LayerRun, check_input, host_step, run_layer
from golden.model import QuantNet, load_checkpoint


def decide(controller: ExportedController, raw: torch.Tensor) -> torch.Tensor:
    """The chosen k [batch, len(controls)] from the controller's raw outputs [batch, len(controls) *
    len(candidates)] (layer-major): per controlled layer the candidate with the largest output, the smaller
    k on ties. Integer comparisons only, so every executor decides alike."""
    raw = torch.as_tensor(raw)
    candidates, layers = len(controller.candidates), len(controller.controls)
    if raw.dtype.is_floating_point or raw.dim() != 2 or raw.shape[1] != layers * candidates:
        raise NumericsError(
            f"controller {controller.name}: raw outputs must be integers [batch, {layers * candidates}], got "
            f"{raw.dtype} {list(raw.shape)}"
        )
    grouped = raw.to(torch.int64).reshape(len(raw), layers, candidates)
    best = grouped.max(dim=2, keepdim=True).values
    column = torch.arange(candidates).expand_as(grouped)
    first = torch.where(grouped == best, column, candidates).min(dim=2).values  # ascending: the smaller k
    return torch.tensor(controller.candidates, dtype=torch.int64)[first]


def precisions(export: Export, controller: ExportedController, chosen: torch.Tensor) -> torch.Tensor:
    """Every image's k per GEMM layer [batch, len(export.layers)], columns in export.layers order: `chosen`
    [batch, len(controls)] for the controlled layers, the controller's fixed k for the others."""
    chosen = torch.as_tensor(chosen).to(torch.int64)
    column = {name: i for i, name in enumerate(controller.controls)}
    ks = torch.empty(len(chosen), len(export.layers), dtype=torch.int64)
    for i, layer in enumerate(export.layers):
        ks[:, i] = chosen[:, column[layer.name]] if layer.name in column else controller.fixed[layer.name]
    return ks


@dataclass(frozen=True)
class DynamicRun:
    """What lower_dynamic ran: every engine command in engine order with its output, `images[i]` the batch
    indices whose rows runs[i] holds (in batch order), each image's k per layer and the raw logits."""

    runs: list[LayerRun]
    images: list[torch.Tensor]
    ks: torch.Tensor  # int64 [batch, len(export.layers)]
    logits: torch.Tensor  # int64 [batch, classes]: raw t; its scale depends on the last layer's k, its argmax not


# compute(layer, codes of some images, k, last, image indices) -> the value the next nodes read
Compute = Callable[[ExportedLayer, torch.Tensor, int, bool, torch.Tensor], torch.Tensor]


def _schedule(
    export: Export, codes: torch.Tensor, controller: ExportedController, compute: Compute, decide_only: bool = False
):
    """Walk the graph as the engine does (module docstring); returns (logits, ks), or (the controller's raw
    outputs, ks) when `decide_only`, which stops there."""
    if controller not in export.controllers:
        raise InputError(f"controller {controller.name} is not one of this export's controllers")
    batch = len(codes)
    everyone = torch.arange(batch)
    values, ks = {INPUT: codes}, None
    column = {layer.name: i for i, layer in enumerate(export.layers)}
    for step in steps(export):
        if not isinstance(step, GemmStep):
            values[step.name] = host_step(step, values, export.act_bits)
            continue
        layer, source = step.layer, values[step.source]
        if step.name in controller.fixed:
            values[step.name] = compute(layer, source, controller.fixed[step.name], step.last, everyone)
        else:
            if ks is None:
                raise InputError(f"controller {controller.name}: layer {step.name} runs before it decides")
            per_image = ks[:, column[step.name]]
            parts = []
            for k in torch.unique(per_image).tolist():  # ascending
                images = torch.nonzero(per_image == k).flatten()
                parts.append((images, compute(layer, source[images], k, step.last, images)))
            out = torch.empty((batch, *parts[0][1].shape[1:]), dtype=torch.int64)
            for images, part in parts:
                out[images] = part
            values[step.name] = out
        if step.name == controller.reads:
            raw = compute(controller.layer, values[step.name], controller.k, True, everyone)
            ks = precisions(export, controller, decide(controller, raw))
            if decide_only:
                return raw, ks
    return values[step.name], ks


def lower_dynamic(export: Export, input_codes, controller: ExportedController, execute: Executor) -> DynamicRun:
    """Run `controller`'s dynamic schedule on `input_codes` [batch, *input_shape]: the engine commands in
    engine order (the layers up to and including `reads` at their fixed k, the controller's GEMM at its k,
    then each later layer once per distinct k, ascending, on its images' rows), computed by `execute`."""
    codes = check_input(export, input_codes)
    runs, images = [], []

    def compute(layer, source, k, last, rows):
        layer_runs, value = run_layer(export, layer, source, k, export.act_bits, execute, last)
        runs.extend(layer_runs)
        images.extend([rows] * len(layer_runs))
        return value

    logits, ks = _schedule(export, codes, controller, compute)
    return DynamicRun(runs, images, ks, logits)


def fast_dynamic_logits(
    export: Export, input_codes, controller: ExportedController
) -> tuple[torch.Tensor, torch.Tensor]:
    """(raw logits [batch, classes], ks [batch, len(export.layers)]) of the same schedule as lower_dynamic,
    by golden.fastpath's exact whole-batch products: for scoring test sets."""
    return _schedule(export, check_input(export, input_codes), controller, _fast_compute(export))


def fast_decisions(export: Export, input_codes, controller: ExportedController) -> tuple[torch.Tensor, torch.Tensor]:
    """(the controller's raw outputs [batch, N], ks [batch, len(export.layers)]): fast_dynamic_logits stopped
    at the decision, which costs only the layers up to `reads` and the controller."""
    return _schedule(export, check_input(export, input_codes), controller, _fast_compute(export), decide_only=True)


def _fast_compute(export: Export) -> Compute:
    def compute(layer, source, k, last, rows):
        return fast_layer(export, layer, source, k, export.act_bits, last)

    return compute


# --- BitOPs ---------------------------------------------------------------------------------------


def image_bitops(export: Export, controller: ExportedController, ks: torch.Tensor) -> torch.Tensor:
    """BitOPs [batch] of each image (contract.policy.bitops: MACs x k x A per layer), its controller's included."""
    macs = torch.tensor([layer.macs for layer in export.layers], dtype=torch.int64)
    own = controller.layer.macs * controller.k
    return ((torch.as_tensor(ks).to(torch.int64) * macs).sum(dim=1) + own) * export.act_bits


def budget_bitops(export: Export, budget: float) -> float:
    """The BitOPs per image of a budget given as an equivalent uniform k: every layer at k = budget."""
    return budget * sum(layer.macs for layer in export.layers) * export.act_bits


# --- an untrained controller -----------------------------------------------------------------------


def default_spec(
    model: QuantNet,
    budget: float,
    candidates: Sequence[int],
    reads: str | None = None,
    k: int | None = None,
    fixed_k: int | None = None,
) -> ControllerSpec:
    """A controller reading `reads` (default: the first GEMM layer), controlling every later GEMM layer with
    weight precision k (default B), the layers up to and including `reads` fixed at `fixed_k` (default B)."""
    names = [node.name for node in model.gemm_nodes]
    reads = names[0] if reads is None else reads
    if reads not in names:
        raise InputError(f"the network has no GEMM layer named {reads!r}; its layers: {', '.join(names)}")
    base = model.spec.base_bits
    split = names.index(reads) + 1
    fixed = tuple((name, base if fixed_k is None else fixed_k) for name in names[:split])
    return ControllerSpec(
        controller_name(budget),
        float(budget),
        reads,
        tuple(sorted(set(candidates))),
        tuple(names[split:]),
        fixed,
        base if k is None else k,
    )


def attach_controller(
    model_or_checkpoint: QuantNet | str | Path,
    budget: float,
    candidates: Sequence[int],
    reads: str | None = None,
    seed: int = 0,
    k: int | None = None,
    fixed_k: int | None = None,
    images: torch.Tensor | None = None,
) -> QuantNet:
    """The model (a QuantNet, changed in place, or loaded from a checkpoint path) with an untrained controller
    added (default_spec; weights drawn from `seed`, the global RNG untouched), named controller_<budget>.
    With float `images` its bias is set so that its mean logits on them are zero: the random weights alone
    then decide, differently for different images (module docstring)."""
    model = model_or_checkpoint
    if not isinstance(model, QuantNet):
        model, _ = load_checkpoint(model_or_checkpoint)
    spec = default_spec(model, budget, candidates, reads, k, fixed_k)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        controller = model.add_controller(spec)
    model.eval()
    if images is not None:
        mixer = Mixer(controller)
        with torch.no_grad():
            model(images, mixer)
            controller.linear.bias -= mixer.logits.mean(dim=0).flatten()
    return model
