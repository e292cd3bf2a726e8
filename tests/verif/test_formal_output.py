"""The output path's formal proofs (verif/formal_output.py) by SymbiYosys, on R = 2, C = 3, 16 words: every write
in the descriptor's output region and every operand read in an operand's region, every output element written
exactly once, logits passed out whole, an illegal descriptor refused with nothing written, read or kept busy,
under any inputs; and with ideal streams `busy` falls in contract.timing.output_path_cycles' cycle. The covers
show the assertions are not vacuous; a bound one word tighter, a wrong cycle count and an output path that
takes every descriptor must fail."""

from __future__ import annotations

import pytest
from amaranth.hdl import Const

from contract.program import Operand
from contract.timing import output_path_cycles
from hw.output_path import OutputPath
from tests.verif.proofs import check
from verif.descriptors import output
from verif.formal_output import OUTPUT_CONFIG, OutputHarness, OutputLivenessHarness

pytestmark = pytest.mark.formal

#: Reset, a descriptor taken, the setup, then whole descriptors of up to 5 steps (3 for R = 2, C = 3 when N = 4
#: splits a channel group between N-tiles), and the first steps of longer ones: about 50 s.
DEPTH = 11
COVER_DEPTH = 14  # a raw region of 2 planes and 4 channels ends at step 13
#: Whole descriptors of each store, with ideal streams: a fused add whose N-tiles share a channel group, two
#: operands (a code map and a signed raw region of 2 planes), a raw region of 2 planes, logits of 2 N-tiles.
SHAPES = {
    "codes+1": output((4, 2, 2), "codes", 0, 1, [Operand(8, 1, False)]),
    "codes+2": output((1, 1, 1), "codes", 0, 1, [Operand(1, 1, False), Operand(2, 2, True)]),
    "raw2": output((3, 1, 2), "raw", 0, 2),
    "logits": output((6, 2, 1), "logits", 0, 0),
}


def test_every_write_in_its_region_once_per_element_and_refusals_do_nothing(tmp_path):
    check(OutputHarness(), "output", "bmc", DEPTH, tmp_path)


def test_covers_each_store_and_a_descriptor_after_a_refusal(tmp_path):
    check(OutputHarness(), "output_cover", "cover", COVER_DEPTH, tmp_path)


def test_the_bound_one_word_tighter_fails(tmp_path):
    check(OutputHarness(slack=1), "output_tight", "bmc", DEPTH, tmp_path, want=False)


def test_the_refusal_proof_fails_on_an_output_path_that_takes_every_descriptor(tmp_path, monkeypatch):
    monkeypatch.setattr(OutputPath, "legal", lambda self, payload: Const(1))
    check(OutputHarness(), "output_accepts_all", "bmc", DEPTH, tmp_path, want=False)


@pytest.mark.parametrize("name", SHAPES)
def test_with_ideal_streams_busy_falls_in_the_timing_contracts_cycle(name, tmp_path):
    harness = OutputLivenessHarness(SHAPES[name])
    check(harness, "output_liveness", "bmc", harness.cycles + 2, tmp_path)


@pytest.mark.parametrize("error", [-1, +1])
def test_the_liveness_proof_fails_on_a_wrong_cycle_count(error, tmp_path):
    d = SHAPES["codes+1"]
    cycles = output_path_cycles(d, OUTPUT_CONFIG.rows, OUTPUT_CONFIG.cols) + error
    check(OutputLivenessHarness(d, cycles=cycles), "output_wrong", "bmc", cycles + 2, tmp_path, want=False)
