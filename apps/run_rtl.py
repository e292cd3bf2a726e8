"""`apps.run --rtl N`: the first images' commands on the emitted Verilog, checked against the model.

Its own module because it needs cocotb (the `rtl` extra), which a run on the model alone must not import.
"""

from __future__ import annotations

import sys

import torch

from eda.tools import ToolError
from verif.rtl.network import check_network_on_rtl


def rtl_check(cfg, export, codes: torch.Tensor, ks: list[int], batch: int, simulator: str) -> dict:
    """The first images' commands on the Verilog; ToolError on the first mismatch."""
    check = check_network_on_rtl(
        simulator,
        cfg,
        export,
        codes,
        ks,
        batch,
        f"sim-run-{export.method}-{export.scheme}-{len(codes)}img",
        log=lambda line: print(line, file=sys.stderr),
    )
    mismatches = check.mismatches()
    if mismatches:
        raise ToolError(f"{len(mismatches)} mismatches, first: {mismatches[0]}")
    rate = check.total_cycles / check.seconds
    print(
        f"RTL ({simulator}): {len(codes)} images x {len(ks)} precisions, {len(check.commands)} commands, "
        f"{check.total_cycles} cycles: every layer output bit-identical to the model and the golden integer "
        f"path, every command's cycle count equal ({rate:.0f} simulated cycles/s)"
    )
    return {
        "simulator": simulator,
        "images": len(codes),
        "commands": len(check.commands),
        "cycles": check.total_cycles,
        "outputs_identical": True,
        "cycles_equal": True,
        "simulated_cycles_per_second": rate,
    }
