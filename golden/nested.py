"""Integer reference of the numerics contract (docs/numerics.md, version 1).

These functions are the ground truth that the RTL and the cycle model are compared against, so they
follow the contract's formulas literally (shift the code, decode, multiply, wrap) rather than the
hardware's masked form: an independent formulation is what makes the comparison worth something.
They take torch tensors or numpy arrays of integer codes and return torch.int64 tensors.
"""

from __future__ import annotations

import numpy as np
import torch

from contract.numerics import (
    ACC_BITS_RANGE,
    ACT_BITS_RANGE,
    BASE_BITS_RANGE,
    MULT_BITS,
    NumericsError,
    check_mode,
    check_range,
    check_scheme,
)

# float64 represents every integer below 2**53 exactly, so a float64 matmul is an exact integer GEMM
# whenever the worst-case sum stays below that; it is far faster than torch's int64 matmul on a CPU.
_FLOAT64_EXACT = 2**53


def _as_codes(codes, bits: int, what: str) -> torch.Tensor:
    """Integer tensor of codes, checked to be unsigned `bits`-bit values."""
    t = torch.as_tensor(np.asarray(codes) if not isinstance(codes, torch.Tensor) else codes)
    if t.dtype.is_floating_point or t.dtype == torch.bool or t.dtype.is_complex:
        raise NumericsError(f"{what} codes must be integers, got {t.dtype}")
    t = t.to(torch.int64)
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= 1 << bits):
        raise NumericsError(f"{what} codes must lie in 0..{(1 << bits) - 1} for {bits} bits")
    return t


def wrap(value: torch.Tensor, bits: int) -> torch.Tensor:
    """Two's-complement reduction of an int64 tensor to `bits` bits (bits <= 62)."""
    half = 1 << (bits - 1)
    return torch.remainder(value + half, 1 << bits) - half


def truncate_weight(codes, k: int, scheme: str, base_bits: int = 8) -> torch.Tensor:
    """The k-bit weight value of each stored base code: the top k bits read per `scheme`."""
    check_range("base_bits", base_bits, *BASE_BITS_RANGE)
    check_range("k", k, 1, base_bits)
    check_scheme(scheme)
    c = _as_codes(codes, base_bits, "weight")
    drop = base_bits - k
    if scheme == "offset":
        q = c >> drop  # c is non-negative here, so >> is the contract's logical shift
        return 2 * q - ((1 << k) - 1)
    s = torch.where(c >= 1 << (base_bits - 1), c - (1 << base_bits), c)
    return s >> drop  # torch's >> on a signed int64 is arithmetic: floor(s / 2**drop)


def truncate_act(codes, j: int, act_bits: int = 8) -> torch.Tensor:
    """The j-bit activation value of each A-bit activation code: its top j bits."""
    check_range("act_bits", act_bits, *ACT_BITS_RANGE)
    check_range("j", j, 1, act_bits)
    return _as_codes(codes, act_bits, "activation") >> (act_bits - j)


def int_gemm(
    act_codes, weight_codes, k: int, j: int, scheme: str, base_bits: int = 8, act_bits: int = 8, acc_bits: int = 32
) -> torch.Tensor:
    """acc[M, N] = wrap_ACC(sum_t x[m, t] * w[t, n]) for activation codes [M, K] and weight codes [K, N]."""
    check_range("acc_bits", acc_bits, *ACC_BITS_RANGE)
    x = truncate_act(act_codes, j, act_bits)
    w = truncate_weight(weight_codes, k, scheme, base_bits)
    if x.dim() != 2 or w.dim() != 2 or x.shape[1] != w.shape[0]:
        raise NumericsError(f"int_gemm needs [M, K] and [K, N] codes, got {tuple(x.shape)} and {tuple(w.shape)}")
    worst = x.shape[1] * ((1 << act_bits) - 1) * ((1 << base_bits) - 1)
    if worst < _FLOAT64_EXACT:
        acc = torch.matmul(x.to(torch.float64), w.to(torch.float64)).to(torch.int64)
    else:
        acc = torch.matmul(x, w)
    return wrap(acc, acc_bits)


def requantize(acc, bias, mult, shift, mode: str, act_bits: int = 8, acc_bits: int = 32) -> torch.Tensor:
    """Per-column requantization of acc[M, N]: relu -> A-bit activation codes, raw -> t = acc + bias,
    linear -> y = (t * mult + 2^(shift-1)) >> shift without the clamp, wrapped to ACC bits (docs/numerics.md,
    "Output mode")."""
    check_mode(mode)
    check_range("act_bits", act_bits, *ACT_BITS_RANGE)
    check_range("acc_bits", acc_bits, *ACC_BITS_RANGE)
    acc = torch.as_tensor(np.asarray(acc) if not isinstance(acc, torch.Tensor) else acc).to(torch.int64)
    bias, mult, shift = (torch.as_tensor(np.asarray(p)).to(torch.int64).reshape(-1) for p in (bias, mult, shift))
    n = acc.shape[-1]
    for name, p in (("bias", bias), ("mult", mult), ("shift", shift)):
        if p.numel() != n:
            raise NumericsError(f"{name} has {p.numel()} entries for {n} output columns")
    _check_values("bias", bias, -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1)
    _check_values("mult", mult, -(1 << (MULT_BITS - 1)), (1 << (MULT_BITS - 1)) - 1)
    _check_values("shift", shift, 0, acc_bits + MULT_BITS - 2)
    t = wrap(acc + bias, acc_bits)
    if mode == "raw":
        return t
    rounding = torch.where(shift > 0, torch.ones_like(shift) << (shift - 1).clamp(min=0), torch.zeros_like(shift))
    y = (t * mult + rounding) >> shift
    return wrap(y, acc_bits) if mode == "linear" else y.clamp(0, (1 << act_bits) - 1)


def _check_values(name: str, values: torch.Tensor, lo: int, hi: int) -> None:
    if values.numel() and (int(values.min()) < lo or int(values.max()) > hi):
        raise NumericsError(f"{name} values must lie in {lo}..{hi}")
