"""The networks the program benchmarks compare (bench/program_latency.py, bench/memory_traffic.py): one place
that builds them, so the benches print figures of the same programs.

The ResNet-20 of Fashion-MNIST is built untrained (seed 0): cycles and traffic depend on the shapes and the
k, and on the weights only through the raw regions' planes.
"""

from __future__ import annotations

import torch

from contract.config import EngineConfig
from contract.policy import Policy
from contract.program import ProgramLimits, compile_program
from golden.convert import build_net
from golden.export import build_export
from golden.layers import QuantSpec

FASHION = (1, 28, 28)
#: The accumulator depth of the program engine as it is built and measured: eda.synth's default --max-m, the
#: 16x16 program engine of the RTL regressions (verif.rtl.program_top.NETWORK_PROGRAM) and its ASIC area
#: (docs/estimates.md, "Issue 22"). The benches price the accumulator SRAM at this depth.
DEFAULT_MAX_M = 256


def resnet20_programs(rows: int, cols: int, act_kib: float, precisions, max_m: int = DEFAULT_MAX_M):
    """The untrained ResNet-20 (seed 0), the program engine's limits with `act_kib` of scratchpad, and its
    program at each uniform k of `precisions` for an accumulator of `max_m` rows (layers beyond it in M-blocks)."""
    torch.manual_seed(0)
    export = build_export(build_net("resnet20", QuantSpec("truncquant", "offset"), FASHION).eval())
    limits = ProgramLimits.from_kib(act_kib, rows, export.act_bits)
    programs = {
        k: compile_program(export, rows, cols, limits.words, Policy("uniform", (k,)).resolve(export), max_m)[0]
        for k in precisions
    }
    return export, limits, programs


def engine_for(
    export, rows: int, cols: int, digit_bits: int | None, programs, max_m: int = DEFAULT_MAX_M
) -> EngineConfig:
    """The engine that runs both the export's GEMM commands and every program's (K in whole channel groups),
    with an accumulator of `max_m` rows (hw.generate --max-m): the depth the energy model prices, which
    programs compiled for it never exceed (M-blocks)."""
    cfg = EngineConfig.from_export(export, rows, cols, max_m, digit_bits)
    limits = [program.gemm_limits() for program in programs]
    return EngineConfig(
        **{**cfg.as_dict(), **{key: max(getattr(cfg, key), *(lim[key] for lim in limits)) for key in limits[0]}}
    )
