"""The block hierarchy that hw exports for eda.synth names modules the Verilog really has, for every variant:
a renamed submodule would otherwise move its gates into `control` without an error."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from amaranth.back import verilog

from contract.config import PEKind
from hw.engine import BLOCK_ORDER, MEMORY_MODULES, OTHER_BLOCK, Engine, engine_blocks
from hw.generate import TOP_NAME
from verif.configs import KINDS


@pytest.mark.parametrize("pipelined", [False, True])
@pytest.mark.parametrize("kind", list(PEKind))
def test_every_block_path_is_a_module_and_the_memories_are_where_named(kind, pipelined):
    cfg = replace(KINDS[kind], pipelined=pipelined)
    assert cfg.pe_kind is kind
    text = verilog.convert(Engine(cfg), name=TOP_NAME, emit_src=False)
    bodies = dict(re.findall(rf"^module \\{TOP_NAME}\.(\S+) (.*?)^endmodule", text, re.MULTILINE | re.DOTALL))
    blocks = engine_blocks(cfg)
    assert set(blocks) <= set(bodies), set(blocks) - set(bodies)
    assert set(blocks.values()) == set(BLOCK_ORDER) - {OTHER_BLOCK}
    assert ("datapath.column_stage.offset_term" in blocks) == (kind is PEKind.BIT_PARALLEL)
    for path in MEMORY_MODULES:
        assert re.search(r"^\s*reg \[\d+:0\] \S+ \[\d+:0\];", bodies[path], re.M), path
