"""Train a digits model: `python -m golden.train --method truncquant|qat --scheme offset|twos --out X.pt`.

Nested training (method truncquant; on the twos scheme this is DQT-style) optimizes all precisions
B..1 in every step: the highest on the labels, each lower one on the KL divergence to the next higher
precision's detached prediction (progressive self-distillation, as in Any-Precision / TruncQuant), so
the one stored code serves every k. The qat baseline trains at B only. Everything is seeded, so the same
command gives the same checkpoint.
"""

from __future__ import annotations

import contextlib
import time

import torch
import torch.nn.functional as F

from contract.cli import Parser, claim_file, number, run_main
from contract.numerics import SCHEMES
from golden.data import digits_split
from golden.evaluate import float_predictions, format_table, fraction_equal
from golden.layers import METHODS, QuantSpec
from golden.model import DigitsNet, is_checkpoint, save_checkpoint

DEFAULT_EPOCHS = 30
DEFAULT_LR = 1e-2
DEFAULT_BATCH = 64
# The flags' ranges: what the tool can do in finite time and memory, and seeds torch accepts.
MAX_EPOCHS = 10_000
MAX_SEED = (1 << 32) - 1
MAX_LR = 1.0
MAX_BATCH = 1 << 16


def nested_loss(model: DigitsNet, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Sum over the trained precisions (highest first) of CE on labels, then KL to the next higher k."""
    loss, teacher = 0.0, None
    for k in model.spec.trained_precisions:
        model.set_precision(k)
        logits = model(images)
        if teacher is None:
            loss = loss + F.cross_entropy(logits, labels)
        else:
            loss = loss + F.kl_div(F.log_softmax(logits, dim=1), F.softmax(teacher, dim=1), reduction="batchmean")
        teacher = logits.detach()
    return loss


def held_out_accuracy(model: DigitsNet, k: int, view: str = "trunc") -> float:
    """Test-set accuracy at k (leaves the model in eval mode)."""
    split = digits_split()
    return fraction_equal(float_predictions(model, split.test_x, k, view), split.test_y)


@contextlib.contextmanager
def one_thread():
    """Run torch on one thread, then restore the setting. The layers are so small that a second thread
    only adds synchronization, and on a busy 2-core machine it made training 5-10x slower."""
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
) -> DigitsNet:
    """A trained model in eval mode; `log` receives one progress line per epoch."""
    with one_thread():
        return _train(spec, epochs, seed, lr, batch_size, log)


def _train(spec: QuantSpec, epochs: int, seed: int, lr: float, batch_size: int, log) -> DigitsNet:
    torch.manual_seed(seed)
    split = digits_split()
    model = DigitsNet(spec)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    steps_per_epoch = -(-len(split.train_y) // batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * steps_per_epoch)
    shuffle = torch.Generator().manual_seed(seed)
    highest, lowest = spec.trained_precisions[0], spec.trained_precisions[-1]
    for epoch in range(1, epochs + 1):
        model.train()
        started, total = time.perf_counter(), 0.0
        order = torch.randperm(len(split.train_y), generator=shuffle)
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            loss = nested_loss(model, split.train_x[batch], split.train_y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach()) * len(batch)
        reached = ", ".join(f"k={k} {held_out_accuracy(model, k) * 100:.1f}%" for k in dict.fromkeys((highest, lowest)))
        log(
            f"epoch {epoch}/{epochs}: loss {total / len(order):.4f}, test {reached} "
            f"({time.perf_counter() - started:.1f} s)"
        )
    model.eval()
    return model


def accuracy_rows(model: DigitsNet) -> tuple[list[str], list[list]]:
    """Test accuracy at every k; QAT models also get the re-quantized view next to the truncated one."""
    precisions = range(model.spec.base_bits, 0, -1)
    if model.spec.method == "qat" and model.spec.scheme == "offset":
        header = ["k", "trunc", "quant"]
        rows = [[k, held_out_accuracy(model, k, "trunc"), held_out_accuracy(model, k, "quant")] for k in precisions]
    else:
        header = ["k", "accuracy"]
        rows = [[k, held_out_accuracy(model, k)] for k in precisions]
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
    parser.add_argument("--epochs", type=number(int, 1, MAX_EPOCHS), default=DEFAULT_EPOCHS, help=f"1..{MAX_EPOCHS}")
    parser.add_argument("--seed", type=number(int, 0, MAX_SEED), default=0, help=f"0..{MAX_SEED}")
    parser.add_argument("--base-bits", type=int, default=8, help="B, bits of a stored weight code")
    parser.add_argument("--act-bits", type=int, default=8, help="A, bits of an activation code")
    parser.add_argument("--lr", type=number(float, 0, MAX_LR, above=True), default=DEFAULT_LR, help=f"(0, {MAX_LR:g}]")
    parser.add_argument("--batch-size", type=number(int, 1, MAX_BATCH), default=DEFAULT_BATCH, help=f"1..{MAX_BATCH}")
    args = parser.parse_args(argv)
    spec = QuantSpec(args.method, args.scheme, args.base_bits, args.act_bits)
    claim_file(args.out, is_checkpoint)  # refuse a user's file at --out now, not after the training
    model = train(spec, args.epochs, args.seed, args.lr, args.batch_size)
    header, rows = accuracy_rows(model)
    record = {
        "epochs": args.epochs,
        "seed": args.seed,
        "lr": args.lr,
        "batch_size": args.batch_size,
        "test_accuracy": {str(row[0]): row[1] for row in rows},
    }
    save_checkpoint(model, args.out, record)
    print(f"test accuracy % ({spec.method}/{spec.scheme}, B = {spec.base_bits}, A = {spec.act_bits}, seed {args.seed})")
    print(format_table(header, rows))
    print(f"saved {args.out}")


if __name__ == "__main__":
    raise SystemExit(run_main(main))
