"""Issue 24's operations in golden: max and average pooling, clamps at a bound (ReLU6), grouped, depthwise,
dilated and non-square convolutions and padding="same".

Each operation is held bit for bit between the float fake-quant model and the integer path on random inputs
(pooling: the float model's pooling of code values against the host's integer pooling; convolutions: the
float model's convolution of quantized values against the integer GEMMs' accumulators, and the im2col GEMMs
against the whole-batch convolutions). A model with all of them converts, trains a step, exports and reloads;
a torchvision-resnet18-like model (MaxPool stem) runs through the integer path. Seeds are in the test ids.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import golden.convert
import tests.edge_models as edge_models
from contract.cli import InputError, run_main
from contract.config import EngineConfig
from contract.model_files import load_export, write_export
from contract.model_format import Pooling, PoolStep, steps
from contract.policy import Policy
from golden.convert import conversion, convert
from golden.data import Split
from golden.evaluate import fraction_equal
from golden.export import build_export
from golden.fastpath import fast_logits
from golden.infer import layer_gemms, run_integer
from golden.layers import QuantSpec
from golden.lowering import host_pool
from golden.model import load_checkpoint, save_checkpoint
from golden.nested import int_gemm
from golden.pooling import pool_activation
from golden.train import train
from sim.host import host_ops
from sim.network import run_batch

EDGE = (3, 16, 16)
A = 8
LEVELS = (1 << A) - 1

WINDOWS = [
    ("maxpool", Pooling((3, 3), (2, 2), (1, 1))),
    ("maxpool", Pooling((2, 3), (1, 2), (1, 0), (2, 1), ceil_mode=True)),
    ("maxpool", Pooling((3, 3), (3, 3), (1, 1), ceil_mode=True)),
    ("avgpool", Pooling((3, 3), (2, 2), (1, 1))),
    ("avgpool", Pooling((3, 3), (2, 2), (1, 1), count_include_pad=False)),
    ("avgpool", Pooling((2, 2), (2, 2), (1, 1), ceil_mode=True, count_include_pad=False)),
    ("avgpool", Pooling((3, 2), (2, 3), (1, 1), ceil_mode=True)),
    ("avgpool", Pooling((3, 3), (1, 1), (1, 1), divisor_override=5)),
    ("avgpool", Pooling((4, 4), (4, 4))),
]


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize("op, pooling", WINDOWS)
def test_pooling_is_bit_exact_between_the_float_model_and_the_host(op, pooling, seed):
    """Random codes of odd sizes: the float model's pooling of their values gives the host's integer codes."""
    generator = torch.Generator().manual_seed(seed)
    height, width = (int(v) for v in torch.randint(5, 12, (2,), generator=generator))
    codes = torch.randint(0, LEVELS + 1, (2, 3, height, width), generator=generator)
    step = PoolStep("pool", op, "input", (3, height, width), pooling)
    host = host_pool(step, codes)
    values = pool_activation(codes.float() / LEVELS, op, pooling, A)
    assert host.shape == values.shape == (2, *step.shape)
    assert torch.equal(torch.round(values * LEVELS).to(torch.int64), host), f"seed {seed}"
    assert torch.equal(values, torch.round(values * LEVELS) / LEVELS), f"seed {seed}: off the grid"


def test_average_pooling_rounds_half_up_on_the_codes():
    """floor((S + floor(n/2)) / n), written out: (1 + 2) / 2 = 1.5 -> 2, (1 + 1 + 2) / 3 -> 1, 5 / 4 -> 1."""
    codes = torch.tensor([[[[1, 2, 1, 1, 2, 0, 5, 0, 0, 0]]]])
    step = PoolStep("pool", "avgpool", "input", (1, 1, 10), Pooling((1, 2), (1, 2)))
    assert host_pool(step, codes).tolist() == [[[[2, 1, 1, 3, 0]]]]


CONVS = [
    dict(in_channels=8, out_channels=8, kernel_size=3, padding=1, groups=8),
    dict(in_channels=8, out_channels=12, kernel_size=(1, 3), padding=(0, 2), dilation=(1, 2), groups=4),
    dict(in_channels=4, out_channels=6, kernel_size=(3, 2), stride=(2, 1), padding=(1, 0), groups=2),
    dict(in_channels=4, out_channels=4, kernel_size=3, padding="same", dilation=2),
    dict(in_channels=4, out_channels=8, kernel_size=5, padding="same", groups=4),
]


class OneConv(nn.Module):
    def __init__(self, **conv):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(**conv), nn.BatchNorm2d(conv["out_channels"])
        self.fc = nn.LazyLinear(10)

    def forward(self, x):
        return self.fc(F.relu(self.bn(self.conv(x))).flatten(1))


@pytest.mark.parametrize("scheme", ["offset", "twos"])
@pytest.mark.parametrize("conv", CONVS, ids=lambda conv: ",".join(f"{k}={v}" for k, v in conv.items()))
def test_a_conv_is_bit_exact_between_the_float_model_and_the_integer_gemms(conv, scheme):
    """At k = 5: the float model's convolution of the quantized input by the quantized weights is the integer
    accumulator of the layer's GEMMs (one per group) times Sx * Sw(k), and the im2col GEMMs equal the
    whole-batch convolutions of golden.fastpath."""
    torch.manual_seed(0)
    channels = conv["in_channels"]
    source = OneConv(**conv)
    source(torch.zeros(1, channels, 9, 10))  # materialises the lazy Linear
    model = convert(source.eval(), QuantSpec("truncquant", scheme), (channels, 9, 10)).eval()
    model.set_precision(5)
    export = build_export(model)
    codes = torch.randint(0, LEVELS + 1, (3, channels, 9, 10))
    layer, qconv = export.layers[0], model.layers["conv"]
    runs = [run for run in layer_gemms(export, codes, 5) if run.gemm.layer == "conv"]
    assert len(runs) == layer.groups == conv.get("groups", 1)
    acc = torch.cat(
        [int_gemm(r.gemm.act_codes, r.gemm.weight_codes, 5, A, scheme, 8, A, 32) for r in runs], dim=1
    ).double()
    with torch.no_grad():
        z = F.conv2d(
            codes.float() / LEVELS,
            qconv.quantized_weight(),
            None,
            qconv.stride,
            qconv.padding,
            qconv.dilation,
            qconv.groups,
        )
    expected = acc.reshape(3, *layer.out_shape[1:], layer.N).permute(0, 3, 1, 2) / LEVELS * qconv.weight_scale(5)
    assert torch.allclose(z.double(), expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(run_integer(export, codes, 5)[0], fast_logits(export, codes, 5))


class TwoClamps(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU6())
        self.b = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8))
        self.fc = nn.Linear(8 * 4 * 4, 10)
        with torch.no_grad():  # statistics away from the defaults, and a stem that often passes 1
            self.a[0].weight.mul_(8.0)
            for bn in (self.a[1], self.b[1]):
                bn.running_mean.uniform_(-0.5, 0.5)
                bn.running_var.uniform_(0.5, 2.0)
                bn.weight.uniform_(0.5, 2.0)

    def forward(self, x):
        x = F.max_pool2d(F.hardtanh(self.b(self.a(x)), 0.0, 3.0), 2)
        return self.fc(x.clamp(min=0).flatten(1))  # a ReLU of codes: a no-op


@pytest.mark.parametrize("scheme", ["offset", "twos"])
def test_a_clamp_at_a_bound_computes_the_source_layers_with_codes_of_that_unit(scheme):
    """Codes after a ReLU6 mean 0..6, after hardtanh(0, 3) 0..3: each converted layer, on the quantized
    weights, computes the source layer (its conv bias and BatchNorm, its clamp) in those units, up to the
    activation grid; a clamp at 1 (a ReLU's) would differ wherever the source passes 1."""
    torch.manual_seed(1)
    source = TwoClamps().eval()
    model = convert(source, QuantSpec("truncquant", scheme), (3, 8, 8)).eval()
    a, b = model.layers["a_0"], model.layers["b_0"]
    x = torch.round(torch.rand(4, 3, 8, 8) * LEVELS) / LEVELS
    with torch.no_grad():
        stem = torch.clamp(source.a[1](F.conv2d(x, a.quantized_weight(), source.a[0].bias, padding=1)), 0, 6)
        codes = torch.round(torch.clamp(a(x), 0, 1) * LEVELS)
        assert float((stem > 1).float().mean()) > 0.2, "the stem should pass 1 often"
        assert float((codes * 6 / LEVELS - stem).abs().max()) <= 6 / LEVELS / 2 + 1e-4
        body = F.conv2d(codes * 6 / LEVELS, b.quantized_weight(), source.b[0].bias, padding=1)
        expected = torch.clamp(source.b[1](body), 0, 3)
        got = torch.clamp(b(codes / LEVELS), 0, 1) * 3
    assert float((got - expected).abs().max()) < 1e-5
    assert [node.op for node in model.nodes] == ["conv", "conv", "maxpool", "linear"]  # clamp(min=0): no node
    assert torch.equal(model.layers["fc"].weight, source.fc.weight * 3)  # it reads codes of unit 3


def _synthetic_rgb(seed: int, images: int = 32) -> Split:
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(images, *EDGE, generator=generator)
    y = torch.randint(0, 10, (images,), generator=generator)
    return Split(x, y, x[:8], y[:8])


@pytest.mark.parametrize("method, scheme", [("truncquant", "offset"), ("qat", "twos")])
def test_a_model_with_every_new_operation_trains_exports_and_reloads(method, scheme, tmp_path):
    """Converts, trains one step (golden.train on synthetic RGB images), checkpoints, exports, reloads; the
    reloaded export runs through the integer path as the in-memory one and through the cycle model with its
    host poolings priced (sim.network, sim.host), the graph holding both poolings and the grouped, dilated,
    non-square convolution."""
    net = f"{Path(edge_models.__file__)}:EdgeNet"
    split = _synthetic_rgb(0)
    model = train(QuantSpec(method, scheme), 1, 0, 2e-3, 32, lambda line: None, net=net, split=split, sampled=1)
    save_checkpoint(model, tmp_path / "edge.pt", {"data": None})
    model, _ = load_checkpoint(tmp_path / "edge.pt")
    export = build_export(model)
    write_export(export, tmp_path / "export")
    loaded = load_export(tmp_path / "export")
    assert loaded.describe() == export.describe()
    assert [s.op for s in steps(loaded) if isinstance(s, PoolStep)] == ["maxpool", "avgpool"]
    grouped = loaded.layer("grouped")
    assert (grouped.kernel_hw, grouped.dilation_hw, grouped.padding_hw, grouped.groups) == ((1, 3), (1, 2), (0, 2), 4)
    assert loaded.layer("depthwise_0").groups == 8 and loaded.layer("depthwise_0").padding == 1
    codes = torch.randint(0, LEVELS + 1, (4, *EDGE))
    cfg = EngineConfig.from_export(loaded, 8, 8, 1024)
    for k in (8, 3):
        logits, _ = run_integer(loaded, codes, k)
        assert torch.equal(logits, run_integer(export, codes, k)[0])
        assert torch.equal(logits, fast_logits(loaded, codes, k))
        on_model = run_batch(cfg, loaded, codes, Policy("uniform", (k,)).resolve(loaded))
        assert torch.equal(on_model.logits, logits)
        assert on_model.host == host_ops(loaded, 4) and on_model.host.elements == 4 * (8 * 8 * 8 + 12 * 5 * 5)


def test_the_float_model_and_the_integer_path_agree_on_the_edge_model():
    """As for any network, up to the requantizer's 16-bit multipliers and ties: the same predictions."""
    torch.manual_seed(2)
    model = convert(edge_models.EdgeNet().eval(), QuantSpec("truncquant", "offset"), EDGE).eval()
    x = torch.rand(64, *EDGE)
    export = build_export(model)
    with torch.no_grad():
        expected = model(x).argmax(dim=1)
    codes = torch.round(x * LEVELS).to(torch.int64)
    assert fraction_equal(fast_logits(export, codes, 8).argmax(dim=1), expected) >= 0.95


def test_a_resnet18_like_model_with_a_maxpool_stem_runs_through_the_integer_path():
    torch.manual_seed(3)
    result = conversion(edge_models.ResNet18Like(width=8).eval(), QuantSpec("truncquant", "offset"), (3, 32, 32))
    model = result.model.eval()
    assert [node.op for node in model.nodes[:2]] == ["conv", "maxpool"]
    assert len(model.gemm_nodes) == 1 + 16 + 3 + 1  # stem, two convs per block, downsampling, fc
    export = build_export(model)
    codes = torch.randint(0, LEVELS + 1, (2, 3, 32, 32))
    logits, outputs = run_integer(export, codes, 4)
    assert logits.shape == (2, 10) and len(outputs) == len(export.layers)
    assert torch.equal(logits, fast_logits(export, codes, 4))


class Refused(nn.Module):
    """Six problems at once: a clamp with a negative lower end, an even kernel with padding="same", max pooling
    with return_indices, adaptive max pooling to 2x2, x.max() and a clamp at that bound (a tensor)."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1)
        self.b = nn.Conv2d(4, 4, 2, padding="same")
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = F.hardtanh(self.a(x), -1.0, 1.0)
        x, _ = F.max_pool2d(F.relu(self.b(x)), 2, return_indices=True)
        x = F.adaptive_max_pool2d(x, 2)
        return self.fc(torch.clamp(x, 0, x.max()).flatten(1))


@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_every_refused_new_operation_is_listed_in_one_message():
    with pytest.raises(InputError) as refusal:
        convert(Refused(), QuantSpec("truncquant", "offset"), (3, 8, 8))
    message = str(refusal.value)
    assert message.startswith("6 problems: (1) node 'hardtanh': only a clamp to [0, b]"), message
    assert "(2) node 'b' (module 'b'): padding='same' with kernel [2, 2]" in message
    assert "(3) unsupported operation max_pool2d_with_indices (call_function)" in message
    assert "(4) node 'adaptive_max_pool2d': only AdaptiveMaxPool2d(1)" in message
    assert "(5) unsupported operation max (call_method) at node 'max_1'" in message
    assert message.endswith(
        "(6) node 'clamp': only a clamp to [0, b] with a number b > 0 lowers (ReLU6, "
        "Hardtanh(0, b), clamp(x, 0, b)), got [0, max_1]"
    )


def test_the_convert_command_prints_poolings_and_one_gemm_per_group(capsys):
    assert run_main(golden.convert.main, [f"{Path(edge_models.__file__)}:EdgeNet", "--input-shape", "3,16,16"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith(
        "EdgeNet, input 3x16x16: 4 GEMM layers on the engine, 0 host adds, 2 host poolings "
        "(truncquant/offset, B = 8, A = 8; every ReLU clamps at 1, docs/numerics.md)"
    )
    rows = {line.split()[0]: " ".join(line.split()[1:]) for line in out[2:]}
    assert rows["pool"] == "maxpool 3x3/2 pad 1 stem_0 8x8x8 host pooling of codes"
    assert rows["depthwise_0"] == "conv 3x3/1 pad 1 groups 8 pool 8x8x8 engine GEMM 8 x M=64 K=9 N=1, ReLU"
    assert (
        rows["grouped"] == "conv 1x3/1 pad 0x2 dil 1x2 groups 4 depthwise_0 12x8x8 engine GEMM 4 x M=64 K=6 N=3, ReLU"
    )
    assert rows["avg_pool2d"] == "avgpool 2x2/2 pad 1 grouped 12x5x5 host pooling of codes"
