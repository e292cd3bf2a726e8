"""Kill a writer at random points, by SIGKILL and by SIGINT, and check the old-or-new rule (issue 14).

The writer is a child process that writes a directory output through contract.cli's policy, slowly: a pause
after each file and after each rename, so random kill times land in every phase, between the two renames
of the swap included. After every kill, a complete output, the earlier one or the new one, must exist at
the path or under the documented staging name `.NAME.nestmac-old-PID`; the next run finishes the recovery.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from contract.cli import MARKER

FILES = 4
WRITER = f"""
import os, sys, time
from contract.cli import atomic_dir, run_main

rename = os.rename
def slow_rename(*args):
    rename(*args)
    time.sleep(0.03)
os.rename = slow_rename  # widen the window between the swap's two renames

def main(argv):
    out, version = argv
    print("ready", flush=True)  # past interpreter start-up, where a SIGINT is Python's, not the tool's
    with atomic_dir(out, "writer", "test") as staging:
        for index in range({FILES}):
            (staging / f"part{{index}}").write_text(version)
            time.sleep(0.01)

sys.exit(run_main(main, sys.argv[1:]))
"""


def start_writer(out: Path, version: int) -> subprocess.Popen:
    env = os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(out), str(version)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def complete_version(directory: Path) -> int | None:
    """The version of a complete output in `directory`, or None if it is not one."""
    if not (directory / MARKER).is_file():
        return None
    parts = {(directory / f"part{index}").read_text() for index in range(FILES)}
    assert len(parts) == 1, f"{directory} mixes versions {parts}"
    return int(parts.pop())


def surviving_versions(out: Path) -> set[int]:
    candidates = [out, *out.parent.glob(f".{out.name}.nestmac-old-*")]
    return {version for path in candidates if path.is_dir() and (version := complete_version(path)) is not None}


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_old_or_new_output_survives_a_kill_at_any_point(tmp_path, sig):
    rng = random.Random(14)
    out = tmp_path / "out"
    assert start_writer(out, 0).wait() == 0
    current = 0
    for version in range(1, 13):
        writer = start_writer(out, version)
        assert writer.stdout.readline() == "ready\n"
        time.sleep(rng.uniform(0, 0.15))  # writing takes 0.04 s, the swap 0.06 s: every phase, then done
        writer.send_signal(sig)
        code = writer.wait()
        stderr = writer.stderr.read()
        if sig == signal.SIGINT and code != 0:
            assert (code, stderr) in ((130, "error: interrupted\n"), (-signal.SIGINT, "")), stderr
        survivors = surviving_versions(out)
        assert survivors & {current, version}, f"kill {version}: both outputs lost"
        current = version if complete_version(out) == version else current
    assert start_writer(out, 99).wait() == 0  # the next run recovers and cleans whatever was left
    assert complete_version(out) == 99 and sorted(p.name for p in tmp_path.iterdir()) == ["out"]
