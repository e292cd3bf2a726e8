"""The integer-only path (codes, int_gemm, requantize) must reproduce the float fake-quant model.

docs/numerics.md allows only two roundings of difference (integer bias, 16-bit multiplier) plus
round-half-up versus round-half-even at exact ties, hence >= 99% agreement of predictions, not 100%.
Only the nested models are held to it: a QAT model truncated to k = 1 is near chance, its logits are
nearly tied, and one LSB decides the prediction.
"""

from __future__ import annotations

import pytest
import torch

from golden.data import digits_split
from golden.evaluate import float_predictions, fraction_equal, integer_predictions
from golden.export import build_export
from golden.nested import truncate_weight

NESTED = [("truncquant", "offset"), ("truncquant", "twos")]


@pytest.mark.parametrize("method,scheme", NESTED)
def test_integer_path_agrees_with_fake_quant_model_at_every_k(trained, training_settings, method, scheme):
    model = trained(method, scheme)
    export = build_export(model)
    split = digits_split()
    for k in range(model.spec.base_bits, 0, -1):
        agreement = fraction_equal(
            float_predictions(model, split.test_x, k), integer_predictions(export, split.test_x, k)
        )
        assert agreement >= 0.99, f"{method}/{scheme} k={k}: agreement {agreement:.4f} ({training_settings})"


@pytest.mark.parametrize("method,scheme", NESTED)
def test_nested_models_learn_at_full_and_lowest_precision(trained, training_settings, method, scheme):
    """A sanity floor far below the trained accuracy: ten classes give 10% by chance."""
    model, split = trained(method, scheme), digits_split()
    for k in (model.spec.base_bits, 1):
        accuracy = fraction_equal(float_predictions(model, split.test_x, k), split.test_y)
        assert accuracy > 0.6, f"{method}/{scheme} k={k}: accuracy {accuracy:.3f} ({training_settings})"


@pytest.mark.parametrize("method,scheme", NESTED + [("qat", "offset")])
def test_trunc_view_uses_the_value_of_the_truncated_stored_code(trained, method, scheme):
    """The float model's k-bit weight equals golden.nested's decoding of the exported code times Sw(k)."""
    model = trained(method, scheme)
    for k in (model.spec.base_bits, 5, 2, 1):
        model.set_precision(k, "trunc")
        for layer in model.quant_layers:
            with torch.no_grad():
                expected = truncate_weight(layer.weight_codes(), k, scheme).double() * layer.weight_scale(k)
                assert torch.allclose(layer.quantized_weight().double(), expected, rtol=1e-6, atol=1e-9), (
                    f"{method}/{scheme} k={k}"
                )


def test_quant_view_of_a_qat_model_rounds_instead_of_truncating(trained):
    """Re-quantizing at k is a different weight from truncating the base code, so the two views differ."""
    model = trained("qat", "offset")
    layer = model.quant_layers[1]
    with torch.no_grad():
        model.set_precision(2, "trunc")
        truncated = layer.quantized_weight().clone()
        model.set_precision(2, "quant")
        requantized = layer.quantized_weight()
    assert not torch.equal(truncated, requantized)
    assert truncated.unique().numel() <= 4 and requantized.unique().numel() <= 4  # both are 2-bit weights
