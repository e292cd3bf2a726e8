"""cocotb testbench of the SoC wrapper (run through rtl_tests/test_soc_rtl.py, never directly).

cocotbext-axi's `AxiRam` is the memory behind the AXI4 master and `AxiLiteMaster` the CPU on the register
port, each AXI channel of the memory paced by a seeded random pause generator (so reads come back after random
latencies and writes are back-pressured at random). apps.driver.NestmacDriver runs in a cocotb bridge thread on
`CocotbBackend`: for each of the scenario's runs (a program, its images, one input image, extra steps) it lays
the program out in the RAM, writes the registers and polls STATUS; each run's logits, counters, STATUS and
regions, and the interrupt's level at the end, are written to the scenario's `results` file for the test to
check,
with what verif.rtl.axi_monitor saw on both AXI ports (handshake rule violations, transfers per channel).
"""

from __future__ import annotations

import json
import pickle
import random

import cocotb
from cocotb.clock import Clock
from cocotb.task import bridge, resume
from cocotb.triggers import ClockCycles
from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiRam

from apps.driver import NestmacDriver
from contract.program import ProgramLimits
from contract.soc import check_response
from verif.rtl.axi_monitor import AxiHandshakeMonitor
from verif.rtl.runner import CLOCK_PERIOD_NS
from verif.rtl.scenario_file import load_scenario

POLL_CYCLES = 20


def pauses(probability: float, seed: int):
    """An endless pause generator for a cocotbext-axi channel: True on a fraction `probability` of cycles."""
    rng = random.Random(seed)
    while True:
        yield rng.random() < probability


class CocotbBackend:
    """apps.driver's Backend on the simulated SoC: registers through `cpu`, memory straight into `ram`."""

    def __init__(self, dut, cpu: AxiLiteMaster, ram: AxiRam, memory_size: int):
        self.dut, self.cpu, self.ram, self.memory_size = dut, cpu, ram, memory_size

    @resume
    async def read32(self, offset: int) -> int:
        answer = await self.cpu.read(offset, 4)
        check_response(int(answer.resp), f"read of {offset:#x}")
        return int.from_bytes(answer.data, "little")

    @resume
    async def write32(self, offset: int, value: int) -> None:
        answer = await self.cpu.write(offset, value.to_bytes(4, "little"))
        check_response(int(answer.resp), f"write of {value:#x} to {offset:#x}")

    def write_mem(self, address: int, data: bytes) -> None:
        self.ram.write(address, data)

    def read_mem(self, address: int, length: int) -> bytes:
        return bytes(self.ram.read(address, length))

    @resume
    async def pause(self) -> None:
        await ClockCycles(self.dut.clk, POLL_CYCLES)


@cocotb.test()
async def run_soc(dut):
    cfg, scenario = load_scenario()
    limits = ProgramLimits(**scenario["limits"])
    with open(scenario["program"], "rb") as file:
        runs = pickle.load(file)
    cocotb.start_soon(Clock(dut.clk, CLOCK_PERIOD_NS, unit="ns").start())
    ram = AxiRam(AxiBus.from_prefix(dut, "m_axi_"), dut.clk, dut.rst, size=scenario["memory"])
    cpu = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil_"), dut.clk, dut.rst)
    rng = random.Random(scenario["seed"])
    channels = [ram.read_if.ar_channel, ram.read_if.r_channel]
    channels += [ram.write_if.aw_channel, ram.write_if.w_channel, ram.write_if.b_channel]
    if scenario["stall"]:
        for channel in channels:
            channel.set_pause_generator(pauses(scenario["stall"], rng.randrange(1 << 30)))
    dut.rst.value = 1
    await ClockCycles(dut.clk, 5)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 2)
    monitors = [AxiHandshakeMonitor(dut, dut.clk, prefix) for prefix in ("m_axi__", "s_axil__")]
    for monitor in monitors:
        monitor.start()
    backend = CocotbBackend(dut, cpu, ram, scenario["memory"])

    def drive() -> list[dict]:
        driver, results = NestmacDriver(backend, cfg, limits), []
        for program, images, codes, extra_steps in runs:
            driver.load(program, images, codes, extra_steps)
            status = driver.run(timeout=scenario["timeout"])
            regions = {name: [region.base, region.beats, region.size] for name, region in driver.regions.items()}
            logits, counters = driver.logits().tolist(), driver.counters()
            results.append(dict(status=status, logits=logits, counters=counters, regions=regions))
        return results

    results = {"runs": await bridge(drive)()}
    results["irq"] = int(dut.irq.value)
    results["axi_violations"] = [violation for monitor in monitors for violation in monitor.violations]
    results["axi_transfers"] = {monitor.prefix: monitor.transfers for monitor in monitors}
    with open(scenario["results"], "w") as file:
        json.dump(results, file)
