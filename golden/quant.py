"""Training-time quantizers (straight-through estimators) whose k-bit outputs match docs/numerics.md.

The forward pass of each quantizer produces exactly the value the integer path computes from the
exported base code at precision k; the backward pass treats floor/round as identity (STE). Each quantizer
also exposes the integer code it implies, which `golden.export` stores and the tests compare.
"""

from __future__ import annotations

import torch

from contract.numerics import check_scheme


def ste(exact: torch.Tensor, surrogate: torch.Tensor) -> torch.Tensor:
    """`exact` in the forward pass, the gradient of `surrogate` in the backward pass.

    Written as exact + (s - s) rather than s + (exact - s) because the latter can be one ulp off
    `exact` in floating point, and the forward value must equal the integer path's bit for bit."""
    return exact.detach() + (surrogate - surrogate.detach())


# --- TruncQuant (offset scheme) -------------------------------------------------------------------


def truncquant_normalize(weight: torch.Tensor) -> torch.Tensor:
    """w~ = tanh(W) / (2 max|tanh W|) + 0.5, in [0, 1]: the value whose binary digits are the nested codes."""
    t = torch.tanh(weight)
    return t / (2 * t.abs().max().clamp(min=1e-12)) + 0.5


def truncquant_code(w_tilde: torch.Tensor, bits: int) -> torch.Tensor:
    """min(floor(2^bits * w~), 2^bits - 1). Scaling by a power of two is exact in floating point, so
    truncquant_code(w~, k) == truncquant_code(w~, B) >> (B - k) holds bit for bit (tests/golden/test_truncation)."""
    return torch.clamp(torch.floor(w_tilde * (1 << bits)), max=(1 << bits) - 1)


def offset_value(code: torch.Tensor, bits: int, scale: torch.Tensor) -> torch.Tensor:
    """The real weight of a `bits`-bit offset code: scale * (2q - (2^bits - 1)) / (2^bits - 1)."""
    levels = (1 << bits) - 1
    return scale * (2 * code - levels) / levels


def truncquant_weight(weight: torch.Tensor, bits: int) -> torch.Tensor:
    """TruncQuant fake-quantized weight at `bits`: equals the truncated base code's value exactly."""
    w_tilde = truncquant_normalize(weight)
    scale = weight.abs().mean().detach()
    code = truncquant_code(w_tilde, bits)
    # The surrogate spreads w~ over the same affine map, so gradients flow as if floor were identity.
    surrogate = offset_value(w_tilde * ((1 << bits) - 1), bits, scale)
    return ste(offset_value(code, bits, scale), surrogate)


# --- Conventional QAT baseline (offset scheme, round to nearest at the base precision) ---------------


def qat_code(w_tilde: torch.Tensor, bits: int) -> torch.Tensor:
    """round(w~ * (2^bits - 1)): the usual uniform quantizer, which does *not* nest under truncation."""
    return torch.round(w_tilde * ((1 << bits) - 1))


def qat_weight(weight: torch.Tensor, bits: int) -> torch.Tensor:
    w_tilde = truncquant_normalize(weight)
    scale = weight.abs().mean().detach()
    levels = (1 << bits) - 1
    return ste(offset_value(qat_code(w_tilde, bits), bits, scale), offset_value(w_tilde * levels, bits, scale))


# --- DQT-style signed nested weights (twos scheme) ---------------------------------------------------


def twos_code(weight: torch.Tensor, step: torch.Tensor, base_bits: int) -> torch.Tensor:
    """Signed base code clamp(round(W / step), -2^(B-1), 2^(B-1) - 1)."""
    half = 1 << (base_bits - 1)
    return torch.clamp(torch.round(weight / step), -half, half - 1)


def twos_weight(weight: torch.Tensor, step: torch.Tensor, bits: int, base_bits: int) -> torch.Tensor:
    """floor(code / 2^(B-k)) * step * 2^(B-k): the value of the arithmetically shifted base code.
    `step` may be a learned parameter; the STE passes W/step through both round and floor but not through
    the clamp (as in LSQ): a clipped weight gets no gradient and gives the step the gradient of its bound.
    Passing the clamp through too makes d/dstep of a clipped weight (bound - W/step) instead of bound, of
    the wrong sign, and the learned step collapses toward zero."""
    half = 1 << (base_bits - 1)
    ratio = weight / step
    code = ste(torch.clamp(torch.round(ratio), -half, half - 1), torch.clamp(ratio, -half, half - 1))
    coarse = 1 << (base_bits - bits)
    return ste(torch.floor(code / coarse), code / coarse) * step * coarse


def twos_step_init(weight: torch.Tensor, base_bits: int) -> torch.Tensor:
    """Calibrated initial step: the base code spans +-3 standard deviations of the weights."""
    return (3 * weight.detach().std() / (1 << (base_bits - 1))).clamp(min=1e-8)


# --- Activations ----------------------------------------------------------------------------------


def activation_code(x: torch.Tensor, act_bits: int) -> torch.Tensor:
    """round_half_even(clamp(x, 0, 1) * (2^A - 1)): torch.round rounds half to even."""
    return torch.round(torch.clamp(x, 0, 1) * ((1 << act_bits) - 1))


def quantize_activation(x: torch.Tensor, act_bits: int) -> torch.Tensor:
    levels = (1 << act_bits) - 1
    clamped = torch.clamp(x, 0, 1)
    return ste(activation_code(x, act_bits) / levels, clamped)


def weight_code(
    weight: torch.Tensor, method: str, scheme: str, base_bits: int, step: torch.Tensor | None = None
) -> torch.Tensor:
    """The unsigned B-bit code stored for export (twos codes are taken modulo 2^B)."""
    check_scheme(scheme)
    if scheme == "twos":
        return twos_code(weight, step, base_bits).to(torch.int64) % (1 << base_bits)
    w_tilde = truncquant_normalize(weight)
    code = truncquant_code(w_tilde, base_bits) if method == "truncquant" else qat_code(w_tilde, base_bits)
    return code.to(torch.int64)


def grid_activation(x: torch.Tensor, act_bits: int) -> torch.Tensor:
    """x rounded to the activation grid 1/(2^A - 1) but not clamped: a pre-activation branch of a residual
    add, which the host requantizes to signed code units before adding (docs/numerics.md, host operations)."""
    levels = (1 << act_bits) - 1
    return ste(torch.round(x * levels) / levels, x)


def signed_activation(x: torch.Tensor, act_bits: int) -> torch.Tensor:
    """x on the activation grid 1/(2^A - 1), clamped to the signed codes' range [-2^(A-1), 2^(A-1) - 1] of grid
    steps: a linear add's output, stored as the code round(x * (2^A - 1)) + 2^(A-1) (docs/numerics.md, "A
    residual add without ReLU"). Gradients pass straight through inside the range."""
    levels, zero = (1 << act_bits) - 1, 1 << (act_bits - 1)
    code = torch.clamp(torch.round(x * levels), -zero, zero - 1)
    return ste(code / levels, torch.clamp(x, -zero / levels, (zero - 1) / levels))
