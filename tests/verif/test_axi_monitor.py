"""The AXI handshake rules of verif/rtl/axi_monitor.py, fed by hand: a legal channel passes, each broken rule is
caught at its cycle."""

from __future__ import annotations

from verif.rtl.axi_monitor import HandshakeRules


def feed(cycles: list[tuple[bool, bool, tuple | None]]) -> HandshakeRules:
    rules = HandshakeRules("m_axi ar")
    for cycle, (valid, ready, payload) in enumerate(cycles, start=1):
        rules.sample(cycle, valid, ready, payload)
    return rules


def test_a_transfer_after_waiting_with_a_stable_payload_is_legal():
    rules = feed(
        [(False, True, None), (True, False, (1,)), (True, False, (1,)), (True, True, (1,)), (True, True, (2,))]
    )
    assert rules.violations == [] and rules.transfers == 2


def test_valid_falling_before_ready_is_caught():
    rules = feed([(True, False, (1,)), (False, False, None), (True, True, (1,))])
    assert rules.violations == ["m_axi ar: VALID fell before READY at cycle 2"]


def test_a_payload_changing_while_valid_waits_is_caught():
    rules = feed([(True, False, (1,)), (True, True, (2,))])
    assert rules.violations == ["m_axi ar: payload changed while VALID waited for READY at cycle 2"]
