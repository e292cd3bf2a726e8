"""`contract.streams` is the engine's interface: the engine's signature and its payload layouts must be exactly
the streams, directions, fields and widths it lists, for every kind of engine."""

from __future__ import annotations

import pytest
from amaranth.hdl import Fragment
from amaranth.lib import wiring

from contract.config import EngineConfig
from contract.streams import IN, STREAMS, streams
from hw.engine import Engine
from hw.generate import describe_ports

CONFIGS = [
    EngineConfig(rows=3, cols=5, base_bits=8, act_bits=6, acc_bits=28, max_m=16, max_k=128, max_n=100),
    EngineConfig(rows=2, cols=2, base_bits=4, act_bits=4, acc_bits=16, max_m=8, max_k=64, max_n=64, digit_bits=2),
    EngineConfig(rows=4, cols=1, base_bits=6, act_bits=3, acc_bits=20, max_m=4, max_k=8, max_n=8, switchable=False),
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.rows}x{c.cols}")
def test_engine_signature_is_the_contracts_stream_list(cfg):
    """The engine's stream members, in order, are the contract's streams with their directions; every payload
    field sits at the contract's offset with its width and signedness (the manifest's view of the ports)."""
    engine = Engine(cfg)
    Fragment.get(engine, None)  # the engine that elaborates is the one whose signature is read
    members = engine.signature.members
    assert [name for name in members if name != "error"] == list(STREAMS)
    ports = {port["name"]: port for port in describe_ports(engine.signature)}
    for port in streams(cfg):
        assert members[port.name].flow == (wiring.In if port.direction == IN else wiring.Out)
        payload = ports[f"{port.name}__payload"]
        assert payload["width"] == port.width
        want = [
            dict(name=f"{field.name}.{lane}" if field.lanes else field.name, width=field.width, signed=field.signed)
            | {"offset": port.offsets[field.name] + lane * field.width}
            for field in port.fields
            for lane in range(field.lanes or 1)
        ]
        assert payload["fields"] == want, port.name
        assert ports[f"{port.name}__valid"]["direction"] == ("input" if port.direction == IN else "output")
