"""`python -m apps.sweep` on the smallest possible point (1x1, ASIC) with a model: CSVs, plots, errors."""

from __future__ import annotations

import csv

import pytest

from apps.sweep import main
from contract.cli import run_main


@pytest.mark.synth
def test_sweep_writes_area_and_energy_csvs_and_plots(tmp_path, export_dir, capfd):
    out = tmp_path / "sweep"
    assert (
        run_main(
            main,
            [
                "--target",
                "asic",
                "--arrays",
                "1x1",
                "--bits",
                "4",
                "--digit-bits",
                "1,4",
                "--max-m",
                "64",
                "--model",
                str(export_dir),
                "-o",
                str(out),
            ],
        )
        == 0
    )
    printed = capfd.readouterr().out  # progress comes from the worker process
    assert "asic-1x1-b4a8-m64-switchable: yosys: done" in printed
    assert "asic-1x1-b4a8-m64-switchable-d1: yosys: done" in printed
    area = list(csv.DictReader((out / "area-asic.csv").open()))
    assert [row["digit_bits"] for row in area] == ["1", "4"]
    assert all(float(row["nand2_eq"]) > 0 and row["error"] == "" for row in area)
    energy = list(csv.DictReader((out / "energy.csv").open()))
    # The model's B is 8, so D = 4 here is a digit-serial engine too: two digits at k > 4, one below.
    for digit_bits in ("1", "4"):
        rows = [row for row in energy if row["digit_bits"] == digit_bits]
        assert [int(row["k"]) for row in rows] == list(range(8, 0, -1))
        assert all(0 <= float(row["accuracy"]) <= 1 for row in rows)
        totals = [float(row["energy_nj"]) for row in rows]
        assert totals == sorted(totals, reverse=True) and totals[0] > totals[-1]
    assert [row["accuracy"] for row in energy if row["digit_bits"] == "1"] == [
        row["accuracy"] for row in energy if row["digit_bits"] == "4"
    ]
    assert (out / "area-asic.png").stat().st_size > 0 and (out / "energy.png").stat().st_size > 0


@pytest.mark.parametrize(
    "args,message",
    [
        (["--arrays", "4x4,big"], "--array must look like ROWSxCOLS"),
        (["--bits", "8,x"], "--bits must be a comma-separated list"),
        (["--bits", "1"], "--bits must be an integer in 2..16, got 1"),
        (["--jobs", "0"], "--jobs: must be an integer in 1..64, got '0'"),
        (["--bits", ""], "--bits must name at least one value"),
        (["--bits", " , "], "--bits must name at least one value"),
        (["--digit-bits", "3"], "--digit-bits must be one of 1, 2, 4 or B = 4 and divide B, got 3"),
        (["--digit-bits", "1,8"], "--digit-bits must be one of 1, 2, 4 or B = 4 and divide B, got 8"),
        (["--digit-bits", ","], "--digit-bits must name at least one value"),
    ],
)
def test_bad_sweep_arguments(tmp_path, capsys, args, message):
    assert run_main(main, ["--target", "asic", *args, "-o", str(tmp_path / "sweep")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]
    assert not (tmp_path / "sweep").exists()
