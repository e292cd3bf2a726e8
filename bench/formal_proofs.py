"""Run the formal proofs deeper than the test suite does, and print each verdict and its time.

python bench/formal_proofs.py --depth 26              # the engine: two whole commands under any stalls (~10 min)
python bench/formal_proofs.py --only output --output-depth 13   # the output path: descriptors of 5 steps (~3 min)

The output path's proof (verif/formal_output.py) about doubles in time with each step of depth: 11 steps take
about 50 s (the test suite's), 13 about 165 s.
"""

from __future__ import annotations

import sys
import time

from contract.cli import Parser, number, run_main
from contract.paths import build_dir
from verif.formal import FORMAL_CONFIG, ProtocolHarness, prove
from verif.formal_output import OutputHarness


def main(argv=None):
    parser = Parser(prog="python bench/formal_proofs.py", description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=number(int, 1, 200), default=26, help="BMC depth of the engine's proofs")
    parser.add_argument(
        "--output-depth", type=number(int, 1, 200), default=13, help="BMC depth of the output path's proof"
    )
    parser.add_argument(
        "--only", choices=("engine", "output"), help="run only the engine's or the output path's (default: both)"
    )
    args = parser.parse_args(argv)
    runs = []
    if args.only != "output":
        runs += [
            ("protocol", ProtocolHarness(FORMAL_CONFIG, zero_data=True), "bmc", args.depth),
            ("payload", ProtocolHarness(FORMAL_CONFIG), "bmc", args.depth),
            ("cover", ProtocolHarness(FORMAL_CONFIG, free_reset=True, zero_data=True), "cover", args.depth),
        ]
    if args.only != "engine":
        runs.append(("output", OutputHarness(), "bmc", args.output_depth))
    for name, harness, mode, depth in runs:
        start = time.perf_counter()
        result = prove(harness, name, mode, depth, build_dir("formal", f"depth{depth}", name))
        print(f"{result.summary()} in {time.perf_counter() - start:.0f} s (log: {result.log})", flush=True)


if __name__ == "__main__":
    sys.exit(run_main(main))
