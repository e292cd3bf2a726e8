"""The emitted engine Verilog under cocotb, on Verilator and Icarus, for the RTL configurations.

Each case runs the scenarios of `verif.scenarios` that PLAN names, each as its own cocotb test, in one
simulation (one build and one simulator start per simulator and configuration), checked by
`verif.scoreboard`, and then asserts that they together hit every required coverage bin; the report goes to
build/coverage/rtl/ and into the terminal summary.
"""

import shutil
from dataclasses import replace

import pytest

from rtl_tests import harness
from verif.configs import AMARANTH, ODD_RTL, RTL, config_id
from verif.coverage import write_report
from verif.rtl.runner import BUILD, SIMULATORS
from verif.scenarios import base_seed, plan_bins

pytestmark = pytest.mark.rtl

COVERAGE = BUILD.parent.resolve() / "coverage" / "rtl"
FULL = ("shapes", "precision_sweep", "extremes", "stalls", "backpressure", "reset", "illegal")
#: Scenarios per configuration (long_gemm runs in the Amaranth simulator). A 16x16 engine costs ~10 ms a cycle
#: on Icarus: it walks the precisions (each k and j in both schemes) instead of sweeping all 256
#: (k, j, scheme, mode), which the 4x4 B = A = 8 build does.
PLAN = {config: FULL for config in RTL} | {
    "16x16-b8a8acc32-m64k512n512": (
        "shapes",
        "precision_walk",
        "extremes",
        "stalls",
        "backpressure",
        "reset",
        "illegal",
    )
}


#: Pipelined digit-serial engines (verif.configs.RTL has the pipelined bit-parallel 2x2): the registers
#: around the PE's multiplier, the registered wants, at D = 1 (the Amaranth suite's engine) and 4.
PIPELINED = {
    config_id(cfg): cfg
    for cfg in (
        *(cfg for cfg in AMARANTH.values() if cfg.pipelined and cfg.digit_serial),
        replace(ODD_RTL, digit_bits=4, pipelined=True),
    )
}
ENGINES = RTL | PIPELINED
PLAN |= {config: FULL for config in PIPELINED}


@pytest.mark.parametrize("config", ENGINES)
@pytest.mark.parametrize("simulator", SIMULATORS)
def test_engine_verilog(simulator, config, request):
    cfg = ENGINES[config]
    coverage = COVERAGE / f"{simulator}-{config}"
    shutil.rmtree(coverage, ignore_errors=True)  # this run's scenarios only
    run = {
        "base_seed": base_seed(),
        "config_id": config,
        "where": f"the {config} Verilog on {simulator}",
        "reproduce": f'.venv/bin/pytest "{request.node.nodeid}"',
        "coverage": str(coverage),
    }
    harness.run(simulator, cfg, "rtl_tests.engine_tb", list(PLAN[config]), run)
    title = f"coverage of the {config} Verilog on {simulator}"
    report, missing = write_report(coverage, title, plan_bins(cfg, PLAN[config]))
    print(report)
    assert missing == [], f"the regression missed required coverage bins:\n{report}"
