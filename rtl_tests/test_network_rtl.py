"""A trained digits network through the 16x16 engine Verilog: bit-exact logits, exact cycle counts.

The models are the session's small nested models (root conftest, fixed seed); a handful of test images
run at k = 8, 4, 2 in both schemes, every layer as engine commands on Verilator.
"""

import pytest

from contract.policy import Policy
from golden.data import digits_split, input_codes
from golden.export import build_export
from rtl_tests.harness import require_simulator
from verif.configs import NETWORK
from verif.rtl.network import check_network_on_rtl

pytestmark = pytest.mark.rtl

IMAGES = 3
PRECISIONS = [8, 4, 2]


@pytest.mark.parametrize("scheme", ["offset", "twos"])
def test_trained_network_on_16x16_verilog(trained, training_settings, scheme):
    require_simulator("verilator")
    export = build_export(trained("truncquant", scheme))
    cfg = NETWORK  # the engine regression's 16x16 build, reused
    codes = input_codes(digits_split().test_x[:IMAGES], export.act_bits)
    policies = [Policy("uniform", (k,)).resolve(export) for k in PRECISIONS]
    check = check_network_on_rtl("verilator", cfg, export, codes, policies, batch=1, run_name=f"network-{scheme}")
    context = f"truncquant/{scheme} model trained with {training_settings}"
    assert check.mismatches() == [], context

    # The logits the Verilog computed (last layer of each image) against golden's own chain of layers.
    assert check.logits_mismatches(export, codes, policies) == [], context
