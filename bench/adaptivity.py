"""Adaptivity measured (issue 26 item 2): does an export's dynamic precision beat static allocations at the same
mean BitOPs, and could any per-input choice?

For each controller of the export (one per budget), on the test set through the integer path (golden.fastpath,
golden.dynamic: the engine's numbers):
- dynamic: accuracy and mean BitOPs per image (its own GEMM included), and DQT's transition cost: layers whose k
  changes from one test image to the next, in test order, and the bit-shift operations that costs at one
  shift per weight of such a layer (golden.adaptivity.transitions; the engine itself shifts no weight);
- its most frequent k per layer as a static allocation (no controller): what remains without adapting;
- the knapsack static allocation within the dynamic's mean BitOPs (golden.allocation.knapsack_allocation on
  per-layer losses measured on --search-images training images): the best fixed allocation at that budget;
- the per-input oracle over a ladder of static allocations (uniform k = 1 and B, the knapsack's at
  equivalent budgets --ladder, and the two static allocations above): every image at the cheapest allocation
  that gets it right, as many as the budget affords (golden.adaptivity.oracle), the ceiling of any controller
  choosing among them;
- per-input routing between two ladder allocations by a difficulty signal, the pair and the threshold chosen
  on --probe-images training images (the second half of them; the first half fits the probe), scored on the
  test set: the channel means of the layer the controller reads (what it reads), those means and the
  channels' standard deviations, and the cheap pass's margin (a cascade: every image pays the cheap pass,
  escalated ones the dear one too); beside the same pair mixed at random at the fraction the budget affords
  (the line between them).

Writes build/bench/adaptivity-NAME.json. Prints figures; asserts nothing.
Usage: python bench/adaptivity.py EXPORT_DIR [--data fashion-mnist] [--search-images 1000]
       [--probe-images 4000] [--ladder 1.5,2,2.5,3,4]
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from contract.cli import InputError, Parser, atomic_file, number, run_main
from contract.datasets import add_data_arguments
from contract.model_files import load_export
from contract.model_format import Export
from contract.paths import build_dir
from contract.policy import bitops
from golden.adaptivity import (
    Outcome,
    escalated_fraction,
    mixed_at_random,
    oracle,
    route,
    threshold,
    transitions,
)
from golden.allocation import knapsack_allocation
from golden.data import data_split, input_codes
from golden.dynamic import fast_dynamic_logits, image_bitops
from golden.fastpath import fast_values
from golden.train import one_thread

CHUNK = 500  # images per fastpath call: memory only
SIGNALS = ("read-layer means", "read-layer means + stds", "cheap-pass margin")


class Images:
    """One set of images (codes, labels) and every allocation's per-image correctness and margin on it, with
    the output of each layer a controller reads (`reads`) pooled per channel: a probe's features."""

    def __init__(self, export: Export, codes: torch.Tensor, labels: torch.Tensor, reads: tuple[str, ...]):
        self.export, self.codes, self.labels, self.reads = export, codes, labels, reads
        self.measured: dict[tuple[int, ...], tuple[np.ndarray, np.ndarray]] = {}
        self.pooled: dict[tuple[int, ...], dict[str, np.ndarray]] = {}

    def run(self, ks: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """(correct [n] bool, margin [n]: top logit less the second, in the allocation's raw units)."""
        if ks not in self.measured:
            parts = [
                fast_values(self.export, self.codes[i : i + CHUNK], ks, self.reads)
                for i in range(0, len(self.codes), CHUNK)
            ]
            logits = torch.cat([logits for logits, _ in parts])
            top2 = logits.topk(2, dim=1).values
            self.measured[ks] = (
                (logits.argmax(dim=1) == self.labels).numpy(),
                (top2[:, 0] - top2[:, 1]).double().numpy(),
            )
            self.pooled[ks] = {
                name: torch.cat([pooled(kept[name]) for _, kept in parts]).numpy() for name in self.reads
            }
        return self.measured[ks]

    def accuracy(self, ks: tuple[int, ...]) -> float:
        return float(self.run(ks)[0].mean())

    def features(self, ks: tuple[int, ...], name: str, with_std: bool) -> np.ndarray:
        """Layer `name`'s output codes when the images run at `ks`, per channel: means (and deviations)."""
        self.run(ks)
        means_and_stds = self.pooled[ks][name]
        return means_and_stds if with_std else means_and_stds[:, : means_and_stds.shape[1] // 2]


def pooled(out: torch.Tensor) -> torch.Tensor:
    """[n, C, H, W] codes -> [n, 2C]: each channel's mean over H x W, then each channel's standard deviation."""
    flat = out.double().reshape(len(out), out.shape[1], -1)
    return torch.cat([flat.mean(dim=2), flat.std(dim=2)], dim=1)


def main(argv=None) -> None:
    args = arguments(argv)
    with one_thread():  # the integer path's small tensors: a second thread only adds synchronization
        measure(args)


def arguments(argv):
    parser = Parser(prog="python bench/adaptivity.py", description=__doc__.splitlines()[0])
    parser.add_argument("export", type=Path, help="export directory with controllers (golden.train_controller)")
    add_data_arguments(parser, limit_help="score only the first N test images")
    parser.add_argument("--search-images", type=number(int, 1, 60_000), default=1000, help="training images")
    parser.add_argument("--probe-images", type=number(int, 2, 60_000), default=4000, help="training images")
    parser.add_argument("--ladder", default="1.5,2,2.5,3,4", help="equivalent-k budgets of the knapsack ladder")
    parser.add_argument("--seed", type=number(int, 0, (1 << 32) - 1), default=0, help="the probe's fit")
    return parser.parse_args(argv)


def measure(args) -> None:
    try:
        ladder_budgets = sorted({float(text) for text in args.ladder.split(",")})
    except ValueError:
        raise InputError(f"--ladder must be numbers separated by commas, got {args.ladder!r}") from None
    export = load_export(args.export)
    if not export.controllers:
        raise InputError(f"{args.export} holds no controller (golden.train_controller --export writes them)")
    base = export.base_bits
    if not all(1 <= budget <= base for budget in ladder_budgets):
        raise InputError(f"--ladder budgets must lie in 1..{base}, got {args.ladder!r}")
    split = data_split(args, export.dataset)
    started = time.monotonic()

    reads = tuple(sorted({controller.reads for controller in export.controllers}))

    def images(x, y) -> Images:
        return Images(export, input_codes(x, export.act_bits), y, reads)

    search = images(split.train_x[: args.search_images], split.train_y[: args.search_images])
    probe_end = args.search_images + args.probe_images
    probe_x, probe_y = split.train_x[args.search_images : probe_end], split.train_y[args.search_images : probe_end]
    half = len(probe_y) // 2
    fit, calibration = images(probe_x[:half], probe_y[:half]), images(probe_x[half:], probe_y[half:])
    test = images(split.test_x, split.test_y)
    shapes = export.gemm_shapes()
    weights = np.array([layer.K * layer.N for layer in export.layers])
    total_macs = sum(layer.macs for layer in export.layers)

    def cost(ks: tuple[int, ...]) -> float:
        return float(bitops(shapes, ks, export.act_bits))

    def knapsack(budget_bitops: float) -> tuple[int, ...]:
        return knapsack_allocation(len(export.layers), base, search.accuracy, cost, budget_bitops).bits

    ladder = {"uniform 1": (1,) * len(shapes), f"uniform {base}": (base,) * len(shapes)}
    for budget in ladder_budgets:
        ladder[f"knapsack {budget:g}"] = knapsack(budget * total_macs * export.act_bits)
    print(
        f"{args.export}: {len(test.labels)} test images (one = {100 / len(test.labels):.3f} points); knapsack on "
        f"{len(search.labels)} training images; probes fit on {len(fit.labels)}, chosen on {len(calibration.labels)}"
    )
    results = []
    for controller in export.controllers:
        results.append(one_budget(export, controller, test, fit, calibration, ladder, knapsack, cost, weights, args))
    out = build_dir("bench").resolve()
    name = args.export.resolve().name
    with atomic_file(out / f"adaptivity-{name}.json", lambda path: path.resolve().parent == out) as tmp:
        Path(tmp).write_text(json.dumps({"export": name, "controllers": results}, indent=2) + "\n")
    print(f"\nwrote {out}/adaptivity-{name}.json ({time.monotonic() - started:.0f} s)")


def one_budget(export, controller, test, fit, calibration, ladder, knapsack, cost, weights, args) -> dict:
    """Every figure of one controller (module docstring), printed and returned."""
    parts = [
        fast_dynamic_logits(export, test.codes[i : i + CHUNK], controller) for i in range(0, len(test.codes), CHUNK)
    ]
    logits, ks = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    dynamic = Outcome(
        float((logits.argmax(dim=1) == test.labels).double().mean()),
        float(image_bitops(export, controller, ks).double().mean()),
    )
    per_input, shifts = transitions(ks.numpy(), weights)
    frequent = tuple(int(k) for k in torch.mode(ks, dim=0).values)
    static = {"most frequent": frequent, "knapsack": knapsack(dynamic.cost)}
    rows = {"dynamic": dynamic} | {label: Outcome(test.accuracy(bits), cost(bits)) for label, bits in static.items()}
    candidates = {**ladder, **static}
    costs = np.array([cost(bits) for bits in candidates.values()])
    correct = np.stack([test.run(bits)[0] for bits in candidates.values()], axis=1)
    rows["oracle over the ladder"] = oracle(correct, costs, dynamic.cost)
    routing = {
        signal: best_route(
            signal, export, controller.reads, dynamic.cost, ladder, cost, test, fit, calibration, args.seed
        )
        for signal in SIGNALS
    }
    print(
        f"\ndynamic:{controller.budget:g} ({controller.name}, candidates {list(controller.candidates)}, reads "
        f"{controller.reads}, {len(controller.controls)} controlled layers); mean BitOPs {dynamic.cost / 1e6:.3f}M"
    )
    print(f"{'policy':<44} {'accuracy':>8} {'MBitOPs':>8} {'dynamic -':>9}  bits per layer")

    def line(label: str, row: Outcome, bits: str = "") -> None:
        gap = 100 * (dynamic.accuracy - row.accuracy)
        print(f"{label:<44} {row.accuracy:>8.2%} {row.cost / 1e6:>8.3f} {gap:>+9.2f}  {bits}")

    for label, row in rows.items():
        line(label, row, ",".join(map(str, static[label])) if label in static else "")
    for signal, chosen in routing.items():
        line(f"routed by {signal.replace('read-layer', controller.reads)}", chosen["routed"])
        line("  the same pair mixed at random", chosen["random"])
        gain = 100 * (chosen["routed"].accuracy - chosen["random"].accuracy)
        print(
            f"  pair {chosen['cheap']} -> {chosen['dear']}, {chosen['fraction']:.1%} escalated; routing minus random "
            f"at the same BitOPs {gain:+.2f} points; the pair's oracle {chosen['oracle'].accuracy:.2%}"
        )
    print(
        f"transitions (DQT's accounting, test images in order): {per_input:.2f} layer switches per image, "
        f"{shifts / 1e3:.1f}k bit-shift operations per image ({shifts / max(per_input, 1e-12) / 1e3:.1f}k per "
        f"transition); the engine shifts no weight (a mask and one requantizer shift per column)"
    )
    gaps = [dynamic.accuracy - rows[label].accuracy for label in ("most frequent", "knapsack")]
    print(
        f"dynamic minus its most frequent allocation {100 * gaps[0]:+.2f} points (at "
        f"{rows['most frequent'].cost / dynamic.cost:.3f}x its BitOPs), minus the knapsack's at its BitOPs "
        f"{100 * gaps[1]:+.2f}: target >= +0.50 over both: {'met' if min(gaps) >= 0.005 else 'missed'}"
    )
    return {
        "budget": controller.budget,
        "rows": {label: asdict(row) for label, row in rows.items()},
        "static": {label: list(bits) for label, bits in static.items()},
        "transitions_per_image": per_input,
        "bit_shifts_per_image": shifts,
        "routing": {
            signal: {key: asdict(value) if isinstance(value, Outcome) else value for key, value in chosen.items()}
            for signal, chosen in routing.items()
        },
    }


def best_route(signal, export, reads, budget, ladder, cost, test, fit, calibration, seed) -> dict:
    """Of every ladder pair (cheap, dear) the budget can split, the one whose routing by `signal` scores best
    on the calibration images, with its threshold; scored on the test set, beside the pair mixed at random."""
    best = None
    for cheap_label, cheap_bits in ladder.items():
        for dear_label, dear_bits in ladder.items():
            cheap, dear = signal_costs(signal, export, reads, cost, cheap_bits, dear_bits)
            if not cheap <= budget < dear:
                continue
            score = scorer(signal, reads, cheap_bits, fit, seed)
            scores = score(calibration)
            cut = threshold(scores, escalated_fraction(cheap, dear, budget))
            tried = route(scores, cut, calibration.run(cheap_bits)[0], calibration.run(dear_bits)[0], cheap, dear)
            if best is None or tried.accuracy > best[0].accuracy:
                best = (tried, cheap_label, dear_label, cheap, dear, score, cut)
    if best is None:
        raise InputError(f"no two ladder allocations bracket {budget:g} BitOPs: widen --ladder")
    _, cheap_label, dear_label, cheap, dear, score, cut = best
    cheap_right, dear_right = test.run(ladder[cheap_label])[0], test.run(ladder[dear_label])[0]
    routed = route(score(test), cut, cheap_right, dear_right, cheap, dear)
    on_test = (routed.cost - cheap) / (dear - cheap)  # the threshold's fraction on the test set: equal BitOPs
    return {
        "cheap": cheap_label,
        "dear": dear_label,
        "fraction": on_test,
        "routed": routed,
        "random": mixed_at_random(
            Outcome(float(cheap_right.mean()), cheap), Outcome(float(dear_right.mean()), dear), on_test
        ),
        "oracle": oracle(np.stack([cheap_right, dear_right], axis=1), np.array([cheap, dear]), budget),
    }


def signal_costs(signal, export, reads, cost, cheap_bits, dear_bits) -> tuple[float, float]:
    """BitOPs per image (kept at the cheap allocation, escalated) once the signal is paid for: a cascade's
    escalated image has run the cheap pass too; a probe is one more 8-bit GEMM on the pooled channels of the
    layer `reads` (two per channel with the deviations), and an escalated image whose dear allocation runs
    any layer up to `reads` at another k has run those layers (all of them, counted at the cheap k) once more."""
    cheap, dear = cost(cheap_bits), cost(dear_bits)
    if signal == "cheap-pass margin":
        return cheap, dear + cheap
    names = [layer.name for layer in export.layers]
    upto = names.index(reads) + 1
    probe = export.layers[upto - 1].N * (2 if signal.endswith("stds") else 1) * export.base_bits * export.act_bits
    prefix = [layer.macs * k for layer, k in zip(export.layers[:upto], cheap_bits[:upto], strict=True)]
    again = sum(prefix) * export.act_bits if cheap_bits[:upto] != dear_bits[:upto] else 0
    return cheap + probe, dear + probe + again


def scorer(signal, reads, cheap_bits, fit, seed):
    """images -> difficulty score per image (higher: escalate first) for `signal`, fit on `fit` where it learns.
    The margin's ties (integer logits) are broken by a seeded draw, so a threshold escalates the fraction asked."""
    if signal == "cheap-pass margin":

        def margin(images):
            jitter = np.random.default_rng(seed).random(len(images.labels))
            return -images.run(cheap_bits)[1] + 1e-3 * jitter

        return margin
    with_std = signal.endswith("stds")
    probe = LogisticRegression(max_iter=2000, random_state=seed)
    features = fit.features(cheap_bits, reads, with_std)
    mean, scale = features.mean(axis=0), features.std(axis=0) + 1e-9
    probe.fit((features - mean) / scale, ~fit.run(cheap_bits)[0])
    return lambda images: probe.decision_function((images.features(cheap_bits, reads, with_std) - mean) / scale)


if __name__ == "__main__":
    raise SystemExit(run_main(main))
