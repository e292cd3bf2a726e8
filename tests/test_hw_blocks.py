"""The block hierarchy that hw exports for eda.synth names modules the Verilog really has, for every variant:
a renamed submodule would otherwise move its gates into `control` without an error."""

from __future__ import annotations

import re

import pytest
from amaranth.back import verilog

from contract.config import EngineConfig, PEKind
from hw.engine import BLOCK_ORDER, MEMORY_MODULES, OTHER_BLOCK, Engine, engine_blocks
from hw.generate import TOP_NAME

VARIANTS = {PEKind.FIXED: dict(switchable=False), PEKind.BIT_PARALLEL: {}, PEKind.DIGIT_SERIAL: dict(digit_bits=2)}


@pytest.mark.parametrize("pipelined", [False, True])
@pytest.mark.parametrize("kind", list(PEKind))
def test_every_block_path_is_a_module_and_the_memories_are_where_named(kind, pipelined):
    cfg = EngineConfig(rows=2, cols=3, base_bits=4, act_bits=4, acc_bits=16, max_m=8, max_k=16, max_n=16)
    cfg = EngineConfig(**cfg.as_dict() | VARIANTS[kind], pipelined=pipelined)
    assert cfg.pe_kind is kind
    text = verilog.convert(Engine(cfg), name=TOP_NAME, emit_src=False)
    bodies = dict(re.findall(rf"^module \\{TOP_NAME}\.(\S+) (.*?)^endmodule", text, re.MULTILINE | re.DOTALL))
    blocks = engine_blocks(cfg)
    assert set(blocks) <= set(bodies), set(blocks) - set(bodies)
    assert set(blocks.values()) == set(BLOCK_ORDER) - {OTHER_BLOCK}
    assert ("datapath.column_stage.offset_term" in blocks) == (kind is PEKind.BIT_PARALLEL)
    for path in MEMORY_MODULES:
        assert re.search(r"^\s*reg \[\d+:0\] \S+ \[\d+:0\];", bodies[path], re.M), path
