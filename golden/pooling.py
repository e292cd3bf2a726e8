"""Max and average pooling of activations in the float (fake-quant) model, equal bit for bit to the host's.

The host pools A-bit activation codes in integers (golden.lowering.host_pool, docs/numerics.md, "Host
operations"); the float model pools their values x = code / (2^A - 1) and must give the same codes. A
maximum of values on the grid is one of them, so torch's max pooling is already exact. An average is not on
the grid: the forward pass recovers the codes (round(x * (2^A - 1)) is exact, as x is a code's float32
quotient), takes torch's own average of them in float64 (the sum of small integers divided by torch's
divisor) and rounds half up to the code floor(avg + 1/2), which equals the host's floor((S + floor(n/2)) / n);
the backward pass is torch's average pooling's (a straight-through estimator).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from contract.model_format import Pooling
from golden.quant import ste


def pool_activation(x: torch.Tensor, op: str, pooling: Pooling, act_bits: int) -> torch.Tensor:
    """The pooled activations [batch, C, OH, OW] of activations `x` on the grid 1/(2^A - 1), `op` "maxpool" or
    "avgpool", with torch's semantics for `pooling`'s window."""
    window = (pooling.kernel, pooling.stride, pooling.padding)
    if op == "maxpool":
        return F.max_pool2d(x, *window, pooling.dilation, pooling.ceil_mode)
    options = (pooling.ceil_mode, pooling.count_include_pad, pooling.divisor_override)
    levels = (1 << act_bits) - 1
    codes = torch.round(x.detach().double() * levels)
    exact = torch.floor(F.avg_pool2d(codes, *window, *options) + 0.5).to(x.dtype) / levels
    return ste(exact, F.avg_pool2d(x, *window, *options))
