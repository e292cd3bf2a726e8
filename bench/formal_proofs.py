"""Run the stream-protocol proofs of verif/formal.py deeper than the test suite does, and print each verdict.

python bench/formal_proofs.py --depth 26      # two whole commands under any stalls (about 10 minutes)
"""

from __future__ import annotations

import sys
import time

from contract.cli import Parser, number, run_main
from contract.paths import build_dir
from verif.formal import FORMAL_CONFIG, ProtocolHarness, prove


def main(argv=None):
    parser = Parser(prog="python bench/formal_proofs.py", description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=number(int, 1, 200), default=26, help="BMC depth in cycles")
    args = parser.parse_args(argv)
    runs = [
        ("protocol", ProtocolHarness(FORMAL_CONFIG, zero_data=True), "bmc"),
        ("payload", ProtocolHarness(FORMAL_CONFIG), "bmc"),
        ("cover", ProtocolHarness(FORMAL_CONFIG, free_reset=True, zero_data=True), "cover"),
    ]
    for name, harness, mode in runs:
        start = time.perf_counter()
        result = prove(harness, name, mode, args.depth, build_dir("formal", f"depth{args.depth}", name))
        print(f"{result.summary()} in {time.perf_counter() - start:.0f} s (log: {result.log})", flush=True)


if __name__ == "__main__":
    sys.exit(run_main(main))
