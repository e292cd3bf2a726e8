"""cocotb test that plays batches through a stream-player top: the engine's (`verif.rtl.player_top`, run through
`verif.rtl.players`) or the program engine's (`verif.rtl.program_top`, through `verif.rtl.program_bench`);
never run directly. Both tops have the same ports and read and write players/.

Per batch it touches the simulator three times: reset with `load` (the top reads the batch's files), release,
and wait for `done` (the top has written what it captured). Everything per cycle happens inside the HDL,
the clock too. Imports stay light (cocotb and the scenario file; no torch, no amaranth): the simulator
starts a Python of its own, and its start is part of every run.
"""

from __future__ import annotations

import os
from pathlib import Path

import cocotb
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge

from verif.rtl.scenario_file import load_scenario

RESET_CYCLES = 3
PLAYERS = Path("players")  # the directory the top reads and writes, relative to the simulator's directory


def point_players_at(directory: str) -> None:
    """Make players/ the batch's directory (a symbolic link swapped in one rename)."""
    staging = Path(f".players-{os.getpid()}")
    staging.unlink(missing_ok=True)
    staging.symlink_to(directory)
    os.replace(staging, PLAYERS)


@cocotb.test()
async def play(dut):
    _, scenario = load_scenario()
    dut.load.value = 0
    for directory in scenario["batches"]:
        point_players_at(directory)
        await FallingEdge(dut.clk)
        dut.rst.value = 1
        dut.load.value = 1
        await ClockCycles(dut.clk, RESET_CYCLES)
        await FallingEdge(dut.clk)
        dut.load.value = 0
        dut.rst.value = 0
        await RisingEdge(dut.done)
        await ClockCycles(dut.clk, 2)  # the top writes its files in the cycle after `done` rises
