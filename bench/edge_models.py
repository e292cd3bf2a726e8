"""Engine and host cost per image of the torchvision-equivalent edge models (tests/edge_models.py) on a 16x16
engine, as rtl_tests/test_edge_models_rtl.py runs them: mobilenet_v2 at width 0.1 (last conv 320 wide) and
resnet18 at width 4, 3x16x16 inputs, untrained (costs depend on the shapes only).

Per model and k: engine commands (a depthwise layer is one per group), engine cycles of the cycle model back to
back, MACs and the array's MAC utilisation, and the host's cycles for its adds (linear or not) and poolings
(sim.host: one operation per cycle). Prints figures; asserts nothing.
Usage: PYTHONPATH=. python bench/edge_models.py [--k 8 2]
"""

from __future__ import annotations

import torch

import tests.edge_models as edge_models
from contract.cli import Parser, run_main
from contract.policy import Policy
from golden.convert import convert
from golden.export import build_export
from golden.layers import QuantSpec
from sim.network import run_batch
from verif.configs import NETWORK

MODELS = ("MobileNetV2Small", "ResNet18Small")
SHAPE = (3, 16, 16)


def main(argv: list[str] | None = None) -> None:
    parser = Parser(prog="python bench/edge_models.py", description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, nargs="+", default=[8, 2], help="weight precisions (every layer alike)")
    args = parser.parse_args(argv)
    macs_per_cycle = NETWORK.rows * NETWORK.cols
    for name in MODELS:
        torch.manual_seed(0)
        model = convert(getattr(edge_models, name)().eval(), QuantSpec("truncquant", "offset"), SHAPE)
        export = build_export(model.eval())
        codes = torch.randint(0, 256, (1, *SHAPE))
        for k in args.k:
            run = run_batch(NETWORK, export, codes, Policy("uniform", (k,)).resolve(export))
            print(
                f"{name} k={k}: {len(run.log)} engine commands, {run.cycles} engine cycles, {run.macs} MACs, "
                f"utilisation {run.macs / (run.cycles * macs_per_cycle):.1%} of the {NETWORK.rows}x{NETWORK.cols} "
                f"array; host {run.host.cycles} cycles for {run.host.elements} output elements"
            )


if __name__ == "__main__":
    raise SystemExit(run_main(main))
