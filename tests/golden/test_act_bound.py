"""The built-in networks' activation bound (golden.nets, golden.train --act-bound, issue 26): a clamp at b
instead of a ReLU, which the converter folds into the parameters, so the converted graph and therefore the
engine's numerics are those of the unbounded net; only the parameters the training starts from differ."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from golden import train
from golden.convert import build_net
from golden.layers import QuantSpec
from golden.model import load_checkpoint
from golden.nets import NETS, float_net

SPEC = QuantSpec("truncquant", "offset")
SHAPE = (1, 8, 8)


def activations(model: nn.Module) -> list[nn.Module]:
    return [module for module in model.modules() if isinstance(module, nn.ReLU | nn.Hardtanh)]


@pytest.mark.parametrize("name", NETS)
def test_every_activation_of_a_bounded_builtin_net_clamps_at_the_bound(name):
    bounded = activations(float_net(name, SHAPE, act_bound=3.0))
    assert bounded and all(isinstance(m, nn.Hardtanh) and (m.min_val, m.max_val) == (0.0, 3.0) for m in bounded)
    assert all(isinstance(m, nn.ReLU) for m in activations(float_net(name, SHAPE)))


@pytest.mark.parametrize("name", NETS)
def test_the_bound_moves_into_the_parameters_and_leaves_the_graph(name):
    """Seeded alike, the bounded and unbounded nets convert to the same nodes; the bound b divides the affine
    of every BatchNorm before a clamp and multiplies the weights of the linear layer that reads the codes."""
    bound = 2.0
    torch.manual_seed(0)
    plain = build_net(name, SPEC, SHAPE)
    torch.manual_seed(0)
    bounded = build_net(name, SPEC, SHAPE, act_bound=bound)
    assert bounded.nodes == plain.nodes
    first = next(iter(plain.nodes)).name
    for key in ("weight", "bias"):
        expected = getattr(plain.layers[first].bns["8"], key) / bound
        torch.testing.assert_close(getattr(bounded.layers[first].bns["8"], key), expected)
    last = plain.nodes[-1].name
    torch.testing.assert_close(bounded.layers[last].weight, plain.layers[last].weight * bound)


def test_training_a_builtin_net_uses_and_records_its_default_bound(tmp_path, capsys, monkeypatch):
    """Without --act-bound the ResNet-20 trains at DEFAULT_ACT_BOUNDS' bound, and the record says so (the
    training itself replaced by an untrained digits net: what is checked is the flag's path)."""
    seen = {}

    def untrained(spec, *args, act_bound=None, **kwargs):
        seen["act_bound"] = act_bound
        return build_net("digits", spec).eval()

    monkeypatch.setattr(train, "train", untrained)
    out = tmp_path / "m.pt"
    train.main(["--method", "qat", "--scheme", "offset", "--net", "resnet20", "--epochs", "1", "--out", str(out)])
    _, record = load_checkpoint(out)
    assert seen["act_bound"] == record["act_bound"] == train.DEFAULT_ACT_BOUNDS["resnet20"]
