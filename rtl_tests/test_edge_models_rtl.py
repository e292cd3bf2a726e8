"""Issue 24's targets on the 16x16 engine Verilog: torchvision's mobilenet_v2 and resnet18 (their equivalents in
tests/edge_models, torchvision not loading here) at num_classes=10 on 3x16x16 inputs, each converted as a
user's model, trained one step (golden.train on synthetic RGB images), exported, and run on 2 images: every
command's Verilog output and cycles equal to the model's and golden's, the logits golden's own chain (host
adds, linear adds and poolings included).

mobilenet_v2 at width 0.1 (last conv 320 wide) keeps its 52 convolutions and linear bottlenecks (its depthwise
layers are one command per group: some 1100 commands per image), which is what makes this test slow; resnet18
runs at width 4.
"""

from pathlib import Path

import numpy as np
import pytest
import torch

import tests.edge_models as edge_models
from contract.policy import Policy
from golden.data import Split
from golden.export import build_export
from golden.layers import QuantSpec
from golden.train import train
from rtl_tests.harness import require_simulator
from tests.rgb_data import SHAPE, rgb_set
from verif.configs import NETWORK
from verif.rtl.network import check_network_on_rtl

pytestmark = [pytest.mark.rtl, pytest.mark.slow]

SEED = 20261207
IMAGES = 2


def _trained_one_step(net: str):
    images, labels = rgb_set(32, SEED)
    x = torch.from_numpy(images.astype(np.float32) / 255)
    y = torch.from_numpy(labels.astype(np.int64))
    split = Split(x, y, x[:8], y[:8])
    net = f"{Path(edge_models.__file__)}:{net}"
    return train(QuantSpec("truncquant", "offset"), 1, 0, 2e-3, 32, lambda line: None, net=net, split=split, sampled=1)


@pytest.mark.parametrize(
    "net, ops, linear",
    [("MobileNetV2Small", {"gemm", "add"}, True), ("ResNet18Small", {"gemm", "add", "maxpool"}, False)],
)
def test_a_torchvision_model_trained_one_step_runs_bit_exact_on_16x16_verilog(net, ops, linear):
    """`linear`: whether the model's adds are linear (mobilenet_v2's, signed codes) rather than with a ReLU."""
    require_simulator("verilator")
    export = build_export(_trained_one_step(net).eval())
    assert {node.op for node in export.nodes} == ops
    assert {node.relu for node in export.nodes if node.op == "add"} == {not linear}
    codes = torch.randint(0, 256, (IMAGES, *SHAPE), generator=torch.Generator().manual_seed(SEED))
    policies = [Policy("uniform", (8,)).resolve(export)]
    check = check_network_on_rtl("verilator", NETWORK, export, codes, policies, batch=1, run_name=f"edge_{net}")
    assert check.mismatches() == [], f"seed {SEED}"
    assert check.logits_mismatches(export, codes, policies) == [], f"seed {SEED}"
