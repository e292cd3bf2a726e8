"""Nested training's distillation (golden.distillation, golden.train.nested_loss) and the warm-up cosine
schedule, on the digits set: the loss is the hand-computed sum, training is repeatable with a seed, the
teacher changes what is trained, and the CLI records the recipe and refuses bad values."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from golden import train as train_cli
from golden.convert import build_net
from golden.data import load_split
from golden.distillation import Distillation, soft_kl
from golden.layers import QuantSpec
from golden.model import load_checkpoint
from golden.train import nested_loss, train, warmup_cosine
from tests.golden.test_golden_cli import assert_one_line_error, run_in_process
from tests.idx_files import synthetic_fashion_dir

SEED = 0
SPEC = QuantSpec("truncquant", "offset")


def hand_kl(student: list[list[float]], teacher: list[list[float]], temperature: float) -> float:
    """T^2 * mean over rows of sum_c p_c (log p_c - log q_c), p = softmax(teacher / T), q = softmax(student / T),
    written out with math so that it shares nothing with the code under test."""

    def softmax(row):
        exps = [math.exp(v / temperature) for v in row]
        return [e / sum(exps) for e in exps]

    total = 0.0
    for s_row, t_row in zip(student, teacher, strict=True):
        p, q = softmax(t_row), softmax(s_row)
        total += sum(pc * (math.log(pc) - math.log(qc)) for pc, qc in zip(p, q, strict=True))
    return temperature**2 * total / len(student)


def test_soft_kl_is_the_tempered_kl_scaled_by_t_squared():
    student = [[0.5, -1.0, 2.0], [1.5, 0.0, -0.5]]
    teacher = [[1.0, 0.0, 3.0], [0.0, 2.0, 1.0]]
    for temperature in (1.0, 2.0, 4.0):
        got = float(soft_kl(torch.tensor(student), torch.tensor(teacher), temperature))
        assert got == pytest.approx(hand_kl(student, teacher, temperature), rel=1e-5), f"T = {temperature}"
    assert float(soft_kl(torch.tensor(teacher), torch.tensor(teacher), 3.0)) == pytest.approx(0.0, abs=1e-6)


@pytest.fixture(scope="module")
def tiny_batch():
    """An untrained digits net in eval mode (so forwards change nothing) and 4 training images."""
    torch.manual_seed(SEED)
    model = build_net("digits", SPEC).eval()
    split = load_split("digits")
    return model, split.train_x[:4], split.train_y[:4]


def logits_at(model, images, k) -> list[list[float]]:
    model.set_precision(k)
    with torch.no_grad():
        return model(images).tolist()


@pytest.mark.parametrize(
    ("teacher", "temperature", "teachers_of"),
    [("top", 2.0, {4: 8, 2: 8}), ("previous", 3.0, {4: 8, 2: 4}), ("none", 1.0, {})],
)
def test_nested_loss_is_ce_at_b_plus_each_lower_precision_distilled_from_its_teacher(
    tiny_batch, teacher, temperature, teachers_of
):
    model, images, labels = tiny_batch
    logits = {k: logits_at(model, images, k) for k in (8, 4, 2)}
    expected = 0.0
    for k in (8, 4, 2):
        if k in teachers_of:
            expected += hand_kl(logits[k], logits[teachers_of[k]], temperature)
        else:
            expected += float(F.cross_entropy(torch.tensor(logits[k]), labels))
    got = float(nested_loss(model, images, labels, [8, 4, 2], Distillation(teacher, temperature)).detach())
    assert got == pytest.approx(expected, rel=1e-4)


def test_the_teacher_gets_no_gradient_from_the_distillation_term(tiny_batch):
    """Only the student moves toward the teacher: the KL term alone leaves the k = B pass's logits untouched,
    so its gradient on the last layer's bias (shared by every k) equals the student's part alone."""
    model, images, labels = tiny_batch
    bias = model.layers["fc3"].bias
    loss = nested_loss(model, images, labels, [8, 2]) - nested_loss(model, images, labels, [8])
    (through_both,) = torch.autograd.grad(loss, bias)
    model.set_precision(2)
    student = model(images)
    model.set_precision(8)
    teacher = model(images).detach()
    (student_only,) = torch.autograd.grad(soft_kl(student, teacher, 1.0), bias)
    assert torch.allclose(through_both, student_only, atol=1e-6)


def quick_train(**kwargs):
    split = load_split("digits", limit=192)
    return train(SPEC, epochs=1, seed=SEED, batch_size=64, log=lambda line: None, split=split, **kwargs)


def test_distilled_training_is_repeatable_with_a_seed_and_the_teacher_matters():
    first = quick_train(distillation=Distillation("top", 2.0))
    again = quick_train(distillation=Distillation("top", 2.0))
    labels_only = quick_train(distillation=Distillation("none"))
    for name, tensor in first.state_dict().items():
        assert torch.equal(tensor, again.state_dict()[name]), f"{name} differs between two runs of seed {SEED}"
    changed = [
        name for name, tensor in first.state_dict().items() if not torch.equal(tensor, labels_only.state_dict()[name])
    ]
    assert "layers.conv0.weight" in changed, f"seed {SEED}"


def test_warmup_rises_linearly_then_follows_a_cosine_to_zero():
    factor = warmup_cosine(total=10, warmup=2)
    assert [factor(s) for s in (0, 1, 2)] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert factor(6) == pytest.approx(0.5)  # halfway through the 8 cosine steps
    assert factor(9) == pytest.approx(0.5 * (1 + math.cos(math.pi * 7 / 8)))
    no_warmup = warmup_cosine(total=4, warmup=0)
    assert [no_warmup(s) for s in range(4)] == pytest.approx(
        [1.0, 0.5 * (1 + math.cos(math.pi / 4)), 0.5, 0.5 * (1 - math.cos(math.pi / 4))]
    )


def test_train_records_the_recipe(tmp_path, capsys):
    out = tmp_path / "distilled.pt"
    argv = ["--method", "truncquant", "--scheme", "offset", "--epochs", "1", "--limit", "128", "--out", str(out)]
    result = run_in_process(
        train_cli.main, [*argv, "--teacher", "previous", "--temperature", "2", "--warmup", "0.1"], capsys
    )
    assert result.returncode == 0, result.stderr
    _, record = load_checkpoint(out)
    assert (record["teacher"], record["temperature"], record["warmup"]) == ("previous", 2.0, 0.1)


@pytest.mark.parametrize(("data", "lr"), [("digits", 1e-2), ("fashion-mnist", 2e-3)])
def test_train_without_lr_starts_at_its_data_sets_recipe_rate(data, lr, tmp_path, capsys):
    """The digits net's 1e-2 is not a Fashion-MNIST network's rate: each data set has its measured recipe's."""
    out = tmp_path / "first.pt"
    argv = ["--method", "qat", "--scheme", "offset", "--epochs", "1", "--limit", "64", "--data", data]
    if data == "fashion-mnist":
        argv += ["--data-dir", str(synthetic_fashion_dir(tmp_path / "fashion", train=64, test=64))]
    result = run_in_process(train_cli.main, [*argv, "--out", str(out)], capsys)
    assert result.returncode == 0, result.stderr
    assert load_checkpoint(out)[1]["lr"] == lr


@pytest.mark.parametrize(
    ("extra", "flag"),
    [
        (["--temperature", "0"], "--temperature"),
        (["--temperature", "nan"], "--temperature"),
        (["--warmup", "1.5"], "--warmup"),
        (["--teacher", "bottom"], "--teacher"),
    ],
)
def test_train_refuses_a_bad_recipe_before_writing(extra, flag, tmp_path, capsys):
    out = tmp_path / "never.pt"
    argv = ["--method", "truncquant", "--scheme", "offset", "--epochs", "1", "--out", str(out), *extra]
    result = run_in_process(train_cli.main, argv, capsys)
    assert_one_line_error(result)
    assert flag in result.stderr and not out.exists()


def test_distillation_refuses_what_it_cannot_do():
    with pytest.raises(ValueError, match="teacher"):
        Distillation("bottom")
    with pytest.raises(ValueError, match="temperature"):
        Distillation("top", 0.0)
