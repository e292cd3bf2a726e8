"""The engine configurations that the verification runs, one registry for both simulators.

An id names every parameter, so the same id means the same engine in the Amaranth-simulator tests, in the
cocotb regression and in the build directories (`4x4-b8a6acc24-m16k64n64` is not `4x4-b8a8acc32-m16k128n128`).
The RTL set is small on purpose: each configuration there costs a Verilator and an Icarus build.
"""

from __future__ import annotations

from dataclasses import fields, replace

from contract.config import EngineConfig, PEKind

_NAMED = ("rows", "cols", "base_bits", "act_bits", "acc_bits", "max_m", "max_k", "max_n")


def config_id(cfg: EngineConfig) -> str:
    """`RxC-bBaAaccACC-mMkKnN`, then `-name=value` for any other field that is not at its default."""
    text = (
        f"{cfg.rows}x{cfg.cols}-b{cfg.base_bits}a{cfg.act_bits}acc{cfg.acc_bits}-m{cfg.max_m}k{cfg.max_k}n{cfg.max_n}"
    )
    others = [f for f in fields(cfg) if f.name not in _NAMED and getattr(cfg, f.name) != f.default]
    return text + "".join(f"-{f.name}={getattr(cfg, f.name)}" for f in others)


def _registry(*configs: EngineConfig) -> dict[str, EngineConfig]:
    return {config_id(cfg): cfg for cfg in configs}


#: The shapes that the variants below are built on, each named once.
SMALL = EngineConfig(rows=2, cols=2, base_bits=4, act_bits=4, acc_bits=16, max_m=8, max_k=64, max_n=64)
ODD = EngineConfig(rows=3, cols=5, base_bits=8, act_bits=8, acc_bits=32, max_m=16, max_k=64, max_n=64)
ONE_ROW = EngineConfig(rows=1, cols=2, base_bits=3, act_bits=2, acc_bits=12, max_m=8, max_k=16, max_n=16)
ODD_RTL = EngineConfig(rows=3, cols=5, base_bits=8, act_bits=6, acc_bits=28, max_m=16, max_k=128, max_n=128)

#: Run on the Amaranth simulator (fast to elaborate): odd shapes down to 1x1, every width ratio.
AMARANTH = _registry(
    SMALL,
    ODD,
    EngineConfig(rows=4, cols=4, base_bits=8, act_bits=6, acc_bits=24, max_m=16, max_k=64, max_n=64),
    ONE_ROW,
    EngineConfig(rows=3, cols=1, base_bits=4, act_bits=3, acc_bits=16, max_m=8, max_k=32, max_n=16),
    EngineConfig(rows=1, cols=1, base_bits=2, act_bits=1, acc_bits=10, max_m=8, max_k=16, max_n=16),
    # Digit-serial: one digit per bit, and two bits per digit on a non-square array.
    replace(SMALL, digit_bits=1),
    replace(ODD, digit_bits=2),
    # Pipelined (a product register in every PE, a registered accumulator read): bit-parallel, digit-serial,
    # and one row, where a row comes back to the accumulator in the next slot.
    replace(ONE_ROW, pipelined=True),
    replace(ODD, pipelined=True),
    replace(SMALL, digit_bits=1, pipelined=True),
)

#: Run as Verilog on Verilator and Icarus. The 16x16 build also runs the digits network (K <= 288, N <= 32,
#: M <= 64 per image), see rtl_tests/test_network_rtl.py.
RTL = _registry(
    SMALL,
    EngineConfig(rows=4, cols=4, base_bits=8, act_bits=8, acc_bits=32, max_m=16, max_k=128, max_n=128),
    ODD_RTL,
    EngineConfig(rows=16, cols=16, base_bits=8, act_bits=8, acc_bits=32, max_m=64, max_k=512, max_n=512),
    # Digit-serial (issue 9): D = 1 on the 2x2, D = 2 on the non-square 3x5.
    replace(SMALL, digit_bits=1),
    replace(ODD_RTL, digit_bits=2),
    # Pipelined MAC: the FPGA-timing option.
    replace(SMALL, pipelined=True),
)

#: One engine of each PE kind, on the small shape: tests add `pipelined` for the other half of the variants.
KINDS = {
    PEKind.BIT_PARALLEL: SMALL,
    PEKind.FIXED: replace(SMALL, switchable=False),
    PEKind.DIGIT_SERIAL: replace(SMALL, digit_bits=2),
}

NETWORK = RTL["16x16-b8a8acc32-m64k512n512"]

#: The fixed-precision engine that eda.synth compares the switchable one against (tests/eda/test_synth_baseline.py).
BASELINE = EngineConfig(
    rows=3, cols=2, base_bits=8, act_bits=6, acc_bits=28, max_m=16, max_k=64, max_n=64, switchable=False
)

#: Every configuration by id; an id never names two different engines.
CONFIGS = {**AMARANTH, **RTL, config_id(BASELINE): BASELINE}
