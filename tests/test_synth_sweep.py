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
    area = list(csv.DictReader((out / "area-asic.csv").open()))
    assert len(area) == 1 and float(area[0]["nand2_eq"]) > 0 and area[0]["error"] == ""
    energy = list(csv.DictReader((out / "energy.csv").open()))
    assert [int(row["k"]) for row in energy] == list(range(8, 0, -1))
    assert all(0 <= float(row["accuracy"]) <= 1 for row in energy)
    totals = [float(row["energy_nj"]) for row in energy]
    assert totals == sorted(totals, reverse=True) and totals[0] > totals[-1]  # only the multipliers save
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
    ],
)
def test_bad_sweep_arguments(tmp_path, capsys, args, message):
    assert run_main(main, ["--target", "asic", *args, "-o", str(tmp_path / "sweep")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]
    assert not (tmp_path / "sweep").exists()
