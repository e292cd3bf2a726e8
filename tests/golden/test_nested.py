"""golden.nested against the worked example of docs/numerics.md and against computations that share
none of its code: float floor division for the decodes, Python integers for sums and rounding."""

import itertools
import zlib
from fractions import Fraction
from math import floor

import numpy as np
import pytest
import torch

from contract.numerics import SCHEMES, NumericsError
from golden import nested


def float_weights(codes: np.ndarray, k: int, scheme: str, base_bits: int) -> np.ndarray:
    """Weights by floor division in float64, instead of integer shifts."""
    c = codes.astype(np.float64)
    if scheme == "offset":
        return 2 * np.floor(c / 2 ** (base_bits - k)) - (2**k - 1)
    signed = np.where(c >= 2 ** (base_bits - 1), c - 2**base_bits, c)
    return np.floor(signed / 2 ** (base_bits - k))


def float_gemm(act, wts, k, j, scheme, base_bits, act_bits) -> np.ndarray:
    x = np.floor(act.astype(np.float64) / 2 ** (act_bits - j))
    return x @ float_weights(wts, k, scheme, base_bits)


def random_codes(rng, shape, bits, extreme):
    """Uniform codes, or only the end codes 0 and 2^bits-1 that stress signs and widths."""
    if extreme:
        return rng.choice([0, 2**bits - 1], size=shape)
    return rng.integers(0, 2**bits, size=shape)


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("base_bits,act_bits", [(4, 4), (8, 8), (4, 8), (8, 3)])
@pytest.mark.parametrize("extreme", [False, True], ids=["random", "extreme"])
def test_int_gemm_matches_float_reference_for_every_k_and_j(scheme, base_bits, act_bits, extreme):
    seed = zlib.crc32(f"{scheme}/{base_bits}/{act_bits}/{extreme}".encode())
    rng = np.random.default_rng(seed)
    act = random_codes(rng, (5, 37), act_bits, extreme)
    wts = random_codes(rng, (37, 6), base_bits, extreme)
    for k, j in itertools.product(range(1, base_bits + 1), range(1, act_bits + 1)):
        got = nested.int_gemm(act, wts, k, j, scheme, base_bits, act_bits, acc_bits=32)
        want = float_gemm(act, wts, k, j, scheme, base_bits, act_bits)
        assert np.array_equal(got.numpy(), want.astype(np.int64)), f"seed={seed} k={k} j={j}"


def test_int_gemm_wraps_modulo_acc_bits():
    """With all-max codes at 8 bits, a sum of 2 products (2*255*255) exceeds an 8..16-bit accumulator."""
    act = np.full((1, 2), 255)
    wts = np.full((2, 1), 255)
    exact = 2 * 255 * 255
    for acc_bits in (8, 12, 16, 17):
        got = int(nested.int_gemm(act, wts, 8, 8, "offset", 8, 8, acc_bits)[0, 0])
        want = (exact + 2 ** (acc_bits - 1)) % 2**acc_bits - 2 ** (acc_bits - 1)
        assert got == want, f"acc_bits={acc_bits}"


def test_worked_example_from_the_contract():
    act, wts = [[200, 17]], [[182], [3]]
    assert nested.truncate_act(act, 4, 8).tolist() == [[12, 1]]
    assert nested.truncate_weight(wts, 3, "offset", 8).tolist() == [[3], [-7]]
    assert nested.truncate_weight(wts, 3, "twos", 8).tolist() == [[-3], [0]]
    offset_acc = nested.int_gemm(act, wts, 3, 4, "offset")
    twos_acc = nested.int_gemm(act, wts, 3, 4, "twos")
    assert offset_acc.tolist() == [[29]] and twos_acc.tolist() == [[-36]]
    params = dict(bias=[-5], mult=[3], shift=[2])
    assert nested.requantize(offset_acc, **params, mode="relu").tolist() == [[18]]
    assert nested.requantize(offset_acc, **params, mode="raw").tolist() == [[24]]
    assert nested.requantize(twos_acc, **params, mode="relu").tolist() == [[0]]
    assert nested.requantize(twos_acc, **params, mode="raw").tolist() == [[-41]]


def reference_requant(t_plus_bias: int, mult: int, shift: int, act_bits: int) -> int:
    """Round half up with exact rationals, then clamp: the contract's relu output."""
    y = floor(Fraction(t_plus_bias * mult, 2**shift) + Fraction(1, 2)) if shift else t_plus_bias * mult
    return min(max(y, 0), 2**act_bits - 1)


@pytest.mark.parametrize("seed", range(4))
def test_requantize_matches_exact_rational_rounding(seed):
    rng = np.random.default_rng(seed)
    acc_bits, act_bits, n = 32, 8, 64
    acc = rng.integers(-(2**20), 2**20, size=(7, n))
    bias = rng.integers(-(2**20), 2**20, size=n)
    mult = rng.integers(-(2**15), 2**15, size=n)
    shift = rng.integers(0, acc_bits + 15, size=n)
    got = nested.requantize(acc, bias, mult, shift, "relu", act_bits, acc_bits).numpy()
    for m, col in itertools.product(range(7), range(n)):
        want = reference_requant(int(acc[m, col] + bias[col]), int(mult[col]), int(shift[col]), act_bits)
        assert got[m, col] == want, f"seed={seed} m={m} n={col}"


def test_requantize_ties_round_half_up():
    """Negative y always clamps to 0 in relu mode, so only positive ties are observable."""
    ties = nested.requantize(torch.tensor([[2, 6, 10, -2]]), [0] * 4, [1] * 4, [2] * 4, "relu")
    assert ties.tolist() == [[1, 2, 3, 0]]  # 0.5 -> 1, 1.5 -> 2, 2.5 -> 3 (half to even would give 0, 2, 2)


def test_requantize_extreme_widths_are_exact():
    """The largest |t * mult| with the largest shift must not overflow (numerics.md bounds)."""
    acc_bits = 40
    acc = torch.tensor([[-(2 ** (acc_bits - 1)), 2 ** (acc_bits - 1) - 1]])
    got = nested.requantize(acc, [0, 0], [-(2**15), -(2**15)], [acc_bits + 14] * 2, "relu", 16, acc_bits)
    want = [reference_requant(int(t), -(2**15), acc_bits + 14, 16) for t in acc[0]]
    assert got[0].tolist() == want


def test_raw_mode_wraps_bias_addition():
    got = nested.requantize([[2**31 - 1]], [1], [1], [0], "raw", acc_bits=32)
    assert got.tolist() == [[-(2**31)]]


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: nested.truncate_weight([1], 0, "offset", 8), "k must be"),
        (lambda: nested.truncate_weight([1], 9, "offset", 8), "k must be"),
        (lambda: nested.truncate_weight([1], 4, "sign-magnitude", 8), "unknown scheme"),
        (lambda: nested.truncate_weight([256], 4, "twos", 8), "weight codes must lie"),
        (lambda: nested.truncate_weight([-1], 4, "twos", 8), "weight codes must lie"),
        (lambda: nested.truncate_weight([1.5], 4, "twos", 8), "must be integers"),
        (lambda: nested.truncate_weight([1], 1, "twos", 17), "base_bits must be"),
        (lambda: nested.truncate_act([1], 9, 8), "j must be"),
        (lambda: nested.int_gemm([[1, 2]], [[1]], 8, 8, "offset"), "int_gemm needs"),
        (lambda: nested.requantize([[1]], [0], [1], [0], "sigmoid"), "unknown output mode"),
        (lambda: nested.requantize([[1]], [0], [1 << 15], [0], "relu"), "mult values"),
        (lambda: nested.requantize([[1]], [0], [1], [47], "relu"), "shift values"),
        (lambda: nested.requantize([[1, 2]], [0], [1], [0], "relu"), "bias has 1 entries"),
    ],
)
def test_out_of_contract_input_is_rejected_with_a_clear_message(call, message):
    with pytest.raises(NumericsError, match=message):
        call()
