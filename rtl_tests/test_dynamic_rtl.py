"""The dynamic policy on the 16x16 engine Verilog: per-image, per-layer k back to back, and what a change of
precision between consecutive commands costs.

The digits model is the session's (root conftest, fixed seed) with an untrained controller attached
(golden.dynamic.attach_controller, seeded): the controller's own GEMM runs on the engine, and the images'
choices differ, so consecutive commands change k. Every command's Verilog output and cycles must equal the
model's, the model's golden's, each image's logits golden's batched path; a command must take the same
cycles whatever precision ran before it (0 transition cycles).
"""

import copy

import pytest

from contract.policy import Policy
from golden.data import digits_split, input_codes
from golden.dynamic import attach_controller
from golden.export import build_export
from rtl_tests.harness import require_simulator
from verif.configs import NETWORK
from verif.rtl.network import check_network_on_rtl

pytestmark = pytest.mark.rtl

IMAGES = 4
BUDGET = 2.0
CANDIDATES = (1, 2, 4, 8)
SEED = 7


def test_dynamic_precision_on_16x16_verilog(trained, training_settings):
    require_simulator("verilator")
    model = copy.deepcopy(trained("truncquant", "offset"))
    images = digits_split().train_x[:200]
    # Reading conv1 (32 x 4 x 4 codes, pooling folded: K = 512) keeps the controller within the 16x16 build's
    # max_k; reading conv0 (K = 1024) would need an engine of its own.
    export = build_export(attach_controller(model, BUDGET, CANDIDATES, reads="conv1", seed=SEED, images=images))
    codes = input_codes(digits_split().test_x[:IMAGES], export.act_bits)
    policies = [Policy("dynamic", budget=BUDGET).resolve(export), Policy("uniform", (8,)).resolve(export)]
    check = check_network_on_rtl("verilator", NETWORK, export, codes, policies, batch=1, run_name="dynamic")
    context = f"truncquant/offset model trained with {training_settings}, controller seed {SEED}"
    assert check.mismatches() == [], context
    assert check.logits_mismatches(export, codes, policies) == [], context

    transitions = check.transitions()
    assert transitions.changes > 0 and transitions.repeats > 0, context  # both kinds of neighbour were measured
    assert (transitions.change_cycles, transitions.repeat_cycles) == (0, 0), context
