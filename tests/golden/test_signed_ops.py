"""Issue 24's linear bottleneck and concat in golden: a residual add with no ReLU after it (a linear add, whose
output is signed codes: code a stands for a - 2^(A-1)), the layers that read signed codes (their zero point
folded into the bias), a concat along channels, and the refusals around them (Hardswish, SiLU, signed codes
where their zero point would not be exact, layer programs).

The add is held bit for bit between the float fake-quant model and the host on random operands; the layers
reading signed codes against the float model's real-valued convolution (so the folded zero point is checked by
a computation that never sees it); mobilenet_v2's torchvision-equivalent through the integer path. Seeds are
in the test ids.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import tests.edge_models as edge_models
from contract.cli import InputError
from contract.config import EngineConfig
from contract.model_files import load_export, write_export
from contract.model_format import AddStep, ConcatStep, signed_values, steps
from contract.policy import Policy
from contract.program import ProgramError, compile_program
from golden.convert import SIGNED_UNIT, conversion, convert, graph_lines
from golden.evaluate import fraction_equal
from golden.export import build_export
from golden.fastpath import fast_logits
from golden.infer import run_integer
from golden.layers import QuantSpec
from golden.lowering import host_add
from golden.nested import truncate_weight
from golden.quant import quantize_activation, signed_activation
from sim.host import host_ops
from sim.network import run_batch

A = 8
LEVELS = (1 << A) - 1
ZERO = 1 << (A - 1)
SPEC = QuantSpec("truncquant", "offset")


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("relu", [False, True])
def test_an_add_of_unsigned_signed_and_raw_operands_is_bit_exact_between_the_float_model_and_the_host(relu, seed):
    """Operands: unsigned codes a, signed codes s (value s - Z) and a raw output u in code units (any integer).
    The float model adds their values and clamps (to the signed range for a linear add, to [0, 1] after a ReLU);
    the host adds the integers with AddStep.offset and clamps to the codes."""
    generator = torch.Generator().manual_seed(seed)
    a, s = (torch.randint(0, LEVELS + 1, (2, 4, 5, 5), generator=generator) for _ in range(2))
    u = torch.randint(-400, 400, (2, 4, 5, 5), generator=generator)
    step = AddStep("add", ("a", "s", "u"), ((4, 5, 5),) * 3, relu, frozenset({"s"}))
    host = host_add([a, s, u], A, step.offset(A))
    z = a.float() / LEVELS + (s - ZERO).float() / LEVELS + u.float() / LEVELS
    if relu:
        expected = torch.round(quantize_activation(z, A) * LEVELS).to(torch.int64)
    else:
        expected = torch.round(signed_activation(z, A) * LEVELS).to(torch.int64) + ZERO
    assert torch.equal(host, expected), f"seed {seed}"
    assert 0 < int((host == 0).sum()) and (relu or 0 < int((host == LEVELS).sum())), f"seed {seed}: no clamp seen"


def test_a_linear_add_written_out():
    """A = 8, Z = 128: 10 + (78 - 128) + 20 = -20, stored as 108; -150 clamps to -128 (code 0), 200 to 127 (255);
    with a ReLU, -20 is 0 and 200 is 200."""
    a, s, u = torch.tensor([10, 10, 200]), torch.tensor([78, 78, 128]), torch.tensor([20, -110, 0])
    linear = AddStep("add", ("a", "s", "u"), ((3,),) * 3, False, frozenset({"s"}))
    assert host_add([a, s, u], A, linear.offset(A)).tolist() == [108, 0, 255]
    relu = AddStep("add", ("a", "s", "u"), ((3,),) * 3, True, frozenset({"s"}))
    assert host_add([a, s, u], A, relu.offset(A)).tolist() == [0, 0, 200]


class SignedChain(nn.Module):
    """stem (a clamp at 8, SIGNED_UNIT) + project (no ReLU): a linear add of unit 8, read by an unpadded 1x1 conv
    with no ReLU (signed codes of unit 8 too) and, concatenated with them, by the global pooling of the Linear."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.Hardtanh(0.0, SIGNED_UNIT))
        self.project = nn.Sequential(nn.Conv2d(8, 8, 1), nn.BatchNorm2d(8))
        self.mix = nn.Sequential(nn.Conv2d(8, 6, 1), nn.BatchNorm2d(6))
        self.fc = nn.Linear(14, 10)
        with torch.no_grad():  # statistics away from the defaults
            for bn in (self.stem[1], self.project[1], self.mix[1]):
                bn.running_mean.uniform_(-0.5, 0.5)
                bn.running_var.uniform_(0.5, 2.0)
                bn.weight.uniform_(0.5, 2.0)

    def forward(self, x):
        x = self.stem(x)
        y = x + self.project(x)
        return self.fc(F.adaptive_avg_pool2d(torch.cat([y, self.mix(y)], dim=1), 1).flatten(1))


@pytest.mark.parametrize("scheme", ["offset", "twos"])
def test_a_layer_reading_signed_codes_computes_the_float_layer(scheme):
    """The integer GEMM of `mix` on signed codes, with their zero point folded into its bias, equals the float
    model's convolution of their real values (a - Z) / (2^A - 1) by the quantized weights and its BatchNorm, to
    the bias rounding's half step: a computation that never sees the zero point."""
    torch.manual_seed(4)
    model = convert(SignedChain().eval(), QuantSpec("truncquant", scheme), (3, 6, 6)).eval()
    export = build_export(model)
    assert [node.op for node in export.nodes] == ["gemm", "gemm", "add", "gemm", "add", "concat", "gemm"]
    assert signed_values(export) == {"add", "mix_0_signed", "cat"}
    layer, qconv = export.layer("mix_0"), model.layers["mix_0"]
    codes = torch.randint(0, LEVELS + 1, (3, 8, 6, 6))
    for k in (8, 3):
        qconv.bits = k
        bias = torch.from_numpy(layer.requant(k)[0])
        weights = truncate_weight(layer.weight_codes.astype("int64"), k, scheme, 8)
        t = (codes.permute(0, 2, 3, 1).reshape(-1, 8) @ weights + bias).double()
        with torch.no_grad():
            z = F.conv2d((codes - ZERO).float() / LEVELS, qconv.quantized_weight()).double()
        g, h = (v.double() for v in qconv.folded_bn(k))
        real = (g[None, :, None, None] * z + h[None, :, None, None]).permute(0, 2, 3, 1).reshape(-1, 6)
        units = real / (qconv.weight_scale(k) / LEVELS * g)
        assert float((t - units).abs().max()) <= 0.5 + 1e-3, f"{scheme}, k = {k}"


def agreement(result, export, images: int) -> float:
    """On random input codes: the integer path must equal the batched path (golden.fastpath) at k = 8; returns the
    fraction of images on which the float model predicts the integer path's class."""
    codes = torch.randint(0, LEVELS + 1, (images, *export.input_shape))
    logits, _ = run_integer(export, codes, 8)
    assert torch.equal(logits, fast_logits(export, codes, 8))
    with torch.no_grad():
        expected = result.model(codes.float() / LEVELS).argmax(dim=1)
    return fraction_equal(logits.argmax(dim=1), expected)


def test_mobilenet_v2s_linear_bottleneck_converts_and_the_float_model_and_integer_path_agree():
    torch.manual_seed(8)
    result = conversion(edge_models.LinearBottleneck().eval(), SPEC, (3, 8, 8))
    export = build_export(result.model.eval())
    assert [(node.op, node.relu) for node in export.nodes][-2:] == [("add", False), ("gemm", True)]
    assert agreement(result, export, 16) >= 0.95


@pytest.mark.slow  # some 15 s: 53 layers, 1868 depthwise groups
def test_mobilenet_v2_converts_with_linear_bottlenecks_and_runs_through_the_integer_path(tmp_path):
    """torchvision's mobilenet_v2 (tests/edge_models) at width 0.25 on 3x8x8: every residual add is linear, the
    projections not added are made signed codes by a one-operand linear add; the integer path and the batched
    path agree, the float model predicts alike; the export round-trips (format 6)."""
    torch.manual_seed(5)
    result = conversion(edge_models.MobileNetV2Like(width_mult=0.25).eval(), SPEC, (3, 8, 8))
    export = build_export(result.model.eval())
    adds = [step for step in steps(export) if isinstance(step, AddStep)]
    assert len(export.layers) == 53 and not any(step.relu for step in adds)
    # torchvision's 10 residual connections, and at this width the first block's too (8 channels in and out)
    assert [len(step.operands) for step in adds].count(2) == 11
    write_export(export, tmp_path / "export")
    assert load_export(tmp_path / "export").describe() == export.describe()
    assert agreement(result, export, 4) == 1.0


def test_a_linear_add_and_a_concat_run_on_the_cycle_model_with_their_host_costs():
    torch.manual_seed(6)
    export = build_export(convert(SignedChain().eval(), SPEC, (3, 6, 6)).eval())
    codes = torch.randint(0, LEVELS + 1, (2, 3, 6, 6))
    policy = Policy("uniform", (4,)).resolve(export)
    on_model = run_batch(EngineConfig.from_export(export, 8, 8, 1024), export, codes, policy)
    assert torch.equal(on_model.logits, run_integer(export, codes, 4)[0])
    with pytest.raises(ProgramError, match=r"^a linear add \(signed codes\) is not yet supported by layer programs"):
        compile_program(export, 8, 8, 1 << 16, policy)
    per_image = host_ops(export)
    assert on_model.host == per_image.scaled(2)
    # a linear add of two operands on 8x6x6 (288 elements), one of mix's raw output alone on 6x6x6 (216) and a
    # concat of 14x6x6 (504): per element of an add one raw operand (a multiply, a rounding add, a shift), the
    # sum's adds (1 and 0), the zero point's add and the clamp's two compares; per element of the concat a copy
    assert per_image.multiplies == per_image.shifts == 288 + 216
    assert per_image.adds == (1 + 1 + 1 + 2) * 288 + (1 + 0 + 1 + 2) * 216
    assert (per_image.loads, per_image.stores) == (2 * 288 + 216 + 504, 288 + 216 + 504)


def test_a_concat_of_two_branches_converts_and_is_exact():
    torch.manual_seed(7)
    result = conversion(edge_models.InceptionLike().eval(), SPEC, (3, 8, 8))
    export = build_export(result.model.eval())
    (concat,) = [step for step in steps(export) if isinstance(step, ConcatStep)]
    assert concat.operands == ("one_0", "three_0") and concat.shape == (10, 8, 8)
    assert agreement(result, export, 8) >= 0.95
    rows = {line.split()[0]: " ".join(line.split()[1:]) for line in graph_lines(result)[1:]}
    assert rows["cat"] == "concat one_0,three_0 10x8x8 host concat of codes"


class SignedRefused(nn.Module):
    """Five problems: Hardswish, SiLU, a padded conv of signed codes, an average pooling of them, a concat of
    codes of two bounds."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 1), nn.BatchNorm2d(8), nn.ReLU6())
        self.project = nn.Sequential(nn.Conv2d(8, 8, 1), nn.BatchNorm2d(8))
        self.act = nn.Hardswish()
        self.padded = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.stem(x)
        y = x + self.project(x)
        F.silu(self.act(self.padded(y)))  # unused results stay in the traced graph, and are converted
        F.avg_pool2d(y, 2)
        c = torch.cat([x, F.relu(self.padded(x))], dim=1)
        return self.fc(F.adaptive_avg_pool2d(c, 1).flatten(1))


def test_every_refused_signed_use_is_listed_in_one_message():
    with pytest.raises(InputError) as refusal:
        convert(SignedRefused(), SPEC, (3, 8, 8))
    message = str(refusal.value)
    assert message.startswith(
        "5 problems: (1) node 'padded' (module 'padded'): a conv with zero padding reads signed"
    ), message
    assert "(2) node 'act' (module 'act'): Hardswish is negative for some inputs" in message
    assert "(3) node 'silu': SiLU is negative for some inputs" in message
    assert "(4) node 'avg_pool2d': an average pooling of signed codes" in message
    assert "(5) node 'cat': the operands of a concat must share one bound" in message
