"""The convolution address generator's formal proof (verif/formal_addrgen.py) by SymbiYosys: every read in
its map or padding, exactly the reads due with `last` on the final one, refusals make none, under any inputs.
The cover shows the assertions are not vacuous; a bound one word tighter must fail (the map's last word is
read)."""

from __future__ import annotations

import pytest

from tests.verif.proofs import check
from verif.formal_addrgen import AddressHarness

pytestmark = pytest.mark.formal

DEPTH = 12  # reset, a descriptor taken, then 10 reads (verif/formal_addrgen.py)


def test_every_read_is_in_its_map_and_every_walk_has_its_reads(tmp_path):
    check(AddressHarness(), "addrgen", "bmc", DEPTH, tmp_path)


def test_covers_walks_with_padding_two_in_a_row_and_after_a_refusal(tmp_path):
    check(AddressHarness(), "addrgen_cover", "cover", DEPTH, tmp_path)


def test_the_bound_one_word_tighter_fails(tmp_path):
    check(AddressHarness(slack=1), "addrgen_tight", "bmc", DEPTH, tmp_path, want=False)
