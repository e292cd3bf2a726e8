"""cocotb test that executes a file of engine commands on the Verilog and saves what came out.

Run through `verif.rtl.execute.execute_on_rtl`, never directly. With ideal streams (stall 0) the recorded
cycles are the ones the cycle-exact model must predict exactly.
"""

from __future__ import annotations

import json

import cocotb
import numpy as np

from contract.streams import STREAMS
from verif.rtl.bench import Bench, beats_to_outputs
from verif.rtl.execute import load_commands
from verif.rtl.scenario_file import load_scenario
from verif.stalls import Random


@cocotb.test()
async def execute(dut):
    cfg, scenario = load_scenario()
    commands = load_commands(scenario["commands"])
    bench = Bench(dut, cfg)
    bench.set_pauses({s: Random(scenario["stall"], scenario["seed"] + i) for i, s in enumerate(STREAMS)})
    await bench.start()
    observed = await bench.run(commands, scenario["seed"])
    outputs = beats_to_outputs(cfg, commands, observed.received)
    np.savez(scenario["outputs"], *outputs)
    with open(scenario["cycles"], "w") as file:
        json.dump(observed.spans(cfg, commands), file)
