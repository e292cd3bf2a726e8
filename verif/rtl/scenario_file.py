"""The scenario a cocotb run gets, as a JSON file named in an environment variable.

`verif.rtl.runner` writes it; the test modules read it inside the simulator, which starts a Python of its
own. This module imports nothing heavy (no amaranth, no cocotb runner), so a test module that needs only
the scenario starts in a fraction of a second.
"""

from __future__ import annotations

import json
import os

from contract.config import EngineConfig

#: The environment variable that names the scenario file.
SCENARIO_VARIABLE = "NESTMAC_SCENARIO"


def load_scenario() -> tuple[EngineConfig, dict]:
    """Inside a cocotb test: the configuration and scenario that `verif.rtl.runner.run_cocotb` was given."""
    with open(os.environ[SCENARIO_VARIABLE]) as file:
        scenario = json.load(file)
    return EngineConfig(**scenario["config"]), scenario
