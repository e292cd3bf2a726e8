"""The engine as Amaranth objects, in the Amaranth simulator: the scenarios of `verif.scenarios`, scored by
`verif.scoreboard` against golden.nested and the cycle-exact model (every result beat; with ideal streams,
every command's acceptance and last beat cycle). Each run writes its coverage under build/coverage/amaranth/.

The same scenarios run on the emitted Verilog in rtl_tests/test_engine_rtl.py; `NESTMAC_SEED` varies both.
"""

from __future__ import annotations

import pytest

from sim.model import EngineModel
from verif.amaranth_streams import simulate
from verif.configs import AMARANTH
from verif.coverage import precision_bins, write_report
from verif.rtl.runner import BUILD
from verif.scenarios import NAMES, base_seed, build, plan_bins, run_seed
from verif.scoreboard import Scoreboard

COVERAGE = BUILD.parent / "coverage" / "amaranth"
ALL = ("shapes", "precision_sweep", "extremes", "backpressure", "stalls")
#: Scenarios per configuration. The full (k, j, scheme, mode) sweep of a B = 8 engine is 192 to 256 commands,
#: too slow here: the 3x5 and 4x4 B = 8 Verilog builds run it (rtl_tests), these walk the precisions; reset
#: needs the cocotb bench.
PLAN = {
    "2x2-b4a4acc16-m8k64n64": ALL,
    "3x5-b8a8acc32-m16k64n64": ("shapes", "precision_walk", "extremes", "backpressure", "stalls"),
    "4x4-b8a6acc24-m16k64n64": ("shapes", "precision_walk", "extremes", "backpressure", "stalls", "long_gemm"),
    "1x2-b3a2acc12-m8k16n16": ALL,
    "3x1-b4a3acc16-m8k32n16": ALL,
    "1x1-b2a1acc10-m8k16n16": ALL,
    "2x2-b4a4acc16-m8k64n64-digit_bits=1": ALL,
    "3x5-b8a8acc32-m16k64n64-digit_bits=2": ("shapes", "precision_walk", "extremes", "backpressure", "stalls"),
    "1x2-b3a2acc12-m8k16n16-pipelined=True": ALL,
    "3x5-b8a8acc32-m16k64n64-pipelined=True": ("shapes", "precision_walk", "extremes", "backpressure", "stalls"),
    "2x2-b4a4acc16-m8k64n64-digit_bits=1-pipelined=True": ALL,
}
#: Random stalls get several rounds (each with its own rates and commands) where they ran before.
STALL_ROUNDS = {"2x2-b4a4acc16-m8k64n64": 3, "3x5-b8a8acc32-m16k64n64": 3, "1x2-b3a2acc12-m8k16n16": 3}
RUNS = [
    (cid, name, round_)
    for cid, names in PLAN.items()
    for name in names
    for round_ in range(STALL_ROUNDS.get(cid, 1) if name == "stalls" else 1)
]


def test_plan_names_known_configs_and_scenarios():
    assert set(PLAN) == set(AMARANTH) and {n for names in PLAN.values() for n in names} <= set(NAMES)


@pytest.mark.parametrize("config,name,round_", RUNS, ids=[f"{c}-{n}{r if n == 'stalls' else ''}" for c, n, r in RUNS])
def test_scenario(config, name, round_, request):
    cfg = AMARANTH[config]
    scenario = build(name, cfg, run_seed(base_seed(), config, name, round_))
    reproduce = f'.venv/bin/pytest "{request.node.nodeid}"'
    scoreboard = Scoreboard(cfg, scenario, f"the Amaranth simulator, {config}", reproduce)
    scoreboard.check(simulate(cfg, scenario))
    scoreboard.coverage.save(COVERAGE / config / f"{name}{round_}.json")
    title = f"coverage of {config} on the Amaranth simulator so far"
    print(write_report(COVERAGE / config, title, plan_bins(cfg, PLAN[config]))[0])


@pytest.mark.parametrize("config", PLAN)
def test_plan_targets_every_required_bin(config):
    """Each scenario fails unless it hits its targets, so this proves the plan hits every required bin (the
    precision bins: the whole sweep where the plan has it, else the walk's)."""
    cfg = AMARANTH[config]
    targeted = {b for name in PLAN[config] for b in build(name, cfg, 0).targets}
    assert [b for b in plan_bins(cfg, PLAN[config]) if b not in targeted] == []
    if "precision_sweep" in PLAN[config]:
        assert set(precision_bins(cfg)) <= targeted


def test_long_gemm_scenario_has_no_weight_wait():
    """M >= R: after the first weight load the array should take an activation row in every tile slot; the
    long_gemm scenario (cycle-exact in test_scenario) is one such GEMM."""
    cfg = AMARANTH["4x4-b8a6acc24-m16k64n64"]
    commands = build("long_gemm", cfg, 0).commands
    assert [r.cycles.weight_wait for r in EngineModel(cfg).run(commands)] == [0]
