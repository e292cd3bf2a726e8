"""The SoC wrapper (hw/soc.py) on the Amaranth simulator: the program engine through registers and memory.

The small residual network of test_program_engine is laid out in memory by apps.driver, run by writing the
registers, with the memory model pausing every AXI channel at random: the logits it writes must equal golden's
integer path bit for bit, the counters must agree with the layout (bytes read per stream = the region's size),
an illegal step must set STATUS.ERROR, the interrupt must rise at the end and fall when acknowledged, and a
misaligned region must be refused. A failure prints its seed.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from apps.driver import NestmacDriver, Region, RunError
from contract import soc
from contract.cli import InputError
from golden.convert import convert
from golden.export import build_export
from golden.infer import run_integer
from golden.layers import QuantSpec
from hw.soc import NestmacSoC
from tests.hw.test_program_engine import LIMITS, TinyResidual, compiled
from verif.amaranth_soc import AmaranthSocBackend
from verif.program_steps import layer_step
from verif.scenarios import base_seed, run_seed

MEMORY = 1 << 16


@pytest.fixture(scope="module")
def export():
    torch.manual_seed(1)
    return build_export(convert(TinyResidual(), QuantSpec("truncquant", "twos"), (1, 6, 6)).eval())


def setup(export, bus_bytes, burst, stall, seed):
    cfg, program, images = compiled(export, 4, 4, 8)
    backend = AmaranthSocBackend(NestmacSoC(cfg, LIMITS, bus_bytes, burst), MEMORY, stall, seed)
    codes = np.random.default_rng(seed).integers(0, 1 << export.act_bits, (1, *export.input_shape))
    driver = NestmacDriver(backend, cfg, LIMITS)
    return backend, driver, program, images, codes


@pytest.mark.parametrize("bus_bytes, burst, stall", [(8, 4, 0.0), (4, 16, 0.4)], ids=str)
def test_the_network_runs_through_registers_and_memory(export, bus_bytes, burst, stall):
    seed = run_seed(base_seed(), "soc", f"{bus_bytes}-{burst}-{stall}")
    backend, driver, program, images, codes = setup(export, bus_bytes, burst, stall, seed)
    driver.load(program, images, codes[0])
    status = driver.run()
    assert status & soc.STATUS_DONE and not status & (soc.STATUS_ERROR | soc.STATUS_BUS_ERROR), f"seed {seed}"
    assert not backend.violations, f"seed {seed}: {backend.violations}"
    golden = run_integer(export, torch.from_numpy(codes), 8)[0][0]
    assert torch.equal(torch.from_numpy(driver.logits()), golden), f"seed {seed}: logits differ from golden"
    counters = driver.counters()
    assert 0 < counters["cycles"] <= backend.cycles, f"seed {seed}: {counters}"
    assert counters["logits_beats"] == driver.regions["logits"].beats
    for name in soc.READ_REGIONS:
        assert counters[f"{name}_bytes"] == driver.regions[name].size, f"seed {seed}: {name} {counters}"
        assert counters[f"{name}_stalls"] < counters["cycles"]
    assert backend.irq(), "the interrupt did not rise at the end of the run"
    backend.write32(soc.IRQ_STATUS, soc.IRQ_DONE)
    assert not backend.irq() and not backend.read32(soc.IRQ_STATUS) & soc.IRQ_DONE


def test_an_illegal_step_sets_the_error_and_the_program_still_runs(export):
    backend, driver, program, images, codes = setup(export, 8, 8, 0.0, 0)
    illegal = layer_step(program, dataclasses.replace(program.descriptors[0], stride=3))
    driver.load(program, images, codes[0], extra_steps=(illegal,))
    status = driver.run(irq=False)
    assert status & soc.STATUS_ERROR and status & soc.STATUS_DONE
    assert not backend.irq(), "the interrupt rose though it was not enabled"
    assert torch.equal(torch.from_numpy(driver.logits()), run_integer(export, torch.from_numpy(codes), 8)[0][0])
    driver.load(program, images, codes[0])  # START clears the sticky error
    assert not driver.run() & soc.STATUS_ERROR


def test_a_misaligned_region_is_refused(export):
    backend, driver, program, images, codes = setup(export, 8, 8, 0.0, 0)
    driver.load(program, images, codes[0])
    image = driver.regions["image"]
    driver.regions["image"] = Region(image.base + 8, image.beats, image.stride)
    with pytest.raises(RunError, match="not aligned"):
        driver.run()
    assert backend.read32(soc.STATUS) & soc.STATUS_MISALIGNED and not backend.read32(soc.STATUS) & soc.STATUS_BUSY


def test_a_memory_too_small_is_refused_before_anything_is_written(export):
    cfg, program, images = compiled(export, 4, 4, 8)
    backend = AmaranthSocBackend(NestmacSoC(cfg, LIMITS), 4096)
    codes = np.zeros(export.input_shape, dtype=np.int64)
    with pytest.raises(InputError, match="needs .* bytes of memory, the backend has 4096"):
        NestmacDriver(backend, cfg, LIMITS).load(program, images, codes)
    assert not any(backend.memory)


def test_the_registers_identify_the_block(export):
    backend, driver, *_ = setup(export, 16, 4, 0.0, 0)
    version = backend.read32(soc.VERSION)
    assert backend.read32(soc.ID) == soc.IDENTIFIER
    assert (version & 0xFF, version >> 8 & 0xFF, version >> 16) == (soc.REGISTER_VERSION, 16, 4)
    backend.write32(soc.region_base(2), 0x1234_5640)
    assert backend.read32(soc.region_base(2)) == 0x1234_5640
