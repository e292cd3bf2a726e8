"""Train a model: `python -m golden.train --method truncquant|qat --scheme offset|twos --out X.pt`.

Nested training (method truncquant; on the twos scheme this is DQT-style) optimizes several precisions in every
step: the highest, B, on the labels, each lower one on the softened KL divergence to the k = B pass's detached
prediction (knowledge distillation, as Any-Precision networks do; `--teacher` and `--temperature`,
golden.distillation), so the one stored code serves every k. By default all of B..1 are trained in every step;
`--sampled N` trains B and N precisions drawn at random from B-1..1 per step (as Any-Precision does), which is
what makes a ResNet on Fashion-MNIST affordable on a CPU. `--mixed` (issue 11, item 2) makes the lower pass a
per-layer mix instead: every layer draws its own k from B..1 independently in every step, distilled from the
uniform-B pass, so the one stored code serves any per-layer allocation (static or chosen per image by a
controller), not only one k for the whole network; each layer's BatchNorm is already per layer and per k, and is
calibrated behind both uniform and mixed upstream precisions (calibrate_batchnorm). The qat baseline trains at B
only. Adam's learning rate warms up linearly over the first `--warmup` fraction of the steps, then follows a
cosine to zero. A built-in network's activations are clamps at `--act-bound` (golden.nets; 4 for the ResNet-20),
which the converter folds into the parameters, so the engine's numbers are unchanged. Everything is seeded, so
the same command gives the same checkpoint.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from contract.cli import InputError, Parser, claim_file, number, run_main
from contract.datasets import add_data_arguments
from contract.numerics import METHODS, SCHEMES
from contract.progress import Progress
from golden.convert import build_net
from golden.data import Split, augment, data_split, load_split
from golden.distillation import DEFAULT_DISTILLATION, TEACHERS, TEMPERATURE_RANGE, Distillation, soft_kl
from golden.evaluate import float_predictions, format_table, fraction_equal
from golden.layers import QConv2d, QuantSpec
from golden.model import QuantNet, is_checkpoint, save_checkpoint
from golden.nets import NETS

DEFAULT_EPOCHS = 30
DEFAULT_LR = 1e-2
#: --lr without the flag, per data set: the rates of the measured recipes (bench/truncation_table.py), so a
#: first run of a Fashion-MNIST network does not start at the digits net's rate.
DEFAULT_LRS = {"digits": DEFAULT_LR, "fashion-mnist": 2e-3, "npz": 2e-3, "folder": 2e-3}
DEFAULT_BATCH = 64
#: Fraction of all steps over which the learning rate warms up linearly (golden.train.warmup_cosine).
DEFAULT_WARMUP = 0.05
#: --act-bound without the flag, per built-in network (absent: a plain ReLU, i.e. a clamp at 1): measured on the
#: Fashion-MNIST ResNet-20 (2 epochs on 30,000 images, 8-bit QAT): 87.3% at 4 against 83.8% at 1, float 87.5%
#: (docs/estimates.md, issue 26). The digits net keeps its measured recipe.
DEFAULT_ACT_BOUNDS = {"resnet20": 4.0}
MAX_ACT_BOUND = 256.0
# The flags' ranges: what the tool can do in finite time and memory, and seeds torch accepts.
MAX_EPOCHS = 10_000
MAX_SEED = (1 << 32) - 1
MAX_LR = 1.0
MAX_BATCH = 1 << 16
#: Test images scored after each epoch for the progress line (the final table uses the whole test set).
PROGRESS_TEST_IMAGES = 2000
#: Training images that re-estimate each precision's BatchNorm statistics after sampled nested training.
CALIBRATION_IMAGES = 1024


Precision = int | tuple[int, ...]  # one k for the whole network, or one k per GEMM layer


def nested_loss(
    model: QuantNet,
    images: torch.Tensor,
    labels: torch.Tensor,
    precisions: Sequence[Precision],
    distillation: Distillation = DEFAULT_DISTILLATION,
) -> torch.Tensor:
    """Sum over `precisions` (highest first): CE on the labels for the first, then for each lower one the
    softened KL to its teacher's detached prediction (or CE on the labels without a teacher)."""
    loss, top, previous = 0.0, None, None
    for k in precisions:
        model.set_precision(k)
        logits = model(images)
        teacher = None if top is None else distillation.teacher_of(top, previous)
        if teacher is None:
            loss = loss + F.cross_entropy(logits, labels)
        else:
            loss = loss + soft_kl(logits, teacher, distillation.temperature)
        previous = logits.detach()
        top = previous if top is None else top
    return loss


def step_precisions(spec: QuantSpec, sampled: int | None, generator: torch.Generator) -> list[int]:
    """The precisions one step trains: all of them, or B plus `sampled` distinct lower ones drawn at random."""
    trained = spec.trained_precisions
    if sampled is None or sampled >= len(trained) - 1:
        return list(trained)
    lower = torch.tensor(trained[1:])
    picked = lower[torch.randperm(len(lower), generator=generator)[:sampled]]
    return [trained[0], *sorted(picked.tolist(), reverse=True)]


def mixed_precisions(spec: QuantSpec, layers: int, generator: torch.Generator) -> list[Precision]:
    """What one --mixed step trains: B everywhere (on the labels), then one k per layer drawn independently and
    uniformly from B..1 (distilled from B): a random point of the whole per-layer space in every step."""
    trained = torch.tensor(spec.trained_precisions)
    drawn = trained[torch.randint(len(trained), (layers,), generator=generator)]
    return [spec.trained_precisions[0], tuple(drawn.tolist())]


@contextlib.contextmanager
def one_thread():
    """Run torch on one thread, then restore the setting. The layers are so small that a second thread
    only adds synchronization, and on a busy 2-core machine it made training 5-10x (a ResNet step 20x) slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def train(
    spec: QuantSpec,
    epochs: int = DEFAULT_EPOCHS,
    seed: int = 0,
    lr: float = DEFAULT_LR,
    batch_size: int = DEFAULT_BATCH,
    log=print,
    *,
    net: str = "digits",
    split: Split | None = None,
    sampled: int | None = None,
    augmentation: bool = False,
    mixed: bool = False,
    distillation: Distillation = DEFAULT_DISTILLATION,
    warmup: float = DEFAULT_WARMUP,
    act_bound: float | None = None,
) -> QuantNet:
    """A trained quantized `net` in eval mode; `log` receives one progress line per epoch. `mixed`: per-layer
    sampling (module docstring) instead of `sampled` uniform lower precisions; `distillation`: how the lower
    precisions learn; `warmup`: the fraction of the steps over which the learning rate rises to `lr`;
    `act_bound`: a built-in net's activation bound (golden.nets; None: ReLU)."""
    split = split or load_split("digits")
    torch.manual_seed(seed)
    model = build_net(net, spec, tuple(split.train_x.shape[1:]), act_bound)
    check_outputs_cover_labels(model, split)
    draws = torch.Generator().manual_seed(seed + 1)
    highest, lowest = spec.trained_precisions[0], spec.trained_precisions[-1]

    layers = len(model.gemm_nodes)

    def loss(images, labels):
        if mixed:
            return nested_loss(model, images, labels, mixed_precisions(spec, layers, draws), distillation)
        return nested_loss(model, images, labels, step_precisions(spec, sampled, draws), distillation)

    def progress():
        return ", ".join(
            f"k={k} {held_out_accuracy(model, split, k) * 100:.1f}%" for k in dict.fromkeys((highest, lowest))
        )

    with one_thread():
        fit(model, loss, split, epochs, seed, lr, batch_size, augmentation, progress, log, warmup)
        if sampled is not None or mixed:
            mixing = torch.Generator().manual_seed(seed + 2) if mixed else None
            calibrate_batchnorm(model, split.train_x[:CALIBRATION_IMAGES], batch_size, mixing)
            log(f"BatchNorm statistics re-estimated on {CALIBRATION_IMAGES} training images: test {progress()}")
    return model


def check_outputs_cover_labels(model: QuantNet, split: Split) -> None:
    """A user's data set may have more classes than the network has logits: refuse that before training."""
    outputs, top = math.prod(model.nodes[-1].out_shape), int(split.train_y.max())
    if top >= outputs:
        raise InputError(
            f"the network has {outputs} outputs but the data set has labels up to {top}: give it {top + 1}"
        )


def calibrate_batchnorm(
    model: QuantNet, images: torch.Tensor, batch_size: int, mixing: torch.Generator | None = None
) -> None:
    """Re-estimate every trained precision's BatchNorm running statistics on `images` (a cumulative average;
    weights and affine parameters untouched), then leave eval mode. With a sampled schedule a lower
    precision's BatchNorm takes part in only a fraction of the steps, and its running statistics (momentum
    0.1) still remember their initial mean 0 and variance 1 at the end: measured on the ResNet, k = 7 scored
    13% before and 77% after, against 80% at k = 8 (as slimmable and any-precision networks calibrate).

    With `mixing` (a --mixed model) every batch also runs through per-layer mixes, as in training: each layer
    draws a random permutation of the precisions and mixed pass p runs layer l at its p-th entry, so every
    (layer, k) BatchNorm sees every calibration image twice, once behind uniform k and once behind a random mix
    of upstream precisions. Measured on the Fashion-MNIST ResNet-20 (1,200 held-out training images), this
    kept the mixes' accuracy of mixed-only calibration (85.0% and 82.4% on random mixes from 1..8 and 1..3,
    against 85.0% and 81.8%) and recovered most of uniform k's (86.6% and 80.4% at k = 8 and 1, against 84.8%
    and 77.1%; uniform-only calibration: 87.1% and 79.6%, but 84.7% and 81.1% on the mixes)."""
    trained = model.spec.trained_precisions
    conv_layers = [layer for layer in model.quant_layers if isinstance(layer, QConv2d)]
    norms = {id(layer.bns[str(k)]): layer.bns[str(k)] for layer in conv_layers for k in trained}.values()
    model.train()
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative moving average over the calibration batches
    with torch.no_grad():
        for first in range(0, len(images), batch_size):
            batch = images[first : first + batch_size]
            passes = list(trained)
            if mixing is not None:
                orders = [torch.randperm(len(trained), generator=mixing) for _ in model.quant_layers]
                passes += [tuple(trained[int(order[p])] for order in orders) for p in range(len(trained))]
            for precision in passes:
                model.set_precision(precision)
                model(batch)
    for norm in norms:
        norm.momentum = 0.1
    model.eval()


def train_float(
    net: str,
    split: Split,
    epochs: int,
    seed: int,
    lr: float,
    batch_size: int,
    augmentation: bool,
    log=print,
    warmup: float = DEFAULT_WARMUP,
) -> nn.Module:
    """The same network in float (no quantization at all) on the same recipe: the accuracy baseline."""
    from golden.nets import float_net

    torch.manual_seed(seed)
    model = float_net(net, tuple(split.train_x.shape[1:]))

    def progress():
        model.eval()
        with torch.no_grad():
            x, y = split.test_x[:PROGRESS_TEST_IMAGES], split.test_y[:PROGRESS_TEST_IMAGES]
            return f"{fraction_equal(model(x).argmax(1), y) * 100:.1f}%"

    with one_thread():
        fit(
            model,
            lambda x, y: F.cross_entropy(model(x), y),
            split,
            epochs,
            seed,
            lr,
            batch_size,
            augmentation,
            progress,
            log,
            warmup,
        )
    return model


def fit(
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    split: Split,
    epochs: int,
    seed: int,
    lr: float,
    batch_size: int,
    augmentation: bool,
    progress: Callable[[], str],
    log,
    warmup: float = DEFAULT_WARMUP,
) -> None:
    """Adam with a linear warm-up over the first `warmup` fraction of the steps and a cosine to zero over the
    rest (warmup_cosine), seeded shuffling (and augmentation); leaves eval mode."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    steps_per_epoch = -(-len(split.train_y) // batch_size)
    total = epochs * steps_per_epoch
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(total, round(warmup * total)))
    shuffle = torch.Generator().manual_seed(seed)
    for epoch in range(1, epochs + 1):
        model.train()
        started, total = time.perf_counter(), 0.0
        order = torch.randperm(len(split.train_y), generator=shuffle)
        bar = Progress(f"epoch {epoch}/{epochs}", steps_per_epoch, "steps", transient=True)  # `log` ends it
        for step, start in enumerate(range(0, len(order), batch_size), 1):
            batch = order[start : start + batch_size]
            images = split.train_x[batch]
            if augmentation:
                images = augment(images, shuffle, pad=1)
            loss = loss_fn(images, split.train_y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach()) * len(batch)
            bar(step)
        bar.close()
        log(
            f"epoch {epoch}/{epochs}: loss {total / len(order):.4f}, test {progress()} "
            f"({time.perf_counter() - started:.1f} s)"
        )
    model.eval()


def warmup_cosine(total: int, warmup: int) -> Callable[[int], float]:
    """The learning rate's factor at each step: (s + 1) / (warmup + 1) for the first `warmup` steps, so the
    first step already moves, then 1/2 (1 + cos(pi p)) as p goes from 0 to 1 over the remaining steps.
    Measured on the ResNet-20 (Fashion-MNIST, first 10,000 training images, 1 epoch, lr 2e-3, batch 128,
    --sampled 1, seed 0): a 5% warm-up scored 66.4% and 56.7% at k = 8 and 1, against 62.7% and 56.3% without."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    return factor


def held_out_accuracy(
    model: QuantNet, split: Split, k: int, view: str = "trunc", limit: int = PROGRESS_TEST_IMAGES
) -> float:
    """Accuracy at k on the first `limit` test images (leaves the model in eval mode)."""
    x, y = split.test_x[:limit], split.test_y[:limit]
    return fraction_equal(float_predictions(model, x, k, view), y)


def accuracy_rows(model: QuantNet, split: Split) -> tuple[list[str], list[list]]:
    """Test accuracy at every k; QAT models also get the re-quantized view next to the truncated one."""
    precisions = range(model.spec.base_bits, 0, -1)
    whole = len(split.test_y)
    if model.spec.method == "qat" and model.spec.scheme == "offset":
        header = ["k", "trunc", "quant"]
        rows = [
            [k, held_out_accuracy(model, split, k, "trunc", whole), held_out_accuracy(model, split, k, "quant", whole)]
            for k in precisions
        ]
    else:
        header = ["k", "accuracy"]
        rows = [[k, held_out_accuracy(model, split, k, limit=whole)] for k in precisions]
    return header, rows


def main(argv: list[str] | None = None) -> None:
    parser = Parser(prog="python -m golden.train", description=__doc__.split("\n\n")[1].replace("\n", " "))
    parser.add_argument(
        "--method",
        choices=METHODS,
        required=True,
        help="truncquant: nested training of all k = B..1; qat: conventional, k = B only",
    )
    parser.add_argument("--scheme", choices=SCHEMES, required=True, help="how a weight code is read (docs/numerics.md)")
    parser.add_argument("--out", required=True, help="checkpoint path (.pt), written atomically")
    parser.add_argument(
        "--net",
        default="digits",
        help=f"{' or '.join(NETS)} (golden.nets; default digits), FILE.py:CLASS, your own torch.nn.Module of the "
        "supported operations (golden.convert), constructed without arguments, or FILE.onnx, a float ONNX model of "
        "them (golden.onnx_import), fine-tuned from its weights",
    )
    add_data_arguments(parser, reads_model=False)
    parser.add_argument("--epochs", type=number(int, 1, MAX_EPOCHS), default=DEFAULT_EPOCHS, help=f"1..{MAX_EPOCHS}")
    parser.add_argument("--seed", type=number(int, 0, MAX_SEED), default=0, help=f"0..{MAX_SEED}")
    parser.add_argument("--base-bits", type=int, default=8, help="B, bits of a stored weight code")
    parser.add_argument("--act-bits", type=int, default=8, help="A, bits of an activation code")
    parser.add_argument(
        "--lr",
        type=number(float, 0, MAX_LR, above=True),
        help=f"(0, {MAX_LR:g}], Adam's peak rate (default: "
        + ", ".join(f"{rate:g} on {data}" for data, rate in DEFAULT_LRS.items())
        + ")",
    )
    parser.add_argument("--batch-size", type=number(int, 1, MAX_BATCH), default=DEFAULT_BATCH, help=f"1..{MAX_BATCH}")
    parser.add_argument(
        "--sampled",
        type=number(int, 1, 15),
        help="nested training: B plus N lower precisions drawn per step (default: all of B..1 every step)",
    )
    parser.add_argument(
        "--mixed",
        action="store_true",
        help="nested training of per-layer mixes: B, then one k per layer drawn from B..1 in every step",
    )
    parser.add_argument(
        "--teacher",
        choices=TEACHERS,
        default=Distillation.teacher,
        help="nested training: what a lower precision learns from: the k = B pass of the same step (top), the "
        "next higher pass (previous), or the labels (none: no distillation)",
    )
    lo, hi = TEMPERATURE_RANGE
    parser.add_argument(
        "--temperature",
        type=number(float, lo, hi),
        default=Distillation.temperature,
        help=f"[{lo:g}, {hi:g}]: softens the teacher's and the student's logits in the distillation KL (scaled by T^2)",
    )
    parser.add_argument(
        "--warmup",
        type=number(float, 0, 1),
        default=DEFAULT_WARMUP,
        help="[0, 1]: fraction of all steps over which the learning rate rises linearly to --lr, before its cosine "
        "decay",
    )
    parser.add_argument(
        "--act-bound",
        type=number(float, 0, MAX_ACT_BOUND, above=True),
        help=f"(0, {MAX_ACT_BOUND:g}], built-in networks only: every activation is a clamp to [0, B], the unit of its "
        "codes, folded into the parameters (default: "
        + ", ".join(f"{bound:g} for {name}" for name, bound in DEFAULT_ACT_BOUNDS.items())
        + ", else a ReLU, i.e. 1)",
    )
    args = parser.parse_args(argv)
    if args.mixed and (args.method != "truncquant" or args.sampled is not None):
        raise InputError("--mixed needs --method truncquant and replaces --sampled (give one of them)")
    if args.act_bound is not None and args.net not in NETS:
        raise InputError(f"--act-bound applies to the built-in networks ({', '.join(NETS)}); clamp in your own model")
    act_bound = DEFAULT_ACT_BOUNDS.get(args.net) if args.act_bound is None else args.act_bound
    spec = QuantSpec(args.method, args.scheme, args.base_bits, args.act_bits)
    split = data_split(args)  # a missing or bad data set is refused before anything is claimed
    args.lr = DEFAULT_LRS[args.data] if args.lr is None else args.lr
    claim_file(args.out, is_checkpoint)  # refuse a user's file at --out now, not after the training
    augmentation = args.data == "fashion-mnist"
    model = train(
        spec,
        args.epochs,
        args.seed,
        args.lr,
        args.batch_size,
        net=args.net,
        split=split,
        sampled=args.sampled,
        augmentation=augmentation,
        mixed=args.mixed,
        distillation=Distillation(args.teacher, args.temperature),
        warmup=args.warmup,
        act_bound=act_bound,
    )
    header, rows = accuracy_rows(model, split)
    record = {
        "net": args.net,
        "data": args.data,
        "limit": args.limit,
        "epochs": args.epochs,
        "seed": args.seed,
        "lr": args.lr,
        "batch_size": args.batch_size,
        "sampled": args.sampled,
        "mixed": args.mixed,
        "teacher": args.teacher,
        "temperature": args.temperature,
        "warmup": args.warmup,
        "act_bound": act_bound,
        "augmentation": augmentation,
        "test_accuracy": {str(row[0]): row[1] for row in rows},
    }
    save_checkpoint(model, args.out, record)
    print(
        f"test accuracy % ({args.net} on {args.data}, {spec.method}/{spec.scheme}, B = {spec.base_bits}, "
        f"A = {spec.act_bits}, seed {args.seed})"
    )
    print(format_table(header, rows))
    print(f"saved {args.out}")


if __name__ == "__main__":
    raise SystemExit(run_main(main))
