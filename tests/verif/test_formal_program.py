"""The program engine's refusal proof (verif/formal_program.py) by SymbiYosys, on a 2x2 engine with 16 words:
an illegal first layer step raises `error` and gives `step.ready` back five cycles after its taking, writing
nothing, and `error` rises for no other reason. The cover shows a refusal happening; expecting `step.ready` a
cycle later, or an output path that takes every descriptor, must fail."""

from __future__ import annotations

import pytest
from amaranth.hdl import Const

from hw.output_path import OutputPath
from tests.verif.proofs import check
from verif.formal_program import READY_CYCLES, IllegalStepHarness

pytestmark = pytest.mark.formal

DEPTH = READY_CYCLES + 3  # reset, the step taken, its five cycles, one more


def test_an_illegal_step_is_refused_within_five_cycles_writing_nothing(tmp_path):
    check(IllegalStepHarness(), "illegal_step", "bmc", DEPTH, tmp_path)


def test_covers_a_refused_step(tmp_path):
    check(IllegalStepHarness(), "illegal_step_cover", "cover", DEPTH, tmp_path)


def test_the_proof_fails_when_ready_is_expected_a_cycle_later(tmp_path):
    check(IllegalStepHarness(late=True), "illegal_step_late", "bmc", DEPTH, tmp_path, want=False)


def test_the_proof_fails_on_an_output_path_that_takes_every_descriptor(tmp_path, monkeypatch):
    monkeypatch.setattr(OutputPath, "legal", lambda self, payload: Const(1))
    check(IllegalStepHarness(), "illegal_step_accepts_all", "bmc", DEPTH, tmp_path, want=False)
