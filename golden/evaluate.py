"""Accuracy per weight precision k of the float fake-quant model and of the integer path, side by side.

`python -m golden.evaluate MODEL.pt` derives the export in memory (exactly what golden.export writes)
and prints both columns and their prediction agreement; `python -m golden.evaluate EXPORT_DIR` has no
float model, so it prints the integer column only.
"""

from __future__ import annotations

from pathlib import Path

import torch

from contract.cli import Parser, parse_bits, run_main
from contract.datasets import add_data_arguments
from contract.model_files import load_export
from contract.model_format import Export
from contract.policy import Policy, parse_policy
from contract.progress import tracked
from golden.data import data_split, input_codes
from golden.export import build_export
from golden.fastpath import fast_logits
from golden.layers import WEIGHT_VIEWS
from golden.model import QuantNet, load_checkpoint, trained_on

#: Images per chunk: bounds memory (a ResNet's im2col of 10,000 images would need gigabytes) at full speed.
CHUNK = 500


def float_predictions(model: QuantNet, images: torch.Tensor, k, view: str = "trunc") -> torch.Tensor:
    """The fake-quant model's predictions at k (one k, or one per layer)."""
    model.eval()
    model.set_precision(k, view)
    with torch.no_grad():
        return torch.cat([model(images[first : first + CHUNK]).argmax(dim=1) for first in range(0, len(images), CHUNK)])


def integer_predictions(export: Export, images: torch.Tensor, k) -> torch.Tensor:
    """The integer path's predictions at k (one k, or one per GEMM layer), batched (golden.fastpath)."""
    codes = input_codes(images, export.act_bits)
    return torch.cat(
        [fast_logits(export, codes[first : first + CHUNK], k).argmax(dim=1) for first in range(0, len(codes), CHUNK)]
    )


def fraction_equal(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a == b).double().mean())


def format_table(header: list[str], rows: list[list]) -> str:
    """Right-aligned plain-text table; floats are shown as percentages with one decimal."""
    cells = [header] + [[f"{v * 100:.1f}" if isinstance(v, float) else str(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells)


def main(argv: list[str] | None = None) -> None:
    parser = Parser(
        prog="python -m golden.evaluate",
        description="Test-set accuracy (%) per weight precision k. Given a checkpoint (.pt): the "
        "float fake-quant model, the integer path of its export (derived in memory) and "
        "their prediction agreement. Given an export directory: the integer path only.",
    )
    parser.add_argument("model", help="checkpoint (.pt) from golden.train, or export directory from golden.export")
    precision = parser.add_mutually_exclusive_group()
    precision.add_argument("--bits", help="comma-separated weight precisions, e.g. 8,6,4,3,2,1 (default: B..1)")
    precision.add_argument(
        "--bits-per-layer",
        action="append",
        metavar="K1,K2,...",
        help="one weight precision per GEMM layer in execution order (a static mixed-precision allocation); "
        "repeat for several (default: uniform precisions, --bits)",
    )
    parser.add_argument(
        "--view",
        choices=WEIGHT_VIEWS,
        default="trunc",
        help="float model's k-bit weights: truncated base code (default; what the engine "
        "runs) or re-quantized at k (differs only for QAT offset models; the integer "
        "path always truncates, so agreement is meaningful for 'trunc' only)",
    )
    add_data_arguments(parser)
    args = parser.parse_args(argv)
    model = None
    if Path(args.model).is_dir():
        export = load_export(args.model)
    else:
        model, training = load_checkpoint(args.model)
        export = build_export(model, dataset=trained_on(training))
    split = data_split(args, export.dataset)
    if args.bits_per_layer:
        chosen = [parse_policy(f"static:{v}", export.base_bits) for v in args.bits_per_layer]
    else:
        bits = list(range(export.base_bits, 0, -1)) if args.bits is None else parse_bits(args.bits, export.base_bits)
        chosen = [Policy("uniform", (k,)) for k in bits]
    rows = []
    resolved = [policy.resolve(export) for policy in chosen]  # every vector checked before any runs
    for policy in tracked(resolved, f"evaluating {len(split.test_y)} images", len(resolved), "precisions"):
        label, k = policy.label, policy.ks
        ints = integer_predictions(export, split.test_x, k)
        if model is None:
            rows.append([label, fraction_equal(ints, split.test_y)])
        else:
            floats = float_predictions(model, split.test_x, k, args.view)
            rows.append(
                [
                    label,
                    fraction_equal(floats, split.test_y),
                    fraction_equal(ints, split.test_y),
                    fraction_equal(floats, ints),
                ]
            )
    header = ["k", "integer"] if model is None else ["k", f"float ({args.view})", "integer", "agreement"]
    print(
        f"{args.model}: {export.method}/{export.scheme}, B = {export.base_bits}, A = {export.act_bits}, "
        f"{args.data}, {len(split.test_y)} test images, accuracy %"
    )
    print(format_table(header, rows))


if __name__ == "__main__":
    raise SystemExit(run_main(main))
