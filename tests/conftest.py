"""Session fixtures of the golden tests: small models trained once, with a fixed seed, and their exports.

A few epochs are enough: the tests check that the integer path reproduces the float model and that the
files and tools behave, not how accurate the models are (bench/truncation_table.py does that).
"""

from __future__ import annotations

import pytest

from golden.export import build_export, write_export
from golden.layers import QuantSpec
from golden.model import save_checkpoint
from golden.train import train

TEST_SEED = 0
TEST_EPOCHS = 4


@pytest.fixture(scope="session")
def trained():
    """trained(method, scheme) -> a DigitsNet trained for TEST_EPOCHS with TEST_SEED (cached per session)."""
    cache = {}

    def get(method: str, scheme: str):
        if (method, scheme) not in cache:
            cache[method, scheme] = train(QuantSpec(method, scheme), epochs=TEST_EPOCHS, seed=TEST_SEED,
                                          log=lambda line: None)
        return cache[method, scheme]

    return get


@pytest.fixture(scope="session")
def checkpoint_file(trained, tmp_path_factory):
    """A truncquant/offset checkpoint on disk, as golden.train writes it."""
    path = tmp_path_factory.mktemp("models") / "truncquant_offset.pt"
    save_checkpoint(trained("truncquant", "offset"), path, {"epochs": TEST_EPOCHS, "seed": TEST_SEED})
    return path


@pytest.fixture(scope="session")
def export_dir(trained, tmp_path_factory):
    """The truncquant/offset model's export directory, as golden.export writes it."""
    path = tmp_path_factory.mktemp("exports") / "truncquant_offset"
    write_export(build_export(trained("truncquant", "offset")), path)
    return path
