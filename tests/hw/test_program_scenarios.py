"""Random networks (verif.program_scenarios) through the program engine on the Amaranth simulator, with random
stalls on every stream: bit-exact logits against golden's integer path, and together every coverage bin of
PROGRAM_BINS hit (kernels, strides, padding at each edge, channel groups, N-tiles, both kinds of fused add,
raw stores, linear layers). A failure prints its seed; NESTMAC_SEED draws other networks."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from contract.config import EngineConfig
from contract.policy import Policy
from contract.program import ProgramLimits, compile_program
from golden.convert import convert
from golden.export import build_export
from golden.infer import run_integer
from golden.layers import QuantSpec
from verif.amaranth_program import simulate_program
from verif.program_scenarios import PROGRAM_BINS, program_bins, random_network
from verif.scenarios import base_seed, run_seed

LIMITS = ProgramLimits(2048, max_size=16, max_channels=32, max_n_tiles=8)
NETWORKS = 8


def test_random_networks_run_bit_for_bit_and_cover_every_bin():
    hit = set()
    for index in range(NETWORKS):
        seed = run_seed(base_seed(), "program", "random-network", index)
        rng = random.Random(seed)
        rows, cols = rng.choice([(4, 4), (3, 5), (4, 2)])
        module, shape = random_network(rng, rows)
        scheme = rng.choice(["offset", "twos"])
        export = build_export(convert(module, QuantSpec("truncquant", scheme), shape).eval())
        ks = [rng.randint(1, export.base_bits) for _ in export.layers]
        program, images = compile_program(export, rows, cols, LIMITS.words, Policy("static", tuple(ks)).resolve(export))
        widths = {name: getattr(export, name) for name in ("base_bits", "act_bits", "acc_bits")}
        cfg = EngineConfig(rows=rows, cols=cols, digit_bits=rng.choice([None, 1]), **widths, **program.gemm_limits())
        codes = np.random.default_rng(seed).integers(0, 1 << export.act_bits, (1, *shape))
        run = simulate_program(cfg, LIMITS, program, images, codes[0], rng.choice([0.0, 0.3, 0.6]), seed)
        golden = run_integer(export, torch.from_numpy(codes), ks)[0]
        assert not run.error and torch.equal(run.logits, golden), f"seed {seed}: {rows}x{cols}, network {module}"
        hit |= program_bins(program)
    missing = [name for name in PROGRAM_BINS if name not in hit]
    assert not missing, f"bins never hit by {NETWORKS} networks from seed {base_seed()}: {missing}"


@pytest.mark.parametrize("seed", range(20))
def test_the_random_networks_convert_and_compile(seed):
    """The grammar stays within what a program runs (no refusal), whatever the draw."""
    rng = random.Random(seed)
    module, shape = random_network(rng, 4)
    export = build_export(convert(module, QuantSpec("truncquant", "offset"), shape).eval())
    compile_program(export, 4, 4, LIMITS.words, Policy("uniform", (8,)).resolve(export))
