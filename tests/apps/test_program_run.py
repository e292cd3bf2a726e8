"""apps.run --program: the test set as layer programs on the program engine: the same accuracy as the GEMM
commands (the program is bit-exact), no host cycles, the per-step cycles of sim.program_cycles, activations
that never cross the engine's boundary, and one-line refusals for what a program cannot run."""

from __future__ import annotations

import json

import pytest

from apps.run import main
from contract.cli import run_main
from contract.config import EngineConfig
from contract.model_files import load_export
from contract.policy import Policy
from contract.program import ProgramLimits, compile_program
from sim.program_cycles import program_step_cycles


def test_a_program_run_against_the_gemm_commands(export_dir, tmp_path, capsys):
    base = [str(export_dir), "--array", "4x4", "--digit-bits", "1", "--bits", "8,1", "--images", "40"]
    assert run_main(main, [*base, "-o", str(tmp_path / "gemm")]) == 0
    assert run_main(main, [*base, "--program", "--act-kib", "4", "-o", str(tmp_path / "program")]) == 0
    stdout = capsys.readouterr().out
    assert "no host work" in stdout and "per step of the program" in stdout
    gemm, program = (json.loads((tmp_path / run / "results.json").read_text()) for run in ("gemm", "program"))
    assert program["program"] == ProgramLimits.from_kib(4, 4, 8).as_dict()
    layers = json.loads((tmp_path / "program" / "layers.json").read_text())["precisions"]
    export = load_export(export_dir)
    for row, reference, steps, k in zip(program["precisions"], gemm["precisions"], layers, (8, 1), strict=True):
        assert row["accuracy"] == reference["accuracy"] and row["host_cycles_per_inference"] == 0
        assert reference["host_cycles_per_inference"] >= 0
        compiled, _ = compile_program(export, 4, 4, 1024, Policy("uniform", (k,)).resolve(export))
        cfg = EngineConfig(rows=4, cols=4, digit_bits=1, **compiled.gemm_limits())
        expected = [program_step_cycles(cfg, compiled, d) for d in [None, *compiled.descriptors]]
        assert [step["cycles_per_inference"] for step in steps["layers"]] == expected
        assert row["cycles_per_inference"] == sum(expected)
        assert [step["name"] for step in steps["layers"]] == ["input", *(layer.name for layer in export.layers)]
        assert sum(step["bytes_per_inference"]["activations"] for step in steps["layers"]) == 64  # the image
    assert program["precisions"][0]["cycles_per_inference"] > 5 * program["precisions"][1]["cycles_per_inference"]
    # External memory: bit-plane weights, so k = 1 reads an eighth of k = 8's weight bytes (sim.memory_traffic).
    memory = [row["external_memory"] for row in program["precisions"]]
    assert memory[1]["bytes_per_inference"]["weights"] * 8 == memory[0]["bytes_per_inference"]["weights"]
    assert all(m["energy_nj"]["total"] > m["energy_nj"]["dram"] > 0 for m in memory)
    assert all(row["external_memory"] is None for row in gemm["precisions"])


@pytest.mark.parametrize(
    "args,message",
    [
        (["--batch", "2"], "--program runs one image at a time: use --batch 1"),
        (["--act-kib", "0.001"], "holds no word"),
        (["--act-kib", "0.1"], "the program does not fit the scratchpad"),
        (["--rtl", "2"], "--rtl does not run programs yet"),
    ],
)
def test_what_a_program_cannot_run_is_one_line_and_writes_nothing(export_dir, tmp_path, capsys, args, message):
    out = tmp_path / "run"
    code = run_main(main, [str(export_dir), "--array", "4x4", "--images", "4", "--program", *args, "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()
