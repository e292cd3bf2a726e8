"""Where 8-bit QAT loses against float on the Fashion-MNIST ResNet-20 (issue 26): train it with one part of the
quantization at a time switched off and print each variant's test accuracy at k = 8.

The variants (--variants, comma-separated; default all):
  float            the float network (golden.train.train_float), unbounded ReLUs
  qat              8-bit QAT as golden.train ran it before issue 26: every ReLU a clamp at 1, 8-bit codes
  float-weights    qat with the weights left in float (activations still clamped at 1 and rounded)
  unrounded        qat with the activations clamped at 1 but not rounded to codes
  unclamped        qat with plain ReLU activations, neither clamped nor rounded (8-bit weights)
  float-unclamped  both: the float network run through the quantized model's code (a check of the harness)
  clamp4           qat with the activations clamped at 4 and rounded on the grid 4/255 (the fake-quant's
                   functions replaced, so the model's parameters are those of the unbounded net)
  bound4           qat of the ResNet-20 whose activations are clamps at 4 (golden.train --act-bound 4): the
                   converter folds the bound into the parameters, and the engine's numerics are unchanged
Variants other than float, qat and bound4 replace fake-quant functions for the run (no engine computes them):
they only say which part of the quantizer costs accuracy. Same recipe for all: Adam, warm-up and cosine, batch
128, random crops and flips, seed 0.

Usage: PYTHONPATH=. python bench/qat_gap.py [--variants V,...] [--epochs 2] [--train-images 30000]
       [--score-images N] [--lr 2e-3] [--seed 0]
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

import torch

import golden.layers
import golden.model
from contract.cli import InputError, Parser, number, run_main
from golden import quant
from golden.data import Split, load_split
from golden.evaluate import fraction_equal
from golden.layers import QuantSpec
from golden.train import held_out_accuracy, one_thread, train, train_float

INPUT_CHANNELS = 1  # Fashion-MNIST: the only tensor with one channel is the image, whose codes stay unit 1


def _clamped_at(bound: float) -> Callable:
    def activation(x, act_bits):
        if x.shape[1] == INPUT_CHANNELS:
            return quant.quantize_activation(x, act_bits)
        return bound * quant.quantize_activation(x / bound, act_bits)

    return activation


#: What each patched variant replaces: (module, attribute) -> replacement.
PATCHES = {
    "float-weights": {(golden.layers, "qat_weight"): lambda weight, bits: weight},
    "unrounded": {
        (golden.model, "quantize_activation"): lambda x, act_bits: torch.clamp(x, 0, 1),
        (golden.model, "grid_activation"): lambda x, act_bits: x,
    },
    "unclamped": {
        (golden.model, "quantize_activation"): lambda x, act_bits: torch.relu(x),
        (golden.model, "grid_activation"): lambda x, act_bits: x,
    },
    "clamp4": {
        (golden.model, "quantize_activation"): _clamped_at(4.0),
        (golden.model, "grid_activation"): lambda x, act_bits: 4.0 * quant.grid_activation(x / 4.0, act_bits),
    },
}
PATCHES["float-unclamped"] = PATCHES["float-weights"] | PATCHES["unclamped"]
VARIANTS = ("float", "qat", *PATCHES, "bound4")


@contextlib.contextmanager
def patched(replacements: dict):
    saved = {key: getattr(*key) for key in replacements}
    for (module, name), value in replacements.items():
        setattr(module, name, value)
    try:
        yield
    finally:
        for (module, name), value in saved.items():
            setattr(module, name, value)


def accuracy(variant: str, split: Split, epochs: int, lr: float, seed: int) -> float:
    """Test accuracy at k = 8 of `variant` trained on `split` (module docstring)."""
    quiet = lambda line: print(f"  {variant}: {line}", flush=True)  # noqa: E731
    if variant == "float":
        model = train_float("resnet20", split, epochs, seed, lr, 128, True, quiet)
        with one_thread(), torch.no_grad():
            return fraction_equal(model(split.test_x).argmax(1), split.test_y)
    with patched(PATCHES.get(variant, {})):
        model = train(
            QuantSpec("qat", "offset"),
            epochs,
            seed,
            lr,
            128,
            quiet,
            net="resnet20",
            split=split,
            augmentation=True,
            act_bound=4.0 if variant == "bound4" else None,
        )
        with one_thread():
            return held_out_accuracy(model, split, 8, limit=len(split.test_y))


def main(argv: list[str] | None = None) -> None:
    parser = Parser(prog="bench/qat_gap.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}")
    parser.add_argument("--epochs", type=number(int, 1, 1000), default=2, help="1..1000 (default 2)")
    parser.add_argument(
        "--train-images", type=number(int, 1, 60_000), default=30_000, help="the first N training images"
    )
    parser.add_argument("--score-images", type=number(int, 1, 10_000), help="the first N test images (default all)")
    parser.add_argument("--lr", type=number(float, 0, 1, above=True), default=2e-3, help="Adam's peak rate")
    parser.add_argument("--seed", type=number(int, 0, (1 << 32) - 1), default=0)
    args = parser.parse_args(argv)
    variants = args.variants.split(",")
    unknown = [name for name in variants if name not in VARIANTS]
    if unknown:
        raise InputError(f"--variants: unknown {unknown[0]!r}; expected some of {', '.join(VARIANTS)}")
    whole = load_split("fashion-mnist")
    test = slice(0, args.score_images)
    split = Split(
        whole.train_x[: args.train_images], whole.train_y[: args.train_images], whole.test_x[test], whole.test_y[test]
    )
    print(
        f"ResNet-20, Fashion-MNIST, {args.epochs} epochs on {len(split.train_y)} training images, "
        f"scored on {len(split.test_y)} test images"
    )
    for variant in variants:
        started = time.perf_counter()
        score = accuracy(variant, split, args.epochs, args.lr, args.seed)
        print(f"{variant:16s} k = 8: {score * 100:.2f}% ({time.perf_counter() - started:.0f} s)", flush=True)


if __name__ == "__main__":
    raise SystemExit(run_main(main))
