"""What every command-line tool shares: one-line errors with exit code 2, checked inputs, and one output policy.

A user who passes a bad file or flag must see one line starting with `error:` and exit status 2, never
a traceback; and an interrupted or failed run must never leave a half-written model or export behind,
because the hardware flow would happily read it later.

The output policy (README, "Outputs"): a tool writes only to a new path or over an output it
wrote itself earlier (a directory holding its MARKER file, or for single files one its `ours` test accepts),
never over or around an input, and refuses anything else before doing any work. A directory is built in a
hidden sibling `.NAME.nestmac-new-PID` and swapped in with two renames, the earlier output waiting as
`.NAME.nestmac-old-PID` in between, so at every instant the old or the new complete output exists, at the path or
under that name; the next run of any tool on the same path puts such an old output back if the path is
empty, and deletes the staging left by dead runs. Everything written follows the umask.
"""

from __future__ import annotations

import argparse
import contextlib
import contextvars
import importlib.util
import json
import math
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from contract.errors import NestmacError


class CommandError(NestmacError):
    """A command that cannot do what it was asked (a missing extra, a failed tool, failed sweep points)."""


class InputError(CommandError, ValueError):
    """Bad user input (file, flag or model contents)."""


class DefaultsFormatter(argparse.HelpFormatter):
    """Help that ends each option's text with its default, so `--help` says what a run without the flag does.

    An option whose help already names its default (a computed one, such as "default: the model's B") keeps
    its own words; on/off flags and required options have no default to show."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if not shows_default(action) or "default" in text.lower():
            return text
        return f"{text} (default: %(default)s)".lstrip()


def shows_default(action: argparse.Action) -> bool:
    """Whether `action` is an option with a default worth stating (not --help, a flag, or a required one)."""
    return bool(
        action.option_strings
        and not action.required
        and action.default is not None
        and action.default is not argparse.SUPPRESS
        and action.nargs != 0  # store_true/store_false/store_const: a flag is off unless given
    )


#: How the running command was invoked, when not as its own `python -m` module: the `nestmac` console
#: script sets "nestmac run" etc., so that usage lines and --help name what the user typed.
INVOKED_AS: contextvars.ContextVar[str | None] = contextvars.ContextVar("invoked_as", default=None)


class Parser(argparse.ArgumentParser):
    """argparse whose usage errors are a single `error: ...` line (argparse already exits with 2), whose
    `--help` shows every option's default (DefaultsFormatter), and whose program name is the one the user
    typed (INVOKED_AS)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", DefaultsFormatter)
        if INVOKED_AS.get() is not None:
            kwargs["prog"] = INVOKED_AS.get()
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(2, f"error: {one_line(message)}\n")


def add_base_bits(parser: argparse.ArgumentParser, kind: Callable = int, *, show_alias: bool = False, **options):
    """--base-bits, B (the stored weight code's bits), the one name every tool gives it; run-time precisions k
    are --bits (apps.run, golden.evaluate). `--bits` stays an alias where it meant B before, shown only where
    it is documented (`python -m hw.generate --bits 8 --array 16x16`) and hidden elsewhere, so old commands
    keep working."""
    names = ("--base-bits", "--bits") if show_alias else ("--base-bits",)
    parser.add_argument(*names, dest="base_bits", type=kind, **options)
    if not show_alias:
        parser.add_argument("--bits", dest="base_bits", type=kind, help=argparse.SUPPRESS)


def number(kind: type, lo: float, hi: float, *, above: bool = False) -> Callable[[str], float]:
    """An argparse `type`: a finite `kind` in [lo, hi] (or (lo, hi] if `above`), so a bad value (nan, inf,
    out of range) is refused with its range before any work starts rather than failing deep inside it."""

    def parse(text: str):
        try:
            value = kind(text)
        except (ValueError, OverflowError):
            raise argparse.ArgumentTypeError(f"expected {kind.__name__}, got {text!r}") from None
        if not math.isfinite(value) or not lo <= value <= hi or (above and value == lo):
            span = f"an integer in {lo}..{hi}" if kind is int else f"a number in {'(' if above else '['}{lo}, {hi}]"
            raise argparse.ArgumentTypeError(f"must be {span}, got {text!r}")
        return value

    return parse


def one_line(message: object) -> str:
    return " ".join(str(message).split())


def run_main(main: Callable[[list[str] | None], None], argv: list[str] | None = None) -> int:
    """Run a CLI body, turning the expected failures into `error: ...` and exit status 2; the exit status."""
    try:
        main(argv)
    except SystemExit as exc:  # argparse: usage errors (already printed as one line) and --help
        return int(exc.code or 0)
    except KeyboardInterrupt:
        # Ctrl-C is a request, not a fault: one line, the shell's status for SIGINT, and the output policy
        # has already put any earlier output back.
        print("error: interrupted", file=sys.stderr)
        return 130
    except NestmacError as exc:
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


# --- JSON from users ----------------------------------------------------------------------------------

JSON_MAX_BYTES = 64 << 20
JSON_MAX_DEPTH = 32
JSON_MAX_DIGITS = 40
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def read_json(path: Path, max_bytes: int = JSON_MAX_BYTES) -> object:
    """Parse a JSON file a user handed us; InputError (one line) for anything that is not plain, finite JSON of
    sane size: more than max_bytes, nested deeper than JSON_MAX_DEPTH (the parser would overflow the stack),
    integers longer than JSON_MAX_DIGITS (Python refuses to convert them), NaN or Infinity."""
    try:
        if path.stat().st_size > max_bytes:
            raise InputError(f"{path} is larger than {max_bytes >> 20} MiB")
        text = path.read_text()
    except FileNotFoundError:
        raise InputError(f"{path} not found") from None
    except UnicodeDecodeError:
        raise InputError(f"{path} is not valid JSON (not UTF-8 text)") from None
    except OSError as exc:
        raise InputError(f"{path} cannot be read ({exc.strerror})") from None
    depth = deepest = 0
    for bracket in re.findall(r"[\[\]{}]", _JSON_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    if deepest > JSON_MAX_DEPTH:
        raise InputError(f"{path} is nested deeper than {JSON_MAX_DEPTH} levels")
    try:
        return json.loads(text, parse_int=_json_int, parse_constant=_json_constant)
    except ValueError as exc:  # JSONDecodeError, and the refusals below
        raise InputError(f"{path} is not valid JSON ({one_line(exc)})") from None


def _json_int(text: str) -> int:
    if len(text.lstrip("-")) > JSON_MAX_DIGITS:
        raise ValueError(f"an integer has more than {JSON_MAX_DIGITS} digits")
    return int(text)


def _json_constant(text: str) -> float:
    raise ValueError(f"{text} is not a number")


# --- the output policy ----------------------------------------------------------------------------------

MARKER = ".nestmac-output"
#: A marker is the tool, the format and a default output's run settings: a few hundred characters; more is not ours.
MARKER_MAX_CHARS = 1 << 16
_STAGING = re.compile(r"\.(?P<name>.+)\.nestmac-(?P<kind>new|old|tmp)-(?P<pid>\d+)")


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, tool: str, fmt: str, inputs=(), run: dict | None = None) -> Iterator[Path]:
    """Yield an empty staging directory; when the block succeeds it becomes `path`, replacing an earlier output
    of the same tool and format. Anything else at `path` is refused (InputError) before the block runs.

    `run` describes what a default output holds (a JSON object, recorded in the marker): a tool that writes to
    a default path passes it, so that a run of different settings refuses to replace the earlier results
    rather than silently losing them; an earlier output that recorded no run (written with an explicit -o, or
    before runs were recorded) is replaced as before."""
    path = _prepare(path, inputs)
    run = None if run is None else json.loads(json.dumps(run))  # as it reads back: tuples become lists
    replacing = _claim_dir(path, tool, fmt, run)
    path.parent.mkdir(parents=True, exist_ok=True)
    new, old = _staging(path, "new"), _staging(path, "old")
    os.mkdir(new)
    try:
        yield new
        marker = {"tool": tool, "format": fmt} | ({} if run is None else {"run": run})
        (new / MARKER).write_text(json.dumps(marker) + "\n")  # last: marks it complete
        if replacing:
            os.rename(path, old)
        os.rename(new, path)
    finally:
        if os.path.lexists(old) and not os.path.lexists(path):
            os.rename(old, path)  # stopped between the two renames: the earlier output goes back
        _discard(new)
        _discard(old)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, ours: Callable[[Path], bool], inputs=()) -> Iterator[Path]:
    """Yield a staging file next to `path`; it replaces `path` (one atomic rename) only if the block succeeds.
    An existing `path` must be a regular file that `ours` recognises as an earlier output of this tool."""
    path = claim_file(path, ours, inputs)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _staging(path, "tmp")
    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))  # 0o666 & ~umask, unlike mkstemp
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        _discard(tmp)


def claim_file(path: str | os.PathLike, ours: Callable[[Path], bool], inputs=()) -> Path:
    """The absolute `path` if atomic_file may write it, else InputError: for tools that work long before they
    write, to refuse a bad output path before the work rather than after."""
    path = _prepare(path, inputs)
    if os.path.lexists(path) and (path.is_symlink() or not path.is_file() or not ours(path)):
        raise InputError(f"{path} exists and is not an earlier output of this tool; choose a new path")
    return path


def _prepare(path: str | os.PathLike, inputs) -> Path:
    """The absolute output path, once it is known not to be or contain an input and what interrupted runs left
    next to it is recovered."""
    path = Path(os.path.abspath(path))
    for given in inputs:
        source = Path(given).resolve()
        if path.resolve() == source or path.resolve() in source.parents:
            raise InputError(f"the output {path} is or contains the input {given}; choose another output path")
    container = next(parent for parent in path.parents if os.path.lexists(parent))
    if not container.is_dir():
        raise InputError(f"{container} is a file, so the output {path} cannot go inside it")
    _recover(path)
    return path


def _claim_dir(path: Path, tool: str, fmt: str, run: dict | None) -> bool:
    """Whether `path` exists and may be replaced: absent (False), or an empty directory or an earlier output of
    this tool and format, of the same `run` if both record one (True); InputError for anything else."""
    if not os.path.lexists(path):
        return False
    if path.is_symlink() or not path.is_dir():
        raise InputError(f"{path} exists and is not a directory; choose a new output path")
    marker = _read_marker(path)
    if marker is None and not any(path.iterdir()):
        return True
    if marker is not None and (marker.get("tool"), marker.get("format")) == (tool, fmt):
        earlier = marker.get("run")
        if run is None or earlier is None or earlier == run:
            return True
        earlier = earlier if isinstance(earlier, dict) else {}
        changed = ", ".join(sorted(key for key in {*run, *earlier} if run.get(key) != earlier.get(key)))
        raise InputError(
            f"{path} holds the results of a different {tool} run (other {changed}); pass -o DIR to write this one "
            "elsewhere, or delete it"
        )
    whose = f"written by {marker.get('tool')} ({marker.get('format')})" if marker else "not written by a nestmac tool"
    raise InputError(f"{path} is a non-empty directory {whose}; {tool} writes only a new path or its own output")


def _read_marker(directory: Path) -> dict | None:
    try:
        marker = json.loads((directory / MARKER).read_text()[:MARKER_MAX_CHARS])
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def _staging(path: Path, kind: str, pid: int | None = None) -> Path:
    return path.parent / f".{path.name}.nestmac-{kind}-{os.getpid() if pid is None else pid}"


def _recover(path: Path) -> None:
    """Finish what interrupted runs on `path` left behind: put back an earlier output that was moved aside
    when nothing replaced it, then delete every staging sibling of a run that is no longer alive."""
    stale = []
    for entry in path.parent.iterdir() if path.parent.is_dir() else ():
        match = _STAGING.fullmatch(entry.name)
        if match and match["name"] == path.name and not _alive(int(match["pid"])):
            stale.append((match["kind"], entry))
    # Old outputs first, so one is put back before any staged new output is deleted.
    for kind, entry in sorted(stale, key=lambda item: item[0] != "old"):
        if kind == "old" and not os.path.lexists(path) and _read_marker(entry) is not None:
            os.rename(entry, path)
        else:
            _discard(entry)


def _alive(pid: int) -> bool:
    """Whether a process that may still be writing a staging entry runs (this process is not: it has none yet)."""
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _discard(entry: Path) -> None:
    """Delete a staging entry. A directory loses its completion marker first (one atomic unlink), so a deletion
    stopped halfway leaves something that is never taken for a complete output, only deleted later."""
    if entry.is_dir() and not entry.is_symlink():
        with contextlib.suppress(FileNotFoundError):
            (entry / MARKER).unlink()
        shutil.rmtree(entry)
    elif os.path.lexists(entry):
        entry.unlink()
