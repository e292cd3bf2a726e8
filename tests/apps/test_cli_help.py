"""Every command's `--help` states each option's default, so a user can tell what a run without the flag does."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import pytest

from contract.cli import DefaultsFormatter, Parser, shows_default

ROOT = Path(__file__).resolve().parents[2]
MODULES = ["hw.generate", "golden.train", "golden.export", "golden.evaluate", "golden.train_controller", "apps.run"]
MODULES += ["apps.sweep", "eda.synth", "golden.convert", "apps.report", "eda.board"]
BENCHES = sorted(path.name for path in (ROOT / "bench").glob("*.py") if "def main(" in path.read_text())


class Built(Exception):
    """Raised from parse_args to hand the test the parser a CLI built, before the CLI does any work."""

    def __init__(self, parser: argparse.ArgumentParser):
        self.parser = parser


def parser_of(main) -> argparse.ArgumentParser:
    def capture(self, args=None, namespace=None):
        raise Built(self)

    original = Parser.parse_args
    Parser.parse_args = capture
    try:
        main([])
    except Built as built:
        return built.parser
    finally:
        Parser.parse_args = original
    raise AssertionError(f"{main.__module__}.main never parsed its arguments")


def bench_main(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name[:-3]}", ROOT / "bench" / name)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.main


@pytest.mark.parametrize("name", MODULES + BENCHES)
def test_help_names_every_option_default(name):
    main = bench_main(name) if name.endswith(".py") else importlib.import_module(name).main
    parser = parser_of(main)
    formatter = DefaultsFormatter(parser.prog)
    undocumented = []
    for action in parser._actions:
        if not action.option_strings or action.nargs == 0 or action.required or action.help == argparse.SUPPRESS:
            continue  # positionals, flags (off unless given), --help and required options have no default
        text = formatter._expand_help(action)
        if "default" not in text.lower():
            undocumented.append(action.option_strings[-1])
        if shows_default(action):
            assert f"(default: {action.default})" in text or "default" in (action.help or "").lower(), text
    assert not undocumented, f"{name}: --help names no default for {', '.join(undocumented)}"


def test_the_default_is_appended_once(capsys):
    parser = Parser(prog="tool")
    parser.add_argument("--depth", type=int, default=7, help="how deep")
    parser.add_argument("--width", type=int, default=3, help="how wide (default 3: one lane per byte)")
    parser.add_argument("--fast", action="store_true", help="go fast")
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "how deep (default: 7)" in out
    assert "how wide (default 3: one lane per byte) " in out and "(default: 3)" not in out
    assert "go fast (default" not in out
