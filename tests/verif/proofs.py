"""What the formal tests share: run a proof and require its verdict, printing it and the log's path."""

from __future__ import annotations

from verif.formal import prove


def check(harness, name, mode, depth, tmp_path, want=True):
    """Run SymbiYosys on `harness` (`mode` bmc or cover, `depth` steps) and require PASS, or FAIL if not `want`."""
    result = prove(harness, name, mode, depth, tmp_path / name)
    print(result.summary())
    assert result.passed == want, f"{result.summary()}, expected {'PASS' if want else 'FAIL'}; log: {result.log}"
