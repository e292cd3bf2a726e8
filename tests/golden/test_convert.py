"""Model conversion (golden.convert), the ResNet's integer path with host adds, per-layer k and host-op costs.

The three models of the issue go through the one converter: the digits CNN, the ResNet-20 and a user-style
model written with functional calls. Expected graphs are written down from the architectures, not read
back from the converter; the integer path is compared with the fake-quant model and with itself computed
two ways (im2col GEMMs, golden.infer; batched convolutions, golden.fastpath).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from contract.cli import InputError
from contract.config import EngineConfig
from contract.model_format import AddStep, GemmStep, steps
from contract.policy import Policy
from golden.convert import build_net, conversion, convert
from golden.data import input_codes, load_split
from golden.evaluate import float_predictions, fraction_equal, integer_predictions
from golden.export import build_export
from golden.fastpath import fast_logits
from golden.infer import layer_gemms, run_integer
from golden.layers import QuantSpec
from golden.model import load_checkpoint, save_checkpoint
from golden.train import train
from sim.host import host_ops
from sim.network import pass_cost, run_batch
from tests.idx_files import synthetic_fashion_dir

SEED = 0
FASHION = (1, 28, 28)


class UserNet(nn.Module):
    """How a user might write a small residual net: functional ReLU, a conv with bias and no BatchNorm,
    an identity skip, the mean over (H, W) as pooling and torch.flatten."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, stride=2, padding=1)
        self.body = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8))
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        x = F.relu(self.stem(x))
        x = torch.relu(self.body(x) + x)
        return self.head(torch.flatten(x.mean((2, 3)), 1))


def test_digits_net_converts_to_a_chain():
    model = build_net("digits", QuantSpec("truncquant", "offset"))
    assert [(n.name, n.op, n.inputs, n.relu) for n in model.nodes] == [
        ("conv0", "conv", ("input",), True),
        ("conv1", "conv", ("conv0",), True),
        ("conv2", "conv", ("conv1",), True),
        ("fc3", "linear", ("conv2",), False),
    ]
    assert [n.out_shape for n in model.nodes] == [(16, 8, 8), (32, 4, 4), (32, 2, 2), (10,)]


def test_resnet20_converts_with_residual_adds_and_folded_pooling():
    model = build_net("resnet20", QuantSpec("truncquant", "offset"), FASHION)
    convs = [n for n in model.nodes if n.op == "conv"]
    adds = [n for n in model.nodes if n.op == "add"]
    # ResNet-20: a stem, 9 blocks of two 3x3 convs, 1x1 projections where the stage changes, one linear.
    assert len(convs) == 1 + 18 + 2 and len(adds) == 9
    assert [n.out_shape for n in adds] == [(16, 14, 14)] * 3 + [(32, 7, 7)] * 3 + [(64, 4, 4)] * 3
    for add in adds:  # each add sums its block's second conv (pre-activation) and the skip
        second = next(n for n in model.nodes if n.name == add.inputs[0])
        assert second.op == "conv" and not second.relu and add.relu
    fc = model.nodes[-1]
    assert (fc.op, fc.pool, fc.in_shape, fc.out_shape) == ("linear", True, (64, 4, 4), (10,))


def test_user_model_converts_and_keeps_its_weights():
    torch.manual_seed(SEED)
    user = UserNet()
    model = convert(user, QuantSpec("truncquant", "twos"), FASHION)
    assert [(n.name, n.op, n.inputs, n.relu, n.pool) for n in model.nodes] == [
        ("stem", "conv", ("input",), True, False),
        ("body_0", "conv", ("stem",), False, False),
        ("add", "add", ("body_0", "stem"), True, False),
        ("head", "linear", ("add",), False, True),
    ]
    assert torch.equal(model.layers["body_0"].weight, user.body[0].weight)
    assert torch.equal(model.layers["head"].bias, user.head.bias)
    bn = model.layers["body_0"].bns["3"]
    assert torch.equal(bn.weight, user.body[1].weight) and torch.equal(bn.running_var, user.body[1].running_var)
    export = build_export(model.eval())
    assert [node.op for node in export.nodes] == ["gemm", "gemm", "add", "gemm"]
    assert export.layers[-1].K == 8 * 14 * 14  # the pooled linear layer's codes repeat over the 14x14 pixels


class Sigmoid(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Sigmoid())
        self.fc = nn.Linear(4 * 26 * 26, 10)

    def forward(self, x):
        return self.fc(self.features(x).flatten(1))


class NoRelu(nn.Module):
    """a's output without a ReLU is signed codes, which a padded conv cannot read (an unpadded one can)."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(1, 4, 3), nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 26 * 26, 10)

    def forward(self, x):
        return self.fc(F.relu(self.b(self.a(x))).flatten(1))


class AdaptivePool(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(1, 4, 3), nn.Linear(4 * 2 * 2, 10)

    def forward(self, x):
        return self.fc(F.adaptive_avg_pool2d(F.relu(self.conv(x)), 2).flatten(1))


class WrongShape(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(1, 4, 3), nn.Linear(17, 10)

    def forward(self, x):
        return self.fc(F.relu(self.conv(x)).flatten(1))


class MeanOfAll(nn.Module):
    """x.mean() with no dimensions: a scalar, not a pooling over (H, W) (its dims used to crash the check)."""

    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(1, 4, 3), nn.Linear(1, 10)

    def forward(self, x):
        return self.fc(F.relu(self.conv(x)).mean().reshape(1, 1))


@pytest.mark.parametrize(
    "model, message",
    [
        (Sigmoid(), r"unsupported operation Sigmoid at node 'features_1' \(module 'features.1'\)"),
        (MeanOfAll(), r"only the mean over \(H, W\)"),
        (NoRelu(), r"node 'b' \(module 'b'\): a conv with zero padding reads signed codes \('a_signed': an output"),
        (AdaptivePool(), r"node 'adaptive_avg_pool2d': only global average pooling"),
        (WrongShape(), r"does not run on input shape \[1, 28, 28\]"),
    ],
)
def test_unsupported_models_are_refused_naming_the_operation_and_where(model, message):
    with pytest.raises(InputError, match=message):
        convert(model, QuantSpec("truncquant", "offset"), FASHION)


class ManyProblems(nn.Module):
    """Four nodes that do not convert, one after another: a Sigmoid, a conv whose padding="same" pads unevenly,
    an adaptive max pooling to 2x2 and GELU. The view and the Linear after them would convert, but read refused
    nodes, so they are not reported."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Sigmoid())
        self.block = nn.Sequential(nn.Conv2d(4, 4, 4, padding="same"))
        self.fc = nn.Linear(4 * 2 * 2, 10)

    def forward(self, x):
        x = F.adaptive_max_pool2d(self.block(self.features(x)), 2)
        return self.fc(F.gelu(x).view(x.size(0), -1))


@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_every_unsupported_node_is_reported_in_one_message():
    with pytest.raises(InputError) as refusal:
        convert(ManyProblems(), QuantSpec("truncquant", "offset"), FASHION)
    message = str(refusal.value)
    assert message.startswith("4 problems: (1) unsupported operation Sigmoid at node 'features_1' (module ")
    assert (
        "(2) node 'block_0' (module 'block.0'): padding='same' with kernel [4, 4] and dilation [1, 1] pads" in message
    )
    assert "(3) node 'adaptive_max_pool2d': only AdaptiveMaxPool2d(1) (global max pooling) lowers;" in message
    assert message.endswith("(4) unsupported operation gelu (call_function) at node 'gelu'")


class Inner(nn.Module):
    def forward(self, x):
        return torch.sigmoid(x)


class NestedFunction(nn.Module):
    """A functional call inside a submodule: its module path is the submodule's."""

    def __init__(self):
        super().__init__()
        self.conv, self.inner, self.fc = nn.Conv2d(1, 4, 3), Inner(), nn.Linear(4 * 26 * 26, 10)

    def forward(self, x):
        return self.fc(self.inner(self.conv(x)).flatten(1))


def test_a_functional_call_is_placed_in_its_module():
    with pytest.raises(
        InputError,
        match=r"^unsupported operation sigmoid \(call_function\) at node 'sigmoid' "
        r"\(in module 'inner'\)$",
    ):
        convert(NestedFunction(), QuantSpec("truncquant", "offset"), FASHION)


class ConvBiases(nn.Module):
    """A conv with a bias and no BatchNorm (`a`), and one with a bias and a BatchNorm (`b`)."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.bn = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 8 * 8, 10)
        with torch.no_grad():  # biases and statistics far from the defaults, so a dropped bias shows
            self.a.bias.copy_(torch.tensor([0.5, -0.25, 0.125, 1.0]))
            self.b.bias.copy_(torch.tensor([-0.5, 0.75, 0.25, -1.0]))
            self.bn.running_mean.copy_(torch.tensor([0.1, -0.2, 0.3, 0.0]))
            self.bn.running_var.copy_(torch.tensor([0.5, 2.0, 1.5, 0.8]))
            self.bn.weight.copy_(torch.tensor([1.5, 0.5, -1.0, 2.0]))
            self.bn.bias.copy_(torch.tensor([0.2, 0.0, -0.3, 0.1]))

    def forward(self, x):
        return self.fc(F.relu(self.bn(self.b(F.relu(self.a(x))))).flatten(1))


@pytest.mark.parametrize("scheme", ["offset", "twos"])
def test_a_conv_bias_is_folded_into_its_batchnorm_not_dropped(scheme):
    """At k = B each converted conv computes the source conv (+ BatchNorm) with its bias, on the quantized
    weights: the float model keeps the bias, and the export carries it in the requantization bias."""
    torch.manual_seed(SEED)
    source = ConvBiases().eval()
    model = convert(source, QuantSpec("truncquant", scheme), (1, 8, 8)).eval()
    a, b = model.layers["a"], model.layers["b"]
    x = torch.rand(2, 1, 8, 8)
    with torch.no_grad():
        expected = F.conv2d(x, a.quantized_weight(), source.a.bias, padding=1)
        assert torch.allclose(a(x), expected, rtol=1e-4, atol=1e-5)  # a fresh BatchNorm: 1 / sqrt(1 + eps)
        h = torch.rand(2, 4, 8, 8)
        expected = source.bn(F.conv2d(h, b.quantized_weight(), source.b.bias, padding=1))
        assert torch.allclose(b(h), expected, atol=1e-5)
    export = build_export(model)
    sx = 1 / 255
    for k in range(1, 9):
        bias = [round(v / (sx * a.weight_scale(k))) for v in source.a.bias.double().tolist()]
        assert export.layers[0].requant(k)[0].tolist() == bias, f"k={k}"


class NoOps(nn.Module):
    """Dropout and Identity in module and functional forms, before and after a ReLU, in a flat classifier."""

    def __init__(self):
        super().__init__()
        self.conv, self.drop, self.skip = nn.Conv2d(1, 4, 3, padding=1), nn.Dropout(0.3), nn.Identity()
        self.features = nn.Sequential(nn.Dropout2d(0.1), nn.Flatten())
        self.fc1, self.fc2 = nn.Linear(4 * 8 * 8, 16), nn.Linear(16, 10)

    def forward(self, x):
        x = self.features(self.skip(F.relu(self.drop(self.conv(x)))))
        return self.fc2(F.dropout(F.relu(self.fc1(x)), 0.5, self.training))


def test_dropout_and_identity_are_removed():
    result = conversion(NoOps(), QuantSpec("truncquant", "offset"), (1, 8, 8))
    assert [(n.name, n.op, n.inputs, n.relu) for n in result.model.nodes] == [
        ("conv", "conv", ("input",), True),
        ("fc1", "linear", ("conv",), True),
        ("fc2", "linear", ("fc1",), False),
    ]
    assert result.removed == (
        "node 'drop' (module 'drop'): Dropout",
        "node 'skip' (module 'skip'): Identity",
        "node 'features_0' (module 'features.0'): Dropout2d",
        "node 'dropout': dropout",
    )


class Views(nn.Module):
    """Flattening before a Linear written as views: x.view(y.size(0), -1) (the batch size read from the conv's
    pre-activation, which its ReLU still reads alone), x.reshape(x.shape[0], -1) and torch.reshape(x, (-1, 16))."""

    def __init__(self):
        super().__init__()
        self.conv, self.fc1, self.fc2 = nn.Conv2d(1, 4, 3, padding=1), nn.Linear(4 * 8 * 8, 16), nn.Linear(16, 10)

    def forward(self, x):
        y = self.conv(x)
        x = F.relu(self.fc1(F.relu(y).view(y.size(0), -1).reshape(x.shape[0], -1)))
        return self.fc2(torch.reshape(x, (-1, 16)))


def test_views_that_flatten_before_a_linear_are_accepted():
    torch.manual_seed(SEED)
    views = Views()
    model = convert(views, QuantSpec("truncquant", "offset"), (1, 8, 8))
    assert [(n.name, n.op, n.inputs) for n in model.nodes] == [
        ("conv", "conv", ("input",)),
        ("fc1", "linear", ("conv",)),
        ("fc2", "linear", ("fc1",)),
    ]
    assert torch.equal(model.layers["fc1"].weight, views.fc1.weight)


class View(nn.Module):
    def __init__(self, shape=(-1, 4 * 8 * 8), features=4 * 8 * 8):
        super().__init__()
        self.shape, self.conv, self.fc = shape, nn.Conv2d(1, 4, 3, padding=1), nn.Linear(features, 10)

    def forward(self, x):
        return self.fc(F.relu(self.conv(x)).view(*self.shape))


class SharedThroughDropout(nn.Module):
    """A conv output read, through one Dropout, by a ReLU and by an add: the ReLU would change the add's operand."""

    def __init__(self):
        super().__init__()
        self.conv, self.drop, self.fc = nn.Conv2d(1, 4, 3, padding=1), nn.Dropout(), nn.Linear(4 * 8 * 8, 10)

    def forward(self, x):
        a = self.drop(self.conv(x))
        return self.fc(F.relu(F.relu(a) + a).flatten(1))


class TwoOutputs(View):
    def forward(self, x):
        logits = super().forward(x)
        return [logits, logits]


@pytest.mark.parametrize(
    "model, message",
    [
        (View((1, -1)), r"^node 'view': only a view that flattens everything but the batch dimension"),
        (View((-1, 32), 32), r"only flattening everything but the batch dimension is supported"),
        (View((-1, 4, 64), 64), r"only a view that flattens"),
        (SharedThroughDropout(), r"^node 'relu': the pre-activation 'conv' is used by several operations"),
        (TwoOutputs(), r"^the model's output must be the raw output of a Linear layer \(the logits\)$"),
    ],
)
def test_views_and_readers_that_do_not_flatten_are_refused(model, message):
    with pytest.raises(InputError, match=message):
        convert(model, QuantSpec("truncquant", "offset"), (1, 8, 8))


@pytest.fixture(scope="module")
def fashion(tmp_path_factory):
    """A 28x28 data set of learnable patterns (tests/idx_files.py): the Debian package is not needed to check
    that the integer path reproduces a ResNet-20."""
    return load_split("fashion-mnist", synthetic_fashion_dir(tmp_path_factory.mktemp("fashion")))


@pytest.fixture(scope="module")
def resnet(fashion):
    """A ResNet-20 trained for one short epoch: enough for varied predictions, not for accuracy."""
    spec = QuantSpec("truncquant", "offset")
    return train(spec, 1, SEED, 2e-3, 128, lambda line: None, net="resnet20", split=fashion, sampled=1)


@pytest.mark.train
def test_resnet_integer_path_equals_the_fake_quant_model(resnet, fashion):
    export = build_export(resnet)
    images = fashion.test_x[:200]
    codes = input_codes(images, export.act_bits)
    for k in range(8, 0, -1):
        ints, floats = integer_predictions(export, images, k), float_predictions(resnet, images, k)
        agreement = fraction_equal(ints, floats)
        assert agreement >= 0.99, f"k={k}: integer path agrees with fake-quant on {agreement:.1%} (seed {SEED})"
        if k == 8:  # a few steps leave low precisions' BatchNorms nearly untrained, but k = 8 must discriminate
            assert len(set(floats.tolist())) >= 3, "degenerate predictions at k=8: the comparison shows nothing"
        if k in (8, 2):  # the explicit im2col GEMMs give the very same logits as the batched convolutions
            assert torch.equal(run_integer(export, codes[:20], k)[0], fast_logits(export, codes[:20], k))


@pytest.mark.train
def test_per_layer_precisions(resnet, fashion):
    export = build_export(resnet)
    layers = len(export.layers)
    ks = [8 - index % 8 for index in range(layers)]
    codes = input_codes(fashion.test_x[:20], export.act_bits)
    runs = layer_gemms(export, codes, ks)
    assert [run.gemm.k for run in runs] == ks
    assert torch.equal(runs[-1].output, fast_logits(export, codes, ks))
    assert torch.equal(fast_logits(export, codes, [5] * layers), fast_logits(export, codes, 5))
    agreement = fraction_equal(
        integer_predictions(export, fashion.test_x[:200], ks), float_predictions(resnet, fashion.test_x[:200], ks)
    )
    assert agreement >= 0.99
    with pytest.raises(InputError, match=f"3 weight precisions given for {layers} layers"):
        layer_gemms(export, codes, [8, 8, 8])


@pytest.mark.train
def test_host_ops_are_counted_and_batched_costs_equal_the_cycle_model(resnet, fashion):
    export = build_export(resnet)
    # 9 adds, each of one raw conv output and one operand that is codes or a second raw conv (the 2 projections).
    elements = 3 * 16 * 14 * 14 + 3 * 32 * 7 * 7 + 3 * 64 * 4 * 4
    projected = 32 * 7 * 7 + 64 * 4 * 4
    ops = host_ops(export, 2)
    assert ops.elements == 2 * elements
    assert ops.multiplies == 2 * (elements + projected)
    assert ops.stores == 2 * elements and ops.loads == 2 * 2 * elements
    assert ops.cycles > 0 and ops.energy_pj(EngineConfig(rows=8, cols=8, max_m=256, max_k=1024, max_n=64)) > 0
    cfg = EngineConfig(rows=8, cols=8, max_m=256, max_k=1024, max_n=64)
    codes = input_codes(fashion.test_x[:2], export.act_bits)
    for policy in (Policy("uniform", (8,)), Policy("static", (3,) * len(export.layers))):
        resolved = policy.resolve(export)
        batch = run_batch(cfg, export, codes, resolved)
        cost = pass_cost(cfg, export, 2, resolved.ks)
        assert (cost.cycles, cost.macs, cost.host) == (batch.cycles, batch.macs, batch.host)
        assert torch.equal(batch.logits, fast_logits(export, codes, resolved.ks))


def test_steps_walk_the_graph_in_order_with_what_each_reads(resnet):
    """contract.model_format.steps, the one walk every executor and pricer shares: the nodes in order, each
    GEMM with its source's output shape, the adds with their operands' shapes, only the last GEMM last."""
    export = build_export(resnet)
    walked = list(steps(export))
    assert [step.name for step in walked] == [node.name for node in export.nodes]
    shapes = {"input": export.input_shape} | {step.name: step.shape for step in walked}
    gemms = [step for step in walked if isinstance(step, GemmStep)]
    assert [step.layer for step in gemms] == list(export.layers)
    assert [step.last for step in gemms] == [False] * (len(gemms) - 1) + [True]
    assert all(step.source_shape == shapes[step.source] for step in gemms)
    adds = [step for step in walked if isinstance(step, AddStep)]
    assert len(adds) == 9 and all(step.operand_shapes == (step.shape, step.shape) for step in adds)
    assert all(step.operand_shapes == tuple(shapes[name] for name in step.operands) for step in adds)


def test_a_version_1_checkpoint_is_refused_with_advice(tmp_path):
    """Version 1 checkpoints held the fixed digits net without its graph: refused, naming the way out."""
    path = tmp_path / "old.pt"
    torch.save({"format": "nestmac-golden-checkpoint", "version": 1, "spec": {}, "state_dict": {}}, path)
    with pytest.raises(InputError, match="checkpoint version 1 is not 2 .* retrain it with golden.train"):
        load_checkpoint(path)


def test_checkpoints_keep_the_graph(tmp_path):
    model = convert(UserNet(), QuantSpec("truncquant", "offset"), FASHION)
    save_checkpoint(model, tmp_path / "user.pt", {})
    loaded, _ = load_checkpoint(tmp_path / "user.pt")
    assert loaded.nodes == model.nodes
    images = torch.rand(4, *FASHION)
    assert torch.equal(loaded(images), model.eval()(images))


def test_batchnorm_calibration_measures_each_precision(tmp_path):
    """After calibration, the first layer's BatchNorm at each k holds the mean and variance of that layer's
    pre-activation at k over the calibration images, computed here directly from the quantized operands."""
    from golden.quant import quantize_activation
    from golden.train import calibrate_batchnorm

    torch.manual_seed(SEED)
    model = build_net("digits", QuantSpec("truncquant", "offset"))
    images = torch.rand(64, 1, 8, 8)
    calibrate_batchnorm(model, images, batch_size=64)
    first = model.layers["conv0"]
    x = quantize_activation(images, 8)
    for k in (8, 3, 1):
        first.bits = k
        z = F.conv2d(x, first.quantized_weight(), None, first.stride, first.padding)
        norm = first.bns[str(k)]
        assert torch.allclose(norm.running_mean, z.mean(dim=(0, 2, 3)), atol=1e-5), f"k={k}"
        assert torch.allclose(norm.running_var, z.var(dim=(0, 2, 3), unbiased=True), rtol=1e-4), f"k={k}"
    assert not model.training
