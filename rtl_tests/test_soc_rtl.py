"""The SoC wrapper's Verilog on Verilator with cocotbext-axi's AXI models: the tiny residual network through the
driver, bit for bit against golden, under random AXI back-pressure and latencies, with the AXI handshake rules
checked on both ports (verif.rtl.axi_monitor).

The network and its compilation are test_program_engine's; rtl_tests/soc_tb.py runs apps.driver on the
simulated registers and RAM. A failure prints its seed.
"""

from __future__ import annotations

import dataclasses
import json
import pickle

import numpy as np
import pytest
import torch

from contract import soc
from golden.convert import convert
from golden.export import build_export
from golden.infer import run_integer
from golden.layers import QuantSpec
from rtl_tests.harness import failed_tests, require_simulator
from tests.hw.test_program_engine import LIMITS, TinyResidual, compiled
from verif.program_steps import layer_step
from verif.rtl.runner import run_built
from verif.rtl.soc import build_soc
from verif.scenarios import base_seed, run_seed

pytestmark = pytest.mark.rtl

MEMORY = 1 << 16


@pytest.mark.parametrize("stall, illegal", [(0.0, False), (0.3, True)], ids=["ideal", "stalls-illegal-step"])
def test_the_network_through_the_driver_on_verilator(stall, illegal):
    require_simulator("verilator")
    seed = run_seed(base_seed(), "soc-rtl", f"{stall}-{illegal}")
    torch.manual_seed(1)
    export = build_export(convert(TinyResidual(), QuantSpec("truncquant", "twos"), (1, 6, 6)).eval())
    cfg, program, images = compiled(export, 4, 4, 8)
    codes = np.random.default_rng(seed).integers(0, 1 << export.act_bits, (1, *export.input_shape))
    extra = (layer_step(program, dataclasses.replace(program.descriptors[0], stride=3)),) if illegal else ()
    built = build_soc("verilator", cfg, LIMITS, bus_bytes=8, burst=8)
    run_dir = built.root / "runs" / f"soc-{stall}-{illegal}"
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "program.pkl").write_bytes(pickle.dumps((program, images, codes[0], extra)))
    scenario = dict(
        limits=LIMITS.as_dict(),
        program=str(run_dir / "program.pkl"),
        results=str(run_dir / "results.json"),
        memory=MEMORY,
        stall=stall,
        seed=seed,
        timeout=60.0,
    )
    run = run_built(built, cfg, "rtl_tests.soc_tb", ["run_soc"], scenario, run_dir)
    assert run.tests == 1 and run.failures == 0, f"seed {seed}: {failed_tests(run_dir)} (see {run.log})"
    results = json.loads((run_dir / "results.json").read_text())
    golden = run_integer(export, torch.from_numpy(codes), 8)[0][0]
    assert results["logits"] == golden.tolist(), f"seed {seed}: logits differ from golden"
    status, counters = results["status"], results["counters"]
    assert status & soc.STATUS_DONE and not status & soc.STATUS_BUS_ERROR, f"seed {seed}: STATUS {status:#x}"
    assert bool(status & soc.STATUS_ERROR) == illegal, f"seed {seed}: STATUS {status:#x}"
    assert results["irq"] == 1, "the interrupt is not raised at the end of the run"
    for name in soc.READ_REGIONS:
        assert counters[f"{name}_bytes"] == results["regions"][name][2], f"seed {seed}: {name} {counters}"
    assert counters["logits_beats"] == results["regions"]["logits"][1] and counters["cycles"] > 0
    assert results["axi_violations"] == [], f"seed {seed}: AXI handshake rules broken"
    transfers = results["axi_transfers"]["m_axi__"]
    assert transfers["w"] > 0 and transfers["r"] * 8 == sum(counters[f"{name}_bytes"] for name in soc.READ_REGIONS)
