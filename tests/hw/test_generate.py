"""`python -m hw.generate` as a user runs it: output files, manifest, lint, and every error path."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from contract.config import PRESETS
from eda.tools import verilator_env
from hw.generate import parse_args

REPO = Path(__file__).resolve().parents[2]


def run_generate(*args, cwd=REPO):
    return subprocess.run(
        [sys.executable, "-m", "hw.generate", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize(
    "args,message",
    [
        (["--array", "0x16"], "--array rows must be an integer in 1..48, got 0"),
        (["--array", "16x0"], "--array columns must be"),
        (["--array", "16"], "--array must look like ROWSxCOLS"),
        (["--array", "axb"], "--array must look like ROWSxCOLS"),
        (["--base-bits", "0"], "--base-bits must be an integer in 2..16, got 0"),
        (["--bits", "17"], "--base-bits must be an integer in 2..16, got 17"),  # the documented alias
        (["--bits", "eight"], "argument --base-bits/--bits: invalid int value"),
        (["--acc-bits", "16"], "--acc-bits 16 is too narrow for --max-k 4096"),
        (["--max-k", "40000"], "--acc-bits 32 is too narrow for --max-k 40000"),
        (["--frobnicate"], "unrecognized arguments"),
        (["--preset", "tpu"], "argument --preset: invalid choice: 'tpu'"),
        (["--program", "--fixed-precision"], "--program needs the switchable engine"),
        (["--program", "--act-kib", "0.01"], "a scratchpad of 0.01 KiB holds no word of 16 8-bit codes"),
        (["--program", "--max-operands", "0"], "max_operands must be a positive integer, got 0"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2_and_write_nothing(tmp_path, args, message):
    out = tmp_path / "gen"
    result = run_generate(*args, "-o", str(out))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_generates_verilog_and_manifest_that_verilator_accepts(tmp_path):
    out = tmp_path / "gen"
    result = run_generate(
        "--bits", "4", "--array", "2x3", "--max-m", "16", "--max-k", "64", "--max-n", "64", "-o", str(out)
    )
    assert result.returncode == 0, result.stderr
    assert "6 PEs" in result.stdout and str(out / "nestmac_engine.v") in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gen"], "no staging directory may be left behind"

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["parameters"]["rows"] == 2 and manifest["parameters"]["cols"] == 3
    assert manifest["parameters"]["base_bits"] == 4
    ports = {p["name"]: p for p in manifest["ports"]}
    verilog_text = (out / "nestmac_engine.v").read_text()
    for stream, direction in [
        ("cmd", "input"),
        ("weight", "input"),
        ("act", "input"),
        ("param", "input"),
        ("result", "output"),
    ]:
        payload = ports[f"{stream}__payload"]
        assert payload["direction"] == direction
        assert sum(f["width"] for f in payload["fields"]) == payload["width"]
        assert ports[f"{stream}__valid"]["direction"] == direction
        for name, port in ports.items():
            if name.startswith(stream):
                width = f"[{port['width'] - 1}:0] " if port["width"] > 1 else ""
                assert f"{port['direction']} {width}{name};" in verilog_text, name

    binary, env = verilator_env()
    lint = subprocess.run(
        [str(binary), "--lint-only", "-Wno-fatal", "--top-module", "nestmac_engine", str(out / "nestmac_engine.v")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert lint.returncode == 0, lint.stderr[-3000:]
    assert "%Error" not in lint.stderr


def test_regeneration_replaces_the_previous_output(tmp_path):
    out = tmp_path / "gen"
    args = ("--bits", "8", "--array", "2x2", "--max-m", "8", "--max-k", "32", "--max-n", "32", "-o", str(out))
    assert run_generate(*args).returncode == 0
    (out / "stale.v").write_text("// from an older run\n")
    result = run_generate(*args)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == [".nestmac-output", "manifest.json", "nestmac_engine.v"]


def test_a_file_or_a_foreign_directory_at_the_output_path_is_refused_and_kept(tmp_path):
    """issue 14: -o FILE turned the file into a directory (moving it to .FILE.old); -o DIR deleted DIR/models."""
    (tmp_path / "notes.v").write_text("mine")
    (tmp_path / "work" / "models").mkdir(parents=True)
    (tmp_path / "work" / "models" / "m.pt").write_text("mine")
    for out, message in [("notes.v", "is not a directory"), ("work", "not written by a nestmac tool")]:
        result = run_generate("--bits", "4", "--array", "1x1", "-o", str(tmp_path / out))
        assert result.returncode == 2 and message in result.stderr and len(result.stderr.splitlines()) == 1
    assert (tmp_path / "notes.v").read_text() == "mine" and (
        tmp_path / "work" / "models" / "m.pt"
    ).read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.v", "work"]


def test_the_program_engine_and_its_manifest(tmp_path):
    """--program emits the program engine: its top, its ports, its scratchpad of --act-kib KiB and the program
    format it runs, in the manifest."""
    out = tmp_path / "gen"
    args = ["--program", "--act-kib", "2", "--array", "4x4", "--max-m", "64", "--max-k", "256", "--max-n", "64"]
    result = run_generate(*args, "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "program engine: 512 scratchpad words (2048 bytes)" in result.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["top"] == "nestmac_program_engine" and (out / "nestmac_program_engine.v").is_file()
    assert manifest["program"] == dict(
        format="nestmac-program", version=4, scratchpad_kib=2.0, words=512, max_size=64, max_channels=1024,
        max_n_tiles=64, max_operands=2,
    )  # fmt: skip
    ports = {port["name"] for port in manifest["ports"]}
    assert {"step__payload", "image__payload", "weight__payload", "param__payload", "logits__payload", "error"} <= ports
    assert "cmd__payload" not in ports and "act__payload" not in ports
    assert [memory["name"] for memory in manifest["memories"]] == ["scratchpad", "accumulator"]
    assert manifest["memories"][0]["depth"] == 512 and manifest["memories"][0]["width"] == 4 * 8


@pytest.mark.parametrize("name", list(PRESETS))
def test_a_preset_is_its_flags_spelled_out(name):
    fields = PRESETS[name]
    flags = ["--array", f"{fields['rows']}x{fields['cols']}"]
    flags += ["--fixed-precision"] if fields.get("switchable") is False else []
    flags += ["--digit-bits", str(fields["digit_bits"])] if "digit_bits" in fields else []
    flags += ["--pipelined"] if fields.get("pipelined") else []
    assert parse_args(["--preset", name]) == parse_args(flags)


def test_flags_given_with_a_preset_win_before_or_after_it():
    before = parse_args(["--array", "8x8", "--max-m", "64", "--preset", "fpga-digit-serial-16x16"])[0]
    after = parse_args(["--preset", "fpga-digit-serial-16x16", "--array", "8x8", "--max-m", "64"])[0]
    assert before == after
    assert (before.rows, before.cols, before.max_m, before.digit_bits, before.pipelined) == (8, 8, 64, 1, True)
