"""im2col and the per-layer GEMMs, checked against torch's own convolution (an independent computation)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from golden.data import digits_split, input_codes
from golden.export import build_export
from golden.infer import layer_gemms, run_integer
from golden.lowering import im2col
from golden.nested import requantize, truncate_act, truncate_weight


@pytest.mark.parametrize(
    "channels,height,width,kernel,stride,padding",
    [(1, 8, 8, 3, 1, 1), (3, 7, 6, 3, 2, 1), (4, 5, 5, 1, 1, 0), (2, 6, 9, 2, 3, 2)],
)
def test_im2col_gemm_equals_conv2d(channels, height, width, kernel, stride, padding):
    generator = torch.Generator().manual_seed(1)
    codes = torch.randint(0, 256, (2, channels, height, width), generator=generator)
    weights = torch.randint(-127, 128, (5, channels, kernel, kernel), generator=generator)
    expected = F.conv2d(codes.double(), weights.double(), stride=stride, padding=padding)  # [b, N, oh, ow]
    x = im2col(codes, kernel, stride, padding)
    gemm = x.double() @ weights.reshape(5, -1).T.double()  # W[K, N] = weights.reshape(N, -1).T
    batch, n, oh, ow = expected.shape
    assert x.shape == (batch * oh * ow, channels * kernel * kernel)
    assert torch.equal(gemm.reshape(batch, oh, ow, n).permute(0, 3, 1, 2), expected)


@pytest.mark.parametrize("scheme", ["offset", "twos"])
def test_first_conv_layer_matches_conv2d_of_decoded_codes(trained, scheme):
    """The lowered first layer equals conv2d of the decoded input and weights, requantized per channel."""
    export = build_export(trained("truncquant", scheme))
    layer = export.layers[0]
    codes = input_codes(digits_split().test_x[:16], export.act_bits)
    for k in (8, 3, 1):
        run = layer_gemms(export, codes, k)[0]
        weights = torch.from_numpy(layer.weight_codes.astype("int64")).T.reshape(
            layer.N, layer.in_shape[0], layer.kernel, layer.kernel
        )
        acc = F.conv2d(
            truncate_act(codes, 8).double(),
            truncate_weight(weights, k, scheme).double(),
            stride=layer.stride,
            padding=layer.padding,
        ).to(torch.int64)
        acc_rows = acc.permute(0, 2, 3, 1).reshape(-1, layer.N)  # rows (batch, oh, ow)
        bias, mult, shift = layer.requant(k)
        assert torch.equal(run.output, requantize(acc_rows, bias, mult, shift, "relu"))
        assert (run.gemm.M, run.gemm.K, run.gemm.N) == (codes.shape[0] * 64, 9, layer.N)


def test_each_gemm_consumes_the_previous_output_in_torch_order(trained):
    """Conv outputs rows (batch, oh, ow) become NCHW for the next im2col; the linear layer reads them
    flattened per sample in (c, h, w) order, as torch.flatten does in the float model."""
    export = build_export(trained("truncquant", "offset"))
    batch = 8
    codes = input_codes(digits_split().test_x[:batch], export.act_bits)
    runs = layer_gemms(export, codes, 4)
    logits, outputs = run_integer(export, codes, 4)
    assert logits.shape == (batch, 10) and torch.equal(logits, runs[-1].output)
    assert all(torch.equal(o, r.output) for o, r in zip(outputs, runs, strict=True))
    for previous, current, layer in zip(runs[:-1], runs[1:], export.layers[1:], strict=True):
        c, h, w = layer.in_shape
        nchw = previous.output.reshape(batch, h, w, c).permute(0, 3, 1, 2)
        if layer.kind == "conv":
            assert torch.equal(current.gemm.act_codes, im2col(nchw, layer.kernel, layer.stride, layer.padding))
        else:
            assert torch.equal(current.gemm.act_codes, torch.flatten(nchw, 1))
