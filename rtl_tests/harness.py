"""pytest glue for the cocotb regression: simulator availability policy and result assertions.

A missing simulator is skipped on a developer machine but fails in CI (CI=true), so a CI run can never
pass by silently not running the RTL tests.
"""

from __future__ import annotations

import os

import pytest

from contract.config import EngineConfig
from eda.tools import ToolError
from verif.rtl.runner import check_simulator, run_cocotb


def require_simulator(simulator: str) -> None:
    try:
        check_simulator(simulator)
    except ToolError as missing:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{missing}; CI requires every simulator", pytrace=False)
        pytest.skip(str(missing))


def run(simulator: str, cfg: EngineConfig, test_module: str, testcases: list[str], scenario: dict) -> None:
    """Run the cocotb tests `testcases` in one simulation and fail unless every one ran and passed."""
    require_simulator(simulator)
    result = run_cocotb(simulator, cfg, test_module, testcases, scenario, f"seed{scenario['seed']}")
    assert result.tests == len(testcases), (
        f"{test_module} ran {result.tests} of {len(testcases)} cocotb tests (see {result.directory})"
    )
    assert result.failures == 0, (
        f"{result.failures} of {result.tests} cocotb tests failed, scenario "
        f"{result.scenario}; the cocotb log above names them and their assertion"
    )
