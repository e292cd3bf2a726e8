"""Random engine commands for verification: one generator shared by the Amaranth and cocotb tests."""

from __future__ import annotations

import numpy as np

from contract.config import EngineConfig
from sim.command import Command


def random_command(
    cfg: EngineConfig,
    rng: np.random.Generator,
    m: int,
    k_dim: int,
    n: int,
    wbits=None,
    abits=None,
    scheme=None,
    mode=None,
) -> Command:
    """Random codes; half the columns get requantization parameters that land inside the relu range, the
    others anything the contract allows (so the clamps, the rounding and the ACC wrap all get hit)."""
    acc = cfg.acc_bits
    wbits = wbits or int(rng.integers(1, cfg.base_bits + 1))
    abits = abits or int(rng.integers(1, cfg.act_bits + 1))
    sensible = rng.random(n) < 0.5
    scale = k_dim.bit_length() + wbits + abits  # rough bit length of |acc|
    shift = np.where(
        sensible,
        rng.integers(max(0, scale + 8 - cfg.act_bits), scale + 12, n),
        rng.integers(0, acc + cfg.mult_bits - 1, n),
    )
    return Command(
        X=rng.integers(0, 1 << cfg.act_bits, (m, k_dim)),
        W=rng.integers(0, 1 << cfg.base_bits, (k_dim, n)),
        wbits=wbits,
        abits=abits,
        scheme=scheme or str(rng.choice(["offset", "twos"])),
        mode=mode or str(rng.choice(["relu", "raw"], p=[0.75, 0.25])),
        bias=np.where(
            sensible, rng.integers(-(1 << scale), 1 << scale, n), rng.integers(-(1 << (acc - 1)), 1 << (acc - 1), n)
        ),
        mult=np.where(sensible, rng.integers(1, 1 << 10, n), rng.integers(-(1 << 15), 1 << 15, n)),
        shift=shift,
    )
