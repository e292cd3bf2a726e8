"""Precision policies: the spellings a user types, what each means per layer, and BitOPs by hand."""

import pytest

from contract.numerics import NumericsError
from contract.policy import Policy, bitops, parse_policy


def test_uniform_repeats_one_k_over_every_layer():
    assert parse_policy("uniform:3", 8).per_layer(4) == (3, 3, 3, 3)


def test_static_keeps_the_vector_in_layer_order():
    policy = parse_policy("static:8, 4,4,2", 8)
    assert policy.per_layer(4) == (8, 4, 4, 2)
    assert str(policy) == "static:8,4,4,2"


def test_dynamic_budget_is_an_equivalent_uniform_k():
    assert parse_policy("dynamic", 8) == Policy("dynamic")
    assert parse_policy("dynamic:2.5", 8).budget == 2.5


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("mixed:4", "unknown policy"),
        ("uniform:0", "1..8"),
        ("uniform:9", "1..8"),
        ("uniform:", "uniform:K"),
        ("static:", "precision vector"),
        ("static:8,x", "each static k"),
        ("static:8,,4", "each static k"),
        ("dynamic:0.5", "budget"),
        ("dynamic:nan", "budget"),
        ("dynamic:fast", "budget"),
    ],
)
def test_bad_policies_name_the_problem(text, says):
    with pytest.raises(NumericsError, match=says):
        parse_policy(text, 8)


def test_a_vector_of_the_wrong_length_is_refused():
    with pytest.raises(NumericsError, match="3 entries for a network of 4"):
        parse_policy("static:8,4,2", 8).per_layer(4)


def test_dynamic_has_no_fixed_vector():
    with pytest.raises(NumericsError, match="per image"):
        parse_policy("dynamic", 8).per_layer(2)


def test_bitops_are_macs_times_weight_and_activation_bits():
    # 2x3x4 = 24 MACs at k = 8 and 5x1x1 = 5 MACs at k = 2, activations 8 bits: 24*64 + 5*16.
    assert bitops([(2, 3, 4), (5, 1, 1)], [8, 2], act_bits=8) == 1536 + 80
    with pytest.raises(NumericsError, match="2 GEMM shapes but 1"):
        bitops([(1, 1, 1), (1, 1, 1)], [8], act_bits=8)
