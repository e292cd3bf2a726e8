"""A dynamic policy as a program on the program engine (Amaranth simulator): the controller's decision store
sets the decision registers, the argmax runs on chip, each controlled layer runs at its image's chosen k with
that candidate's parameter block (the others' beats dropped), and the logits equal golden.dynamic's for images
that choose differently; with ideal streams every step ends in sim.program_cycles' cycle at the k the image
chose, and the engine's counters hold against the model at those k (verif.counters). A failure prints its
seed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from contract.config import EngineConfig
from contract.policy import Policy
from contract.program import ProgramLimits, check_fits, compile_program
from golden.convert import convert
from golden.dynamic import attach_controller, fast_dynamic_logits
from golden.export import build_export
from golden.layers import QuantSpec
from sim.program import run_program
from sim.program_cost import program_cost
from sim.program_cycles import program_step_cycles
from verif.amaranth_program import simulate_program
from verif.counters import counter_mismatches
from verif.scenarios import base_seed, run_seed

LIMITS = ProgramLimits(512, max_size=8, max_channels=16, max_n_tiles=4)


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.conv = nn.Conv2d(4, 6, 3, stride=2, padding=1)
        self.fc = nn.Linear(6 * 3 * 3, 5)

    def forward(self, x):
        return self.fc(torch.flatten(torch.relu(self.conv(torch.relu(self.stem(x)))), 1))


@pytest.fixture(scope="module")
def export():
    torch.manual_seed(3)
    model = convert(Small(), QuantSpec("truncquant", "offset"), (1, 6, 6)).eval()
    images = torch.rand(64, 1, 6, 6)
    attach_controller(model, 3.0, (1, 3, 8), reads="stem", seed=2, k=5, images=images)
    return build_export(model.eval())


@pytest.mark.parametrize("shape, stall", [((4, 4), 0.0), ((3, 5), 0.4)])
def test_a_dynamic_policy_runs_on_the_engine(export, shape, stall):
    seed = run_seed(base_seed(), f"{shape}", f"dynamic-{stall}")
    controller = export.controllers[0]
    program, images = compile_program(export, *shape, LIMITS.words, Policy("dynamic", budget=3.0).resolve(export))
    widths = {name: getattr(export, name) for name in ("base_bits", "act_bits", "acc_bits")}
    cfg = EngineConfig(rows=shape[0], cols=shape[1], **widths, **program.gemm_limits())
    codes = np.random.default_rng(seed).integers(0, 1 << export.act_bits, (6, *export.input_shape))
    golden, ks = fast_dynamic_logits(export, torch.from_numpy(codes), controller)
    assert len({tuple(row) for row in ks.tolist()}) >= 2, "the images must choose differently"
    chosen = run_program(program, images, codes).ks
    for image in range(len(codes)):
        run = simulate_program(cfg, LIMITS, program, images, codes[image], stall, seed + image)
        assert not run.error and torch.equal(run.logits, golden[image : image + 1]), f"seed {seed}, image {image}"
        cost = program_cost(cfg, program, export, LIMITS.words, ks=chosen[image].tolist())
        assert counter_mismatches(run.counters, cost, not stall) == [], f"seed {seed}, image {image}: {run.counters}"
        if not stall:
            steps = [None, *program.descriptors]
            ks_of = [None, *chosen[image].tolist()]
            expected = [program_step_cycles(cfg, program, d, k) for d, k in zip(steps, ks_of, strict=True)]
            assert np.diff(run.step_cycles).tolist() == expected[:-1], f"seed {seed}, image {image}: step cycles"


class Wide(nn.Module):
    """A one-pixel layer of many N-tiles on a 2x2 engine with eight candidates: the dropped parameter blocks
    before and after the chosen one outlast the layer's own work, so they set its cycles."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 2, 3, padding=1)
        self.wide = nn.Conv2d(2, 9, 3)
        self.fc = nn.Linear(9, 3)

    def forward(self, x):
        return self.fc(torch.flatten(torch.relu(self.wide(torch.relu(self.stem(x)))), 1))


def test_dropped_parameter_blocks_are_in_the_cycles():
    torch.manual_seed(5)
    model = convert(Wide(), QuantSpec("truncquant", "offset"), (1, 3, 3)).eval()
    attach_controller(model, 4.0, tuple(range(1, 9)), reads="stem", seed=4, k=8, images=torch.rand(64, 1, 3, 3))
    export = build_export(model.eval())
    program, images = compile_program(export, 2, 2, LIMITS.words, Policy("dynamic", budget=4.0).resolve(export))
    widths = {name: getattr(export, name) for name in ("base_bits", "act_bits", "acc_bits")}
    cfg = EngineConfig(rows=2, cols=2, **widths, **program.gemm_limits())
    limits = ProgramLimits(LIMITS.words, max_size=8, max_channels=16, max_n_tiles=8)
    check_fits(program, limits, program.gemm_limits())
    codes = np.random.default_rng(0).integers(0, 1 << export.act_bits, (12, *export.input_shape))
    golden, ks = fast_dynamic_logits(export, torch.from_numpy(codes), export.controllers[0])
    chosen = run_program(program, images, codes).ks
    assert len(set(chosen[:, 2].tolist())) >= 3, "the wide layer's k must vary"
    for image in range(len(codes)):
        run = simulate_program(cfg, limits, program, images, codes[image], 0.0, image)
        assert torch.equal(run.logits, golden[image : image + 1]), f"image {image}"
        steps = [None, *program.descriptors]
        expected = [program_step_cycles(cfg, program, d, k) for d, k in zip(steps, [None, *chosen[image]], strict=True)]
        assert np.diff(run.step_cycles).tolist() == expected[:-1], f"image {image}, k {chosen[image].tolist()}"
