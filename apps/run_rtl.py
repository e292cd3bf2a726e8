"""`apps.run --rtl N|all`: the images' layer commands on the emitted Verilog, through the stream players.

Its own module because it needs cocotb (the `rtl` extra), which a run on the model alone must not import.
"""

from __future__ import annotations

import sys

import torch

from contract.cli import InputError
from contract.policy import ResolvedPolicy
from eda.tools import ToolError
from verif.rtl.network import check_network_on_rtl
from verif.rtl.runner import check_simulator


def rtl_images(requested: str | int, available: int, simulator: str) -> int:
    """How many images `--rtl` asks for: `all` of the test set, or N of them (InputError if N is more);
    ToolError if `simulator` cannot run here."""
    check_simulator(simulator)
    if requested == "all":
        return available
    if requested > available:
        raise InputError(f"--rtl {requested}: the test set has only {available} images")
    return requested


def rtl_check(cfg, export, codes: torch.Tensor, policies: list[ResolvedPolicy], batch: int, simulator: str) -> dict:
    """The images' commands under each policy (contract.policy.ResolvedPolicy) on the Verilog;
    ToolError on any mismatch, PlayerMemoryError (before any build) if a command does not fit the players'
    memories. Also measures the cycles spent on precision transitions (NetworkCheck.transitions)."""
    check = check_network_on_rtl(
        simulator,
        cfg,
        export,
        codes,
        policies,
        batch,
        f"sim-run-{export.method}-{export.scheme}-{len(codes)}img",
        log=lambda line: print(line, file=sys.stderr),
    )
    mismatches = check.mismatches()
    if batch == 1:  # one image per pass: its last command's output is its logits
        mismatches += check.logits_mismatches(export, codes, policies)
    if mismatches:
        raise ToolError(f"{len(mismatches)} mismatches, first: {mismatches[0]}")
    transitions = check.transitions()
    rate = check.total_cycles / check.seconds
    print(
        f"RTL ({simulator}, stream players): {len(codes)} images x {len(policies)} policies, {len(check.commands)} "
        f"commands in {len(check.batches)} batches, {check.total_cycles} cycles in {check.seconds:.1f} s: every "
        f"layer output bit-identical to the model and the golden integer path"
        f"{', logits equal to golden' if batch == 1 else ''}, every command's cycle count equal "
        f"({rate:.0f} simulated cycles/s)"
    )
    print(
        f"precision transitions on the Verilog: {transitions.changes} consecutive commands changed k, "
        f"{transitions.change_cycles} cycles spent beyond the formula's (which charges none); "
        f"{transitions.repeats} kept k, {transitions.repeat_cycles} extra cycles. DQT's ResNet50 transition "
        "costs 28.3M shifts; here k is a field of each command"
    )
    return {
        "simulator": simulator,
        "images": len(codes),
        "commands": len(check.commands),
        "batches": len(check.batches),
        "cycles": check.total_cycles,
        "outputs_identical": True,
        "logits_identical": True if batch == 1 else None,
        "cycles_equal": True,
        "precision_changes": transitions.changes,
        "transition_cycles": transitions.change_cycles,
        "same_precision_pairs": transitions.repeats,
        "same_precision_extra_cycles": transitions.repeat_cycles,
        "seconds": check.seconds,
        "simulated_cycles_per_second": rate,
    }
