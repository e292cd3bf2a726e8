"""The static mixed-precision Pareto front of an exported network: DQT's static baseline, on the engine.

A per-layer precision vector is searched greedily by sensitivity (golden.allocation): from k = B in every
layer, each step lowers by one bit the layer that loses the least accuracy per BitOP saved (`--search
greedy` measures every candidate; `additive`, the default, measures each layer alone at each k and steers
the walk by their sum, L*(B-1) measurements instead of about L^2*B/2). The accuracy
that steers the search is measured on the first N *training* images, never on the test set, so the choice
is not fitted to what it is scored on; every step's allocation is then scored on the test set through the
integer path (golden.fastpath, bit-exact with the engine), with its BitOPs per image (contract.policy),
engine cycles per inference on the chosen engine (the cycle model's formula, sim.network.pass_cost) and
energy. Uniform k = B..1 is scored the same way, and for budgets equal to uniform k's BitOPs the best
static allocation is set beside uniform k.

Writes build/bench/static_pareto-NAME.{csv,png}. Prints figures; asserts nothing.
Usage: python bench/static_pareto.py EXPORT_DIR [--data fashion-mnist] [--search-images 1000]
       [--array 16x16] [--digit-bits 1] [--batch 16]
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless backend)
import torch  # noqa: E402

from contract.cli import Parser, atomic_file, number, run_main  # noqa: E402
from contract.config import EngineConfig, parse_array  # noqa: E402
from contract.datasets import add_data_arguments  # noqa: E402
from contract.paths import build_dir  # noqa: E402
from contract.policy import bitops  # noqa: E402
from golden.allocation import additive_front, best_under, greedy_front, pareto_front  # noqa: E402
from golden.data import data_split, input_codes  # noqa: E402
from golden.export import Export, load_export  # noqa: E402
from golden.fastpath import fast_logits  # noqa: E402
from sim.network import engine_config_for, layer_shapes, pass_cost  # noqa: E402

CHUNK = 500  # images per fastpath call: memory only, the results do not depend on it


def accuracy(export: Export, codes: torch.Tensor, labels: torch.Tensor, ks: tuple[int, ...]) -> float:
    correct = 0
    for first in range(0, len(codes), CHUNK):
        logits = fast_logits(export, codes[first : first + CHUNK], ks)
        correct += int((logits.argmax(dim=1) == labels[first : first + CHUNK]).sum())
    return correct / len(codes)


def score(export: Export, cfg: EngineConfig, batch: int, test, ks: tuple[int, ...]) -> dict:
    """One allocation on the test set: accuracy, BitOPs, engine cycles and energy per inference."""
    cost = pass_cost(cfg, export, batch, ks)
    return {
        "bits": ",".join(map(str, ks)),
        "accuracy": accuracy(export, *test, ks),
        "bitops": bitops(layer_shapes(export, 1), ks, export.act_bits),
        "cycles": (cost.cycles + cost.host.cycles) / batch,
        "energy_pj": cost.energy.total / batch,
    }


def main(argv=None) -> None:
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
    cfg = engine_config_for(export, rows, cols, max_m=1024, digit_bits=args.digit_bits)
    split = data_split(args)
    search = (input_codes(split.train_x[: args.search_images], export.act_bits), split.train_y[: args.search_images])
    test = (input_codes(split.test_x, export.act_bits), split.test_y)
    layers, base = len(export.layers), export.base_bits
    shapes = layer_shapes(export, 1)

    started = time.monotonic()
    walk = additive_front if args.search == "additive" else greedy_front
    steps = walk(
        layers,
        base,
        lambda ks: accuracy(export, *search, ks),
        lambda ks: bitops(shapes, ks, export.act_bits),
    )
    print(f"{args.search} search: {len(steps)} steps over {layers} layers in {time.monotonic() - started:.0f} s")

    # Only the allocations that matter are scored on the test set (10,000 images each): uniform k, and the
    # best static allocation (chosen on the search images) at each uniform k's BitOPs.
    front = pareto_front(steps)
    uniform = [score(export, cfg, args.batch, test, (k,) * layers) | {"policy": "uniform"} for k in range(base, 0, -1)]
    chosen = {row["bits"]: best_under(front, row["bitops"]) for row in uniform}
    scored = {
        point.bits: score(export, cfg, args.batch, test, point.bits) | {"policy": "static"}
        for point in {point.bits: point for point in chosen.values()}.values()
    }
    static = sorted(scored.values(), key=lambda row: row["bitops"])
    print(f"{args.array} engine, D = {args.digit_bits}, {args.batch} images per pass, test images {len(test[1])}")
    print("at the BitOPs of uniform k, the best static allocation (chosen on the search images), on the test set:")
    print(f"{'policy':>8} {'accuracy':>8} {'MBitOPs':>8} {'cycles':>10} {'nJ':>8}  bits per layer")
    for row in uniform:
        for shown in (row, scored[chosen[row["bits"]].bits]):
            print(
                f"{shown['policy']:>8} {shown['accuracy']:>8.2%} {shown['bitops'] / 1e6:>8.2f} "
                f"{shown['cycles']:>10.0f} {shown['energy_pj'] / 1e3:>8.1f}  {shown['bits']}"
            )

    name = args.export.name
    out = build_dir("bench").resolve()

    def ours(path: Path) -> bool:  # the tables live in this script's own build directory
        return path.resolve().parent == out

    with atomic_file(out / f"static_pareto-{name}.csv", ours) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["policy", "bits", "accuracy", "bitops", "cycles", "energy_pj"])
        writer.writeheader()
        writer.writerows(uniform + static)
    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    for axis, key, label in ((axes[0], "bitops", "BitOPs per image"), (axes[1], "cycles", "cycles per inference")):
        for rows_, style, policy in ((uniform, "o-", "uniform k"), (static, "s-", "best static at uniform k's BitOPs")):
            axis.plot([r[key] for r in rows_], [100 * r["accuracy"] for r in rows_], style, label=policy)
        axis.set_xlabel(label + (f" (D = {args.digit_bits})" if key == "cycles" else ""))
        axis.set_ylabel("test accuracy %")
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(f"{name}: static mixed precision against uniform k")
    figure.tight_layout()
    with atomic_file(out / f"static_pareto-{name}.png", ours) as tmp:
        figure.savefig(tmp, format="png", dpi=120)
    plt.close(figure)
    print(f"wrote {out}/static_pareto-{name}.csv and .png")


if __name__ == "__main__":
    raise SystemExit(run_main(main))
