"""The emitted Verilog passes `verilator --lint-only` (warnings allowed, no errors): bit-parallel and digit-serial
engines, and the stand-alone address generator (hw/addrgen.py), activation scratchpad (hw/scratchpad.py),
activation fetch (hw/act_fetch.py) and output path (hw/output_path.py)."""

from __future__ import annotations

import subprocess

import pytest
from amaranth.back import verilog

from contract.config import EngineConfig
from eda.tools import verilator_env
from hw.act_fetch import ActivationFetch
from hw.addrgen import ConvAddressGenerator
from hw.engine import Engine
from hw.output_path import OutputPath
from hw.scratchpad import Scratchpad

pytestmark = pytest.mark.rtl  # Verilator


@pytest.mark.parametrize("rows,cols,digit_bits", [(4, 4, None), (16, 16, None), (3, 5, 1), (4, 4, 2)])
def test_verilator_lint_has_no_errors(tmp_path, rows, cols, digit_bits):
    check_lint(tmp_path, Engine(EngineConfig(rows=rows, cols=cols, digit_bits=digit_bits)), "nestmac_engine")


def test_the_address_generator_lints_with_no_errors(tmp_path):
    check_lint(tmp_path, ConvAddressGenerator(EngineConfig(rows=4, cols=4)), "addrgen")


@pytest.mark.parametrize("rows,depth", [(4, 1024), (3, 200)])
def test_the_scratchpad_and_the_activation_fetch_lint_with_no_errors(tmp_path, rows, depth):
    cfg = EngineConfig(rows=rows, cols=4)
    check_lint(tmp_path, Scratchpad(cfg, depth), "scratchpad")
    check_lint(tmp_path, ActivationFetch(cfg, depth), "act_fetch")


@pytest.mark.parametrize("rows,cols,depth,max_operands", [(16, 16, 1024, 2), (3, 5, 200, 1)])
def test_the_output_path_lints_with_no_errors(tmp_path, rows, cols, depth, max_operands):
    output_path = OutputPath(EngineConfig(rows=rows, cols=cols), depth, max_operands=max_operands)
    check_lint(tmp_path, output_path, "output_path")


def check_lint(tmp_path, component, name: str) -> None:
    source = tmp_path / f"{name}.v"
    source.write_text(verilog.convert(component, name=name, emit_src=False))
    binary, env = verilator_env()
    lint = subprocess.run(
        [str(binary), "--lint-only", "-Wno-fatal", "--top-module", name, str(source)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert lint.returncode == 0 and "%Error" not in lint.stderr, lint.stderr[-3000:]
