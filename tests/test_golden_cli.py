"""The command-line tools: bad input gives one `error:` line and exit status 2, never a traceback and never
a half-written output. Each kind of bad input named in the brief runs as a real subprocess; the variants
of one kind run in-process through the same entry point (run_main), because every interpreter start
re-imports torch and costs seconds."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from contract.cli import run_main
from golden import evaluate, train

REPO = Path(__file__).resolve().parents[1]


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


def test_export_then_evaluate_both_forms(checkpoint_file, tmp_path, capsys):
    out = tmp_path / "export"
    exported = run("golden.export", str(checkpoint_file), "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    assert sorted(p.name for p in out.iterdir()) == ["model.json", "model.npz"]
    from_checkpoint = run_in_process(evaluate.main, [str(checkpoint_file), "--bits", "8,1"], capsys)
    from_export = run_in_process(evaluate.main, [str(out), "--bits", "8,1"], capsys)
    assert from_checkpoint.returncode == 0 and from_export.returncode == 0, from_checkpoint.stderr + from_export.stderr
    assert "agreement" in from_checkpoint.stdout and "agreement" not in from_export.stdout
    # The integer column is the same whether the export is derived in memory or read from disk.
    integer_in_memory = [line.split()[2] for line in from_checkpoint.stdout.splitlines()[2:]]
    integer_from_disk = [line.split()[1] for line in from_export.stdout.splitlines()[2:]]
    assert integer_in_memory == integer_from_disk and len(integer_in_memory) == 2


@pytest.mark.parametrize("bits", ["0", "9"])
def test_evaluate_rejects_a_precision_outside_1_to_B(export_dir, bits):
    assert_one_line_error(run("golden.evaluate", str(export_dir), "--bits", bits))


@pytest.mark.parametrize("bits", ["8,x", "", "4,,2", "-1"])
def test_evaluate_rejects_malformed_bit_lists(export_dir, bits, capsys):
    assert_one_line_error(run_in_process(evaluate.main, [str(export_dir), "--bits", bits], capsys))


def test_evaluate_rejects_a_missing_model(tmp_path):
    assert_one_line_error(run("golden.evaluate", str(tmp_path / "nothing.pt")))


@pytest.mark.parametrize("name", ["model.npz", "model.json"])
def test_evaluate_rejects_a_truncated_export_file(export_dir, tmp_path, name):
    broken = tmp_path / "broken"
    shutil.copytree(export_dir, broken)
    data = (broken / name).read_bytes()
    (broken / name).write_bytes(data[: len(data) // 2])
    assert_one_line_error(run("golden.evaluate", str(broken)))


def test_export_of_a_corrupted_checkpoint_fails_and_writes_nothing(checkpoint_file, tmp_path):
    broken = tmp_path / "broken.pt"
    broken.write_bytes(checkpoint_file.read_bytes()[:1000])
    out = tmp_path / "out"
    assert_one_line_error(run("golden.export", str(broken), "--out", str(out)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.pt"]


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
    ],
)
def test_train_rejects_bad_settings_without_writing(tmp_path, args, capsys):
    out = tmp_path / "models" / "m.pt"
    assert_one_line_error(run_in_process(train.main, [*args, "--out", str(out)], capsys))
    assert not out.parent.exists()
