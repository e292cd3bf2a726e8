"""The mixed-precision Pareto front of an exported network: uniform k, DQT's static baseline and its dynamic
policy (a run-time controller), on the engine.

A per-layer precision vector is searched greedily by sensitivity (golden.allocation): from k = B in every
layer, each step lowers by one bit the layer that loses the least accuracy per BitOP saved (`--search
greedy` measures every candidate; `additive`, the default, measures each layer alone at each k and steers
the walk by their sum, L*(B-1) measurements instead of about L^2*B/2). The accuracy
that steers the search is measured on the first N *training* images, never on the test set, so the choice
is not fitted to what it is scored on. Every policy is then scored on the test set by sim.network.run_policy:
accuracy through the integer path (golden.fastpath and golden.dynamic, bit-exact with the engine), BitOPs
per image (contract.policy), cycles per inference on the chosen engine (the cycle model's formula, host
adds included) and engine energy; a controller's own GEMM and decision are counted in its point. Uniform
k = B..1 is scored, the best static allocation at each uniform k's BitOPs, each controller of the export
(one per budget), and at each controller's mean BitOPs three static allocations: the front's most accurate
within it, the walk's own step at it (within a step's BitOPs of the budget), and the knapsack's: the allocation
of all B^L within it whose per-layer losses (measured on the search images) sum least, which spends the budget
(golden.allocation.knapsack_allocation; one more measurement per budget). The dynamic points are set
against those and against the uniform k of equal BitOPs. On a digit-serial engine (default D = 1) it also
checks whether cycles per inference are proportional to BitOPs (within 10%), and where the cycles go if not.

Writes build/bench/static_pareto-NAME.{csv,json,png}. Prints figures; asserts nothing.
Usage: python bench/static_pareto.py EXPORT_DIR [--data fashion-mnist] [--search-images 1000]
       [--array 16x16] [--digit-bits 1] [--batch 16]
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless backend)
import torch  # noqa: E402

from contract.cli import Parser, atomic_file, number, run_main  # noqa: E402
from contract.config import EngineConfig, parse_array  # noqa: E402
from contract.datasets import add_data_arguments  # noqa: E402
from contract.model_files import load_export  # noqa: E402
from contract.model_format import Export
from contract.paths import build_dir  # noqa: E402
from contract.policy import Policy, bitops  # noqa: E402
from golden.allocation import additive_front, best_under, greedy_front, knapsack_allocation, pareto_front  # noqa: E402
from golden.data import data_split, input_codes  # noqa: E402
from golden.fastpath import fast_logits  # noqa: E402
from golden.train import one_thread  # noqa: E402
from sim.energy_table import DEFAULT_TABLE  # noqa: E402
from sim.network import run_policy  # noqa: E402

CHUNK = 500  # images per fastpath call: memory only, the results do not depend on it


def accuracy(export: Export, codes: torch.Tensor, labels: torch.Tensor, ks: tuple[int, ...]) -> float:
    correct = 0
    for first in range(0, len(codes), CHUNK):
        logits = fast_logits(export, codes[first : first + CHUNK], ks)
        correct += int((logits.argmax(dim=1) == labels[first : first + CHUNK]).sum())
    return correct / len(codes)


def score(export: Export, cfg: EngineConfig, batch: int, test, policy: Policy) -> dict:
    """One policy on the test set (sim.network.run_policy): accuracy, BitOPs, cycles (engine and host adds)
    and engine energy per inference, the controller's GEMM and decision included under a controller."""
    summary = run_policy(cfg, export, *test, policy.resolve(export), batch)
    return {
        "policy": policy.kind,
        "bits": summary.label,
        "accuracy": summary.accuracy,
        "bitops": summary.bitops_per_inference,
        "cycles": summary.cycles_per_inference + summary.host_cycles_per_inference,
        "engine_cycles": summary.cycles_per_inference,
        "steady_cycles": summary.steady_cycles / summary.images,
        "host_cycles": summary.host_cycles_per_inference,
        "energy_pj": summary.energy_per_inference_pj,
    }


def proportionality(rows: list[dict], cfg: EngineConfig) -> None:
    """The issue's D = 1 check: are mean cycles per inference proportional to mean BitOPs (within 10%)?
    Each point's cycles per BitOP against the most expensive point's, for the engine's cycles (the
    controller's GEMM included) and for those plus the host's (adds, the controller's decision), and where
    the cycles go: steady slots (an activation digit enters the array; of these, the share of PE slots left
    idle by tiles the GEMM does not fill, K % R or N % C, or by digits of ceil(k/D) beyond k/D), per-command
    overhead and the host."""
    reference = max(rows, key=lambda row: row["bitops"])
    print(
        f"cycles against BitOPs on D = {cfg.digit_bits}, per BitOP relative to {reference['policy']} "
        f"{reference['bits']}: engine (controller's GEMM included) and engine + host; steady = engine cycles "
        "that feed the array (idle = PE slots in them that do no MAC bit), overhead = weight load, fill and "
        "drain, requantizer, weight waits; host = host adds and the controller's decision (% of all cycles):"
    )
    print(
        f"{'policy':>8} {'MBitOPs':>8} {'engine':>9} {'ratio':>6} {'+ host':>9} {'ratio':>6} {'steady %':>8} "
        f"{'idle %':>6} {'overhead %':>10} {'host %':>6}  bits"
    )
    worst = {"engine_cycles": 0.0, "cycles": 0.0}
    for row in sorted(rows, key=lambda row: row["bitops"]):
        relative = {}
        for key in worst:
            relative[key] = row[key] / row["bitops"] / (reference[key] / reference["bitops"])
            worst[key] = max(worst[key], abs(relative[key] - 1))
        overhead = row["engine_cycles"] - row["steady_cycles"]
        # A steady slot offers R*C PEs a D-bit digit each; BitOPs / A is the MAC-bits the network needs.
        useful = row["bitops"] / cfg.act_bits / (cfg.pe_count * cfg.digit_bits)
        print(
            f"{row['policy']:>8} {row['bitops'] / 1e6:>8.2f} {row['engine_cycles']:>9.0f} "
            f"{relative['engine_cycles']:>6.3f} {row['cycles']:>9.0f} {relative['cycles']:>6.3f} "
            f"{100 * row['steady_cycles'] / row['cycles']:>8.1f} {100 * (1 - useful / row['steady_cycles']):>6.1f} "
            f"{100 * overhead / row['cycles']:>10.1f} {100 * row['host_cycles'] / row['cycles']:>6.1f}  {row['bits']}"
        )
    for key, name in (("engine_cycles", "engine cycles"), ("cycles", "engine + host cycles")):
        verdict = "within" if worst[key] <= 0.10 else "NOT within"
        print(f"{name} per BitOP vary by at most {100 * worst[key]:.1f}% across the points: {verdict} 10%")


def walk_at(steps, budget: float):
    """The search walk's allocation at `budget`: its most expensive step within it, what a greedy allocator
    outputs for that budget (best_under instead takes the front's most accurate point within the budget,
    which on a noisy search set can lie far below it)."""
    return max((step for step in steps if step.cost <= budget), key=lambda step: step.cost)


def matched(dynamic: list[dict], uniform: list[dict], front, steps, knapsacks: dict, static_row) -> None:
    """Each dynamic point against three static allocations within its BitOPs (the front's best, the walk's
    own at that budget, the knapsack's nearest the budget) and the uniform k nearest in BitOPs (the issue's
    target: at equal BitOPs within 5%, dynamic accuracy >= the best static and >= uniform)."""
    print(
        "dynamic against static (best on the search front; the walk's step at the budget; the knapsack on the "
        "per-layer losses) and uniform k:"
    )
    print(
        f"{'policy':>10} {'accuracy':>8} {'MBitOPs':>8} {'front':>7} {'MBitOPs':>8} {'walk':>7} {'MBitOPs':>8} "
        f"{'knapsack':>8} {'MBitOPs':>8} {'uniform':>7} {'MBitOPs':>8}  verdict"
    )
    for row in dynamic:
        statics = [
            static_row(best_under(front, row["bitops"]).bits),
            static_row(walk_at(steps, row["bitops"]).bits),
            static_row(knapsacks[row["bits"]].bits),
        ]
        near = min(uniform, key=lambda other: abs(other["bitops"] - row["bitops"]))
        equal = abs(near["bitops"] - row["bitops"]) <= 0.05 * row["bitops"]
        beats = all(row["accuracy"] >= other["accuracy"] for other in statics) and (
            not equal or row["accuracy"] >= near["accuracy"]
        )
        print(
            f"{row['bits']:>10} {row['accuracy']:>8.2%} {row['bitops'] / 1e6:>8.2f} "
            + " ".join(f"{other['accuracy']:>7.2%} {other['bitops'] / 1e6:>8.2f}" for other in (*statics, near))
            + f"  {'met' if beats else 'MISSED'}{'' if equal else ' (no uniform k within 5% of its BitOPs)'}"
        )


def main(argv=None) -> None:
    with one_thread():  # the integer path's small tensors: a second thread only adds synchronization
        pareto(argv)


def pareto(argv) -> None:
    parser = Parser(prog="python bench/static_pareto.py", description=__doc__.splitlines()[0])
    parser.add_argument("export", type=Path, help="export directory written by python -m golden.export")
    add_data_arguments(parser, limit_help="score only the first N test images")
    parser.add_argument("--search-images", type=number(int, 1, 60_000), default=1000, help="training images")
    parser.add_argument("--array", default="16x16", help="ROWSxCOLS of the engine")
    parser.add_argument("--digit-bits", type=int, default=1, help="D of the engine (default 1: cycles follow k)")
    parser.add_argument("--search", choices=("additive", "greedy"), default="additive", help="(default additive)")
    parser.add_argument("--batch", type=number(int, 1, 4096), default=16, help="images per engine pass")
    args = parser.parse_args(argv)
    export = load_export(args.export)
    rows, cols = parse_array(args.array)
    cfg = EngineConfig.from_export(export, rows, cols, max_m=1024, digit_bits=args.digit_bits)
    split = data_split(args, export.dataset)
    search = (input_codes(split.train_x[: args.search_images], export.act_bits), split.train_y[: args.search_images])
    test = (input_codes(split.test_x, export.act_bits), split.test_y)
    layers, base = len(export.layers), export.base_bits
    shapes = export.gemm_shapes()

    started = time.monotonic()
    measured = {}

    def search_accuracy(ks: tuple[int, ...]) -> float:
        """Accuracy on the search images, each allocation measured once (the walk and the knapsacks share them)."""
        if ks not in measured:
            measured[ks] = accuracy(export, *search, ks)
        return measured[ks]

    def cost(ks: tuple[int, ...]) -> float:
        return bitops(shapes, ks, export.act_bits)

    walk = additive_front if args.search == "additive" else greedy_front
    steps = walk(layers, base, search_accuracy, cost)
    print(f"{args.search} search: {len(steps)} steps over {layers} layers in {time.monotonic() - started:.0f} s")

    # Only the allocations that matter are scored on the test set (10,000 images each): uniform k, the best
    # static allocation (chosen on the search images) at each uniform k's BitOPs and at each controller's
    # mean BitOPs, and each controller.
    front = pareto_front(steps)
    uniform = [score(export, cfg, args.batch, test, Policy("uniform", (k,))) for k in range(base, 0, -1)]
    scored = {}

    def static_row(bits: tuple[int, ...]) -> dict:
        if bits not in scored:
            scored[bits] = score(export, cfg, args.batch, test, Policy("static", bits))
        return scored[bits]

    beside = {row["bits"]: static_row(best_under(front, row["bitops"]).bits) for row in uniform}
    dynamic = [
        score(export, cfg, args.batch, test, Policy("dynamic", budget=controller.budget))
        for controller in export.controllers
    ]
    knapsacks = {
        row["bits"]: knapsack_allocation(layers, base, search_accuracy, cost, row["bitops"]) for row in dynamic
    }
    for row in dynamic:
        static_row(best_under(front, row["bitops"]).bits)
        static_row(walk_at(steps, row["bitops"]).bits)
        static_row(knapsacks[row["bits"]].bits)
    static = sorted(scored.values(), key=lambda row: row["bitops"])
    print(f"{args.array} engine, D = {args.digit_bits}, {args.batch} images per pass, test images {len(test[1])}")
    print("at the BitOPs of uniform k, the best static allocation (chosen on the search images), on the test set;")
    print(f"cycles per inference: engine and host adds; energy: engine, priced with table {DEFAULT_TABLE.name}")
    header = f"{'policy':>8} {'accuracy':>8} {'MBitOPs':>8} {'cycles':>10} {'nJ':>8}  bits per layer"
    print(header)
    for row in [shown for point in uniform for shown in (point, beside[point["bits"]])] + dynamic:
        print(
            f"{row['policy']:>8} {row['accuracy']:>8.2%} {row['bitops'] / 1e6:>8.2f} "
            f"{row['cycles']:>10.0f} {row['energy_pj'] / 1e3:>8.1f}  {row['bits']}"
        )
    if dynamic:
        matched(dynamic, uniform, front, steps, knapsacks, static_row)
    else:
        print(f"{name_of(args.export)} holds no controller: no dynamic points")
    if cfg.digit_serial:
        proportionality(uniform + dynamic, cfg)

    name = name_of(args.export)
    out = build_dir("bench").resolve()

    def ours(path: Path) -> bool:  # the tables live in this script's own build directory
        return path.resolve().parent == out

    rows = uniform + static + dynamic
    with atomic_file(out / f"static_pareto-{name}.csv", ours) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    settings = {
        "engine": cfg.as_dict(),
        "batch": args.batch,
        "data": args.data,
        "test_images": len(test[1]),
        "energy_table": DEFAULT_TABLE.identity(),
    }
    with atomic_file(out / f"static_pareto-{name}.json", ours) as tmp:
        Path(tmp).write_text(json.dumps(settings | {"points": rows}, indent=2) + "\n")
    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    curves = (
        (uniform, "o-", "uniform k"),
        (static, "s-", "best static (chosen on training images)"),
        (sorted(dynamic, key=lambda row: row["bitops"]), "D-", "dynamic (controller included)"),
    )
    for axis, key, label in ((axes[0], "bitops", "BitOPs per image"), (axes[1], "cycles", "cycles per inference")):
        for rows_, style, policy in curves:
            if rows_:
                axis.plot([r[key] for r in rows_], [100 * r["accuracy"] for r in rows_], style, label=policy)
        axis.set_xlabel(label + (f" (D = {args.digit_bits}, host adds included)" if key == "cycles" else ""))
        axis.set_ylabel("test accuracy %")
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(f"{name}: uniform k, static mixed precision and dynamic precision")
    figure.tight_layout()
    with atomic_file(out / f"static_pareto-{name}.png", ours) as tmp:
        figure.savefig(tmp, format="png", dpi=120)
    plt.close(figure)
    print(f"wrote {out}/static_pareto-{name}.csv, .json and .png")


def name_of(export_dir: Path) -> str:
    return export_dir.resolve().name


if __name__ == "__main__":
    raise SystemExit(run_main(main))
