"""The emitted engine Verilog under cocotb, on Verilator and Icarus, for several configurations.

Each case runs every scenario of rtl_tests/engine_tb.py in one simulation; its seed is derived from the
configuration name and is in the replayable scenario file that a failure names (under build/rtl/).
"""

import zlib

import numpy as np
import pytest

from eda.tools import SIMULATORS
from rtl_tests import harness
from rtl_tests.configs import CONFIGS

KINDS = ("ideal", "precision_sweep", "extremes", "stalls", "reset")  # the cocotb tests of engine_tb


def heavy_stalls(seed: int) -> dict[str, float]:
    """Per-stream idle/back-pressure rates between 30% and 80%, so every stream throttles at some point."""
    rng = np.random.default_rng(seed)
    return {name: float(rng.choice([0.3, 0.5, 0.8])) for name in ("cmd", "param", "weight", "act", "result")}


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("simulator", SIMULATORS)
def test_engine_verilog(simulator, config):
    seed = zlib.crc32(config.encode())
    harness.run(
        simulator, CONFIGS[config], "rtl_tests.engine_tb", list(KINDS), {"seed": seed, "stall": heavy_stalls(seed)}
    )
