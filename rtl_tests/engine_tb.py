"""cocotb testbench of the engine regression (run through rtl_tests/test_engine_rtl.py, never directly).

One cocotb test per scenario of `verif.scenarios`, each rebuilt here from its name, the configuration and
the base seed in the run's scenario file (NESTMAC_SCENARIO), driven by `verif.rtl.bench` and checked by
`verif.scoreboard`; each writes the coverage it hit where the scenario file says.
"""

from __future__ import annotations

from pathlib import Path

import cocotb

from verif.rtl.bench import Bench
from verif.rtl.scenario_file import load_scenario
from verif.scenarios import NAMES, build, run_seed
from verif.scoreboard import Scoreboard


@cocotb.test()
@cocotb.parametrize(name=[cocotb.Param(name, name=name) for name in NAMES])
async def scenario(dut, name: str):
    """Run one named scenario on the Verilog and score it against golden and the cycle-exact model."""
    cfg, run = load_scenario()
    seed = run_seed(run["base_seed"], run["config_id"], name)
    scenario = build(name, cfg, seed)
    scoreboard = Scoreboard(cfg, scenario, run["where"], run["reproduce"])
    dut._log.info("scenario %s, seed %d: %d commands", name, seed, len(scenario.commands))
    bench = Bench(dut, cfg)
    await bench.start()
    if scenario.abort is not None:
        await bench.abort(scenario.abort, scenario.abort_after, seed)
    await bench.refuse(scenario.refused)
    bench.set_pauses(scenario.pauses)
    scoreboard.check(await bench.run(scenario.commands, seed + 1))
    # Sticky until reset: high after a refused command, and never raised by a legal run.
    assert int(dut.error.value) == bool(scenario.refused), f"error is {dut.error.value} after {name}"
    scoreboard.coverage.save(Path(run["coverage"]) / f"{name}.json")
