"""The program engine's player bench without a simulator: its files, and the check of what comes back.

The hex text of every input stream must be the integers the program engine's own ports make of
verif.program_steps' beats (the packer is the contract's, vectorised; the ports are the HDL's), a batch's
control words must replay the program once per image, and the check of a capture must catch every way a run
can go wrong. The Verilog runs are in rtl_tests/test_program_rtl.py.
"""

import dataclasses

import numpy as np
import pytest
import torch
from amaranth.hdl import Fragment
from torch import nn

from contract.config import EngineConfig
from contract.policy import Policy
from contract.program import compile_program, map_words
from golden.convert import convert
from golden.export import build_export
from golden.layers import QuantSpec
from sim.program_cycles import IDLE_CYCLES
from verif.program_steps import payloads
from verif.rtl.players import PlayerMemoryError
from verif.rtl.program_bench import (
    ProgramBatch,
    ProgramCapture,
    modelled_step_cycles,
    problems,
    stream_beats,
    stream_hex,
    write_batch,
)
from verif.rtl.program_top import CONTROL, INPUTS, ProgramDepths, ProgramEngineSpec

CFG = EngineConfig(rows=4, cols=4, base_bits=8, act_bits=8, acc_bits=32, max_m=64, max_k=144, max_n=16)
SPEC = ProgramEngineSpec(CFG, depth=256, max_size=8, max_channels=16, max_n_tiles=4)
IMAGES = 3


class SmallResidual(nn.Module):
    """A conv, a conv whose identity add the program fuses (a step with an operand), a linear layer."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 6, 3, padding=1)
        self.same = nn.Conv2d(6, 6, 3, padding=1)
        self.fc = nn.Linear(6 * 4 * 4, 5)

    def forward(self, x):
        a = torch.relu(self.stem(x))
        return self.fc(torch.flatten(torch.relu(self.same(a) + a), 1))


@pytest.fixture(scope="module")
def batch():
    torch.manual_seed(2)
    export = build_export(convert(SmallResidual(), QuantSpec("truncquant", "twos"), (1, 4, 4)).eval())
    program, images = compile_program(export, CFG.rows, CFG.cols, SPEC.depth, Policy("uniform", (5,)).resolve(export))
    assert any(d.operands for d in program.descriptors)
    codes = np.random.default_rng(0).integers(0, 1 << export.act_bits, (IMAGES, *export.input_shape))
    return ProgramBatch(program, images, codes)


def test_the_hex_text_is_the_program_engines_payload_words(batch):
    engine = SPEC.component()
    Fragment.get(engine, None)  # elaborated, so that Amaranth does not warn of a component never used
    for name, beats in stream_beats(batch).items():
        words = [int(line, 16) for line in stream_hex(SPEC, name, beats).split()]
        assert words == payloads(getattr(engine, name), beats), name


def _control(directory) -> dict[str, int]:
    return dict(zip(CONTROL, (int(line, 16) for line in (directory / "ctl.hex").read_text().split()), strict=True))


def test_a_batch_replays_the_program_once_per_image(batch, tmp_path):
    write_batch(SPEC, dataclasses.replace(batch, stall={"weight": 0.5}, seed=3), tmp_path)
    control = _control(tmp_path)
    program = batch.program
    lines = {name: len((tmp_path / f"{name}.hex").read_text().split()) for name in INPUTS}
    assert lines["step"] == control["count_step"] == 1 + len(program.descriptors)
    assert lines["image"] == control["count_image"] == IMAGES * map_words(program.input_shape, CFG.rows)
    assert lines["weight"] == control["count_weight"] == program.weight_length // CFG.cols
    assert lines["param"] == control["count_param"] == program.param_length // CFG.cols
    assert [control[f"laps_{name}"] for name in INPUTS] == [IMAGES, 1, IMAGES, IMAGES]
    assert control["count_result"] == IMAGES * program.descriptors[-1].n_tiles(CFG.cols)
    assert control["threshold_weight"] == 32768 and control["threshold_step"] == 0
    assert control["budget"] > IMAGES * sum(modelled_step_cycles(SPEC, program))


def test_a_batch_too_big_for_a_memory_or_a_bad_stall_is_refused(batch, tmp_path):
    words = map_words(batch.program.input_shape, CFG.rows)
    with pytest.raises(PlayerMemoryError, match="image"):
        write_batch(SPEC, batch, tmp_path, ProgramDepths(image=IMAGES * words - 1))
    with pytest.raises(ValueError, match="stall probability of logits"):
        write_batch(SPEC, dataclasses.replace(batch, stall={"logits": 1.0}), tmp_path)


def _capture(batch, golden, **status) -> ProgramCapture:
    """What a correct run of `batch` writes (the model's step cycles, images back to back IDLE_CYCLES after the
    last logits beat), with `status` changed."""
    modelled = modelled_step_cycles(SPEC, batch.program)
    per_image = sum(modelled) + IDLE_CYCLES
    starts = np.arange(IMAGES)[:, None] * per_image
    taken = starts + np.concatenate([[0], np.cumsum(modelled[:-1])])[None, :]
    beats = stream_beats(batch)
    counts = {f"taken_{name}": len(beats[name]) * (1 if name == "image" else IMAGES) for name in INPUTS}
    right = dict(
        results=IMAGES * batch.logits_beats, violations=0, error=0, timeout=0, cycles=IMAGES * per_image, **counts
    )
    return ProgramCapture(right | status, golden.copy(), taken, taken[:, -1] + modelled[-1])


def test_the_check_catches_wrong_logits_cycles_beats_and_error(batch):
    golden = np.arange(IMAGES * 5).reshape(IMAGES, 5)
    assert problems(SPEC, batch, _capture(batch, golden), golden) == []
    wrong = _capture(batch, golden)
    wrong.logits[1, 2] += 1
    assert problems(SPEC, batch, wrong, golden) == [
        f"1 of {IMAGES} images' logits differ from golden, first image 1: Verilog "
        f"{wrong.logits[1].tolist()}, golden {golden[1].tolist()}"
    ]
    late = _capture(batch, golden)
    late.step_taken[2, 1:] += 1  # image 2's image step took a cycle more, so its logits step one less
    image_step = 1 + map_words(batch.program.input_shape, CFG.rows)
    steps = IMAGES * (1 + len(batch.program.descriptors))
    assert problems(SPEC, batch, late, golden) == [
        f"2 of {steps} steps' cycles differ from the model, first image 2 step 0: {image_step + 1} cycles, "
        f"model {image_step}"
    ]
    assert problems(SPEC, dataclasses.replace(batch, stall={"param": 0.2}), late, golden) == []
    gap = _capture(batch, golden)
    gap.step_taken[2] += 1  # image 2 taken a cycle late, then as modelled
    gap.last_logits[2] += 1
    period = sum(modelled_step_cycles(SPEC, batch.program)) + IDLE_CYCLES
    assert problems(SPEC, batch, gap, golden) == [
        f"images back to back every {period}..{period + 1} cycles, want {period}"
    ]
    for status, message in [
        (dict(error=1), "error raised"),
        (dict(violations=2), "2 cycles in which logits"),
        (dict(timeout=1), "timed out"),
        (dict(taken_weight=1), "took 1 of"),
        (dict(results=1), "logits beats, want"),
    ]:
        found = problems(SPEC, batch, _capture(batch, golden, **status), golden)
        assert any(message in problem for problem in found), (status, found)
