"""Move the flip-flops behind each ECP5 multiplier into the MULT18X18D's own output register.

Yosys's `synth_ecp5` maps a multiplier onto a MULT18X18D with every register left unused and the product
register in the fabric, so a multiplier stage costs the block's 3.9 ns plus a route out of it to slice
flip-flops (docs/estimates.md, "Issue 25"). Where every used product bit drives exactly one flip-flop's
data input and nothing else, and those flip-flops share clock, enable and a synchronous reset to 0 (a
register of the datapath: `product.eq(a * b)` under a stall enable), the flip-flops are removed and the
block's output register takes their place: REG_OUTPUT_CLK/CE/RST on CLK0/CE0/RST0, the same nets. The
function of the netlist is unchanged (the block's register resets to 0 and holds while CE is low, as a
TRELLIS_FF with REGSET=RESET and SRMODE=LSR_OVER_CE does); nextpnr then times the block as registered.

Input registers are left alone: the datapath's multiplier operands also feed other logic (a PE's
activation passes on to its right-hand neighbour, a requantizer slice also goes to the rounding term), so
they cannot move into one block.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

PRODUCT_BITS = 36
#: The TRELLIS_FF settings a MULT18X18D output register can stand in for (Yosys pads strings with spaces).
FOLLOWABLE = {"CLKMUX": "CLK", "LSRMUX": "LSR", "REGSET": "RESET", "SRMODE": "LSR_OVER_CE"}


def _param(cell: dict, name: str, default: str) -> str:
    return str(cell["parameters"].get(name, default)).strip()


def _sinks(cells: dict) -> dict[int | str, list[tuple[str, str]]]:
    """net bit -> every (cell, input port) it drives."""
    sinks = defaultdict(list)
    for name, cell in cells.items():
        for port, bits in cell["connections"].items():
            if cell["port_directions"].get(port) == "input":
                for bit in bits:
                    sinks[bit].append((name, port))
    return sinks


def _control(ff: dict) -> tuple:
    """What a flip-flop's register would need from the block: clock, enable, reset nets and its settings."""
    settings = tuple(_param(ff, key, value) == value for key, value in FOLLOWABLE.items())
    enable = ff["connections"].get("CE", ["1"])[0] if _param(ff, "CEMUX", "CE") == "CE" else "1"
    if _param(ff, "CEMUX", "CE") not in ("CE", "1"):
        return ("unfollowable",)
    return (ff["connections"]["CLK"][0], enable, ff["connections"].get("LSR", ["0"])[0], settings)


def absorb_output_registers(module: dict, port_bits: set) -> tuple[int, int]:
    """Rewrite `module` (a Yosys JSON module) in place; returns (blocks registered, flip-flops removed)."""
    cells = module["cells"]
    sinks = _sinks(cells)
    blocks = removed = 0
    for cell in [c for c in cells.values() if c["type"] == "MULT18X18D"]:
        if _param(cell, "REG_OUTPUT_CLK", "NONE") != "NONE":
            continue
        used = [(i, cell["connections"][f"P{i}"][0]) for i in range(PRODUCT_BITS)]
        used = [(i, bit) for i, bit in used if sinks.get(bit)]
        if not used or any(bit in port_bits or len(sinks[bit]) != 1 for _, bit in used):
            continue
        ffs = [sinks[bit][0] for _, bit in used]
        if any(cells[name]["type"] != "TRELLIS_FF" or port != "DI" for name, port in ffs):
            continue
        controls = {_control(cells[name]) for name, _ in ffs}
        if len(controls) != 1 or len(next(iter(controls))) != 4 or not all(next(iter(controls))[3]):
            continue
        clock, enable, reset, _ = next(iter(controls))
        for (i, _), (name, _) in zip(used, ffs, strict=True):
            cell["connections"][f"P{i}"] = cells.pop(name)["connections"]["Q"]
        cell["parameters"] |= {
            "REG_OUTPUT_CLK": "CLK0",
            "REG_OUTPUT_CE": "CE0",
            "REG_OUTPUT_RST": "RST0",
            "RESETMODE": "SYNC",
            "GSR": "DISABLED",  # as the flip-flops it replaces
        }
        cell["connections"] |= {"CLK0": [clock], "CE0": [enable], "RST0": [reset]}
        cell["port_directions"] |= {"CLK0": "input", "CE0": "input", "RST0": "input"}
        blocks += 1
        removed += len(ffs)
    return blocks, removed


def absorb_in_netlist(path: Path, top: str) -> dict[str, int]:
    """Apply `absorb_output_registers` to the top module of the Yosys JSON netlist at `path`, in place."""
    netlist = json.loads(path.read_text())
    module = netlist["modules"][top]
    port_bits = {bit for port in module["ports"].values() for bit in port["bits"]}
    blocks, removed = absorb_output_registers(module, port_bits)
    path.write_text(json.dumps(netlist))
    return {"blocks": blocks, "flip_flops": removed}
