"""Train precision controllers on a frozen backbone: `python -m golden.train_controller MODEL.pt --budget 2 ...`.

DQT's run-time half (issue 11, item 3). For each budget a controller (golden.controller) is attached to the
trained model and trained with the backbone frozen: straight-through Gumbel-softmax per controlled layer over
the candidate precisions (the backbone computes each controlled layer at every candidate and mixes by the
one-hot weights), loss = cross-entropy + PENALTY * max(0, mean BitOPs / budget BitOPs - 1), where BitOPs =
MACs x k x A per layer (contract.policy.bitops), fixed layers and the controller's own GEMM included and the
budget given as the equivalent uniform k (dynamic:B). A hinge only says "not above the budget"; the exact
level is then set by calibration on training images through the integer path: every controller output is
lowered by delta x (its layer's MACs x its k), the same delta for all, which is a change of the controller's
bias alone, and delta is bisected until the mean BitOPs is the largest not above the budget. Test images
are scored only after everything is chosen. The checkpoint written holds the model and its controllers.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from contract.cli import InputError, Parser, claim_file, number, parse_bits, run_main
from contract.datasets import add_data_arguments
from contract.model_files import write_export
from contract.model_format import Export
from golden.controller import Controller, GumbelMixer
from golden.data import Split, data_split, input_codes
from golden.dynamic import (
    attach_controller,
    budget_bitops,
    fast_decisions,
    fast_dynamic_logits,
    image_bitops,
)
from golden.export import build_export
from golden.model import QuantNet, is_checkpoint, load_checkpoint, save_checkpoint, trained_on
from golden.train import one_thread

DEFAULTS = {
    "train_images": 15_000,
    "epochs": 1,
    "batch_size": 64,
    "lr": 1e-2,
    "penalty": 5.0,
    "tau": (1.0, 0.3),  # Gumbel-softmax temperature, from first to last step (linearly)
    "calibration_images": 3000,
}
CHUNK = 500  # images per integer-path call: memory only
DELTA_LIMIT = 64.0  # calibration shifts (relative cost units) beyond which every choice is already made


def bitops_costs(export: Export, controller) -> tuple[torch.Tensor, float]:
    """(cost [len(controls), len(candidates)]: BitOPs per image of each controlled layer at each candidate,
    the BitOPs per image of everything else: the fixed layers and the controller's own GEMM)."""
    layers = {layer.name: layer for layer in export.layers}
    candidates = torch.tensor(controller.candidates, dtype=torch.float64)
    cost = torch.stack([layers[name].macs * candidates for name in controller.controls]) * export.act_bits
    fixed = sum(layers[name].macs * k for name, k in controller.fixed.items())
    return cost, float((fixed + controller.layer.macs * controller.k) * export.act_bits)


def train_one(model: QuantNet, controller: Controller, split: Split, settings: dict, seed: int, log) -> None:
    """Straight-through Gumbel-softmax training of `controller` against its budget (module docstring)."""
    spec = controller.spec
    export = build_export(model)
    exported = export.controller(spec.budget)
    cost, fixed = bitops_costs(export, exported)
    cost, budget = cost.float(), budget_bitops(export, spec.budget)
    model.set_precision([dict(spec.fixed).get(node.name, model.spec.base_bits) for node in model.gemm_nodes])
    optimizer = torch.optim.Adam(controller.parameters(), lr=settings["lr"])
    draws = torch.Generator().manual_seed(seed)
    images, labels = split.train_x[: settings["train_images"]], split.train_y[: settings["train_images"]]
    steps = settings["epochs"] * -(-len(images) // settings["batch_size"])
    first_tau, last_tau = settings["tau"]
    step, started, seen, total, spent = 0, time.perf_counter(), 0, 0.0, 0.0
    for _ in range(settings["epochs"]):
        order = torch.randperm(len(images), generator=draws)
        for first in range(0, len(order), settings["batch_size"]):
            batch = order[first : first + settings["batch_size"]]
            tau = first_tau + (last_tau - first_tau) * step / max(steps - 1, 1)
            mixer = GumbelMixer(controller, tau, draws)
            logits = model(images[batch], mixer)
            gates = torch.stack([mixer.chosen[name] for name in spec.controls], dim=1)  # [b, L, C]
            bitops = (gates * cost).sum(dim=(1, 2)).mean() + fixed
            loss = F.cross_entropy(logits, labels[batch]) + settings["penalty"] * F.relu(bitops / budget - 1)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step, seen = step + 1, seen + len(batch)
            total, spent = total + float(loss.detach()) * len(batch), spent + float(bitops.detach()) * len(batch)
            if step % 50 == 0 or step == steps:
                log(
                    f"  {spec.name} step {step}/{steps}: loss {total / seen:.4f}, BitOPs {spent / seen / budget:.3f} "
                    f"x budget, tau {tau:.2f} ({time.perf_counter() - started:.0f} s)"
                )
                seen, total, spent = 0, 0.0, 0.0


def check_budget(model: QuantNet, controller: Controller) -> tuple[float, float]:
    """(cheapest, costliest) BitOPs per image / budget: every controlled layer at its smallest or its largest
    candidate; InputError if even the cheapest is above the budget."""
    spec = controller.spec
    export = build_export(model)
    cost, fixed = bitops_costs(export, export.controller(spec.budget))
    budget = budget_bitops(export, spec.budget)
    cheapest, costliest = (float((cost[:, column].sum() + fixed) / budget) for column in (0, -1))
    if cheapest > 1:
        raise InputError(
            f"budget {spec.budget:g} cannot be met: with every controlled layer at k = {spec.candidates[0]} an image "
            f"costs {cheapest:.3f} x the budget (lower the candidates, the controller's k or the fixed layers' k)"
        )
    return cheapest, costliest


def calibrate(model: QuantNet, controller: Controller, codes: torch.Tensor, log) -> float:
    """Shift the controller's outputs by -delta x (MACs x k) until its mean BitOPs on `codes` (training images,
    integer path) is the largest not above the budget (module docstring); returns that mean / budget."""
    spec = controller.spec
    _, costliest = check_budget(model, controller)
    export = build_export(model)
    cost, _ = bitops_costs(export, export.controller(spec.budget))
    shape = (cost / cost.sum() * len(spec.controls)).flatten().float()  # relative cost per output column
    original, budget = controller.linear.bias.detach().clone(), budget_bitops(export, spec.budget)

    def mean_bitops(delta: float) -> float:
        with torch.no_grad():
            controller.linear.bias.copy_(original - delta * shape)
        current = build_export(model)
        exported = current.controller(spec.budget)
        ks = torch.cat(
            [fast_decisions(current, codes[i : i + CHUNK], exported)[1] for i in range(0, len(codes), CHUNK)]
        )
        return float(image_bitops(current, exported, ks).double().mean()) / budget

    def fits(delta: float) -> bool:
        return mean_bitops(delta) <= 1

    before = mean_bitops(0.0)
    # Bracket low < high with fits(high) and not fits(low): a large enough shift makes every layer choose its
    # cheapest (delta > 0) or its costliest (delta < 0) candidate.
    if costliest <= 1:
        low = high = -DELTA_LIMIT  # everything at its largest candidate fits
    elif before <= 1:
        high, low = 0.0, -1.0
        while fits(low) and low > -DELTA_LIMIT:
            high, low = low, low * 2
    else:
        low, high = 0.0, 1.0
        while not fits(high) and high < DELTA_LIMIT:
            low, high = high, high * 2
    for _ in range(30 if low != high else 0):
        middle = (low + high) / 2
        low, high = (low, middle) if fits(middle) else (middle, high)
    after = mean_bitops(high)
    log(
        f"  {spec.name}: calibrated on {len(codes)} training images: mean BitOPs {before:.3f} -> {after:.3f} x budget "
        f"(delta {high:.4g})"
    )
    return after


def score(export: Export, split: Split, budget: float) -> dict:
    """Test accuracy, mean BitOPs / budget, the k distribution per controlled layer and each layer's most frequent
    k ("majority", every layer in export order), on the integer path."""
    controller = export.controller(budget)
    codes = input_codes(split.test_x, export.act_bits)
    parts = [fast_dynamic_logits(export, codes[i : i + CHUNK], controller) for i in range(0, len(codes), CHUNK)]
    logits, ks = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    mean = float(image_bitops(export, controller, ks).double().mean())
    column = {layer.name: i for i, layer in enumerate(export.layers)}
    distribution = {
        name: {k: float((ks[:, column[name]] == k).double().mean()) for k in controller.candidates}
        for name in controller.controls
    }
    return {
        "accuracy": float((logits.argmax(dim=1) == split.test_y).double().mean()),
        "bitops": mean,
        "bitops_ratio": mean / budget_bitops(export, budget),
        "distribution": distribution,
        "majority": [int(value) for value in torch.mode(ks, dim=0).values],
    }


def main(argv: list[str] | None = None) -> None:
    parser = Parser(prog="python -m golden.train_controller", description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="trained checkpoint (golden.train, best with --mixed)")
    parser.add_argument("--out", required=True, help="checkpoint to write: the model with its controllers")
    parser.add_argument(
        "--export", help="also write the export (model.json, model.npz) to this directory (default: no export)"
    )
    parser.add_argument(
        "--budget", type=float, action="append", required=True, help="mean BitOPs budget as an equivalent uniform k"
    )
    parser.add_argument(
        "--candidates",
        action="append",
        required=True,
        help="the k a controller chooses from, e.g. 1,2,3; once for every budget or once per --budget",
    )
    parser.add_argument("--controller-bits", type=int, default=4, help="the controller's own weight precision")
    parser.add_argument("--reads", help="the GEMM layer whose output the controller reads (default: the first)")
    parser.add_argument("--fixed-bits", type=int, help="k of the layers up to and including --reads (default B)")
    add_data_arguments(parser)
    parser.add_argument("--train-images", type=number(int, 1, 1 << 30), default=DEFAULTS["train_images"])
    parser.add_argument("--epochs", type=number(int, 1, 1000), default=DEFAULTS["epochs"])
    parser.add_argument("--batch-size", type=number(int, 1, 1 << 16), default=DEFAULTS["batch_size"])
    parser.add_argument("--lr", type=number(float, 0, 1, above=True), default=DEFAULTS["lr"])
    parser.add_argument("--penalty", type=number(float, 0, 1e6), default=DEFAULTS["penalty"])
    parser.add_argument("--calibration-images", type=number(int, 1, 1 << 30), default=DEFAULTS["calibration_images"])
    parser.add_argument("--seed", type=number(int, 0, (1 << 32) - 1), default=0)
    args = parser.parse_args(argv)
    model, record = load_checkpoint(args.model)
    base = model.spec.base_bits
    if len(args.candidates) not in (1, len(args.budget)):
        raise InputError(f"give --candidates once, or once per --budget ({len(args.budget)})")
    candidates = [parse_bits(text, base) for text in args.candidates] * (len(args.budget) // len(args.candidates))
    for budget in args.budget:
        if not 1 <= budget <= base:  # also refuses nan
            raise InputError(f"--budget must be an equivalent uniform k in 1..{base}, got {budget!r}")
    split = data_split(args, trained_on(record))
    if tuple(split.train_x.shape[1:]) != model.input_shape:
        raise InputError(
            f"{args.model} takes inputs {list(model.input_shape)}, the data {list(split.train_x.shape[1:])}"
        )
    for budget, chosen in zip(args.budget, candidates, strict=True):  # every spec is checked before any training
        attach_controller(model, budget, chosen, args.reads, args.seed, args.controller_bits, args.fixed_bits)
    for controller in model.controllers.values():
        check_budget(model, controller)
    claim_file(args.out, is_checkpoint)
    for parameter in model.layers.parameters():
        parameter.requires_grad_(False)
    settings = DEFAULTS | {
        key: getattr(args, key)
        for key in ("train_images", "epochs", "batch_size", "lr", "penalty", "calibration_images")
    }
    calibration = input_codes(split.train_x[: args.calibration_images], model.spec.act_bits)
    trained = {}
    with one_thread():
        for index, budget in enumerate(args.budget):
            controller = next(c for c in model.controllers.values() if c.spec.budget == budget)
            print(f"training {controller.spec.name}: {controller.spec}", flush=True)
            train_one(model, controller, split, settings, args.seed + index, print)
            ratio = calibrate(model, controller, calibration, print)
            trained[controller.spec.name] = settings | {"calibrated_bitops_ratio": ratio, "seed": args.seed + index}
        export = build_export(model, dataset=trained_on(record))
        print(f"test set ({len(split.test_y)} images), integer path:")
        for budget in args.budget:
            result = score(export, split, budget)
            print(
                f"  dynamic:{budget:g}: accuracy {result['accuracy'] * 100:.2f}%, mean BitOPs "
                f"{result['bitops'] / 1e6:.2f}M = {result['bitops_ratio']:.3f} x budget"
            )
    if args.export:  # first: an --export path that is not ours is refused before the checkpoint is written
        write_export(export, args.export, inputs=[args.model, args.out])
        print(f"wrote {args.export}")
    save_checkpoint(model, args.out, record | {"controllers": record.get("controllers", {}) | trained})
    print(f"saved {args.out}")


if __name__ == "__main__":
    raise SystemExit(run_main(main))
