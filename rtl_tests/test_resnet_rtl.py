"""A ResNet-style network on the 16x16 engine Verilog: residual adds on the host between commands.

The network is golden.nets' ResNet-20 made narrow (widths 4, 4, 8, one block per stage) for the 8x8 digits
images, converted by golden.convert like any user's model: a stem, three blocks whose second convolution
runs `raw` for the host add, two 1x1 strided projections, and the pooling folded into the last Linear. Its
weights are the seeded initialisation: bit-exactness does not depend on training, and a random network
still routes varied values through every add. Every command's Verilog output and cycle count must equal
the model's, the model's golden's, and the Verilog's logits golden's own chain (host adds included).
"""

import pytest
import torch

from contract.policy import Policy
from golden.convert import convert
from golden.data import digits_split, input_codes
from golden.export import build_export
from golden.layers import QuantSpec
from golden.nets import ResNet20
from rtl_tests.harness import require_simulator
from verif.configs import NETWORK
from verif.rtl.network import check_network_on_rtl

pytestmark = pytest.mark.rtl

SEED = 20261124
IMAGES = 2
PRECISIONS = [8, 3]


def narrow_resnet():
    torch.manual_seed(SEED)
    model = convert(ResNet20(widths=(4, 4, 8), blocks=1, stem_stride=1), QuantSpec("truncquant", "offset"), (1, 8, 8))
    return model.eval()


def test_resnet_style_network_on_16x16_verilog():
    require_simulator("verilator")
    export = build_export(narrow_resnet())
    assert any(node.op == "add" for node in export.nodes), "the network must have host adds"
    codes = input_codes(digits_split().test_x[:IMAGES], export.act_bits)
    policies = [Policy("uniform", (k,)).resolve(export) for k in PRECISIONS]
    check = check_network_on_rtl("verilator", NETWORK, export, codes, policies, batch=1, run_name="resnet")
    assert check.mismatches() == [], f"seed {SEED}"

    assert check.logits_mismatches(export, codes, policies) == [], f"seed {SEED}"
