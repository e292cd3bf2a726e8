"""`eda.synth --soc` and `--lut-mapper abc`: the classic-ABC script against Yosys's own synth_ecp5 script, the
script both eda.synth and eda.board write, the SoC's report names, and bad input. No synthesis is run: the
SoC's figures take minutes (docs/estimates.md, "The AXI wrapper's cost on the ECP5")."""

from __future__ import annotations

import re
import subprocess

import pytest

import eda.board
import eda.synth
from contract.cli import run_main
from contract.program import ProgramLimits
from contract.soc import BusParameters
from eda.runner import YOSYS, find_tool
from eda.synth import main, tag_for
from eda.targets import TARGETS, ecp5_classic_abc
from tests.eda.test_synth import TINY, TINY_ARGS

LIMITS = ProgramLimits(64, max_size=8, max_channels=16, max_n_tiles=4)


class Stop(Exception):
    """Raised by the stand-in tool runner once the Yosys script is written: nothing is synthesised."""


def yosys_script_steps(command: str) -> dict[str, list[str]]:
    """The labelled steps of a Yosys synthesis command's script, from its help text: label -> commands (each
    without its trailing condition in parentheses)."""
    text = subprocess.run(
        [find_tool(YOSYS), "-p", f"help {command}"], capture_output=True, text=True, check=True
    ).stdout
    steps, label = {}, None
    for line in text.split("executed by this synthesis command:", 1)[1].splitlines():
        if match := re.fullmatch(r" {4}(\w+):.*", line):
            label = match[1]
            steps[label] = []
        elif line.startswith(" " * 8) and label is not None:
            steps[label].append(re.sub(r"\s+\(.*\)$", "", line.strip()))
    return steps


def test_classic_abc_is_synth_ecp5_with_only_its_lut_mapper_replaced():
    """Yosys 0.70's synth_ecp5 wraps synth_lattice: the script runs everything before `map_luts`, `map_luts`
    itself with `abc -lut 4` for `abc9`, then everything from `map_cells` on."""
    steps = yosys_script_steps("synth_lattice")
    assert {"map_luts", "map_cells"} <= set(steps)
    stock = steps["map_luts"]
    assert sum(command.startswith("abc9") for command in stock) == 1, stock
    script = ecp5_classic_abc("top", "-nodsp")
    assert script[0] == "synth_ecp5 -top top -nodsp -run :map_luts"
    assert script[-1] == "synth_ecp5 -top top -nodsp -run map_cells:"
    assert script[1:-1] == ["abc -lut 4" if command.startswith("abc9") else command for command in stock]


def written_script(monkeypatch, module, name: str, call) -> list[str]:
    """The lines of the Yosys script `name` that `call` writes, stopping at its first Yosys run."""
    scripts = []

    def run_tool(tool, args, work, stage, progress, **kwargs):
        if tool == YOSYS:
            scripts.append((work / name).read_text().splitlines())
            raise Stop
        return None  # ecppll: its pll.v is not read before Yosys runs

    monkeypatch.setattr(module, "run_tool", run_tool)
    with pytest.raises(Stop):
        call()
    return scripts[0]


def test_eda_synth_and_eda_board_write_the_classic_abc_script(tmp_path, monkeypatch):
    quiet = lambda line: None  # noqa: E731
    synth = written_script(
        monkeypatch,
        eda.synth,
        "fpga.ys",
        lambda: eda.synth.synthesize(TINY, "ecp5-85k", tmp_path, emit=quiet, lut_mapper="abc"),
    )
    assert synth[1:-2] == ecp5_classic_abc("nestmac_engine")
    board = written_script(
        monkeypatch,
        eda.board,
        "board.ys",
        lambda: eda.board.build_bitstream("ulx3s-85f", TINY, 50.0, out_root=tmp_path, emit=quiet),
    )
    assert board[1:-2] == ecp5_classic_abc(eda.board.TOP_NAME)
    assert list(tmp_path.iterdir()) == []  # every run stopped is undone


def test_the_soc_and_the_lut_mapper_have_their_own_report_directories():
    base = "ecp5-85k-2x2-b4a4-m8-switchable-program-w64-size8-channels16-n-tiles4"
    assert tag_for(TINY, "ecp5-85k", limits=LIMITS, bus=BusParameters()) == f"{base}-soc"
    assert tag_for(TINY, "ecp5-85k", limits=LIMITS, bus=BusParameters(16, 8)) == f"{base}-soc-bus-bytes16-burst8"
    assert tag_for(TINY, "ecp5-85k", 2, LIMITS, BusParameters(), "abc") == f"{base}-soc-abc-s2"
    assert tag_for(TINY, "ecp5-85k", limits=LIMITS, lut_mapper="abc") == f"{base}-abc"
    assert TARGETS["ecp5-85k"].synth_commands("t", "", "abc") == ecp5_classic_abc("t")


@pytest.mark.parametrize(
    "args,message",
    [
        (["--target", "asic", "--soc"], "--soc is measured on the FPGA targets"),
        (["--target", "ice40-up5k", "--lut-mapper", "abc"], "--lut-mapper abc is for the ECP5 targets, not ice40-up5k"),
        (["--target", "ecp5-85k", "--lut-mapper", "abc10"], "argument --lut-mapper: invalid choice: 'abc10'"),
        (["--target", "ecp5-85k", "--soc", "--bus-bytes", "3"], "bus_bytes must be one of 4, 8, 16"),
    ],
)
def test_bad_soc_arguments_give_one_line_and_exit_2(tmp_path, capsys, args, message):
    assert run_main(main, [*TINY_ARGS, *args, "-o", str(tmp_path / "synth")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not (tmp_path / "synth").exists()
