"""The coverage reports written during this pytest session, in the terminal summary (also under xdist,
where the tests that write them run in worker processes)."""

from __future__ import annotations

import time

from verif.rtl.runner import BUILD

COVERAGE = BUILD.parent.resolve() / "coverage"
_START = time.time()


def pytest_terminal_summary(terminalreporter):
    reports = [p for p in sorted(COVERAGE.glob("*/*.txt")) if p.stat().st_mtime >= _START]
    if reports:
        terminalreporter.section("functional coverage")
        for path in reports:
            terminalreporter.write_line(path.read_text().rstrip())
