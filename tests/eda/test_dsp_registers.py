"""`eda.dsp_registers`: which product registers move into a MULT18X18D's own output register, on small
hand-made Yosys netlists (a multiplier whose 4 used product bits feed 4 flip-flops)."""

from __future__ import annotations

import copy

import pytest

from eda.dsp_registers import absorb_output_registers

CLK, CE, RST = 2, 3, 4  # net numbers
PRODUCT = [10, 11, 12, 13]  # P0..P3's nets; P4..P35 drive nothing
Q = [20, 21, 22, 23]
FF_SETTINGS = {
    "CEMUX": "CE",
    "CLKMUX": "CLK",
    "GSR": "DISABLED",
    "LSRMUX": "LSR",
    "REGSET": "RESET ",
    "SRMODE": "LSR_OVER_CE",
}


def flip_flop(d: int, q: int, **settings) -> dict:
    return {
        "type": "TRELLIS_FF",
        "parameters": FF_SETTINGS | settings,
        "port_directions": {"CLK": "input", "CE": "input", "LSR": "input", "DI": "input", "Q": "output"},
        "connections": {"CLK": [CLK], "CE": [CE], "LSR": [RST], "DI": [d], "Q": [q]},
    }


def netlist() -> dict:
    outputs = {f"P{i}": [PRODUCT[i] if i < 4 else 100 + i] for i in range(36)}
    multiplier = {
        "type": "MULT18X18D",
        "parameters": {},
        "port_directions": {f"P{i}": "output" for i in range(36)} | {"A0": "input", "B0": "input"},
        "connections": outputs | {"A0": [5], "B0": [6]},
    }
    cells = {"mult": multiplier} | {f"ff{i}": flip_flop(PRODUCT[i], Q[i]) for i in range(4)}
    return {"cells": cells}


def test_product_flip_flops_become_the_blocks_output_register():
    module = netlist()
    assert absorb_output_registers(module, port_bits=set()) == (1, 4)
    mult = module["cells"]["mult"]
    assert list(module["cells"]) == ["mult"]
    assert [mult["connections"][f"P{i}"] for i in range(4)] == [[q] for q in Q]
    assert mult["connections"]["CLK0"] == [CLK] and mult["connections"]["CE0"] == [CE]
    assert mult["connections"]["RST0"] == [RST]
    assert mult["parameters"]["REG_OUTPUT_CLK"] == "CLK0" and mult["parameters"]["RESETMODE"] == "SYNC"


def test_an_always_enabled_flip_flop_gives_a_constant_enable():
    module = netlist()
    for i in range(4):
        module["cells"][f"ff{i}"]["parameters"]["CEMUX"] = "1 "
        del module["cells"][f"ff{i}"]["connections"]["CE"]
    assert absorb_output_registers(module, set()) == (1, 4)
    assert module["cells"]["mult"]["connections"]["CE0"] == ["1"]


@pytest.mark.parametrize(
    "change",
    ["product also feeds logic", "reset to 1", "two enables", "product is a port", "inverted clock"],
)
def test_what_the_output_register_cannot_stand_in_for_is_left_alone(change):
    module = netlist()
    cells = module["cells"]
    ports = set()
    if change == "product also feeds logic":
        cells["lut"] = {"type": "LUT4", "parameters": {}, "port_directions": {"A": "input"}, "connections": {"A": [11]}}
    elif change == "reset to 1":
        cells["ff2"]["parameters"]["REGSET"] = "SET"
    elif change == "two enables":
        cells["ff3"]["connections"]["CE"] = [7]
    elif change == "product is a port":
        ports = {12}
    else:
        cells["ff0"]["parameters"]["CLKMUX"] = "INV"
    before = copy.deepcopy(module)
    assert absorb_output_registers(module, ports) == (0, 0)
    assert module == before
