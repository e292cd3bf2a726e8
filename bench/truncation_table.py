"""TruncQuant's truncation table: what happens to accuracy when a stored 8-bit model is run at k bits by
keeping the top k bits of each weight code, as the nested engine does.

Rows: a conventional QAT model re-quantized at k (QAT -> Quant, needs a separate model per k) and
truncated (QAT -> Trunc, what a nested engine would do with it), TruncQuant truncated, and the DQT-style
twos-scheme model truncated; the nested models also through the integer-only path (golden.infer), which
is what the hardware computes; and the same network trained in float on the same recipe, the baseline.
Trains what it needs with fixed seeds into build/bench/models/DATA-NET (reused when the stored training
settings match), and writes build/bench/truncation_table[-DATA-NET].{csv,png}.

Recipes (the defaults per data set; every flag overrides). Both use golden.train's distillation and warm-up
defaults: each lower precision distilled from the k = 8 pass (T = 1), the learning rate warmed up over the
first 5% of the steps (the float baseline too), then a cosine:
  digits:        digits CNN, 30 epochs, Adam lr 1e-2, batch 64, all precisions every step, no augmentation;
  fashion-mnist: ResNet-20 (stride-2 stem, golden.nets), 1 epoch over the first 30,000 training images (all
                 that a shared, loaded 2-core machine affords in the hour), Adam lr 2e-3 cosine, batch 128, nested
                 models train B = 8 plus one of 7..1 drawn per step (Any-Precision style), then each precision's
                 BatchNorm statistics are re-estimated on 1,024 training images; random crop (pad 1) and
                 horizontal flip.
The quantized models' activations are clamps at golden.train's --act-bound default for the net (4 for the
ResNet-20, golden.nets); the float baseline keeps plain, unbounded ReLUs.

Usage: python bench/truncation_table.py [--data digits|fashion-mnist] [--net digits|resnet20] [--epochs N]
       [--teacher top|previous|none] [--temperature T] [--warmup F] [--seed S] [--retrain] [--only MODELS]
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

from contract.cli import InputError, Parser, atomic_file, number, run_main  # noqa: E402
from contract.datasets import add_data_arguments  # noqa: E402
from golden.data import Split, data_split  # noqa: E402
from golden.distillation import (  # noqa: E402
    DEFAULT_TEACHER,
    DEFAULT_TEMPERATURE,
    TEACHERS,
    TEMPERATURE_RANGE,
    Distillation,
)
from golden.evaluate import CHUNK, float_predictions, format_table, fraction_equal, integer_predictions  # noqa: E402
from golden.export import build_export  # noqa: E402
from golden.layers import WEIGHT_VIEWS, QuantSpec  # noqa: E402
from golden.model import load_checkpoint, save_checkpoint  # noqa: E402
from golden.nets import NETS, RESIDUAL_BN_INIT, float_net  # noqa: E402
from golden.train import (  # noqa: E402
    CALIBRATION_IMAGES,
    DEFAULT_ACT_BOUNDS,
    DEFAULT_WARMUP,
    one_thread,
    train,
    train_float,
)

REPO = Path(__file__).resolve().parents[1]

PRECISIONS = (8, 7, 6, 5, 4, 3, 2, 1)
OUT = REPO / "build" / "bench"
MODELS = {
    "qat": QuantSpec("qat", "offset"),
    "truncquant": QuantSpec("truncquant", "offset"),
    "dqt_twos": QuantSpec("truncquant", "twos"),
}
#: How nested models' lower precisions learn and the warm-up, as golden.train's defaults (its --teacher,
#: --temperature and --warmup; the warm-up applies to the float baseline too).
DISTILLATION = {"teacher": DEFAULT_TEACHER, "temperature": DEFAULT_TEMPERATURE, "warmup": DEFAULT_WARMUP}
RECIPES = {
    "digits": {
        "net": "digits",
        "epochs": 30,
        "lr": 1e-2,
        "batch_size": 64,
        "sampled": None,
        "train_images": None,
        **DISTILLATION,
    },
    "fashion-mnist": {
        "net": "resnet20",
        "epochs": 1,
        "lr": 2e-3,
        "batch_size": 128,
        "sampled": 1,
        "train_images": 30_000,
        "residual_bn_init": RESIDUAL_BN_INIT,  # part of the net (golden.nets): a change must not reuse old models
        "calibration_images": CALIBRATION_IMAGES,  # golden.train re-estimates sampled models' per-k BatchNorms
        **DISTILLATION,
    },
}


def recipe(args) -> dict:
    chosen = dict(RECIPES[args.data])
    for key in chosen:
        if getattr(args, key, None) is not None:
            chosen[key] = getattr(args, key)
    return chosen | {
        "seed": args.seed,
        "data": args.data,
        "limit": args.limit,
        "augmentation": args.data != "digits",
        "act_bound": DEFAULT_ACT_BOUNDS.get(chosen["net"]),
    }


def trained_model(name: str, settings: dict, split, retrain: bool, models: Path):
    """The checkpoint in `models` if it was trained with these settings, else a fresh one."""
    path = models / f"{name}.pt"
    if path.exists() and not retrain:
        try:
            model, record = load_checkpoint(path)
            if model.spec == MODELS[name] and record == settings:
                print(f"reusing {path.relative_to(REPO)}")
                return model
        except InputError:
            pass  # unreadable or from another version: retrain below
    print(f"training {name} ({settings})", flush=True)
    model = train(
        MODELS[name],
        settings["epochs"],
        settings["seed"],
        settings["lr"],
        settings["batch_size"],
        lambda line: print(f"  {line}", flush=True),
        net=settings["net"],
        split=split,
        sampled=settings["sampled"] if MODELS[name].method == "truncquant" else None,
        augmentation=settings["augmentation"],
        distillation=Distillation(settings["teacher"], settings["temperature"]),
        warmup=settings["warmup"],
        act_bound=settings["act_bound"],
    )
    save_checkpoint(model, path, settings)
    return model


def float_settings(settings: dict) -> dict:
    """The settings a float baseline depends on: not the nested models' distillation nor their activation bound
    (the float baseline's ReLUs are unbounded), so that comparing them reuses one float model."""
    return {key: value for key, value in settings.items() if key not in ("teacher", "temperature", "act_bound")}


def float_baseline(settings: dict, split, retrain: bool, models: Path) -> torch.nn.Module:
    settings = float_settings(settings)
    path = models / "float.pt"
    if path.exists() and not retrain:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if payload.get("settings") == settings:
            print(f"reusing {path.relative_to(REPO)}")
            model = float_net(settings["net"], tuple(split.train_x.shape[1:]))
            model.load_state_dict(payload["state_dict"])
            return model.eval()
    print(f"training float ({settings})", flush=True)
    model = train_float(
        settings["net"],
        split,
        settings["epochs"],
        settings["seed"],
        settings["lr"],
        settings["batch_size"],
        settings["augmentation"],
        lambda line: print(f"  {line}", flush=True),
        settings["warmup"],
    )
    with atomic_file(path, lambda p: p.resolve().parent == models.resolve()) as tmp:
        torch.save({"settings": settings, "state_dict": model.state_dict()}, tmp)
    return model


LABELS = {
    "float": ("Float (same net and recipe)",),
    "qat": ("QAT -> Quant", "QAT -> Trunc"),
    "truncquant": ("TruncQuant -> Trunc", "TruncQuant -> Trunc, integer path"),
    "dqt_twos": ("DQT twos -> Trunc", "DQT twos -> Trunc, integer path"),
}


def model_scores(name: str, model, split) -> dict:
    """One model's table rows {label: accuracy per k} and, for the nested models, the integer path's
    prediction agreement with the fake-quant model per k."""
    if name == "float":
        with torch.no_grad():
            x = split.test_x
            predictions = torch.cat([model(x[first : first + CHUNK]).argmax(1) for first in range(0, len(x), CHUNK)])
        return {"rows": {LABELS[name][0]: [fraction_equal(predictions, split.test_y)] * len(PRECISIONS)}}

    def accuracy(predictions):
        return [fraction_equal(p, split.test_y) for p in predictions]

    if name == "qat":
        quant, trunc = (
            [float_predictions(model, split.test_x, k, view) for k in PRECISIONS] for view in WEIGHT_VIEWS[::-1]
        )
        return {"rows": dict(zip(LABELS[name], (accuracy(quant), accuracy(trunc)), strict=True))}
    floats = [float_predictions(model, split.test_x, k) for k in PRECISIONS]
    export = build_export(model)
    ints = [integer_predictions(export, split.test_x, k) for k in PRECISIONS]
    agreement = [fraction_equal(a, b) for a, b in zip(ints, floats, strict=True)]
    return {"rows": dict(zip(LABELS[name], (accuracy(floats), accuracy(ints)), strict=True)), "agreement": agreement}


def scores(name: str, model, split, settings: dict, models: Path) -> dict:
    """model_scores, cached next to the checkpoint for these settings and test images."""
    path = models / f"{name}.scores.json"
    key = {"settings": float_settings(settings) if name == "float" else settings, "test_images": len(split.test_y)}
    if path.exists():
        cached = json.loads(path.read_text())
        if cached.get("key") == key:
            print(f"reusing {path.relative_to(REPO)}")
            return cached
    print(f"scoring {name} on {len(split.test_y)} test images", flush=True)
    with one_thread():
        result = {"key": key} | model_scores(name, model, split)
    with atomic_file(path, lambda p: p.resolve().parent == models.resolve()) as tmp:
        Path(tmp).write_text(json.dumps(result) + "\n")
    return result


def bench_output(path: Path) -> bool:
    """Whether an existing file may be replaced: the tables live in OUT, this script's own build directory."""
    return path.resolve().parent == OUT


def write_csv(rows, path: Path) -> None:
    with atomic_file(path, bench_output) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["model -> weights", *(f"k={k}" for k in PRECISIONS)])
        writer.writerows([name, *(f"{v * 100:.2f}" for v in values)] for name, values in rows)


def write_plot(rows, path: Path, title: str) -> None:
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for name, values in rows:
        style = "--" if name.startswith("Float") else ":" if "integer" in name else "-"
        axes.plot(PRECISIONS, [v * 100 for v in values], style, marker="o", label=name)
    axes.set(xlabel="weight precision k (bits kept of the 8-bit code)", ylabel="test accuracy (%)", title=title)
    axes.invert_xaxis()
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    with atomic_file(path, bench_output) as tmp:
        figure.savefig(tmp, format="png", dpi=120)
    plt.close(figure)


def main(argv: list[str] | None = None) -> None:
    parser = Parser(prog="bench/truncation_table.py", description=__doc__.split("\n\n")[0])
    add_data_arguments(parser, reads_model=False, datasets=tuple(RECIPES))  # a recipe per data set
    parser.add_argument("--net", choices=NETS, help="network (default: the data set's recipe)")
    by_recipe = "(default: the data set's recipe)"
    parser.add_argument("--epochs", type=number(int, 1, 1000), help=f"1..1000 {by_recipe}")
    parser.add_argument("--lr", type=number(float, 0, 1, above=True), help=f"(0, 1] {by_recipe}")
    parser.add_argument("--batch-size", type=number(int, 1, 1 << 16), help=f"1..65536 {by_recipe}")
    parser.add_argument(
        "--sampled", type=number(int, 1, 15), help=f"lower precisions drawn per nested step {by_recipe}"
    )
    parser.add_argument(
        "--train-images", type=number(int, 1, 1 << 30), help=f"train on the first N training images {by_recipe}"
    )
    parser.add_argument("--teacher", choices=TEACHERS, help=f"nested models' distillation teacher {by_recipe}")
    lo, hi = TEMPERATURE_RANGE
    parser.add_argument("--temperature", type=number(float, lo, hi), help=f"[{lo:g}, {hi:g}] {by_recipe}")
    parser.add_argument("--warmup", type=number(float, 0, 1), help=f"warm-up fraction of all steps [0, 1] {by_recipe}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--retrain", action="store_true", help="ignore checkpoints in build/bench/models")
    parser.add_argument(
        "--score-images", type=number(int, 1, 1 << 30), help="score on the first N test images (default: all)"
    )
    parser.add_argument(
        "--only",
        help="comma-separated models to train and score (or reuse) without writing the table, e.g. to run them in "
        f"parallel processes: float,{','.join(MODELS)} (default: all, and the table)",
    )
    args = parser.parse_args(argv)
    split = data_split(args)
    settings = recipe(args)
    if settings["train_images"] is not None:
        kept = settings["train_images"]
        split = Split(split.train_x[:kept], split.train_y[:kept], split.test_x, split.test_y)
    suffix = "" if (args.data, settings["net"]) == ("digits", "digits") else f"-{args.data}-{settings['net']}"
    models_dir = OUT / "models" / f"{args.data}-{settings['net']}"
    models_dir.mkdir(parents=True, exist_ok=True)
    if args.score_images is not None:
        test = slice(0, args.score_images)
        split = Split(split.train_x, split.train_y, split.test_x[test], split.test_y[test])
    started = time.perf_counter()
    names = ["float", *MODELS] if args.only is None else args.only.split(",")
    unknown = sorted(set(names) - set(LABELS))
    if unknown:
        raise InputError(f"--only: unknown model {unknown[0]!r}; expected float or one of {', '.join(MODELS)}")
    results = {}
    for name in names:
        if name == "float":
            model = float_baseline(settings, split, args.retrain, models_dir)
        else:
            model = trained_model(name, settings, split, args.retrain, models_dir)
        results[name] = scores(name, model, split, settings, models_dir)
    print(f"trained and scored {', '.join(names)} in {time.perf_counter() - started:.0f} s", flush=True)
    if args.only is not None:
        scored = [[label, *results[name]["rows"][label]] for name in names for label in LABELS[name]]
        print(format_table(["model -> weights", *(f"k={k}" for k in PRECISIONS)], scored))
        return
    rows = [(label, results[name]["rows"][label]) for name in LABELS for label in LABELS[name]]
    agreement = [
        f"{name}: "
        + ", ".join(f"k={k} {a * 100:.2f}%" for k, a in zip(PRECISIONS, results[name]["agreement"], strict=True))
        for name in ("truncquant", "dqt_twos")
    ]
    test_size = len(split.test_y)
    print(
        f"\ntest accuracy % on {args.data} ({test_size} test images; one image = {100 / test_size:.3f} points), "
        f"B = 8, A = 8, recipe {settings}"
    )
    print(
        format_table(["model -> weights", *(f"k={k}" for k in PRECISIONS)], [[name, *values] for name, values in rows])
    )
    print("integer path == fake-quant predictions:\n  " + "\n  ".join(agreement))
    write_csv(rows, OUT / f"truncation_table{suffix}.csv")
    title = f"Truncating stored 8-bit weights, {settings['net']} on {args.data} ({test_size} test images)"
    write_plot(rows, OUT / f"truncation_table{suffix}.png", title)
    for name in (f"truncation_table{suffix}.csv", f"truncation_table{suffix}.png"):
        print(f"wrote {(OUT / name).relative_to(REPO)}")
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    raise SystemExit(run_main(main))
