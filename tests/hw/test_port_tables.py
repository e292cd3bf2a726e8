"""Every HDL component's docstring has a port table (a numpydoc "Members" section, as amaranth.lib's own
components have) that names exactly the members its signature has in some engine variant, each with its
direction, so the tables cannot drift from the ports."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from amaranth.hdl import unsigned
from amaranth.lib.wiring import Flow

from contract.config import PEKind
from contract.widths import psum_bits
from hw.accumulator import Accumulator
from hw.act_fetch import ActivationFetch
from hw.addrgen import ConvAddressGenerator
from hw.array import SystolicArray
from hw.column import STAGES
from hw.datapath import Datapath
from hw.decision import DecisionUnit
from hw.engine import Engine
from hw.offset import OffsetTerm
from hw.output_path import OutputPath
from hw.pe import ProcessingElement
from hw.program_engine import ProgramEngine
from hw.requant import Requantizer
from hw.scratchpad import Scratchpad
from hw.sequencer import Sequencer
from hw.skew import Skew
from hw.stall import StallCopies
from verif.configs import KINDS

CONFIGS = [*KINDS.values(), *(replace(cfg, pipelined=True) for cfg in KINDS.values())]


def components():
    """Every component class of hw/ built in every variant it exists in, grouped by class."""
    built = {}
    for cfg in CONFIGS:
        for component in (
            SystolicArray(cfg),
            Accumulator(cfg),
            Requantizer(cfg),
            Sequencer(cfg),
            Datapath(cfg),
            Engine(cfg),
            ProcessingElement(cfg, psum_bits(cfg)),
            STAGES[cfg.pe_kind](cfg),
            *([OffsetTerm(cfg)] if cfg.pe_kind is PEKind.BIT_PARALLEL else []),
        ):
            built.setdefault(type(component), []).append(component)
    built[Skew] = [Skew(unsigned(4), [1, 2])]
    built[StallCopies] = [StallCopies(3, 4)]
    built[ConvAddressGenerator] = [ConvAddressGenerator(cfg) for cfg in KINDS.values()]
    built[Scratchpad] = [Scratchpad(cfg, 1024, operand_port=port) for cfg in KINDS.values() for port in (False, True)]
    built[ActivationFetch] = [ActivationFetch(cfg, 1024) for cfg in KINDS.values()]
    built[OutputPath] = [OutputPath(cfg, 1024) for cfg in KINDS.values()]
    built[ProgramEngine] = [
        ProgramEngine(cfg, 1024, weight_requests=requests)
        for cfg in KINDS.values()
        if cfg.switchable
        for requests in (False, True)
    ]
    built[DecisionUnit] = [DecisionUnit(cfg, 64) for cfg in KINDS.values()]
    return built


def documented_members(cls) -> dict[str, str]:
    """name -> "In"/"Out" (or "" for a shared entry) from the Members sections of `cls` and its bases."""
    members = {}
    for klass in reversed(cls.__mro__):
        section = re.search(r"\n\s*Members\n\s*-+\n(.*?)(\n\s*\n|\Z)", klass.__dict__.get("__doc__") or "", re.S)
        if not section:
            continue
        for line in section.group(1).split("\n"):
            entry = re.match(r"    (\w+(?:, \w+)*)(?: : (In|Out)\()?", line)
            if entry and not line.startswith("        "):
                for name in entry.group(1).split(", "):
                    members[name] = entry.group(2) or members.get(name, "")
    return members


BUILT = components()


@pytest.mark.parametrize("cls", list(BUILT), ids=lambda cls: cls.__name__)
def test_every_member_is_in_the_port_table_with_its_direction(cls):
    documented = documented_members(cls)
    actual = {}
    for component in BUILT[cls]:
        for name, member in component.signature.members.items():
            actual[name] = "In" if member.flow is Flow.In else "Out"
    assert set(documented) == set(actual), f"{cls.__name__}: documented {sorted(documented)}, ports {sorted(actual)}"
    for name, direction in actual.items():
        assert documented[name] == direction, f"{cls.__name__}.{name} is {direction}, documented {documented[name]}"
