"""The command-line tools: bad input gives one `error:` line and exit status 2, never a traceback and never
a half-written output. Each kind of bad input named in the brief runs as a real subprocess; the variants
of one kind run in-process through the same entry point (run_main), because every interpreter start
re-imports torch and costs seconds."""

from __future__ import annotations

import gzip
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import apps.run
from contract.cli import run_main
from golden import evaluate, export, train
from golden.convert import build_net
from golden.data import FASHION_MNIST_FILES
from tests.idx_files import synthetic_fashion_dir

REPO = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=300)


def run_in_process(main, argv: list[str], capsys) -> subprocess.CompletedProcess:
    """`main` through run_main as `python -m` would run it, captured like a subprocess."""
    try:
        code = run_main(main, argv)
    except SystemExit as exc:  # argparse usage errors exit from inside the parser
        code = exc.code
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(argv, code, captured.out, captured.err)


def assert_one_line_error(result: subprocess.CompletedProcess) -> None:
    lines = result.stderr.splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr


@pytest.mark.slow  # a real `python -m` subprocess: a few seconds of imports each
def test_export_then_evaluate_both_forms(checkpoint_file, tmp_path, capsys):
    out = tmp_path / "export"
    exported = run("golden.export", str(checkpoint_file), "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    assert sorted(p.name for p in out.iterdir()) == [".nestmac-output", "model.json", "model.npz"]
    from_checkpoint = run_in_process(evaluate.main, [str(checkpoint_file), "--bits", "8,1"], capsys)
    from_export = run_in_process(evaluate.main, [str(out), "--bits", "8,1"], capsys)
    assert from_checkpoint.returncode == 0 and from_export.returncode == 0, from_checkpoint.stderr + from_export.stderr
    assert "agreement" in from_checkpoint.stdout and "agreement" not in from_export.stdout
    # The integer column is the same whether the export is derived in memory or read from disk.
    integer_in_memory = [line.split()[2] for line in from_checkpoint.stdout.splitlines()[2:]]
    integer_from_disk = [line.split()[1] for line in from_export.stdout.splitlines()[2:]]
    assert integer_in_memory == integer_from_disk and len(integer_in_memory) == 2


@pytest.mark.slow  # a real `python -m` subprocess: a few seconds of imports each
@pytest.mark.parametrize("bits", ["0", "9"])
def test_evaluate_rejects_a_precision_outside_1_to_B(export_dir, bits):
    assert_one_line_error(run("golden.evaluate", str(export_dir), "--bits", bits))


@pytest.mark.parametrize("bits", ["8,x", "", "4,,2", "-1"])
def test_evaluate_rejects_malformed_bit_lists(export_dir, bits, capsys):
    assert_one_line_error(run_in_process(evaluate.main, [str(export_dir), "--bits", bits], capsys))


@pytest.mark.slow  # a real `python -m` subprocess: a few seconds of imports each
def test_evaluate_rejects_a_missing_model(tmp_path):
    assert_one_line_error(run("golden.evaluate", str(tmp_path / "nothing.pt")))


@pytest.mark.slow  # a real `python -m` subprocess: a few seconds of imports each
@pytest.mark.parametrize("name", ["model.npz", "model.json"])
def test_evaluate_rejects_a_truncated_export_file(export_dir, tmp_path, name):
    broken = tmp_path / "broken"
    shutil.copytree(export_dir, broken)
    data = (broken / name).read_bytes()
    (broken / name).write_bytes(data[: len(data) // 2])
    assert_one_line_error(run("golden.evaluate", str(broken)))


@pytest.mark.slow  # a real `python -m` subprocess: a few seconds of imports each
def test_export_of_a_corrupted_checkpoint_fails_and_writes_nothing(checkpoint_file, tmp_path):
    broken = tmp_path / "broken.pt"
    broken.write_bytes(checkpoint_file.read_bytes()[:1000])
    out = tmp_path / "out"
    assert_one_line_error(run("golden.export", str(broken), "--out", str(out)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.pt"]


@pytest.mark.slow  # a real `python -m` subprocess: a few seconds of imports each
def test_train_rejects_an_unknown_scheme_without_writing(tmp_path):
    out = tmp_path / "models" / "m.pt"
    assert_one_line_error(
        run("golden.train", "--method", "truncquant", "--scheme", "sign-magnitude", "--out", str(out))
    )
    assert not out.parent.exists()


@pytest.mark.parametrize(
    "args",
    [
        ["--method", "pact", "--scheme", "offset"],
        ["--method", "qat", "--scheme", "offset", "--base-bits", "17"],
        ["--method", "qat", "--scheme", "offset", "--act-bits", "0"],
        ["--method", "qat", "--scheme", "offset", "--epochs", "0"],
        ["--scheme", "offset"],
        # issue 14: non-finite or astronomically large numbers are refused before training, not after
        ["--method", "qat", "--scheme", "offset", "--lr", "inf"],
        ["--method", "qat", "--scheme", "offset", "--lr", "nan"],
        ["--method", "qat", "--scheme", "offset", "--lr", "1e308"],
        ["--method", "qat", "--scheme", "offset", "--seed", "9" * 30],
        ["--method", "qat", "--scheme", "offset", "--seed", "-1"],
        ["--method", "qat", "--scheme", "offset", "--act-bound", "0"],
        ["--method", "qat", "--scheme", "offset", "--act-bound", "nan"],
    ],
)
def test_train_rejects_bad_settings_without_writing(tmp_path, args, capsys):
    out = tmp_path / "models" / "m.pt"
    assert_one_line_error(run_in_process(train.main, [*args, "--out", str(out)], capsys))
    assert not out.parent.exists()


def test_train_refuses_to_save_a_diverged_model(tmp_path, capsys, monkeypatch):
    """A NaN checkpoint must not be written with exit status 0, whatever made training diverge."""

    def diverged(spec, *args, **kwargs):
        model = build_net("digits", spec).eval()
        with torch.no_grad():
            next(model.parameters()).fill_(float("nan"))
        return model

    monkeypatch.setattr(train, "train", diverged)
    monkeypatch.setattr(train, "accuracy_rows", lambda model, split: (["k", "accuracy"], [[8, 0.0]]))
    out = tmp_path / "m.pt"
    result = run_in_process(train.main, ["--method", "qat", "--scheme", "offset", "--out", str(out)], capsys)
    assert_one_line_error(result)
    assert "training diverged" in result.stderr and not out.exists()


@pytest.mark.parametrize("acc_bits", ["0", "-3", "7", "41"])
def test_export_refuses_an_accumulator_width_outside_its_range(checkpoint_file, tmp_path, acc_bits, capsys):
    out = tmp_path / "export"
    result = run_in_process(export.main, [str(checkpoint_file), "--out", str(out), "--acc-bits", acc_bits], capsys)
    assert_one_line_error(result)
    assert "--acc-bits: must be an integer in 8..40" in result.stderr and not out.exists()


def test_export_never_writes_over_or_around_its_input_or_a_users_file(checkpoint_file, tmp_path, capsys):
    """issue 14: `golden.export model.pt --out model.pt` moved the checkpoint aside; a file or a foreign
    directory at --out was replaced."""
    model = tmp_path / "model.pt"
    shutil.copy(checkpoint_file, model)
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "keep.txt").write_text("mine")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    for out, message in [
        (model, "is or contains the input"),
        (tmp_path, "is or contains the input"),
        (tmp_path / "notes.txt", "is not a directory"),
        (tmp_path / "work", "non-empty directory not written by a nestmac tool"),
    ]:
        result = run_in_process(export.main, [str(model), "--out", str(out)], capsys)
        assert_one_line_error(result)
        assert message in result.stderr
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


# --- data and model flags: a missing data set, a wrong data set for a model, a user model file with an
# unsupported layer or a wrong shape ----------------------------------------------------------------------

USER_MODELS = """
import torch
from torch import nn

class Gelu(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.act, self.fc = nn.Conv2d(1, 4, 3, padding=1), nn.GELU(), nn.Linear(4 * 8 * 8, 10)

    def forward(self, x):
        return self.fc(self.act(self.conv(x)).flatten(1))

class TooWide(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(1, 4, 3, padding=1), nn.Linear(5, 10)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).flatten(1))
"""


@pytest.fixture
def user_models(tmp_path):
    path = tmp_path / "user_models.py"
    path.write_text(USER_MODELS)
    return path


def data_dir(path, magic_kind: int):
    """All four Fashion-MNIST files present, each a 10-item header (element kind `magic_kind`) and no data."""
    path.mkdir()
    for field, name in FASHION_MNIST_FILES.items():
        shape = (10, 28, 28) if field.endswith("_x") else (10,)
        header = struct.pack(">HBB", 0, magic_kind, len(shape)) + struct.pack(f">{len(shape)}I", *shape)
        (path / name).write_bytes(gzip.compress(header))
    return path


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--net", "{models}:Gelu"], "unsupported operation GELU at node 'act' (module 'act')"),
        (["--net", "{models}:TooWide"], "does not run on input shape [1, 8, 8]"),
        (["--net", "{models}:Missing"], "no torch.nn.Module subclass named 'Missing'"),
        (["--net", "nowhere.py:Net"], "model file not found"),
        (["--net", "resnet"], "unknown network 'resnet'"),
        (["--net", "{models}:Gelu", "--act-bound", "2"], "--act-bound applies to the built-in networks"),
        (["--data", "fashion-mnist", "--data-dir", "{tmp}/empty"], "install the Debian package dataset-fashion-mnist"),
        (["--data", "fashion-mnist", "--data-dir", "{truncated}"], "the file holds 0"),
        (["--data", "fashion-mnist", "--data-dir", "{wrong_magic}"], "wrong magic number"),
        (["--data-dir", "{tmp}"], "--data-dir applies to --data fashion-mnist, npz, folder only, not digits"),
        (["--data", "cifar"], "invalid choice"),
        (["--limit", "0"], "must be an integer in 1.."),
    ],
)
def test_train_refuses_bad_data_and_models_without_writing(tmp_path, capsys, user_models, extra, message):
    (tmp_path / "empty").mkdir()
    names = {
        "models": user_models,
        "tmp": tmp_path,
        "truncated": data_dir(tmp_path / "truncated", 0x08),
        "wrong_magic": data_dir(tmp_path / "wrong_magic", 0x0D),  # float32 elements: not these files
    }
    argv = [arg.format(**names) for arg in extra]
    out = tmp_path / "models" / "m.pt"
    result = run_in_process(
        train.main, ["--method", "truncquant", "--scheme", "offset", "--epochs", "1", *argv, "--out", str(out)], capsys
    )
    assert_one_line_error(result)
    assert message in result.stderr
    assert not out.parent.exists()


def test_evaluate_refuses_a_missing_data_set(checkpoint_file, tmp_path, capsys):
    result = run_in_process(
        evaluate.main, [str(checkpoint_file), "--data", "fashion-mnist", "--data-dir", str(tmp_path)], capsys
    )
    assert_one_line_error(result)
    assert "dataset-fashion-mnist" in result.stderr


def test_run_refuses_images_the_model_does_not_take(export_dir, tmp_path, capsys):
    """A digits export fed 28x28 Fashion-MNIST images: refused before anything is written."""
    out, images = tmp_path / "run", synthetic_fashion_dir(tmp_path / "fashion", train=10, test=10)
    argv = [str(export_dir), "--data", "fashion-mnist", "--data-dir", str(images), "--limit", "5", "-o", str(out)]
    result = run_in_process(apps.run.main, argv, capsys)
    assert_one_line_error(result)
    assert "takes inputs [1, 8, 8]" in result.stderr and not out.exists()


def test_evaluate_refuses_images_the_model_does_not_take(checkpoint_file, tmp_path, capsys):
    images = synthetic_fashion_dir(tmp_path / "fashion", train=10, test=10)
    argv = [str(checkpoint_file), "--data", "fashion-mnist", "--data-dir", str(images), "--limit", "5"]
    result = run_in_process(evaluate.main, argv, capsys)
    assert_one_line_error(result)
    assert "takes inputs [1, 8, 8], got images of shape [1, 28, 28]" in result.stderr
