"""The emitted Verilog passes `verilator --lint-only` (warnings allowed, no errors): bit-parallel and digit-serial."""

from __future__ import annotations

import subprocess

import pytest
from amaranth.back import verilog

from contract.config import EngineConfig
from eda.tools import verilator_env
from hw.engine import Engine

pytestmark = pytest.mark.rtl  # Verilator


@pytest.mark.parametrize("rows,cols,digit_bits", [(4, 4, None), (16, 16, None), (3, 5, 1), (4, 4, 2)])
def test_verilator_lint_has_no_errors(tmp_path, rows, cols, digit_bits):
    config = EngineConfig(rows=rows, cols=cols, digit_bits=digit_bits)
    source = tmp_path / "nestmac_engine.v"
    source.write_text(verilog.convert(Engine(config), name="nestmac_engine", emit_src=False))
    binary, env = verilator_env()
    lint = subprocess.run(
        [str(binary), "--lint-only", "-Wno-fatal", "--top-module", "nestmac_engine", str(source)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert lint.returncode == 0 and "%Error" not in lint.stderr, lint.stderr[-3000:]
