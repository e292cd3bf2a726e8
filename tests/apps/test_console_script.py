"""`nestmac COMMAND`: every tool under one console script, each the same as its `python -m` form."""

from __future__ import annotations

import importlib
import tomllib
from pathlib import Path

import pytest

from apps.cli import COMMANDS, main
from contract.cli import run_main

ROOT = Path(__file__).resolve().parents[2]


def test_the_script_is_installed_from_pyproject():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"nestmac": "apps.cli:entry"}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_subcommand_is_its_module_named_as_typed(name, capsys):
    assert run_main(main, [name, "--help"]) == 0
    usage = capsys.readouterr().out
    assert usage.startswith(f"usage: nestmac {name} ")
    module = importlib.import_module(COMMANDS[name][0])
    assert run_main(module.main, ["--help"]) == 0  # the python -m form keeps its own name
    assert capsys.readouterr().out.startswith(f"usage: python -m {COMMANDS[name][0]} ")


def test_the_help_lists_every_subcommand_and_a_wrong_one_is_one_error(capsys):
    assert run_main(main, ["--help"]) == 0
    listing = " ".join(capsys.readouterr().out.split())
    assert all(f"{name}: {what}" in listing for name, (_, what) in COMMANDS.items())
    for argv, message in (([], "required: COMMAND"), (["simulate"], "invalid choice: 'simulate'")):
        assert run_main(main, argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1


def test_a_subcommand_error_is_the_tools_own(capsys, tmp_path):
    assert run_main(main, ["generate", "--array", "0x16", "-o", str(tmp_path / "g")]) == 2
    assert capsys.readouterr().err.startswith("error: --array rows must be an integer in 1..48")
    assert not (tmp_path / "g").exists()
