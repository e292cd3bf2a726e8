"""The processing element against golden.nested: every code, every k, both schemes, B in {4, 8}.

The PE multiplies masked codes, so its product is 2^((A-j)+(B-k)) times x*w; shifting that back must give
golden's x*w exactly. Each code is loaded into the shadow register while the previous one is swapped
in, then used once on the swap cycle and once after it, with the next code already in the shadow.
"""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from contract.config import EngineConfig
from golden.nested import truncate_act, truncate_weight
from hw.interface import Scheme, psum_bits
from hw.pe import ProcessingElement


@pytest.mark.parametrize("base_bits", [4, 8])
def test_every_code_every_precision_both_schemes(base_bits):
    cfg = EngineConfig(rows=2, cols=2, base_bits=base_bits, act_bits=8, acc_bits=32, max_k=64)
    B, A = cfg.base_bits, cfg.act_bits
    width = psum_bits(cfg)
    dut = ProcessingElement(cfg, width)
    rng = np.random.default_rng(base_bits)
    codes = np.arange(1 << B)
    failures = []

    async def testbench(ctx):
        for scheme in ("offset", "twos"):
            for k in range(1, B + 1):
                drop = B - k
                ctx.set(
                    dut.decode,
                    {"mask": ((1 << B) - 1) >> drop << drop, "lsb": 1 << drop, "scheme": Scheme[scheme.upper()]},
                )
                weights = truncate_weight(codes, k, scheme, B).tolist()
                ctx.set(dut.load, 1)
                ctx.set(dut.code, int(codes[0]))
                await ctx.tick()
                for index, code in enumerate(codes.tolist()):
                    for swap in (1, 0):
                        j = int(rng.integers(1, A + 1))
                        a = int(rng.integers(0, 1 << A))
                        psum = int(rng.integers(-(1 << (width - 2)), 1 << (width - 2)))
                        ctx.set(dut.swap_in, swap)
                        ctx.set(dut.act_in, a >> (A - j) << (A - j))
                        ctx.set(dut.psum_in, psum)
                        ctx.set(dut.load, swap)
                        ctx.set(dut.code, int(codes[(index + 1) % len(codes)]))
                        await ctx.tick()
                        product = ctx.get(dut.psum_out) - psum
                        x = int(truncate_act([a], j, A)[0])
                        exact = product >> ((A - j) + drop)
                        if exact != x * weights[index] or product != exact << ((A - j) + drop):
                            failures.append((scheme, k, code, a, j, swap, product, x * weights[index]))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    assert not failures, f"{len(failures)} mismatches, first (scheme, k, code, a, j, swap, got, want): {failures[:3]}"
