"""The emitted Verilog passes `verilator --lint-only` (warnings allowed, no errors) at 4x4 and 16x16."""

from __future__ import annotations

import subprocess

import pytest
from amaranth.back import verilog

from contract.config import EngineConfig
from eda.tools import verilator_env
from hw.engine import Engine


@pytest.mark.parametrize("rows,cols", [(4, 4), (16, 16)])
def test_verilator_lint_has_no_errors(tmp_path, rows, cols):
    source = tmp_path / "nestmac_engine.v"
    source.write_text(
        verilog.convert(Engine(EngineConfig(rows=rows, cols=cols)), name="nestmac_engine", emit_src=False)
    )
    binary, env = verilator_env()
    lint = subprocess.run(
        [str(binary), "--lint-only", "-Wno-fatal", "--top-module", "nestmac_engine", str(source)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert lint.returncode == 0 and "%Error" not in lint.stderr, lint.stderr[-3000:]
