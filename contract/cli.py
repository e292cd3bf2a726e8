"""What every golden command-line tool shares: one-line errors with exit code 2, and atomic outputs.

A user who passes a bad file or flag must see one line starting with `error:` and exit status 2, never
a traceback; and an interrupted or failed run must never leave a half-written model or export behind,
because the hardware flow would happily read it later.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from contract.numerics import NumericsError


class CommandError(Exception):
    """Anything a command-line tool reports as one `error:` line with exit status 2."""


class InputError(CommandError, ValueError):
    """Bad user input (file, flag or model contents)."""


class Parser(argparse.ArgumentParser):
    """argparse whose usage errors are a single `error: ...` line (argparse already exits with 2)."""

    def error(self, message: str):
        self.exit(2, f"error: {one_line(message)}\n")


def one_line(message: object) -> str:
    return " ".join(str(message).split())


def run_main(main: Callable[[list[str] | None], None], argv: list[str] | None = None) -> int:
    """Run a CLI body, turning the expected failures into `error: ...` and exit status 2."""
    try:
        main(argv)
    except (CommandError, NumericsError) as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:
        # Missing files, permissions, full disks: the OS message with the file name is the useful part.
        where = f": {exc.filename}" if exc.filename else ""
        print(f"error: {one_line(exc.strerror or exc)}{where}", file=sys.stderr)
        return 2
    return 0


def require_extra(module: str, extra: str) -> None:
    """Raise CommandError naming the extra to install when an optional dependency is missing."""
    if importlib.util.find_spec(module) is None:
        raise CommandError(f"{module} is not installed; this command needs: pip install 'nestmac[{extra}]'")


def parse_bits(text: str, base_bits: int) -> list[int]:
    """'8,6,4' -> [8, 6, 4], each a weight precision in 1..base_bits."""
    try:
        bits = [int(part) for part in text.split(",")]
    except ValueError:
        raise InputError(f"--bits must be a comma-separated list of integers, got {text!r}") from None
    bad = [k for k in bits if not 1 <= k <= base_bits]
    if bad:
        raise InputError(f"--bits: precision {bad[0]} is outside 1..{base_bits} (the model's base bits)")
    return bits


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory next to `path`; it replaces `path` (if any) only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    old = path.parent / f".{path.name}.old"
    try:
        yield tmp
        if path.exists():
            # A directory cannot be renamed onto a non-empty one: move the old one aside first.
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
