"""An export's controllers on the golden integer path: test accuracy, mean BitOPs against the budget, and the
k each controlled layer gets, beside uniform k of the same backbone at the neighbouring BitOPs.

Each controller's per-layer majority k is also scored as a static allocation (no controller, no per-image
choice): what the per-image choice adds beyond the per-layer allocation the controller learned.

The engine-side figures (cycles, energy, the Pareto plot against the best static allocation) come from
`sim.run --policy dynamic`; this is the quick golden view that golden.train_controller's choices are judged by.
The best static allocation at a uniform k's BitOPs comes from bench/static_pareto.py on the same export.

Prints figures; asserts nothing.
Usage: python bench/dynamic_golden.py EXPORT_DIR [--data fashion-mnist] [--limit N]
"""

from __future__ import annotations

import math
import time

from contract.cli import Parser, run_main
from contract.datasets import add_data_arguments
from contract.model_files import load_export
from golden.data import data_split
from golden.dynamic import budget_bitops
from golden.evaluate import fraction_equal, integer_predictions
from golden.train import one_thread
from golden.train_controller import score


def main(argv=None) -> None:
    parser = Parser(prog="python bench/dynamic_golden.py", description=__doc__.splitlines()[0])
    parser.add_argument("export", help="export directory with controllers (golden.train_controller --export)")
    add_data_arguments(parser, limit_help="score only the first N test images")
    args = parser.parse_args(argv)
    export = load_export(args.export)
    export.controller(export.controllers[0].budget if export.controllers else None)  # none: the one-line error
    split = data_split(args, export.dataset)
    started = time.monotonic()
    print(
        f"{args.export}: {len(split.test_y)} test images, integer path "
        f"(one image = {100 / len(split.test_y):.3f} points)"
    )
    with one_thread():
        uniform = {}
        for controller in export.controllers:
            for k in {math.floor(controller.budget), math.ceil(controller.budget)}:
                if k not in uniform:
                    uniform[k] = fraction_equal(integer_predictions(export, split.test_x, k), split.test_y)
            result = score(export, split, controller.budget)
            neighbours = ", ".join(
                f"uniform {k}: {uniform[k]:.2%}" for k in sorted(uniform) if abs(k - controller.budget) < 1
            )
            print(
                f"\ndynamic:{controller.budget:g} ({controller.name}, candidates {list(controller.candidates)}, "
                f"controller k = {controller.k}): accuracy {result['accuracy']:.2%}, mean BitOPs "
                f"{result['bitops'] / 1e6:.2f}M = {result['bitops_ratio']:.3f} x budget; {neighbours}"
            )
            majority = result["majority"]
            static = fraction_equal(integer_predictions(export, split.test_x, majority), split.test_y)
            cost = sum(layer.macs * k for layer, k in zip(export.layers, majority, strict=True)) * export.act_bits
            print(
                f"  its per-layer majority as a static allocation: accuracy {static:.2%}, BitOPs {cost / 1e6:.2f}M = "
                f"{cost / budget_bitops(export, controller.budget):.3f} x budget; {','.join(map(str, majority))}"
            )
            width = max(len(name) for name in controller.controls)
            print(
                f"  {'layer':<{width}}  " + "  ".join(f"{'k=' + str(k):>6}" for k in controller.candidates) + "  mean k"
            )
            for name, shares in result["distribution"].items():
                mean = sum(k * share for k, share in shares.items())
                print(
                    f"  {name:<{width}}  " + "  ".join(f"{share:6.1%}" for share in shares.values()) + f"  {mean:.2f}"
                )
    print(f"\n{time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    raise SystemExit(run_main(main))
