"""The processing element against golden.nested: every code, every k, both schemes, B in {4, 8}, for the
bit-parallel PE with its load-port decode and the digit-serial PEs (D = 1, 2, 4).

The PE multiplies masked codes, so its product is 2^((A-j)+(B-k)) times x*w; shifting that back must give
golden's x*w exactly. A bit-parallel switchable PE multiplies by the value its column's load port
decoded (hw/pe.py, load_value); for the offset scheme the column then doubles the sum and adds
2^(B-k) * act once (docs/architecture.md), which the test applies to the one-row column it simulates.
A digit-serial PE is fed one digit place per cycle, most significant first, down to the last digit of
the top k bits; its products weighted by 2^(D*place) must add up to the same scaled x*w. Each code is
loaded into the shadow register while the previous one is swapped in, then used on the swap cycle (its
first digit) and on the following ones, with the next code already in the shadow.
"""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from contract.config import EngineConfig
from contract.widths import psum_bits
from golden.nested import truncate_act, truncate_weight
from hw.interface import Scheme, weight_decode_layout
from hw.pe import ProcessingElement, load_value


class LoadPortPE(wiring.Component):
    """A bit-parallel PE behind its column's load-port decode, as the datapath wires them."""

    def __init__(self, cfg: EngineConfig, width: int):
        self._cfg, self._width = cfg, width
        self._pe = ProcessingElement(cfg, width)
        super().__init__(
            {
                "decode": In(weight_decode_layout(cfg)),
                "code": In(cfg.base_bits),
                "load": In(1),
                "row_in": In(self._pe.row_in.shape()),
                "psum_in": In(self._pe.psum_in.shape()),
                "psum_out": Out(self._pe.psum_out.shape()),
            }
        )

    def elaborate(self, platform):
        m = Module()
        m.submodules.pe = pe = self._pe
        m.d.comb += [
            pe.code.eq(load_value(m, "load", self.code, self.decode)),
            pe.load.eq(self.load),
            pe.row_in.eq(self.row_in),
            pe.psum_in.eq(self.psum_in),
            self.psum_out.eq(pe.psum_out),
        ]
        return m


def decode_inputs(cfg: EngineConfig, k: int, scheme: str) -> dict:
    """The decode at precision k, as docs/architecture.md specifies it: a bit-parallel load port's hi_k and
    B - k; a digit-serial row's (B - k) mod D, the dropped bits of its last kept digit (D > 1)."""
    B, D = cfg.base_bits, cfg.digit_width
    drop = B - k
    if not cfg.digit_serial:
        return {"mask": ((1 << B) - 1) >> drop << drop, "drop": drop, "scheme": Scheme[scheme.upper()]}
    return {"scheme": Scheme[scheme.upper()]} | ({"low": drop % D} if D > 1 else {})


# Every code at B = 8 and D < B simulates 8 x 255 x 256 digit-serial MACs per scheme: the slow part of the suite.
SLOW = pytest.mark.slow


@pytest.mark.parametrize(
    "base_bits,digit_bits",
    [
        (4, None),
        (8, None),
        (4, 1),
        (4, 2),
        pytest.param(8, 1, marks=SLOW),
        pytest.param(8, 2, marks=SLOW),
        pytest.param(8, 4, marks=SLOW),
    ],
    ids=lambda v: str(v),
)
def test_every_code_every_precision_both_schemes(base_bits, digit_bits):
    cfg = EngineConfig(rows=2, cols=2, base_bits=base_bits, act_bits=8, acc_bits=32, max_k=64, digit_bits=digit_bits)
    B, A, D = cfg.base_bits, cfg.act_bits, cfg.digit_width
    width = psum_bits(cfg)
    dut = ProcessingElement(cfg, width) if cfg.digit_serial else LoadPortPE(cfg, width)
    rng = np.random.default_rng(base_bits * 10 + D)
    codes = np.arange(1 << B)
    failures = []

    async def testbench(ctx):
        for scheme in ("offset", "twos"):
            for k in range(1, B + 1):
                drop = B - k
                places = list(range(B // D - 1, drop // D - 1, -1))  # most significant digit first
                if not cfg.digit_serial:
                    ctx.set(dut.decode, decode_inputs(cfg, k, scheme))
                weights = truncate_weight(codes, k, scheme, B).tolist()
                ctx.set(dut.load, 1)
                ctx.set(dut.code, int(codes[0]))
                await ctx.tick()
                for index, code in enumerate(codes.tolist()):
                    for swap in (1, 0):
                        j = int(rng.integers(1, A + 1))
                        a = int(rng.integers(0, 1 << A))
                        total = 0
                        for place in places:
                            first = place == places[0]
                            psum = int(rng.integers(-(1 << (width - 2)), 1 << (width - 2)))
                            ctx.set(dut.row_in, {"act": a >> (A - j) << (A - j), "swap": swap and first})
                            if cfg.digit_serial:  # the decode travels with the activation
                                ctx.set(dut.row_in.place, place)
                                ctx.set(dut.row_in.decode, decode_inputs(cfg, k, scheme))
                            if cfg.digit_serial and D > 1:
                                ctx.set(dut.row_in.last_digit, place == places[-1])
                            ctx.set(dut.psum_in, psum)
                            ctx.set(dut.load, swap and first)
                            ctx.set(dut.code, int(codes[(index + 1) % len(codes)]))
                            await ctx.tick()
                            total += (ctx.get(dut.psum_out) - psum) << (D * place)
                        if scheme == "offset" and not cfg.digit_serial:  # the column's share, for one row
                            total = 2 * total + (a >> (A - j) << (A - j) << drop)
                        x = int(truncate_act([a], j, A)[0])
                        exact = total >> ((A - j) + drop)
                        if exact != x * weights[index] or total != exact << ((A - j) + drop):
                            failures.append((scheme, k, code, a, j, swap, total, x * weights[index]))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    assert not failures, f"{len(failures)} mismatches, first (scheme, k, code, a, j, swap, got, want): {failures[:3]}"
