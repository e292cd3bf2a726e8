"""Whole networks as layer programs through the 16x16 program engine's Verilog (hw/program_engine.py).

The program engine runs a network from its activation scratchpad: the host sends only the steps, the image,
the weights and the parameters, and takes the logits (verif.rtl.program_bench; the stream players inside the
HDL, many images back to back in one simulation). Two networks:
- the session's trained digits model (root conftest): the whole digits test set at k = 8..1 on Verilator,
  every image's logits equal to golden.fastpath's and, with ideal streams, every step's cycles to
  sim.program_cycles';
- the narrow ResNet of test_resnet_rtl.py (fused residual adds, raw 1x1 projections), its BatchNorms calibrated
  on digits training images so that its raw regions and their operands take two planes: a per-layer policy
  with random pauses on every stream on Icarus and Verilator (bit-exact against golden.infer.run_integer),
  and on Verilator also with ideal streams (cycles). A failure prints its seed (NESTMAC_SEED replays it).
"""

import pytest

from contract.policy import Policy
from contract.program import compile_program
from golden.data import digits_split, input_codes
from golden.export import build_export
from golden.fastpath import fast_logits
from golden.infer import run_integer
from golden.train import calibrate_batchnorm
from rtl_tests.harness import require_simulator
from rtl_tests.test_resnet_rtl import narrow_resnet
from verif.rtl.program_bench import PAUSABLE, ProgramBatch, problems, run_program_on_rtl
from verif.rtl.program_top import NETWORK_PROGRAM as SPEC
from verif.scenarios import base_seed, run_seed

pytestmark = pytest.mark.rtl

PRECISIONS = range(8, 0, -1)
RESNET_IMAGES = 2
STALL = 0.3


def compiled(export, policy: Policy):
    return compile_program(export, SPEC.cfg.rows, SPEC.cfg.cols, SPEC.depth, policy.resolve(export))


def test_the_digits_test_set_runs_through_the_program_on_verilator(trained, training_settings):
    require_simulator("verilator")
    export = build_export(trained("truncquant", "offset"))
    codes = input_codes(digits_split().test_x, export.act_bits)
    batches = [ProgramBatch(*compiled(export, Policy("uniform", (k,))), codes.numpy()) for k in PRECISIONS]
    captures = run_program_on_rtl("verilator", SPEC, batches, "digits")
    for k, batch, capture in zip(PRECISIONS, batches, captures, strict=True):
        golden = fast_logits(export, codes, k).numpy()
        assert len(set(golden.argmax(axis=1).tolist())) >= 2, "degenerate logits: the comparison shows nothing"
        found = problems(SPEC, batch, capture, golden)
        assert found == [], f"k={k}, {len(codes)} images, model trained with {training_settings}: {found}"


@pytest.fixture(scope="module")
def resnet():
    """The narrow ResNet, its BatchNorms calibrated on digits training images: two-plane raw regions."""
    model = narrow_resnet()
    calibrate_batchnorm(model, digits_split().train_x[:256], 64)
    export = build_export(model.eval())
    ks = tuple(8 - 3 * i % 8 for i in range(len(export.layers)))  # a per-layer policy visiting many k
    program, images = compiled(export, Policy("static", ks))
    assert any(d.store == "raw" and d.planes >= 2 for d in program.descriptors), "no two-plane raw region"
    assert any(o.planes >= 2 and o.signed for d in program.descriptors for o in d.operands), "no raw operand"
    codes = input_codes(digits_split().test_x[:RESNET_IMAGES], export.act_bits)
    return export, ks, program, images, codes


@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_a_residual_network_runs_bit_for_bit_with_pauses_on_every_stream(resnet, simulator):
    require_simulator(simulator)
    export, ks, program, images, codes = resnet
    seed = run_seed(base_seed(), SPEC.name, "resnet-pauses")
    golden = run_integer(export, codes, list(ks))[0]
    batches = [ProgramBatch(program, images, codes.numpy(), dict.fromkeys(PAUSABLE, STALL), seed)]
    if simulator == "verilator":  # and ideal streams, for the cycles: Icarus takes minutes per thousand
        batches.append(ProgramBatch(program, images, codes.numpy(), seed=seed))
    captures = run_program_on_rtl(simulator, SPEC, batches, f"resnet-seed{seed}")
    assert golden.unique().numel() > len(golden), "degenerate logits: the comparison shows nothing"
    for batch, capture in zip(batches, captures, strict=True):
        found = problems(SPEC, batch, capture, golden.numpy())
        assert found == [], f"seed {seed} ({'ideal' if batch.ideal else f'stall {STALL}'}, ks {ks}): {found}"
