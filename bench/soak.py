"""A soak of the engine Verilog through the stream players: random shapes, a precision switch on every command,
random stalls on every stream, resets at random points; prints the MACs checked and the mismatches.

See `verif.rtl.soak` for what a batch holds and what is checked. Exit status 1 if anything mismatched (the
seed replays it). rtl_tests/test_players_rtl.py runs a slice of the same soak in `make test`.
Usage: python bench/soak.py [--macs 1e7] [--array 16x16] [--simulator verilator] [--seed 1]
"""

from __future__ import annotations

from contract.cli import Parser, number, run_main
from contract.config import EngineConfig, parse_array
from eda.tools import SIMULATORS
from verif.rtl.players import DEPTHS
from verif.rtl.runner import build
from verif.rtl.soak import soak

MAX_MACS = 1e12


def main(argv=None) -> int:
    parser = Parser(prog="python bench/soak.py", description=__doc__.splitlines()[0])
    parser.add_argument("--macs", type=number(float, 1, MAX_MACS), default=1e7, help="MACs to check, at least")
    parser.add_argument("--array", default="16x16", help="ROWSxCOLS of the engine (B = A = 8, ACC = 32)")
    parser.add_argument("--simulator", choices=SIMULATORS, default="verilator")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    rows, cols = parse_array(args.array)
    cfg = EngineConfig(rows=rows, cols=cols, max_m=64, max_k=512, max_n=512)
    build(args.simulator, cfg, DEPTHS)
    result = soak(args.simulator, cfg, int(args.macs), args.seed, f"soak-seed{args.seed}")
    print(
        f"soak of the {rows}x{cols} Verilog on {args.simulator}, seed {result.seed}: {result.macs} MACs checked in "
        f"{result.commands} commands ({result.batches} batches, {result.aborted} cut off by a reset), "
        f"{result.cycles} cycles in {result.seconds:.1f} s ({result.cycles / result.seconds:.0f} cycles/s), "
        f"{len(result.mismatches)} mismatches"
    )
    for mismatch in result.mismatches[:20]:
        print(f"  {mismatch}")
    return 1 if result.mismatches else 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
