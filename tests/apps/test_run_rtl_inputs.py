"""`apps.run --rtl` refuses what it cannot run: one `error:` line, exit status 2, nothing written.

None of these builds or simulates anything: the count and the simulator are checked before the model runs,
a command too big for the stream players before the Verilog is built.
"""

import shutil

from apps.run import main
from contract.cli import run_main
from golden.data import digits_split


def refused(capsys, out, *args) -> str:
    status = run_main(main, [*map(str, args), "-o", str(out)])
    lines = capsys.readouterr().err.strip().splitlines()  # the model's progress lines come first
    errors = [line for line in lines if "error" in line]
    assert status == 2 and len(errors) == 1 and lines[-1].startswith("error: "), lines
    assert "Traceback" not in lines and not out.exists()
    return lines[-1]


def test_more_images_than_the_test_set(export_dir, tmp_path, capsys):
    available = len(digits_split().test_x)
    error = refused(capsys, tmp_path / "run", export_dir, "--rtl", available + 1, "--bits", "8")
    assert f"--rtl {available + 1}: the test set has only {available} images" in error


def test_not_a_count(export_dir, tmp_path, capsys):
    assert "--rtl" in refused(capsys, tmp_path / "run", export_dir, "--rtl", "some")


def test_a_missing_simulator(export_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    error = refused(capsys, tmp_path / "run", export_dir, "--rtl", "1", "--simulator", "icarus", "--bits", "8")
    assert "iverilog not found" in error


def test_a_command_too_big_for_the_players(export_dir, tmp_path, capsys):
    """Eight images in one pass on a 2x2 array: a layer command has more act beats than a player holds."""
    args = ["--rtl", "8", "--images", "8", "--batch", "8", "--array", "2x2", "--bits", "8"]
    error = refused(capsys, tmp_path / "run", export_dir, *args)
    assert "act beats, more than the 65536 its player holds" in error
