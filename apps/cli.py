"""`nestmac COMMAND ...`: one console script for every tool, each subcommand the same as its `python -m` form.

`nestmac --help` lists the subcommands (COMMANDS: generate, convert, train, export, evaluate, controller, run,
sweep, synth, report, board); `nestmac COMMAND --help` shows that tool's flags. A subcommand's module is
imported only when it runs, so `nestmac generate` works on a base install (no torch) and `nestmac --help` is
instant. The old `python -m` forms keep working unchanged, and name themselves so in their usage lines.
"""

from __future__ import annotations

import importlib
import sys

from contract.cli import INVOKED_AS, Parser, run_main

#: Subcommand -> (module whose main() runs it, one line of what it does).
COMMANDS = {
    "generate": ("hw.generate", "Verilog + manifest of an engine"),
    "convert": ("golden.convert", "a float PyTorch model's converted graph and engine GEMMs"),
    "train": ("golden.train", "nested training at every precision"),
    "export": ("golden.export", "a checkpoint as integer codes (model.json + model.npz)"),
    "evaluate": ("golden.evaluate", "accuracy per k, float against integer"),
    "controller": ("golden.train_controller", "DQT's run-time precision controller"),
    "run": ("apps.run", "a test set through the engine per precision policy"),
    "sweep": ("apps.sweep", "design-space sweep (synthesis, energy, accuracy)"),
    "report": ("apps.report", "one self-contained HTML page of a run and its synthesis reports"),
    "synth": ("eda.synth", "Yosys + nextpnr or gate-level area of one engine"),
    "board": ("eda.board", "a bitstream of the engine or the SoC wrapper for an FPGA board"),
}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = Parser(prog="nestmac", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "command",
        choices=COMMANDS,
        metavar="COMMAND",
        help="; ".join(f"{name}: {what}" for name, (_, what) in COMMANDS.items()),
    )
    # Only the command is parsed here: everything after it, --help included, is the subcommand's.
    if not argv or argv[0] not in COMMANDS:
        parser.parse_args(argv[:1])
    name, rest = argv[0], argv[1:]
    module = importlib.import_module(COMMANDS[name][0])
    token = INVOKED_AS.set(f"nestmac {name}")
    try:
        module.main(rest)
    finally:
        INVOKED_AS.reset(token)


def entry() -> None:
    """The console script's entry point (pyproject.toml [project.scripts])."""
    sys.exit(run_main(main))


if __name__ == "__main__":
    entry()
