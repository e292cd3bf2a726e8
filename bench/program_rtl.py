"""Whole networks as layer programs on the 16x16 program engine's Verilog: logits mismatches and cycles per image.

Networks (verif.rtl.program_bench runs them, many images back to back in one simulation per k):
- `fashion-resnet20`: the ResNet-20 of Fashion-MNIST (1x28x28) from its seeded initialisation (torch seed 0),
  its BatchNorms calibrated on 256 training images so that activations vary; no trained model is needed, as
  bit-exactness does not depend on training. The images are the first of the test set.
- `digits`: the digits network trained as the test suite trains it (4 epochs, seed 0), on the digits test set.
Per k it prints the images whose logits differ from golden.fastpath's, the steps whose cycles differ from
sim.program_cycles' (ideal streams), the cycles of an image (first step to last logits beat, and back to back)
against the model's, and the simulation's wall time. Exit status 1 on any mismatch.
Usage: python bench/program_rtl.py [--network fashion-resnet20] [--images 100] [--k 8] [--simulator verilator]
"""

from __future__ import annotations

import time

import torch

from contract.cli import InputError, Parser, number, run_main
from contract.policy import Policy
from contract.program import compile_program
from eda.tools import SIMULATORS
from golden.convert import build_net
from golden.data import digits_split, input_codes, load_split
from golden.export import build_export
from golden.fastpath import fast_logits
from golden.layers import QuantSpec
from golden.train import calibrate_batchnorm, train
from verif.rtl.program_bench import (
    ProgramBatch,
    build_program,
    modelled_step_cycles,
    problems,
    run_program_on_rtl,
    span_text,
    steps_off_model,
    wrong_images,
)
from verif.rtl.program_top import NETWORK_PROGRAM as SPEC

NETWORKS = ("fashion-resnet20", "digits")
CALIBRATION_IMAGES = 256


def network(name: str):
    """The export and the test images [N, 1, H, W] in [0, 1] of network `name` (module docstring)."""
    quant = QuantSpec("truncquant", "offset")
    if name == "digits":
        split = digits_split()
        return build_export(train(quant, epochs=4, seed=0, log=lambda line: None)), split.test_x
    split = load_split("fashion-mnist")
    torch.manual_seed(0)
    model = build_net("resnet20", quant, tuple(split.test_x.shape[1:]))
    calibrate_batchnorm(model, split.train_x[:CALIBRATION_IMAGES], 64)
    return build_export(model.eval()), split.test_x


def precisions(text: str, base_bits: int) -> list[int]:
    """`--k`'s comma-separated weight precisions, each in 1..base_bits (bench/soc_rtl.py's too)."""
    try:
        ks = [int(part) for part in text.split(",")]
    except ValueError:
        raise InputError(f"--k takes precisions like 8 or 8,4,1, got {text!r}") from None
    if not all(1 <= k <= base_bits for k in ks):
        raise InputError(f"--k precisions must be in 1..{base_bits}, got {text!r}")
    return ks


def main(argv: list[str] | None = None) -> None:
    parser = Parser(prog="python bench/program_rtl.py", description=__doc__.splitlines()[0])
    parser.add_argument("--network", choices=NETWORKS, default="fashion-resnet20")
    parser.add_argument("--images", type=number(int, 1, 10_000), default=100, help="test images (first N)")
    parser.add_argument("--k", default="8", help="weight precisions, one simulated batch each: 8 or 8,7,...,1")
    parser.add_argument("--simulator", choices=SIMULATORS, default="verilator")
    args = parser.parse_args(argv)
    ks = precisions(args.k, SPEC.cfg.base_bits)
    start = time.perf_counter()
    export, images = network(args.network)
    codes = input_codes(images[: args.images], export.act_bits)
    batches = []
    for k in ks:
        program, weights = compile_program(
            export, SPEC.cfg.rows, SPEC.cfg.cols, SPEC.depth, Policy("uniform", (k,)).resolve(export)
        )
        batches.append(ProgramBatch(program, weights, codes.numpy()))
    prepared = time.perf_counter()
    build_program(args.simulator, SPEC)
    built = time.perf_counter()
    captures = run_program_on_rtl(args.simulator, SPEC, batches, f"bench-{args.network}-{len(codes)}")
    simulated = time.perf_counter()
    print(
        f"{args.network}: {len(codes)} test images through the program on the {SPEC.cfg.rows}x{SPEC.cfg.cols} "
        f"program engine's Verilog ({args.simulator}); {len(batches[0].program.descriptors)} layer steps per image"
    )
    print(
        f"  {'k':>2} {'logits mismatches':>18} {'steps off model':>16} {'cycles/image':>13} {'model':>7} "
        f"{'back to back':>13}"
    )
    failed, cycles = False, 0
    for k, batch, capture in zip(ks, batches, captures, strict=True):
        golden = fast_logits(export, codes, k).numpy()
        found = problems(SPEC, batch, capture, golden)
        modelled = modelled_step_cycles(SPEC, batch.program)
        wrong = len(wrong_images(capture, golden))
        off = len(steps_off_model(SPEC, batch, capture))
        spans = capture.last_logits - capture.step_taken[:, 0]
        period = capture.image_periods()
        print(
            f"  {k:>2} {wrong:>18} {off:>7} of {capture.step_taken.size:<6} {span_text(spans):>13} "
            f"{sum(modelled):>7} {span_text(period):>13}"
        )
        for problem in found:
            print(f"     {problem}")
        failed |= bool(found)
        cycles += capture.status["cycles"]
    print(
        "  cycles/image: from an image's step to its last logits beat (all equal, else min..max); back to back: "
        "from one image's step to the next's"
    )
    seconds = simulated - built
    print(
        f"wall time: {prepared - start:.1f} s network and programs, {built - prepared:.1f} s Verilog and build, "
        f"{seconds:.1f} s simulation ({cycles:,} cycles, {cycles / seconds:,.0f} per wall second)"
    )
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    raise SystemExit(run_main(main))
