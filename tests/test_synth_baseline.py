"""The fixed-precision baseline (EngineConfig.switchable = False) that eda.synth compares against.

It must be a working engine, or its area says nothing: it computes golden at k = B, j = A in the twos
scheme, with the same streams and the same cycle counts as the switchable engine.
"""

from __future__ import annotations

import numpy as np
import pytest

from contract.config import ConfigError, EngineConfig
from tests.test_hw_engine import check
from verif.scenarios import random_command

FIXED = EngineConfig(
    rows=3, cols=2, base_bits=8, act_bits=6, acc_bits=28, max_m=16, max_k=64, max_n=64, switchable=False
)


@pytest.mark.parametrize("mode", ["relu", "raw"])
def test_fixed_engine_matches_golden_at_full_precision_twos(mode):
    cfg = FIXED
    rng = np.random.default_rng(21)
    shapes = [(1, 1, 1), (4, 2 * cfg.rows + 1, cfg.cols + 1), (cfg.rows + 2, cfg.rows, 2 * cfg.cols + 1)]
    check(cfg, [random_command(cfg, rng, *shape, cfg.base_bits, cfg.act_bits, "twos", mode) for shape in shapes])


def test_switchable_must_be_a_bool():
    with pytest.raises(ConfigError, match="switchable must be True or False"):
        EngineConfig(switchable=1)
