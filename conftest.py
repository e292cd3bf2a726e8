"""Fixtures shared by tests/ and rtl_tests/: small digits models trained once per session, fixed seed.

A few epochs are enough: the tests check that the integer path, the model and the Verilog reproduce the
network exactly, not how accurate it is (bench/truncation_table.py does that).
"""

from __future__ import annotations

import pytest

from golden.layers import QuantSpec
from golden.train import train

TEST_SEED = 0
TEST_EPOCHS = 4


@pytest.fixture(scope="session")
def training_settings():
    """How the session's models are trained, for fixtures that record it (e.g. in a checkpoint)."""
    return {"epochs": TEST_EPOCHS, "seed": TEST_SEED}


@pytest.fixture(scope="session")
def trained():
    """trained(method, scheme) -> a DigitsNet trained for TEST_EPOCHS with TEST_SEED (cached per session)."""
    cache = {}

    def get(method: str, scheme: str):
        if (method, scheme) not in cache:
            cache[method, scheme] = train(
                QuantSpec(method, scheme), epochs=TEST_EPOCHS, seed=TEST_SEED, log=lambda line: None
            )
        return cache[method, scheme]

    return get
