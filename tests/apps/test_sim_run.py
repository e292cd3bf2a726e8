"""`python -m apps.run` as a user runs it, on the session's exported digits model."""

import csv
import json
import math
import shutil
import subprocess
import sys

import pytest

from apps.run import main
from contract.cli import run_main
from contract.model_files import load_export
from golden.data import digits_split
from golden.evaluate import integer_predictions


def run_sim(*args):
    return subprocess.run(
        [sys.executable, "-m", "apps.run", *map(str, args)], capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow  # a real `python -m` subprocess: a few seconds of imports each
def test_accuracy_per_k_matches_the_golden_integer_path(export_dir, tmp_path):
    out = tmp_path / "run"
    result = run_sim(export_dir, "--array", "4x4", "--bits", "8,2", "--images", "40", "--batch", "4", "-o", out)
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(open(out / "results.csv")))
    split, export = digits_split(), load_export(export_dir)
    for row in rows:
        golden = integer_predictions(export, split.test_x[:40], int(row["k"]))
        expected = int((golden == split.test_y[:40]).sum()) / 40
        assert float(row["accuracy"]) == pytest.approx(expected, abs=1e-12), row
    # Precision switching costs nothing: every k takes the same cycles.
    assert len({row["cycles_per_inference"] for row in rows}) == 1
    assert 0 < float(rows[0]["mac_utilisation"]) <= 1
    summary = json.loads((out / "results.json").read_text())
    assert summary["engine"]["rows"] == 4 and summary["batch"] == 4 and summary["rtl"] is None
    assert "accuracy % MBitOPs" in " ".join(result.stdout.split())


def digit_serial_cycles(rows: int, cols: int, digit_bits: int, shapes, k: int) -> int:
    """docs/architecture.md, "Digit-serial engines": a command takes
    1 + R + ((T-1)*max(M*n, R) + M*n) + (R + C + 1) + 7 + 1 cycles, n = ceil(k/D) and T its K x N tiles, and
    back to back each command overlaps the drain and output cycle of the one before it, R + C + 9 here."""
    n = math.ceil(k / digit_bits)
    commands = [
        1 + rows + (tiles - 1) * max(m * n, rows) + m * n + (rows + cols + 1) + 7 + 1
        for m, tiles in ((m, math.ceil(k_dim / rows) * math.ceil(n_dim / cols)) for m, k_dim, n_dim in shapes)
    ]
    return sum(commands) - (rows + cols + 9) * (len(commands) - 1)


@pytest.mark.slow  # a real `python -m` subprocess: a few seconds of imports each
@pytest.mark.parametrize("digit_bits", [1, 2])
def test_a_digit_serial_engine_keeps_the_accuracy_and_its_cycles_fall_with_k(export_dir, tmp_path, digit_bits):
    """issue 9: the digits model on a D-digit engine, every k: the same predictions as the golden integer path
    (which the bit-parallel run above matches), in the cycles of the documented formula."""
    out, images = tmp_path / "run", 12
    result = run_sim(
        export_dir, "--array", "4x8", "--digit-bits", digit_bits, "--bits", "8,7,6,5,4,3,2,1", "--images", images,
        "-o", out,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = {int(row["k"]): row for row in csv.DictReader(open(out / "results.csv"))}
    split, export = digits_split(), load_export(export_dir)
    shapes = export.gemm_shapes()
    assert all(m <= 1024 for m, _, _ in shapes)  # one command per layer at the default --max-m
    for k, row in rows.items():
        golden = integer_predictions(export, split.test_x[:images], k)
        assert float(row["accuracy"]) == int((golden == split.test_y[:images]).sum()) / images, k
        assert float(row["cycles_per_inference"]) == digit_serial_cycles(4, 8, digit_bits, shapes, k), k
    assert float(rows[1]["cycles_per_inference"]) < float(rows[8]["cycles_per_inference"])
    assert json.loads((out / "results.json").read_text())["engine"]["digit_bits"] == digit_bits


@pytest.mark.slow  # a real `python -m` subprocess: a few seconds of imports each
@pytest.mark.parametrize(
    "args,message",
    [
        (["--bits", "9"], "--bits: precision 9 is outside 1..8"),
        (["--array", "0x4"], "--array rows must be"),
        (["--batch", "0"], "--batch: must be an integer in 1..1048576, got '0'"),
        (["--clock-mhz", "nan"], "--clock-mhz: must be a number in (0, 10000.0], got 'nan'"),
        (["--simulator", "modelsim"], "invalid choice: 'modelsim'"),
        (["--digit-bits", "3"], "--digit-bits must be one of 1, 2, 4 or B = 8 and divide B, got 3"),
        (["--digit-bits", "0"], "--digit-bits must be one of 1, 2, 4 or B = 8 and divide B, got 0"),
    ],
)
def test_bad_arguments_give_one_line(export_dir, tmp_path, args, message):
    result = run_sim(export_dir, *args, "-o", tmp_path / "run")
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


@pytest.mark.slow  # a real `python -m` subprocess: a few seconds of imports each
def test_missing_export_gives_one_line(tmp_path):
    result = run_sim(tmp_path / "nowhere", "-o", tmp_path / "run")
    assert result.returncode == 2 and result.stderr.startswith("error: export directory not found"), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_failed_run_keeps_the_earlier_results_and_never_writes_over_its_export(export_dir, tmp_path, capsys):
    """issue 14: --clock-mhz nan wrote a bare NaN over a good results.json; -o EXPORT deleted the export."""
    export = tmp_path / "export"
    shutil.copytree(export_dir, export)
    out = tmp_path / "run"
    assert run_main(main, [str(export), "--images", "3", "--bits", "8", "-o", str(out)]) == 0
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    capsys.readouterr()
    for args in (["--clock-mhz", "nan", "-o", str(out)], ["-o", str(export)], ["-o", str(tmp_path)]):
        try:
            code = run_main(main, [str(export), "--images", "3", "--bits", "8", *args])
        except SystemExit as exc:  # argparse exits from inside the parser
            code = exc.code
        assert code == 2 and capsys.readouterr().err.startswith("error: ")
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_progress_on_a_pipe_is_plain_lines(capsys, monkeypatch):
    """A log file or pipe gets whole lines, never carriage returns that smear into one."""
    from contract.progress import Progress

    monkeypatch.setattr(Progress, "PIPE_SECONDS", 0.0)
    progress = Progress("k=8", 3, "images")
    for done in (1, 2, 3):
        progress(done)
    progress.close()
    err = capsys.readouterr().err
    assert "\r" not in err and err.splitlines()[-1].startswith("k=8: 3/3 images")
    assert len(err.splitlines()) == 3


def test_default_outputs_are_named_after_the_engine_and_policies(export_dir, tmp_path, monkeypatch, capsys):
    """A D = 1 run must not replace the bit-parallel results, nor a run with other images the earlier one."""
    monkeypatch.setenv("NESTMAC_BUILD", str(tmp_path / "build"))
    base = [str(export_dir), "--array", "4x4", "--images", "8"]
    for extra in (["--bits", "8,2"], ["--bits", "8,2", "--digit-bits", "1"]):
        assert run_main(main, base + extra) == 0
    capsys.readouterr()
    runs = tmp_path / "build" / "run" / export_dir.name
    names = sorted(str(path.relative_to(runs)) for path in runs.glob("*/*"))
    assert names == ["4x4-b8a8-m1024-switchable-d1/k8,2", "4x4-b8a8-m1024-switchable/k8,2"]
    before = (runs / names[1] / "results.json").read_text()
    assert run_main(main, base[:-1] + ["10", "--bits", "8,2"]) == 2
    error = capsys.readouterr().err
    assert "holds the results of a different apps.run run (other images); pass -o DIR" in error
    assert (runs / names[1] / "results.json").read_text() == before
    assert run_main(main, base + ["--bits", "8,2"]) == 0  # the same run again replaces its own output


def test_gops_and_tops_per_w_come_from_each_rows_own_macs_cycles_and_energy(export_dir, tmp_path, capsys):
    """issue 25: peers' units beside the MAC counts, 2 ops per MAC; on a D = 1 engine GOPS rises as k falls."""
    out = tmp_path / "run"
    args = [str(export_dir), "--array", "4x4", "--digit-bits", "1", "--bits", "8,4,1", "--images", "8"]
    assert run_main(main, [*args, "--clock-mhz", "200", "-o", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "device: engine 4x4-b8a8-m1024-switchable-d1 at 200 MHz, energy table horowitz-45nm" in stdout
    summary = json.loads((out / "results.json").read_text())
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert list(summary["precisions"][0])[len(rows[0]) - 3 : len(rows[0])] == [
        "macs_per_inference",
        "gops",
        "tops_per_w",
    ]
    for row, saved in zip(rows, summary["precisions"], strict=True):
        macs, cycles = float(row["macs_per_inference"]), float(row["cycles_per_inference"])
        seconds = cycles / (summary["clock_mhz"] * 1e6)
        assert float(row["gops"]) == pytest.approx(2 * macs / seconds / 1e9, rel=1e-9)
        joules = float(row["energy_nj_per_inference"]) * 1e-9
        assert float(row["tops_per_w"]) == pytest.approx(2 * macs / joules / 1e12, rel=1e-9)
        assert saved["gops"] == pytest.approx(float(row["gops"])) and macs > 0
    gops = [float(row["gops"]) for row in rows]  # k = 8, 4, 1
    assert gops[0] < gops[1] < gops[2]
