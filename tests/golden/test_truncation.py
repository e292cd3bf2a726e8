"""The nesting property that makes run-time precision free: the k-bit training-time code equals the
stored base code shifted right by B-k, for every base code, every k, and every boundary between codes."""

import numpy as np
import pytest
import torch

from golden import nested, quant

BASE_BITS = [2, 4, 8, 12]


def dense_grid(base_bits: int, dtype: torch.dtype) -> torch.Tensor:
    """Every w~ that could matter: a grid 16x finer than the base codes, each code boundary m/2^B,
    and the nearest representable values on either side of it."""
    fine = torch.arange(0, (1 << (base_bits + 4)) + 1, dtype=torch.float64) / (1 << (base_bits + 4))
    boundaries = torch.arange(0, (1 << base_bits) + 1, dtype=torch.float64) / (1 << base_bits)
    grid = torch.cat([fine, boundaries]).to(dtype)
    below = torch.nextafter(grid, torch.zeros_like(grid))
    above = torch.nextafter(grid, torch.ones_like(grid))
    return torch.cat([grid, below, above]).clamp(0, 1).unique()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("base_bits", BASE_BITS)
def test_training_code_equals_truncated_base_code(base_bits, dtype):
    w_tilde = dense_grid(base_bits, dtype)
    base = quant.truncquant_code(w_tilde, base_bits).to(torch.int64)
    assert set(base.tolist()) == set(range(1 << base_bits)), "the grid must reach every base code"
    for k in range(1, base_bits + 1):
        trained = quant.truncquant_code(w_tilde, k).to(torch.int64)
        truncated = base >> (base_bits - k)
        bad = (trained != truncated).nonzero()
        assert bad.numel() == 0, (
            f"B={base_bits} k={k}: w~={w_tilde[bad[0]].item()!r} trains to "
            f"{trained[bad[0]].item()} but truncates to {truncated[bad[0]].item()}"
        )


@pytest.mark.parametrize("base_bits", BASE_BITS)
def test_every_base_code_truncates_to_its_top_bits(base_bits):
    """Exhaustive over codes: the contract's offset decode of c at k is the odd integer of c's top k bits."""
    codes = torch.arange(1 << base_bits)
    for k in range(1, base_bits + 1):
        w = nested.truncate_weight(codes, k, "offset", base_bits)
        top = torch.tensor([int(format(c, f"0{base_bits}b")[:k], 2) for c in range(1 << base_bits)])
        assert torch.equal(w, 2 * top - (2**k - 1)), f"B={base_bits} k={k}"
        assert torch.all(w % 2 != 0), "offset weights are odd, never zero"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_truncquant_weight_is_the_value_of_the_truncated_export_code(seed):
    """Forward pass of the training quantizer at k == contract value of the exported base code at k."""
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randn(64, 32, generator=gen, dtype=torch.float64) * 0.3
    base_bits = 8
    codes = quant.weight_code(weight, "truncquant", "offset", base_bits)
    scale = weight.abs().mean()
    for k in range(1, base_bits + 1):
        expected = scale * nested.truncate_weight(codes, k, "offset", base_bits).double() / (2**k - 1)
        got = quant.truncquant_weight(weight, k)
        assert torch.equal(got, expected), f"seed={seed} k={k}"


@pytest.mark.parametrize("seed", [0, 1])
def test_twos_weight_is_the_value_of_the_shifted_signed_code(seed):
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randn(48, 16, generator=gen, dtype=torch.float64)
    base_bits = 8
    step = quant.twos_step_init(weight, base_bits)
    codes = quant.weight_code(weight, "truncquant", "twos", base_bits, step=step)
    assert int(codes.min()) >= 0 and int(codes.max()) < 256
    for k in range(1, base_bits + 1):
        coarse = 2 ** (base_bits - k)
        expected = nested.truncate_weight(codes, k, "twos", base_bits).double() * step * coarse
        assert torch.allclose(quant.twos_weight(weight, step, k, base_bits), expected, rtol=1e-12, atol=0), (
            f"seed={seed} k={k}"
        )


def test_straight_through_gradients_reach_weights_and_step():
    weight = torch.randn(8, 8, dtype=torch.float64, requires_grad=True)
    step = torch.tensor(0.05, dtype=torch.float64, requires_grad=True)
    (quant.truncquant_weight(weight, 2).sum() + quant.twos_weight(weight, step, 3, 8).sum()).backward()
    assert weight.grad.abs().sum() > 0
    assert step.grad is not None and step.grad.abs() > 0


def test_activation_code_rounds_half_to_even_after_clamping():
    levels = 2**8 - 1
    x = torch.tensor([-0.5, 0.0, 0.5 / levels, 1.5 / levels, 2.5 / levels, 1.0, 3.0], dtype=torch.float64)
    # 0.5 -> 0 and 2.5 -> 2 (even), 1.5 -> 2; out-of-range inputs clamp to the end codes.
    assert quant.activation_code(x, 8).tolist() == [0, 0, 0, 2, 2, 255, 255]
    assert np.array_equal(quant.quantize_activation(x, 8).numpy() * levels, quant.activation_code(x, 8).numpy())
