"""Bytes entering the engine per inference, per stream: today's GEMM commands against a layer program.

The ResNet-20 of Fashion-MNIST (input 1x28x28, built untrained: traffic depends on the shapes only) on an R x C
engine at batch 1:
- GEMM commands (the engine today): per layer, the cmd, param, weight and act streams as sim.streams orders
  them (act: every N-tile re-streams the im2col rows, M beats of R codes per K-tile), and the results that
  leave for the host, which does the residual adds and builds the next layer's im2col;
- layer program (contract.program, run by sim.program; the HDL is the next step): the image, the weight image,
  the parameter image and the encoded program enter; no activation does; only the logits leave.
It also prints the scratchpad the program needs and its word traffic, and checks the program's logits
against golden.fastpath on one random image. Prints figures; asserts nothing.
Usage: python bench/program_traffic.py [--array 16x16] [--k 8]
"""

from __future__ import annotations

import math

import numpy as np
import torch

from contract.cli import Parser, run_main
from contract.config import EngineConfig, parse_array
from contract.model_format import steps
from contract.numerics import MULT_BITS, SHIFT_BITS
from contract.policy import Policy
from contract.program import compile_program, map_words
from contract.streams import stream
from contract.widths import ceil_div
from golden.convert import build_net
from golden.export import build_export
from golden.fastpath import fast_logits
from golden.layers import QuantSpec
from sim.program import run_program

FASHION = (1, 28, 28)
#: Scratchpad words the compiler may use: generous, so that the program prints what it needs.
WORDS = 1 << 20


def gemm_command_traffic(export, rows: int, cols: int) -> dict[str, float]:
    """Bytes per inference on each stream of today's engine (sim.streams' beats, payload bits only)."""
    cfg = EngineConfig.from_export(export, rows, cols, 1024)
    bits = dict.fromkeys(("cmd", "param", "weight", "act", "result out"), 0)
    for m, k_dim, n in export.gemm_shapes():
        k_tiles, n_tiles = ceil_div(k_dim, rows), ceil_div(n, cols)
        bits["cmd"] += ceil_div(m, cfg.max_m) * stream(cfg, "cmd").width
        bits["param"] += n_tiles * cols * (export.acc_bits + MULT_BITS + SHIFT_BITS)
        bits["weight"] += n_tiles * k_tiles * rows * cols * export.base_bits
        bits["act"] += n_tiles * k_tiles * m * rows * export.act_bits
        bits["result out"] += n_tiles * m * cols * export.acc_bits
    return {stream: value / 8 for stream, value in bits.items()}


def main(argv: list[str] | None = None) -> None:
    parser = Parser(prog="python bench/program_traffic.py", description=__doc__.splitlines()[0])
    parser.add_argument("--array", default="16x16")
    parser.add_argument("--k", type=int, default=8, help="weight precision of every layer (traffic is the same)")
    args = parser.parse_args(argv)
    rows, cols = parse_array(args.array)
    torch.manual_seed(0)
    export = build_export(build_net("resnet20", QuantSpec("truncquant", "offset"), FASHION).eval())
    policy = Policy("uniform", (args.k,)).resolve(export)
    program, images = compile_program(export, rows, cols, WORDS, policy)
    image = torch.randint(0, 1 << export.act_bits, (1, *FASHION))
    run = run_program(program, images, image, np.random.default_rng(0))
    exact = torch.equal(run.logits, fast_logits(export, image, args.k))
    today = gemm_command_traffic(export, rows, cols)
    values = [export.input_shape, *(step.shape for step in steps(export))]
    maps = sum(math.prod(shape) for shape in values) * export.act_bits / 8

    print(f"ResNet-20, input {list(FASHION)}, {rows}x{cols} engine, batch 1, k = {args.k}: bytes per inference")
    print(f"  {'stream':<12} {'GEMM commands':>14} {'layer program':>14}")
    streams = [
        ("image", 0, run.traffic["image"]),
        ("act", today["act"], run.traffic["act"]),
        ("weights", today["weight"], run.traffic["weights"]),
        ("params", today["param"], run.traffic["params"]),
        ("cmd/program", today["cmd"], run.traffic["program"]),
    ]
    for name, gemm, prog in streams:
        print(f"  {name:<12} {gemm:>14,.0f} {prog:>14,.0f}")
    print(f"  {'total in':<12} {sum(s[1] for s in streams):>14,.0f} {sum(s[2] for s in streams):>14,.0f}")
    print(f"  {'out':<12} {today['result out']:>14,.0f} {run.traffic['logits out']:>14,.0f}")
    print(f"  distinct feature maps (every node's output once, A-bit codes): {maps:,.0f} bytes")
    print(
        f"scratchpad needed: {program.words_used} words of {rows} codes ({program.kib_used:.1f} KiB); the input takes "
        f"{map_words(program.input_shape, rows)} words"
    )
    reads, writes = sum(c.reads for c in run.layers), sum(c.writes for c in run.layers)
    padding = sum(c.padding for c in run.layers)
    print(f"scratchpad words per inference: {reads:,} read, {writes:,} written, {padding:,} padding reads (no access)")
    print(f"program logits equal golden's integer path on a random image: {'yes' if exact else 'NO'}")


if __name__ == "__main__":
    raise SystemExit(run_main(main))
