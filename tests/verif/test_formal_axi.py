"""The AXI handshake rules on the SoC wrapper's bus blocks (verif/formal_axi.py) by SymbiYosys: every channel
they drive keeps VALID and its payload until READY, under any inputs that keep the rules themselves. The cover
shows register accesses and bursts answered; with the window free to move during a burst the proof fails."""

from __future__ import annotations

import pytest

from tests.verif.proofs import check
from verif.formal_axi import AxiHarness

pytestmark = pytest.mark.formal

DEPTH = 12  # the cover reaches a written burst answered at step 7; a read burst at 3


def test_every_channel_the_bus_blocks_drive_keeps_the_handshake_rules(tmp_path):
    check(AxiHarness(), "axi", "bmc", DEPTH, tmp_path)


def test_covers_register_accesses_and_bursts_both_ways(tmp_path):
    check(AxiHarness(), "axi_cover", "cover", DEPTH, tmp_path)


def test_a_window_moving_during_a_burst_breaks_the_rule(tmp_path):
    check(AxiHarness(free_window=True), "axi_free_window", "bmc", DEPTH, tmp_path, want=False)
