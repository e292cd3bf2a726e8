"""The controller on the float side (golden.controller): a mixed forward pass computes exactly the chosen
precision's network, the relaxation passes gradients to the controller only, and the integer decision is
the float model's."""

from __future__ import annotations

import pytest
import torch

from golden.controller import GumbelMixer, Mixer
from golden.data import digits_split, input_codes
from golden.dynamic import attach_controller, fast_dynamic_logits
from golden.export import build_export
from golden.model import QuantNet

SEED = 0


@pytest.fixture(scope="module")
def model(trained) -> QuantNet:
    original = trained("truncquant", "offset")
    copy = QuantNet(original.spec, original.input_shape, original.nodes)
    copy.load_state_dict(original.state_dict())
    return attach_controller(copy, 2.0, (1, 2, 4), seed=SEED, images=digits_split().train_x[:256]).eval()


class Forced(Mixer):
    """A mixer whose choices are given: ks [batch, len(controls)]."""

    def __init__(self, controller, ks):
        super().__init__(controller)
        self.ks = ks

    def gates(self, logits):
        index = torch.tensor([[self.candidates.index(k) for k in row] for row in self.ks.tolist()])
        return torch.nn.functional.one_hot(index, len(self.candidates)).to(logits.dtype)


def test_a_mixed_pass_is_each_image_at_its_own_precisions(model):
    controller = model.controllers["controller_2"]
    images = digits_split().test_x[:12]
    draws = torch.Generator().manual_seed(SEED)
    ks = torch.tensor(controller.spec.candidates)[torch.randint(3, (12, 3), generator=draws)]
    model.set_precision(8)
    with torch.no_grad():
        mixed = model(images, Forced(controller, ks))
        for i in range(len(images)):
            model.set_precision([8, *ks[i].tolist()])  # the whole batch, so that the same kernels run
            uniform = model(images)
            assert torch.equal(mixed[i], uniform[i]), f"image {i}, ks {ks[i].tolist()}, seed {SEED}"


def test_the_relaxation_trains_the_controller_and_nothing_else(model):
    controller = model.controllers["controller_2"]
    for parameter in model.layers.parameters():
        parameter.requires_grad_(False)
    try:
        mixer = GumbelMixer(controller, tau=1.0, generator=torch.Generator().manual_seed(SEED))
        logits = model(digits_split().train_x[:32], mixer)
        assert set(mixer.chosen) == set(controller.spec.controls)
        for weights in mixer.chosen.values():  # one-hot in the forward pass
            assert torch.equal(weights.sum(dim=1), torch.ones(32)) and set(weights.flatten().tolist()) <= {0.0, 1.0}
        logits.logsumexp(dim=1).mean().backward()
        assert controller.linear.weight.grad is not None and controller.linear.weight.grad.abs().sum() > 0
        assert all(p.grad is None for p in model.layers.parameters())
    finally:
        for parameter in model.layers.parameters():
            parameter.requires_grad_(True)
        controller.zero_grad()


def test_the_integer_decision_is_the_float_controllers(model):
    """The export folds the pooling and rounds the bias; on a few images a near tie may flip, not more."""
    controller = model.controllers["controller_2"]
    images = digits_split().test_x[:200]
    mixer = Mixer(controller)
    model.set_precision(8)
    with torch.no_grad():
        model(images, mixer)
    float_ks = torch.tensor(controller.spec.candidates)[mixer.logits.argmax(dim=2)]
    export = build_export(model)
    _, ks = fast_dynamic_logits(export, input_codes(images, export.act_bits), export.controller(2.0))
    agreement = float((ks[:, 1:] == float_ks).double().mean())
    assert agreement >= 0.97, f"float and integer decisions agree on {agreement:.1%} (seed {SEED})"
