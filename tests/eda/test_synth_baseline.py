"""The fixed-precision baseline (EngineConfig.switchable = False) that eda.synth compares against.

It must be a working engine, or its area says nothing: it computes golden at k = B, j = A in the twos
scheme, with the same streams and the same cycle counts as the switchable engine.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from contract.config import ConfigError, EngineConfig
from verif.amaranth_streams import simulate
from verif.configs import BASELINE, config_id
from verif.scenarios import Scenario, base_seed, random_command, run_seed
from verif.scoreboard import Scoreboard


@pytest.mark.parametrize("pipelined", [False, True])
@pytest.mark.parametrize("mode", ["relu", "raw"])
def test_fixed_engine_matches_golden_at_full_precision_twos(mode, pipelined, request):
    """Also pipelined, as `eda.synth --fixed-precision --pipelined` prices it: no offset term, but the
    same registers and cycles as the pipelined switchable engine."""
    cfg = replace(BASELINE, pipelined=pipelined)
    seed = run_seed(base_seed(), config_id(cfg), f"full_precision_{mode}")
    rng = np.random.default_rng(seed)
    shapes = [(1, 1, 1), (4, 2 * cfg.rows + 1, cfg.cols + 1), (cfg.rows + 2, cfg.rows, 2 * cfg.cols + 1)]
    commands = [random_command(cfg, rng, *shape, cfg.base_bits, cfg.act_bits, "twos", mode) for shape in shapes]
    scenario = Scenario(f"full precision {mode}", seed, commands)
    where = f"the Amaranth simulator, {config_id(cfg)}"
    Scoreboard(cfg, scenario, where, f'.venv/bin/pytest "{request.node.nodeid}"').check(simulate(cfg, scenario))


def test_switchable_must_be_a_bool():
    with pytest.raises(ConfigError, match="switchable must be True or False"):
        EngineConfig(switchable=1)
