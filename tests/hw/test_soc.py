"""The SoC wrapper (hw/soc.py) on the Amaranth simulator: the program engine through registers and memory.

The small residual network of test_program_engine is laid out in memory by apps.driver, run by writing the
registers, with the memory model pausing every AXI channel at random: the logits it writes must equal golden's
integer path bit for bit (at k = 8, and at another k per layer), the counters must agree with the layout
(bytes read per stream = the region's size; for the weights, held as bit-planes, each layer's k planes:
contract.bitplanes' and sim.memory_traffic's figure) and with the model (verif.counters: MACs exact, every
cycle in one class, the active cycles within the bound of a network whose output path does not keep pace), an
illegal step must set STATUS.ERROR, the interrupt must rise at the end and fall when acknowledged, and a
misaligned region must be refused. Layouts that do not match the program (a weight region of too few tiles
among them, read no further than its end) end in the hardware's time-out or window check instead of a hang,
illegal register accesses are answered SLVERR, and the driver refuses what it can see is wrong before it
writes anything. A failure prints its seed.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from apps.driver import NestmacDriver, Region, RunError
from contract import soc
from contract.bitplanes import PlaneLayout, decode_planes, weight_fetch_bytes
from contract.cli import InputError
from contract.program import ProgramImages
from golden.convert import convert
from golden.export import build_export
from golden.infer import run_integer
from golden.layers import QuantSpec
from hw.soc import NestmacSoC
from sim.memory_traffic import Bus, memory_traffic
from sim.program_cost import program_cost
from tests.hw.test_program_engine import LIMITS, TinyResidual, compiled
from verif.amaranth_soc import AmaranthSocBackend
from verif.counters import counter_mismatches, keeps_pace
from verif.program_steps import layer_step
from verif.scenarios import base_seed, run_seed

MEMORY = 1 << 16


@pytest.fixture(scope="module")
def export():
    torch.manual_seed(1)
    return build_export(convert(TinyResidual(), QuantSpec("truncquant", "twos"), (1, 6, 6)).eval())


def setup(export, bus_bytes, burst, stall, seed, ks=8):
    cfg, program, images = compiled(export, 4, 4, ks)
    backend = AmaranthSocBackend(NestmacSoC(cfg, LIMITS, bus_bytes, burst), MEMORY, stall, seed)
    codes = np.random.default_rng(seed).integers(0, 1 << export.act_bits, (1, *export.input_shape))
    driver = NestmacDriver(backend, cfg, LIMITS)
    return backend, driver, program, images, codes


#: Per layer of the tiny network, k = 1, 4, 7, 2, 5 (the second case): every layer fetches other planes.
MIXED = "mixed"


@pytest.mark.parametrize("bus_bytes, burst, stall, ks", [(8, 4, 0.0, 8), (4, 16, 0.4, MIXED)], ids=str)
def test_the_network_runs_through_registers_and_memory(export, bus_bytes, burst, stall, ks):
    seed = run_seed(base_seed(), "soc", f"{bus_bytes}-{burst}-{stall}-{ks}")
    ks = [1 + 3 * i % 8 for i in range(len(export.layers))] if ks == MIXED else ks
    backend, driver, program, images, codes = setup(export, bus_bytes, burst, stall, seed, ks)
    driver.load(program, images, codes[0])
    weight = driver.regions["weight"]  # the weight image as bit-planes: every code back from its B planes
    layout = PlaneLayout(4, 4, export.base_bits, bus_bytes)
    assert (weight.beats, weight.size) == (program.weight_length // 16, layout.image_bytes(program.weight_length))
    planes = np.frombuffer(backend.read_mem(weight.base, weight.size), dtype=np.uint8)
    assert np.array_equal(decode_planes(planes, layout), images.weights[: program.weight_length])
    status = driver.run()
    assert status & soc.STATUS_DONE and not status & (soc.STATUS_ERROR | soc.STATUS_BUS_ERROR), f"seed {seed}"
    assert not backend.violations, f"seed {seed}: {backend.violations}"
    golden = run_integer(export, torch.from_numpy(codes), ks)[0][0]
    assert torch.equal(torch.from_numpy(driver.logits()), golden), f"seed {seed}: logits differ from golden"
    counters = driver.counters()
    assert 0 < counters["cycles"] <= backend.cycles, f"seed {seed}: {counters}"
    assert counters["logits_beats"] == driver.regions["logits"].beats
    for name in soc.READ_REGIONS:
        if name != "weight":
            assert counters[f"{name}_bytes"] == driver.regions[name].size, f"seed {seed}: {name} {counters}"
    # The weights: each layer's k planes of each tile, as contract.bitplanes and the memory model count them.
    fetched = sum(weight_fetch_bytes(program, bus_bytes).values())
    model = memory_traffic(driver.config, program, Bus(bus_bytes=bus_bytes)).stream_bytes()["weights"]
    assert counters["weight_bytes"] == fetched == model, f"seed {seed}: {counters}"
    assert (fetched == driver.regions["weight"].size) == (ks == 8), "k = B reads the region whole, k < B less"
    cost = program_cost(driver.config, program, export, LIMITS.words)
    assert counter_mismatches(counters, cost, keeps_pace(driver.config, program)) == [], f"seed {seed}: {counters}"
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
    first = driver.counters()
    assert first["macs"] == program_cost(driver.config, program, export, LIMITS.words).macs, "a refused step's MACs"
    driver.load(program, images, codes[0])  # START clears the sticky error and the counters
    assert not driver.run() & soc.STATUS_ERROR
    second = driver.counters()
    assert 0 < second["cycles"] < first["cycles"] and second["step_bytes"] < first["step_bytes"], (first, second)


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
    with pytest.raises(InputError, match="needs .* bytes of memory, the backend has 4096") as refusal:
        NestmacDriver(backend, cfg, LIMITS).load(program, images, codes)
    assert not any(backend.memory) and "\n" not in str(refusal.value)
    needed = int(str(refusal.value).split("needs ")[1].split(" bytes")[0])
    planes = PlaneLayout(4, 4, export.base_bits, 8).image_bytes(program.weight_length)  # the default bus
    assert needed > planes, "the weight region's room is the bit-plane image's"
    fits = AmaranthSocBackend(NestmacSoC(cfg, LIMITS), needed)
    NestmacDriver(fits, cfg, LIMITS).load(program, images, codes)


def test_the_registers_identify_the_block(export):
    backend, driver, *_ = setup(export, 16, 4, 0.0, 0)
    version = backend.read32(soc.VERSION)
    assert backend.read32(soc.ID) == soc.IDENTIFIER
    assert (version & 0xFF, version >> 8 & 0xFF, version >> 16) == (soc.REGISTER_VERSION, 16, 4)
    backend.write32(soc.region_base(2), 0x1234_5640)
    assert backend.read32(soc.region_base(2)) == 0x1234_5640


def test_regions_that_do_not_match_the_program_time_out_and_the_next_start_is_taken(export):
    backend, driver, program, images, codes = setup(export, 8, 8, 0.0, 0)
    driver.load(program, images, codes[0])
    step = driver.regions["step"]
    driver.regions["step"] = Region(step.base, 1, step.stride)  # the image step alone: the layers never come
    with pytest.raises(RunError, match="no progress for WATCHDOG cycles"):
        driver.run(watchdog=300)
    status = backend.read32(soc.STATUS)
    assert status & soc.STATUS_TIMEOUT and not status & (soc.STATUS_BUSY | soc.STATUS_DONE), f"STATUS {status:#x}"
    assert backend.irq(), "an aborted run did not raise the interrupt"
    backend.write32(soc.CTRL, soc.CTRL_START)  # taken (no SLVERR): the DMA has let its bursts finish
    assert backend.read32(soc.STATUS) == soc.STATUS_BUSY, "START after a time-out did not start a clean run"


def test_a_weight_region_of_too_few_tiles_is_read_no_further_and_times_out(export):
    backend, driver, program, images, codes = setup(export, 8, 8, 0.0, 0)
    driver.load(program, images, codes[0])
    weight = driver.regions["weight"]
    driver.regions["weight"] = Region(weight.base, 1, weight.stride)  # one tile: the first layer needs more
    with pytest.raises(RunError, match="no progress for WATCHDOG cycles"):
        driver.run(watchdog=300)
    assert backend.read32(soc.STATUS) & soc.STATUS_TIMEOUT
    assert driver.counters()["weight_bytes"] == program.descriptors[0].k * driver.planes.plane_bytes


def test_a_region_outside_the_memory_window_is_never_read(export):
    backend, driver, program, images, codes = setup(export, 8, 8, 0.0, 0)
    driver.load(program, images, codes[0])
    weight = driver.regions["weight"]
    driver.regions["weight"] = Region(MEMORY - 64, weight.beats, weight.stride)  # runs past the window's end
    with pytest.raises(RunError, match="would have left the memory window"):
        driver.run()
    status = backend.read32(soc.STATUS)
    assert status & soc.STATUS_OUTSIDE and not status & (soc.STATUS_BUSY | soc.STATUS_BUS_ERROR), f"{status:#x}"
    assert not backend.violations, f"a burst reached the memory: {backend.violations}"


def test_illegal_register_accesses_are_answered_slverr_and_change_nothing(export):
    backend, driver, program, images, codes = setup(export, 8, 8, 0.0, 0)
    for access in (
        lambda: backend.read32(0x50),  # a hole in the map
        lambda: backend.read32(soc.CTRL + 2),  # not a whole register
        lambda: backend.write32(soc.ID, 0),  # read only
        lambda: backend.write32(soc.CYCLES, 5),
    ):
        with pytest.raises(soc.SlaveError, match="response 2"):
            access()
    assert backend.read32(soc.ID) == soc.IDENTIFIER and backend.read32(soc.CYCLES) == 0
    driver.load(program, images, codes[0])
    step = driver.regions["step"]
    driver.regions["step"] = Region(step.base, 0, step.stride)  # nothing to run: the engine waits for ever
    backend.write32(soc.WATCHDOG, 0)
    with pytest.raises(RunError, match="had not ended"):
        driver.run(timeout=0.0, watchdog=0)
    for offset in (soc.CTRL, soc.WINDOW_BASE, soc.WINDOW_SIZE):  # START and the window: not during a run
        with pytest.raises(soc.SlaveError):
            backend.write32(offset, 1)
    assert backend.read32(soc.STATUS) & soc.STATUS_BUSY


def test_the_driver_refuses_a_program_reading_outside_its_buffers(export):
    cfg, program, images = compiled(export, 4, 4, 8)
    backend = AmaranthSocBackend(NestmacSoC(cfg, LIMITS), MEMORY)
    driver = NestmacDriver(backend, cfg, LIMITS)
    codes = np.zeros(export.input_shape, dtype=np.int64)
    for spoilt, spoilt_codes, message in (
        (ProgramImages(images.weights[:-1], images.params), codes, "reads .* weight codes"),
        (ProgramImages(images.weights, images.params[:-1]), codes, "parameter rows"),
        (images, codes[:, :-1], "the image is"),
    ):
        with pytest.raises(InputError, match=message) as refusal:
            driver.load(program, spoilt, spoilt_codes)
        assert "\n" not in str(refusal.value) and not any(backend.memory)
