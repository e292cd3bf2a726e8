"""The cycle model and host pricing of issue 24's operations: poolings on the host, grouped convolutions as one
engine command per group. Operation counts are written down from the windows by hand; the cycle-exact run of
the commands is held to the formula the test-set scoring uses and to golden's integer path."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import tests.edge_models as edge_models
from contract.config import EngineConfig
from contract.policy import Policy
from golden.convert import convert
from golden.export import build_export
from golden.fastpath import fast_logits
from golden.layers import QuantSpec
from sim.host import host_ops
from sim.model import command_cycles
from sim.network import pass_cost, run_batch


class Pooled(nn.Module):
    """A 2x4x4 map pooled by a 3x3 window, stride 2, padding 1, to 2x2x2."""

    def __init__(self, pool: nn.Module):
        super().__init__()
        self.conv, self.pool, self.fc = nn.Conv2d(1, 2, 3, padding=1), pool, nn.Linear(8, 10)

    def forward(self, x):
        return self.fc(self.pool(F.relu(self.conv(x))).flatten(1))


@pytest.mark.parametrize(
    "pool, multiplies, adds",
    [
        (nn.MaxPool2d(3, 2, 1), 0, 50 - 8),  # a compare per tap after each output's first
        (nn.AvgPool2d(3, 2, 1), 8, 50 - 8 + 8),  # the sum's adds, one add of n/2, a reciprocal multiply
    ],
)
def test_a_pooling_is_priced_per_tap_inside_the_map(pool, multiplies, adds):
    """Windows start at -1 and 1 along each axis of 4: taps {0, 1} and {1, 2, 3}, 5 per axis, 25 per channel,
    so 50 reads for 8 outputs of 2 channels (the padding taps are not read)."""
    export = build_export(convert(Pooled(pool).eval(), QuantSpec("truncquant", "offset"), (1, 4, 4)).eval())
    ops = host_ops(export, 3)
    expected = dict(elements=8, multiplies=multiplies, adds=adds, shifts=multiplies, loads=50, stores=8)
    assert {name: getattr(ops, name) for name in expected} == {name: 3 * v for name, v in expected.items()}
    assert (ops.read_bits, ops.write_bits) == (3 * 50 * 8, 3 * 8 * 8)


@pytest.mark.parametrize("k", [8, 3])
def test_grouped_convolutions_run_as_one_command_per_group_on_the_cycle_model(k):
    """The edge model on the cycle-exact model: a command per group of each grouped conv, the logits of the
    integer path, and the cycles, MACs and host operations of the formula that scores test sets."""
    torch.manual_seed(0)
    export = build_export(convert(edge_models.EdgeNet().eval(), QuantSpec("truncquant", "offset"), (3, 16, 16)))
    cfg = EngineConfig.from_export(export, 8, 8, 512)
    codes = torch.randint(0, 256, (2, 3, 16, 16))
    policy = Policy("uniform", (k,)).resolve(export)
    batch = run_batch(cfg, export, codes, policy)
    assert torch.equal(batch.logits, fast_logits(export, codes, k))
    groups = {layer.name: layer.groups for layer in export.layers}
    assert groups == {"stem_0": 1, "depthwise_0": 8, "grouped": 4, "fc": 1}
    shapes = [(command.m, command.k_dim, command.n) for command, _ in batch.log]
    assert shapes == [(512, 27, 8)] + [(128, 9, 1)] * 8 + [(128, 6, 3)] * 4 + [(2, 300, 10)]
    cost = pass_cost(cfg, export, 2, policy.ks)
    assert (cost.cycles, cost.macs, cost.host) == (batch.cycles, batch.macs, batch.host)
    assert batch.macs == sum(layer.macs for layer in export.layers) * 2
    assert export.engine_shapes(2) == shapes
    assert batch.host.elements == 2 * (8 * 8 * 8 + 12 * 5 * 5)


def test_a_depthwise_layers_utilisation_is_its_depth_over_the_array():
    """A depthwise 3x3 conv is C commands M x 9 x 1: each feeds one column of the array and ceil(9 / R) K-tiles
    of R rows, so at most 9 / (ceil(9 / R) * R * C_array) of the MACs the array could do are useful: 9 / 128 on
    an 8 x 8 array, 9 / 256 on 16 x 16 (MobileNetV2's 56 x 56 x 32 depthwise layer reaches 98% of that)."""
    for rows in (8, 16):
        cfg = EngineConfig(rows=rows, cols=rows, max_m=4096, max_k=1024, max_n=64)
        cycles = 32 * command_cycles(cfg, 56 * 56, 9, 1, 8).total
        bound = 9 / (-(-9 // rows) * rows * rows)
        assert 0.98 * bound < 56 * 56 * 9 * 32 / (cycles * rows * rows) <= bound
