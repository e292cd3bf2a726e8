"""pytest glue for the cocotb regression: simulator availability policy and result assertions.

A missing simulator is skipped on a developer machine but fails in CI (CI=true), so a CI run can never
pass by silently not running the RTL tests.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from contract.config import EngineConfig
from eda.tools import ToolError
from verif.rtl.runner import CocotbRun, check_simulator, run_cocotb, run_directory


def require_simulator(simulator: str) -> None:
    try:
        check_simulator(simulator)
    except ToolError as missing:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{missing}; CI requires every simulator", pytrace=False)
        pytest.skip(str(missing))


def failed_tests(directory: Path) -> list[str]:
    """'name: message' of each failed cocotb test, from the xunit result files of the run in `directory`."""
    failures = []
    for path in directory.glob("*.xml"):
        for case in ET.parse(path).iter("testcase"):
            for failure in (*case.iter("failure"), *case.iter("error")):
                failures.append(f"{case.get('name')}: {failure.get('message', '')}")
    return failures


def run(simulator: str, cfg: EngineConfig, test_module: str, testcases: list[str], scenario: dict) -> CocotbRun:
    """Run the cocotb tests `testcases` in one simulation and fail unless every one ran and passed."""
    require_simulator(simulator)
    run_name = f"seed{scenario['base_seed']}"
    try:
        result = run_cocotb(simulator, cfg, test_module, testcases, scenario, run_name)
    except SystemExit:  # what cocotb's runner does, under pytest, when a cocotb test failed
        directory = run_directory(simulator, cfg, run_name)
        failures = "\n  ".join(failed_tests(directory))
        pytest.fail(f"cocotb tests failed on {simulator} (run in {directory}):\n  {failures}", pytrace=False)
    assert result.tests == len(testcases), (
        f"{test_module} ran {result.tests} of {len(testcases)} cocotb tests (see {result.directory})"
    )
    assert result.failures == 0, f"{result.failures} of {result.tests} cocotb tests failed: {result.directory}"
    return result
