"""`eda.synth --program`: the program engine's gates land in named blocks, and its flags' bad input is refused.

The block attribution is read off the Verilog the generator emits (no Yosys): a renamed or added submodule
must not move its gates into `program control` or another unit's block without a failing test. The ASIC
run on a 2x2 program engine is `synth`-marked.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest
from amaranth.back import verilog

from contract.config import PEKind
from contract.program import ProgramLimits
from eda.report import NAND2_UM2, block_of
from eda.synth import synthesize, tag_for
from hw.engine import OTHER_BLOCK, Engine, engine_blocks
from hw.generate import PROGRAM_TOP_NAME, TOP_NAME, program_engine
from hw.program_engine import (
    PROGRAM_BLOCK_ORDER,
    PROGRAM_MEMORY_MODULES,
    PROGRAM_OTHER_BLOCK,
    program_engine_blocks,
)
from tests.eda.test_synth import TINY, run_synth
from verif.configs import KINDS

#: Small limits: the same modules as the defaults, narrower counters.
LIMITS = ProgramLimits(64, max_size=8, max_channels=16, max_n_tiles=4)
PROGRAM_ARGS = ["--program", "--array", "2x2", "--target", "asic"]


def module_bodies(text: str, top: str) -> dict[str, str]:
    """Each module of the emitted Verilog by its path below `top` ('' for the top itself) -> its body."""
    found = re.findall(r"^module \\?(\S+?)[ (](.*?)^endmodule", text, re.MULTILINE | re.DOTALL)
    return {"" if name == top else name.removeprefix(f"{top}."): body for name, body in found}


@pytest.mark.parametrize(
    "cfg",
    [KINDS[PEKind.BIT_PARALLEL], replace(KINDS[PEKind.BIT_PARALLEL], pipelined=True), KINDS[PEKind.DIGIT_SERIAL]],
    ids=["bit-parallel", "pipelined", "digit-serial"],
)
def test_every_program_engine_module_is_in_a_named_block(cfg):
    text = verilog.convert(program_engine(cfg, LIMITS), name=PROGRAM_TOP_NAME, emit_src=False)
    bodies = module_bodies(text, PROGRAM_TOP_NAME)
    blocks = program_engine_blocks(cfg)
    assert set(blocks) <= set(bodies), set(blocks) - set(bodies)
    # Only the top module itself is program control: every submodule is, or lies below, a named path.
    unnamed = [path for path in bodies if block_of(path, blocks, PROGRAM_OTHER_BLOCK) == PROGRAM_OTHER_BLOCK]
    assert unnamed == [""], unnamed
    assert {block_of(path, blocks, PROGRAM_OTHER_BLOCK) for path in bodies} == set(PROGRAM_BLOCK_ORDER)
    for path in PROGRAM_MEMORY_MODULES:
        assert re.search(r"^\s*reg \[\d+:0\] \S+ \[\d+:0\];", bodies[path], re.M), path


@pytest.mark.parametrize("kind", list(PEKind))
def test_the_gemm_engines_attribution_is_unchanged_by_nearest_named_ancestor(kind):
    """eda.report.block_of gives every module of the GEMM engine the block its exact path had before it."""
    cfg = KINDS[kind]
    bodies = module_bodies(verilog.convert(Engine(cfg), name=TOP_NAME, emit_src=False), TOP_NAME)
    blocks = engine_blocks(cfg)
    assert {path: block_of(path, blocks, OTHER_BLOCK) for path in bodies} == {
        path: blocks.get(path, OTHER_BLOCK) for path in bodies
    }


def test_block_of_takes_the_nearest_named_ancestor():
    hierarchy = {"fetch": "activation_fetch", "fetch.addresses": "address_generator"}
    assert block_of("fetch.addresses.counter", hierarchy, "other") == "address_generator"
    assert block_of("fetch.stage", hierarchy, "other") == "activation_fetch"
    assert block_of("fetcher", hierarchy, "other") == "other"  # a path prefix is not an ancestor
    assert block_of("", hierarchy, "other") == "other"


def test_a_program_engine_report_has_its_own_directory():
    assert tag_for(TINY, "asic", limits=ProgramLimits(1024)) == "asic-2x2-b4a4-m8-switchable-program-w1024"
    assert (
        tag_for(TINY, "ecp5-85k", seed=3, limits=LIMITS)
        == "ecp5-85k-2x2-b4a4-m8-switchable-program-w64-size8-channels16-n-tiles4-s3"
    )


@pytest.mark.parametrize(
    "args,message",
    [
        (["--fixed-precision"], "--program needs the switchable engine (layer programs set k per layer)"),
        (["--act-kib", "0"], "a scratchpad of 0.0 KiB holds no word of 2 8-bit codes"),
        (["--max-size", "0"], "max_size must be a positive integer, got 0"),
        (["--act-kib", "many"], "argument --act-kib: invalid float value: 'many'"),
    ],
)
def test_bad_program_arguments_give_one_line_and_exit_2(tmp_path, args, message):
    result = run_synth(*PROGRAM_ARGS, *args, "-o", str(tmp_path / "synth"))
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert message in result.stderr and not (tmp_path / "synth").exists()


@pytest.mark.synth
def test_asic_program_report_adds_up_with_both_memories(tmp_path):
    report = synthesize(TINY, "asic", tmp_path, emit=lambda line: None, limits=LIMITS)
    work = tmp_path / tag_for(TINY, "asic", limits=LIMITS)
    assert json.loads((work / "report.json").read_text()) == report
    blocks = report["gates"]["blocks"]
    assert list(blocks) == list(PROGRAM_BLOCK_ORDER)
    for name in ("engine.pe_array", "address_generator", "activation_fetch", "output_path", PROGRAM_OTHER_BLOCK):
        assert blocks[name]["nand2_eq"] > 0, name
    yosys_total = json.loads((work / "stat.json").read_text())["design"]["estimated_num_transistors"]
    assert report["gates"]["total_transistors"] == int(yosys_total.rstrip("+"))
    assert report["memory"]["bits"] == TINY.max_m * TINY.cols * TINY.acc_bits
    assert report["scratchpad_memory"]["bits"] == LIMITS.words * TINY.rows * TINY.act_bits
    area = report["area"]
    sram = report["memory"]["sram_um2"] + report["scratchpad_memory"]["sram_um2"]
    assert area["memory_um2"] == pytest.approx(sram, abs=0.1)
    assert area["total_mm2"] == pytest.approx((area["logic_nand2_eq"] * NAND2_UM2 + sram) / 1e6, abs=1e-4)
