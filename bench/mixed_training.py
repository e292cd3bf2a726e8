"""Mixed nested training (golden.train --mixed) against plain nested training: does a model trained on random
per-layer mixes lose anything at uniform k, and does it gain on per-layer mixes, the allocations that static
mixed precision and a controller run?

Both checkpoints are scored on the test set through the integer path (golden.fastpath, bit-exact with the
engine) at uniform k = B..1 and at random per-layer allocations, the same ones for both models (seeded):
some with every layer's k drawn from B..1, some from the low range LOW..1 where the choice matters. Train
them with the same recipe, e.g. (Fashion-MNIST ResNet-20, 2 epochs, Adam lr 2e-3 cosine, batch 128):

  python -m golden.train --method truncquant --scheme offset --net resnet20 --data fashion-mnist \
      --epochs 2 --lr 2e-3 --batch-size 128 --mixed --out mixed.pt           (and --sampled 1 for plain.pt)

Writes build/bench/mixed_training.csv. Prints figures; asserts nothing.
Usage: python bench/mixed_training.py MIXED.pt PLAIN.pt [--data fashion-mnist] [--mixes 12] [--low 3] [--seed 0]
"""

from __future__ import annotations

import csv
import time

import torch

from contract.cli import InputError, Parser, atomic_file, number, run_main
from contract.datasets import add_data_arguments
from contract.paths import build_dir
from golden.data import data_split
from golden.evaluate import format_table, fraction_equal, integer_predictions
from golden.export import build_export
from golden.model import load_checkpoint, trained_on
from golden.train import one_thread


def allocations(layers: int, base: int, mixes: int, low: int, seed: int) -> list[tuple[str, tuple[int, ...]]]:
    """(label, k per layer): uniform B..1, then `mixes` random ones from B..1 and `mixes` from low..1."""
    draws = torch.Generator().manual_seed(seed)
    chosen = [(f"uniform {k}", (k,) * layers) for k in range(base, 0, -1)]
    for top in (base, low):
        for index in range(mixes):
            ks = tuple((torch.randint(1, top + 1, (layers,), generator=draws)).tolist())
            chosen.append((f"mix 1..{top} #{index + 1}", ks))
    return chosen


def main(argv=None) -> None:
    parser = Parser(prog="python bench/mixed_training.py", description=__doc__.splitlines()[0])
    parser.add_argument("mixed", help="checkpoint trained with golden.train --mixed")
    parser.add_argument("plain", help="checkpoint trained with plain nested training (the same recipe otherwise)")
    add_data_arguments(parser, limit_help="score only the first N test images")
    parser.add_argument("--mixes", type=number(int, 0, 1000), default=12, help="random allocations per range")
    parser.add_argument("--low", type=number(int, 1, 16), default=3, help="top of the low range (default 3)")
    parser.add_argument("--seed", type=number(int, 0, (1 << 32) - 1), default=0)
    args = parser.parse_args(argv)
    loaded = {name: load_checkpoint(path) for name, path in (("mixed", args.mixed), ("plain", args.plain))}
    exports = {name: build_export(model, dataset=trained_on(record)) for name, (model, record) in loaded.items()}
    layers = {len(export.layers) for export in exports.values()}
    if len(layers) != 1 or len({export.base_bits for export in exports.values()}) != 1:
        raise InputError("the two checkpoints must be the same network")
    split = data_split(args, exports["mixed"].dataset)
    base = exports["mixed"].base_bits
    chosen = allocations(layers.pop(), base, args.mixes, args.low, args.seed)
    started = time.monotonic()
    rows = []
    with one_thread():
        for label, ks in chosen:
            scores = [
                fraction_equal(integer_predictions(exports[name], split.test_x, list(ks)), split.test_y)
                for name in ("mixed", "plain")
            ]
            rows.append([label, *scores, (scores[0] - scores[1]) * 100, ",".join(map(str, ks))])
            print(f"  {label}: mixed {scores[0]:.2%}, plain {scores[1]:.2%}", flush=True)
    print(
        f"\ntest accuracy %, integer path, {args.data}, {len(split.test_y)} test images "
        f"(one image = {100 / len(split.test_y):.3f} points); seed {args.seed}; {time.monotonic() - started:.0f} s"
    )
    header = ["allocation", "mixed", "plain", "mixed - plain (points)", "k per layer"]
    print(format_table(header, [[r[0], r[1], r[2], f"{r[3]:+.2f}", r[4]] for r in rows]))
    for prefix in ("uniform", f"mix 1..{base}", f"mix 1..{args.low}"):
        mine = [r for r in rows if r[0].startswith(prefix + (" " if prefix != "uniform" else ""))]
        if mine:
            mean = [sum(r[i] for r in mine) / len(mine) for i in (1, 2)]
            worst = min(r[3] for r in mine)
            print(
                f"mean over {prefix} ({len(mine)}): mixed {mean[0]:.2%}, plain {mean[1]:.2%}, "
                f"difference {(mean[0] - mean[1]) * 100:+.2f} points (worst {worst:+.2f})"
            )
    out = build_dir("bench").resolve()
    with (
        atomic_file(out / "mixed_training.csv", lambda p: p.resolve().parent == out) as tmp,
        open(tmp, "w", newline="") as handle,
    ):
        writer = csv.writer(handle)
        writer.writerow(["allocation", "mixed", "plain", "k_per_layer"])
        writer.writerows([r[0], f"{r[1]:.4f}", f"{r[2]:.4f}", r[4]] for r in rows)
    print(f"wrote {out}/mixed_training.csv")


if __name__ == "__main__":
    raise SystemExit(run_main(main))
