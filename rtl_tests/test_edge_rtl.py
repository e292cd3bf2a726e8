"""Issue 24's operations on the 16x16 engine Verilog: max and average pooling on the host, a ReLU6 and a
hardtanh clamp, a depthwise and a grouped, dilated, non-square convolution as one command per group.

The model (tests/edge_models.EdgeNet on 3x8x8 inputs) is converted like any user's and keeps its seeded
initialisation: bit-exactness does not depend on training. Every command's Verilog output and cycle count must
equal the model's and golden's, and the logits golden's own chain (host poolings included).
"""

import pytest
import torch

from contract.policy import Policy
from golden.convert import convert
from golden.export import build_export
from golden.layers import QuantSpec
from rtl_tests.harness import require_simulator
from tests.edge_models import EdgeNet
from verif.configs import NETWORK
from verif.rtl.network import check_network_on_rtl

pytestmark = pytest.mark.rtl

SEED = 20261207
IMAGES = 2
PRECISIONS = [8, 3]


def test_edge_operations_on_16x16_verilog():
    require_simulator("verilator")
    torch.manual_seed(SEED)
    export = build_export(convert(EdgeNet(size=8).eval(), QuantSpec("truncquant", "offset"), (3, 8, 8)).eval())
    assert {node.op for node in export.nodes} == {"gemm", "maxpool", "avgpool"}
    assert [layer.groups for layer in export.layers] == [1, 8, 4, 1]
    codes = torch.randint(0, 256, (IMAGES, 3, 8, 8), generator=torch.Generator().manual_seed(SEED))
    policies = [Policy("uniform", (k,)).resolve(export) for k in PRECISIONS]
    check = check_network_on_rtl("verilator", NETWORK, export, codes, policies, batch=1, run_name="edge")
    assert check.mismatches() == [], f"seed {SEED}"
    assert check.logits_mismatches(export, codes, policies) == [], f"seed {SEED}"
