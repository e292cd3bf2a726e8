"""TruncQuant's truncation table on the digits data: what happens to accuracy when a stored 8-bit model is
run at k bits by keeping the top k bits of each weight code, as the nested engine does.

Rows: a conventional QAT model re-quantized at k (QAT -> Quant, needs a separate model per k) and
truncated (QAT -> Trunc, what a nested engine would do with it), TruncQuant truncated, and the DQT-style
twos-scheme model truncated; the nested models also through the integer-only path (golden.infer), which
is what the hardware computes. Trains what it needs with fixed seeds into build/bench/models (reused
when the stored training settings match), and writes build/bench/truncation_table.{csv,png}.

Usage: python bench/truncation_table.py [--epochs N] [--seed S] [--retrain]
"""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless backend)

from contract.cli import InputError, Parser, atomic_file, run_main
from golden.data import digits_split
from golden.evaluate import float_predictions, format_table, fraction_equal, integer_predictions
from golden.export import build_export
from golden.layers import QuantSpec
from golden.model import DigitsNet, load_checkpoint, save_checkpoint
from golden.train import DEFAULT_EPOCHS, train

REPO = Path(__file__).resolve().parents[1]

PRECISIONS = (8, 6, 4, 3, 2, 1)
OUT = REPO / "build" / "bench"
MODELS = {
    "qat": QuantSpec("qat", "offset"),
    "truncquant": QuantSpec("truncquant", "offset"),
    "dqt_twos": QuantSpec("truncquant", "twos"),
}


def trained_model(name: str, epochs: int, seed: int, retrain: bool) -> DigitsNet:
    """The checkpoint in build/bench/models if it was trained with these settings, else a fresh one."""
    path = OUT / "models" / f"{name}.pt"
    if path.exists() and not retrain:
        try:
            model, record = load_checkpoint(path)
            if model.spec == MODELS[name] and (record.get("epochs"), record.get("seed")) == (epochs, seed):
                print(f"reusing {path.relative_to(REPO)}")
                return model
        except InputError:
            pass  # unreadable or from another version: retrain below
    print(f"training {name} ({epochs} epochs, seed {seed})")
    model = train(MODELS[name], epochs, seed, log=lambda line: print(f"  {line}"))
    save_checkpoint(model, path, {"epochs": epochs, "seed": seed})
    return model


def table_rows(models: dict[str, DigitsNet]) -> list[tuple[str, list[float]]]:
    split = digits_split()

    def float_row(model, view):
        return [fraction_equal(float_predictions(model, split.test_x, k, view), split.test_y) for k in PRECISIONS]

    def integer_row(model):
        export = build_export(model)
        return [fraction_equal(integer_predictions(export, split.test_x, k), split.test_y) for k in PRECISIONS]

    return [
        ("QAT -> Quant", float_row(models["qat"], "quant")),
        ("QAT -> Trunc", float_row(models["qat"], "trunc")),
        ("TruncQuant -> Trunc", float_row(models["truncquant"], "trunc")),
        ("TruncQuant -> Trunc, integer path", integer_row(models["truncquant"])),
        ("DQT twos -> Trunc", float_row(models["dqt_twos"], "trunc")),
        ("DQT twos -> Trunc, integer path", integer_row(models["dqt_twos"])),
    ]


def bench_output(path: Path) -> bool:
    """Whether an existing file may be replaced: the tables live in OUT, this script's own build directory."""
    return path.resolve().parent == OUT


def write_csv(rows, path: Path) -> None:
    with atomic_file(path, bench_output) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["model -> weights", *(f"k={k}" for k in PRECISIONS)])
        writer.writerows([name, *(f"{v * 100:.2f}" for v in values)] for name, values in rows)


def write_plot(rows, path: Path, test_size: int) -> None:
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for name, values in rows:
        style = ":" if "integer" in name else "-"
        axes.plot(PRECISIONS, [v * 100 for v in values], style, marker="o", label=name)
    axes.set(
        xlabel="weight precision k (bits kept of the 8-bit code)",
        ylabel="test accuracy (%)",
        title=f"Truncating stored 8-bit weights, digits ({test_size} test images)",
    )
    axes.invert_xaxis()
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    with atomic_file(path, bench_output) as tmp:
        figure.savefig(tmp, format="png", dpi=120)
    plt.close(figure)


def main(argv: list[str] | None = None) -> None:
    parser = Parser(prog="bench/truncation_table.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--retrain", action="store_true", help="ignore checkpoints in build/bench/models")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")
    models = {name: trained_model(name, args.epochs, args.seed, args.retrain) for name in MODELS}
    rows = table_rows(models)
    test_size = len(digits_split().test_y)
    print(
        f"\ntest accuracy % on digits ({test_size} test images; one image = {100 / test_size:.2f} points), "
        f"B = 8, A = 8, seed {args.seed}, {args.epochs} epochs"
    )
    print(
        format_table(["model -> weights", *(f"k={k}" for k in PRECISIONS)], [[name, *values] for name, values in rows])
    )
    write_csv(rows, OUT / "truncation_table.csv")
    write_plot(rows, OUT / "truncation_table.png", test_size)
    for name in ("truncation_table.csv", "truncation_table.png"):
        print(f"wrote {(OUT / name).relative_to(REPO)}")


if __name__ == "__main__":
    raise SystemExit(run_main(main))
