"""The SoC wrapper's Verilog on Verilator with cocotbext-axi's AXI models: networks through the driver, bit for
bit against golden, under random AXI back-pressure and read latencies (every channel of the memory paused at
random), with the AXI handshake rules checked on both ports (verif.rtl.axi_monitor).

- the tiny residual network of test_program_engine, with and without pauses and an illegal step (without it,
  its counters within verif.counters' bound: its output path does not keep pace with the engine);
- a digits test image on the session's trained model at k = 8 and k = 1 (more images and precisions are
  bench/soc_rtl.py's), its counters against the layout and the model: bytes per stream equal to the regions,
  but the weights' bit-planes: each layer's k planes (contract.bitplanes and sim.memory_traffic count the
  same bytes), so that k = 1 reads exactly 1/8 of k = 8's; ACTIVE_CYCLES equal to the program's cycles on the
  cycle-exact model and MACS to its MACs however the memory paused, every cycle of the run in one class
  (verif.counters; the digits network's output path keeps pace with the engine).

Both run on one build of the wrapper (a 4x4 engine with a 1,024-word scratchpad and the digits model's GEMM
limits), so the suite compiles it once.

rtl_tests/soc_tb.py runs apps.driver on the simulated registers and RAM. A failure prints its seed.
"""

from __future__ import annotations

import dataclasses
import json
import pickle

import numpy as np
import pytest
import torch

from contract import soc
from contract.bitplanes import weight_fetch_bytes
from contract.config import EngineConfig
from contract.policy import Policy
from contract.program import ProgramLimits, compile_program
from golden.convert import convert
from golden.data import digits_split, input_codes
from golden.export import build_export
from golden.fastpath import fast_logits
from golden.infer import run_integer
from golden.layers import QuantSpec
from rtl_tests.harness import failed_tests, require_simulator
from sim.memory_traffic import Bus, memory_traffic
from sim.program_cost import program_cost
from tests.hw.test_program_engine import TinyResidual, compiled
from verif.counters import counter_mismatches, keeps_pace
from verif.program_steps import layer_step
from verif.rtl.runner import run_built
from verif.rtl.soc import build_soc
from verif.scenarios import base_seed, run_seed

pytestmark = pytest.mark.rtl

BUS_BYTES = 8
#: The one SoC both tests run on: the digits model's GEMM limits (the tiny network's are smaller).
CONFIG = EngineConfig(rows=4, cols=4, max_m=64, max_k=288, max_n=32)
SOC_LIMITS = ProgramLimits(1024, max_size=8, max_channels=32, max_n_tiles=8)


@dataclasses.dataclass(frozen=True)
class SocSetup:
    """A SoC to run networks on: its engine, program limits and bus (verif.rtl.soc.build_soc's parameters),
    the AXI RAM's bytes, and how many wall seconds the driver waits for one run (Verilator's speed, not the
    hardware's, sets it)."""

    cfg: EngineConfig
    limits: ProgramLimits
    bus_bytes: int = BUS_BYTES
    burst: int = 8
    memory: int = 1 << 17
    timeout: float = 120.0


#: The SoC of this file's tests and of bench/soc_rtl.py's digits runs.
DIGITS_SOC = SocSetup(CONFIG, SOC_LIMITS)


def run_on_verilator(runs, name: str, stall: float, seed: int, setup: SocSetup = DIGITS_SOC) -> dict:
    """`runs` (program, images, codes, extra steps) one after the other through the driver on the Verilog of
    the SoC `setup`; the testbench's results (rtl_tests/soc_tb.py), the AXI handshake rules checked."""
    cfg, limits = setup.cfg, setup.limits
    built = build_soc("verilator", cfg, limits, bus_bytes=setup.bus_bytes, burst=setup.burst)
    run_dir = built.root / "runs" / name
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "program.pkl").write_bytes(pickle.dumps(runs))
    scenario = dict(
        limits=limits.as_dict(),
        program=str(run_dir / "program.pkl"),
        results=str(run_dir / "results.json"),
        memory=setup.memory,
        stall=stall,
        seed=seed,
        timeout=setup.timeout,
    )
    run = run_built(built, cfg, "rtl_tests.soc_tb", ["run_soc"], scenario, run_dir)
    assert run.tests == 1 and run.failures == 0, f"seed {seed}: {failed_tests(run_dir)} (see {run.log})"
    results = json.loads((run_dir / "results.json").read_text())
    assert results["axi_violations"] == [], f"seed {seed}: AXI handshake rules broken"
    return results


def check_counters(program, result: dict, seed: int) -> None:
    """A run's counters against its layout and the model: every region but the weights read whole, the weights'
    bit-planes each layer's k planes of each tile (contract.bitplanes, sim.memory_traffic), every logits beat
    written."""
    counters, regions = result["counters"], result["regions"]
    for name in soc.READ_REGIONS:
        if name != "weight":
            assert counters[f"{name}_bytes"] == regions[name][2], f"seed {seed}: {name} {counters}"
    fetched = sum(weight_fetch_bytes(program, BUS_BYTES).values())
    model = memory_traffic(CONFIG, program, Bus(bus_bytes=BUS_BYTES)).stream_bytes()["weights"]
    assert counters["weight_bytes"] == fetched == model, f"seed {seed}: weights {counters} against {fetched}"
    assert counters["logits_beats"] == regions["logits"][1] and counters["cycles"] > 0, f"seed {seed}: {counters}"


@pytest.mark.parametrize("stall, illegal", [(0.0, False), (0.3, True)], ids=["ideal", "stalls-illegal-step"])
def test_the_network_through_the_driver_on_verilator(stall, illegal):
    require_simulator("verilator")
    seed = run_seed(base_seed(), "soc-rtl", f"{stall}-{illegal}")
    torch.manual_seed(1)
    export = build_export(convert(TinyResidual(), QuantSpec("truncquant", "twos"), (1, 6, 6)).eval())
    _, program, images = compiled(export, 4, 4, 8)
    codes = np.random.default_rng(seed).integers(0, 1 << export.act_bits, (1, *export.input_shape))
    extra = (layer_step(program, dataclasses.replace(program.descriptors[0], stride=3)),) if illegal else ()
    results = run_on_verilator([(program, images, codes[0], extra)], f"soc-{stall}-{illegal}", stall, seed)
    (result,) = results["runs"]
    golden = run_integer(export, torch.from_numpy(codes), 8)[0][0]
    assert result["logits"] == golden.tolist(), f"seed {seed}: logits differ from golden"
    status = result["status"]
    assert status & soc.STATUS_DONE and not status & soc.STATUS_BUS_ERROR, f"seed {seed}: STATUS {status:#x}"
    assert bool(status & soc.STATUS_ERROR) == illegal, f"seed {seed}: STATUS {status:#x}"
    assert results["irq"] == 1, "the interrupt is not raised at the end of the run"
    check_counters(program, result, seed)
    if not illegal:  # a refused step's cycles are active cycles the model's program does not have
        cost = program_cost(CONFIG, program, export, SOC_LIMITS.words)
        wrong = counter_mismatches(result["counters"], cost, keeps_pace(CONFIG, program))
        assert wrong == [], f"seed {seed}: {wrong}"
    transfers = results["axi_transfers"]["m_axi__"]
    assert transfers["w"] > 0 and transfers["r"] * BUS_BYTES == sum(
        result["counters"][f"{name}_bytes"] for name in soc.READ_REGIONS
    )


def network_runs(export, codes, precisions, setup: SocSetup = DIGITS_SOC) -> list[tuple]:
    """The runs of `codes` (input images) at each k of `precisions`, compiled for the SoC `setup`: (program,
    images, image, no extra step)."""
    runs, cfg = [], setup.cfg
    for k in precisions:
        policy = Policy("uniform", (k,)).resolve(export)
        program, images = compile_program(export, cfg.rows, cfg.cols, setup.limits.words, policy)
        runs += [(program, images, image, ()) for image in codes]
    return runs


def check_digits_run(export, run: tuple, result: dict, seed: int) -> None:
    """A digits run's logits bit for bit against golden's, its counters against the layout and the model
    (exactly: verif.counters)."""
    program, _, image, _ = run
    k = program.descriptors[0].k
    golden = fast_logits(export, torch.from_numpy(image[None]), k)[0]
    assert result["logits"] == golden.tolist(), f"seed {seed}: k={k}: logits differ from golden"
    assert result["status"] == soc.STATUS_DONE, f"seed {seed}: k={k}: STATUS {result['status']:#x}"
    check_counters(program, result, seed)
    assert keeps_pace(CONFIG, program), "the digits network's counters are no longer exact (verif.counters)"
    cost = program_cost(CONFIG, program, export, SOC_LIMITS.words)
    assert counter_mismatches(result["counters"], cost) == [], f"seed {seed}: k={k}: {result['counters']}"


def test_a_digits_image_through_the_driver_with_random_stalls(trained):
    require_simulator("verilator")
    seed = run_seed(base_seed(), "soc-rtl", "digits")
    export = build_export(trained("truncquant", "offset"))
    codes = input_codes(digits_split().test_x[:1], export.act_bits).numpy()
    runs = network_runs(export, codes, (8, 1))
    results = run_on_verilator(runs, "digits", 0.3, seed)
    for run, result in zip(runs, results["runs"], strict=True):
        check_digits_run(export, run, result, seed)
    at_8, at_1 = (result["counters"]["weight_bytes"] for result in results["runs"])
    assert at_8 == results["runs"][0]["regions"]["weight"][2] and at_1 * 8 == at_8, (at_8, at_1)
