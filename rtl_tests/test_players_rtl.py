"""The stream players on the Verilog, both simulators: scenarios scored by `verif.scoreboard`, and a soak slice.

The library's scenarios that the players can express (random stalls, not bursts; no raw illegal beats) run
as batches of one simulation, each checked beat by beat against golden and the model and, on ideal
streams, cycle by cycle against the model; a reset in mid-command (an aborted batch) must leave the next
batch exact. The soak slice runs random shapes, precisions, stalls and resets (bench/soak.py runs 10^7 MACs).
"""

import subprocess
import sys

import pytest

from rtl_tests.harness import require_simulator
from verif.configs import RTL
from verif.rtl.players import Batch, observed, play, problems, stall_probabilities
from verif.rtl.runner import SIMULATORS
from verif.rtl.soak import soak
from verif.scenarios import base_seed, build, run_seed
from verif.scoreboard import Scoreboard

pytestmark = pytest.mark.rtl

CONFIG = "2x2-b4a4acc16-m8k64n64"
SCENARIOS = ("shapes", "precision_sweep", "extremes", "stalls", "long_gemm", "reset")
SOAK_MACS = 20_000


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_scenarios_through_the_players(simulator, request):
    require_simulator(simulator)
    cfg = RTL[CONFIG]
    scenarios = [build(name, cfg, run_seed(base_seed(), CONFIG, f"players/{name}")) for name in SCENARIOS]
    batches, scored = [], []
    for scenario in scenarios:
        if scenario.abort is not None:  # cut off by a reset, then the scenario's own commands after it
            batches.append(Batch([scenario.abort], seed=scenario.seed, abort_at=scenario.abort_after))
        batches.append(Batch(scenario.commands, stall_probabilities(scenario.pauses), scenario.seed))
        scored.append(len(batches) - 1)
    captures = play(simulator, cfg, batches, f"players-seed{base_seed()}")
    reproduce = f'.venv/bin/pytest "{request.node.nodeid}"'
    for batch, capture in zip(batches, captures, strict=True):
        assert problems(cfg, batch, capture) == [], f"batch of seed {batch.seed} (NESTMAC_SEED={base_seed()})"
    assert [c.status["aborted"] for c in captures].count(1) == 1
    for scenario, index in zip(scenarios, scored, strict=True):
        where = f"the {CONFIG} Verilog on {simulator}, through the players"
        Scoreboard(cfg, scenario, where, reproduce).check(observed(captures[index]))


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_soak_slice(simulator):
    require_simulator(simulator)
    seed = base_seed()
    result = soak(simulator, RTL[CONFIG], SOAK_MACS, seed, f"soak-seed{seed}")
    print(f"soak slice on {simulator}: {result}")
    assert result.mismatches == [], f"seed {seed} (NESTMAC_SEED): {result.mismatches[:5]}"
    assert result.macs >= SOAK_MACS and result.batches > result.aborted > 0


def test_players_test_module_starts_light():
    """The simulator starts a Python of its own for every run, and its imports are part of the run: torch and
    scikit-learn, once pulled in through conftest.py by cocotb's pytest setup (which the runner now turns
    off), took 15 of 16 CPU seconds of an 85,000-cycle run. The players' test module itself needs neither
    them nor amaranth."""
    heavy = ("torch", "sklearn", "amaranth", "cocotb_tools.runner")
    probe = f"import sys, verif.rtl.players_tb; print(' '.join(m for m in {heavy!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.split() == []
