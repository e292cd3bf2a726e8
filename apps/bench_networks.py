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


def resnet20_programs(rows: int, cols: int, act_kib: float, precisions):
    """The untrained ResNet-20 (seed 0), the program engine's limits with `act_kib` of scratchpad, and its
    program at each uniform k of `precisions`."""
    torch.manual_seed(0)
    export = build_export(build_net("resnet20", QuantSpec("truncquant", "offset"), FASHION).eval())
    limits = ProgramLimits.from_kib(act_kib, rows, export.act_bits)
    programs = {
        k: compile_program(export, rows, cols, limits.words, Policy("uniform", (k,)).resolve(export))[0]
        for k in precisions
    }
    return export, limits, programs


def engine_for(export, rows: int, cols: int, digit_bits: int | None, programs) -> EngineConfig:
    """The engine that runs both the export's GEMM commands and every program's (K in whole channel groups)."""
    cfg = EngineConfig.from_export(export, rows, cols, 1024, digit_bits)
    limits = [program.gemm_limits() for program in programs]
    return EngineConfig(
        **{**cfg.as_dict(), **{key: max(getattr(cfg, key), *(lim[key] for lim in limits)) for key in limits[0]}}
    )
