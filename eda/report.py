"""Turning tool output into the numbers `eda.synth` reports: FPGA resources and Fmax, ASIC gates and area.

ASIC numbers are technology-independent gate counts weighted by real cell areas. Each Yosys generic gate
is costed as the X1 cell of the NanGate FreePDK45 Open Cell Library that implements it
(NangateOpenCellLibrary_typical.lib, cell `area` attributes, µm²) and expressed in NAND2 equivalents,
area / area(NAND2_X1). Flip-flops are plain DFF_X1: enables and synchronous resets have already been
turned into gates by `dfflegalize`. Transistor counts use Yosys `stat -tech cmos`'s static-CMOS costs
(e.g. NAND2 4, XOR2 12, MUX2 12, DFF 16).
"""

from __future__ import annotations

import json
from pathlib import Path

from contract.cli import CommandError
from hw.engine import BLOCK_ORDER, OTHER_BLOCK

NODE = "45 nm, NanGate FreePDK45 Open Cell Library (typical corner)"
NAND2_UM2 = 0.798  # NAND2_X1

#: Yosys gate -> (NanGate45 cell, its area in µm², static-CMOS transistors as Yosys `stat -tech cmos`
#: counts them). The transistors are summed here per module because Yosys's per-module estimate of a
#: module with submodules already includes them.
GATE_CELLS = {
    "$_NOT_": ("INV_X1", 0.532, 2),
    "$_BUF_": ("BUF_X1", 0.798, 1),
    "$_NAND_": ("NAND2_X1", 0.798, 4),
    "$_NOR_": ("NOR2_X1", 0.798, 4),
    "$_AND_": ("AND2_X1", 1.064, 6),
    "$_OR_": ("OR2_X1", 1.064, 6),
    "$_XOR_": ("XOR2_X1", 1.596, 12),
    "$_XNOR_": ("XNOR2_X1", 1.596, 12),
    "$_MUX_": ("MUX2_X1", 1.862, 12),
    "$_DFF_P_": ("DFF_X1", 4.522, 16),
}

#: The accumulator memory is not synthesised into gates: an SRAM macro is what an ASIC would use for
#: max_m x C x ACC bits. Its area is the 45 nm 6T bit cell, 0.346 µm² (Intel 45 nm, K. Mistry et al.,
#: IEDM 2007), divided by an assumed 50% array efficiency for decoders, sense amplifiers and I/O: an
#: estimate good to about a factor of two, reported separately from the synthesised logic.
SRAM_BITCELL_UM2 = 0.346
SRAM_ARRAY_EFFICIENCY = 0.5


def read_stat(path: Path) -> dict:
    return json.loads(path.read_text())


def fpga_resources(stat: dict, cells: dict[str, str]) -> dict[str, int]:
    """Cell counts of a flattened FPGA netlist grouped by resource; a cell type matches by prefix."""
    resources = {resource: 0 for resource in dict.fromkeys(cells.values())}
    for cell_type, count in stat["design"]["num_cells_by_type"].items():
        for prefix, resource in cells.items():
            if cell_type.startswith(prefix):
                resources[resource] += count
                break
    return resources


def is_engine_clock(name: str) -> bool:
    """Whether nextpnr's clock `name` is the net `clk`: as itself, behind an input or global buffer
    (`clk$SB_IO_IN_$glb_clk`), or on an ECP5 global network (`$glbnet$clk`, a board top's PLL output)."""
    return name in ("clk", "$glbnet$clk") or name.startswith("clk$")


def nextpnr_timing(report: dict) -> tuple[float, float]:
    """(achieved Fmax, target) in MHz of the engine's clock `clk` from nextpnr's --report JSON.

    nextpnr names a clock after its net (`clk`, or `clk$SB_IO_IN_$glb_clk` once it goes through an input
    buffer and a global buffer) and may list others, e.g. the constant clock of a DSP used unregistered.
    """
    clocks = [c for name, c in report["fmax"].items() if is_engine_clock(name)]
    if len(clocks) != 1:
        raise CommandError(f"expected one clock 'clk' in the nextpnr report, got {sorted(report['fmax'])}")
    return float(clocks[0]["achieved"]), float(clocks[0]["constraint"])


def nextpnr_critical_path(report: dict) -> dict:
    """Where the slowest register-to-register path of nextpnr's --report JSON starts and ends, its delay
    in ns, and how much of it is logic and how much routing: what to pipeline next."""

    def clocked(end: str) -> bool:
        return end.startswith("posedge ") and is_engine_clock(end.removeprefix("posedge "))

    paths = [
        p["path"] for p in report.get("critical_paths", []) if clocked(p["from"]) and clocked(p["to"]) and p["path"]
    ]
    if not paths:
        return {}
    path = max(paths, key=lambda segments: sum(s["delay"] for s in segments))
    delay = {kind: sum(s["delay"] for s in path if s["type"] == kind) for kind in ("logic", "routing")}
    return {
        "from": path[0]["from"]["cell"],
        "to": path[-1]["to"]["cell"],
        "ns": round(sum(s["delay"] for s in path), 2),
        "logic_ns": round(delay["logic"], 2),
        "routing_ns": round(delay["routing"], 2),
    }


def nextpnr_utilisation(report: dict) -> dict[str, dict[str, int]]:
    return {
        bel: {"used": u["used"], "available": u["available"]} for bel, u in report["utilization"].items() if u["used"]
    }


def block_of(path: str, hierarchy: dict[str, str], other: str) -> str:
    """The block of the module at `path` (dotted, below the top): its own entry in `hierarchy`, else its
    nearest named ancestor's, else `other` (the top and whatever no named path contains)."""
    while path:
        if path in hierarchy:
            return hierarchy[path]
        path = path.rpartition(".")[0]
    return other


def gate_counts(
    stat: dict,
    top: str,
    hierarchy: dict[str, str],
    order: tuple[str, ...] = BLOCK_ORDER,
    other: str = OTHER_BLOCK,
) -> dict:
    """Per block of `order`: generic gates by type, NAND2 equivalents and transistors, from a hierarchical
    `stat -json` (every engine submodule is instantiated exactly once, so module counts simply add).
    `hierarchy` maps a module's path below `top` to its block (hw.engine.engine_blocks,
    hw.program_engine.program_engine_blocks; `block_of`); every other module's gates are `other`'s."""
    blocks = {name: {"cells": {}, "nand2_eq": 0.0, "transistors": 0} for name in order}
    unknown = set()
    for module, data in stat["modules"].items():
        name = module.lstrip("\\")
        path = name.removeprefix(f"{top}.") if name != top else ""
        block = blocks[block_of(path, hierarchy, other)]
        for cell_type, count in data["num_cells_by_type"].items():
            if cell_type in GATE_CELLS:
                _, area, transistors = GATE_CELLS[cell_type]
                block["cells"][cell_type] = block["cells"].get(cell_type, 0) + count
                block["nand2_eq"] += count * area / NAND2_UM2
                block["transistors"] += count * transistors
            elif cell_type.startswith("$"):
                unknown.add(cell_type)
    unknown.discard("$mem_v2")  # the SRAM memories, counted by `memory_estimate`
    unknown.discard("$scopeinfo")
    if unknown:
        raise CommandError(f"gate netlist has cells without an area: {sorted(unknown)}")
    for block in blocks.values():
        block["nand2_eq"] = round(block["nand2_eq"], 1)
    return blocks


def memory_estimate(bits: int) -> dict:
    dff_um2 = GATE_CELLS["$_DFF_P_"][1]
    return {
        "bits": bits,
        "counted_as": "SRAM macro (not synthesised)",
        "sram_um2": round(bits * SRAM_BITCELL_UM2 / SRAM_ARRAY_EFFICIENCY, 1),
        "sram_um2_per_bit": round(SRAM_BITCELL_UM2 / SRAM_ARRAY_EFFICIENCY, 3),
        "as_flip_flops_nand2_eq": round(bits * dff_um2 / NAND2_UM2, 1),
    }


def asic_area(blocks: dict, *memories: dict) -> dict:
    """Logic (the blocks' gates) plus every SRAM memory (`memory_estimate`), at the node's cell areas."""
    logic = sum(block["nand2_eq"] for block in blocks.values())
    logic_um2 = logic * NAND2_UM2
    memory_um2 = sum(memory["sram_um2"] for memory in memories)
    return {
        "node": NODE,
        "nand2_um2": NAND2_UM2,
        "logic_nand2_eq": round(logic, 1),
        "logic_um2": round(logic_um2, 1),
        "memory_um2": round(memory_um2, 1),
        "total_mm2": round((logic_um2 + memory_um2) / 1e6, 4),
    }


def format_table(header: list[str], rows: list[list]) -> str:
    """Right-aligned plain-text table; numbers get thousands separators, small floats three decimals."""

    def cell(value):
        if isinstance(value, bool):
            return "yes" if value else "no"
        if isinstance(value, float):
            return f"{value:.3f}" if abs(value) < 100 else f"{value:,.1f}"
        if isinstance(value, int):
            return f"{value:,}"
        return str(value)

    cells = [header] + [[cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells)


def switching_overhead(switchable: dict, fixed: dict) -> dict[str, dict]:
    """What run-time precision switching costs: switchable minus fixed-precision baseline, per metric
    (ASIC: NAND2 equivalents per block and in total, transistors; FPGA: each resource and Fmax)."""
    if "gates" in switchable:
        pairs = {
            f"{name}_nand2_eq": (
                switchable["gates"]["blocks"][name]["nand2_eq"],
                fixed["gates"]["blocks"][name]["nand2_eq"],
            )
            for name in BLOCK_ORDER
        }
        pairs["total_nand2_eq"] = (switchable["gates"]["total_nand2_eq"], fixed["gates"]["total_nand2_eq"])
        pairs["total_transistors"] = (switchable["gates"]["total_transistors"], fixed["gates"]["total_transistors"])
    else:
        pairs = {name: (count, fixed["resources"][name]) for name, count in switchable["resources"].items()}
        pairs["fmax_mhz"] = (switchable["fmax_mhz"], fixed["fmax_mhz"])
    return {
        name: {
            "switchable": a,
            "fixed": b,
            "percent": None if a is None or b is None or b == 0 else round(100 * (a - b) / b, 2),
        }
        for name, (a, b) in pairs.items()
    }
