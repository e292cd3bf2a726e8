"""Formal proofs of the engine's stream protocol on a 2x2, B = 4 engine (verif/formal.py), run by SymbiYosys.

Depths are chosen so that the suite's proofs finish in about a minute on two cores: the first command can
end at step 12 and a second at step 23, so depth 20 covers one whole command under any stalls and the start
of the next. `bench/formal_proofs.py --depth 26` runs the protocol proof two commands deep (about 10
minutes). Each cover proves its assertions are not vacuous; the wrong-cycle-count runs and an engine patched
to take every command prove the liveness and refusal assertions can fail.
"""

from __future__ import annotations

import pytest
from amaranth.hdl import Const

from hw import sequencer
from sim.model import command_cycles
from tests.verif.proofs import check
from verif.formal import FORMAL_CONFIG, ProtocolHarness, Shape

pytestmark = pytest.mark.formal

PROTOCOL_DEPTH = 20
PAYLOAD_DEPTH = 14
COVER_DEPTH = 31  # 28 before the requantizer took 3 more cycles (issue 13)
ILLEGAL_DEPTH = 16
SHAPES = [Shape(1, 1, 1), Shape(2, 4, 4), Shape(1, 3, 3)]


def test_stream_protocol_holds_under_any_input_timing(tmp_path):
    """Result valid/payload hold until ready, exact result and input beat counts, `last` on the final beat."""
    check(ProtocolHarness(FORMAL_CONFIG, zero_data=True), "protocol", "bmc", PROTOCOL_DEPTH, tmp_path)


def test_result_payload_is_stable_until_ready_with_any_data(tmp_path):
    check(ProtocolHarness(FORMAL_CONFIG), "payload", "bmc", PAYLOAD_DEPTH, tmp_path)


def test_covers_a_command_two_in_a_row_and_one_after_a_reset_in_flight(tmp_path):
    check(ProtocolHarness(FORMAL_CONFIG, free_reset=True, zero_data=True), "cover", "cover", COVER_DEPTH, tmp_path)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s.m}x{s.k_dim}x{s.n}")
def test_with_ideal_streams_a_command_ends_in_the_models_cycle(shape, tmp_path):
    cycles = command_cycles(FORMAL_CONFIG, shape.m, shape.k_dim, shape.n).total
    harness = ProtocolHarness(FORMAL_CONFIG, ideal=True, shape=shape, zero_data=True)
    check(harness, "liveness", "bmc", cycles + 2, tmp_path)


@pytest.mark.parametrize("error", [-1, +1])
def test_the_liveness_proof_fails_on_a_wrong_cycle_count(error, tmp_path):
    shape = SHAPES[1]
    cycles = command_cycles(FORMAL_CONFIG, shape.m, shape.k_dim, shape.n).total + error
    harness = ProtocolHarness(FORMAL_CONFIG, ideal=True, shape=shape, zero_data=True, cycles=cycles)
    check(harness, "wrong", "bmc", cycles + 2, tmp_path, want=False)


def test_an_illegal_command_is_refused_and_the_next_one_runs(tmp_path):
    harness = ProtocolHarness(FORMAL_CONFIG, zero_data=True, allow_illegal=True)
    check(harness, "illegal", "bmc", ILLEGAL_DEPTH, tmp_path)
    check(
        ProtocolHarness(FORMAL_CONFIG, zero_data=True, allow_illegal=True),
        "illegal_cover",
        "cover",
        COVER_DEPTH,
        tmp_path,
    )


def test_the_refusal_proof_fails_on_an_engine_that_takes_every_command(tmp_path, monkeypatch):
    monkeypatch.setattr(sequencer, "command_legal", lambda cfg, payload: Const(1))
    harness = ProtocolHarness(FORMAL_CONFIG, zero_data=True, allow_illegal=True)
    check(harness, "accepts_all", "bmc", ILLEGAL_DEPTH, tmp_path, want=False)
