"""The SoC wrapper (hw/soc.py) as Verilog on a real simulator: its build, for cocotb benches with AXI models.

The Verilog is converted here from `hw.soc.NestmacSoC` (top `nestmac_soc`, its AXI ports named
`s_axil__<signal>` and `m_axi__<signal>`, so cocotbext-axi's `from_prefix(dut, "s_axil_")` binds them) and
compiled by `verif.rtl.runner.compile_top` under build/rtl/, keyed by a hash of the Verilog: built once, reused.
"""

from __future__ import annotations

from pathlib import Path

from amaranth.back import verilog

from contract.config import EngineConfig
from contract.program import ProgramLimits
from hw.soc import NestmacSoC
from verif.rtl.runner import Built, build_name, build_under, compile_top

SOC_TOP = "nestmac_soc"


def soc_name(cfg: EngineConfig, limits: ProgramLimits, bus_bytes: int, burst: int) -> str:
    """The SoC's build directory under build/rtl/<simulator>/."""
    return f"soc-{build_name(cfg)}-words{limits.words}-bus{bus_bytes}x{burst}"


def build_soc(simulator: str, cfg: EngineConfig, limits: ProgramLimits, bus_bytes: int, burst: int) -> Built:
    """Convert and compile the SoC wrapper for these parameters (once per Verilog, across processes too)."""

    def make(root: Path) -> Built:
        dut = NestmacSoC(cfg, limits, bus_bytes, burst)
        ports = ["clk", "rst", "irq"]
        for bus in ("s_axil", "m_axi"):
            ports += [f"{bus}__{member}" for member in getattr(dut, bus).signature.members]
        return compile_top(
            simulator, root, SOC_TOP, ports, {f"{SOC_TOP}.v": verilog.convert(dut, name=SOC_TOP, emit_src=False)}
        )

    return build_under(simulator, soc_name(cfg, limits, bus_bytes, burst), make)
