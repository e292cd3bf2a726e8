"""A network's engine commands on the Verilog, compared layer by layer with the model and golden.

The commands of every layer are derived from the model's run (each layer's input is the previous layer's
model output), so all of them can run back to back in one simulation; if every layer's Verilog output
equals the model's, the Verilog run alone would have produced the same chain, layer by layer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from contract.config import EngineConfig
from golden.export import Export
from golden.infer import layer_gemms
from sim.command import Command, row_slices
from sim.model import EngineModel
from sim.network import run_batch
from verif.rtl.execute import RtlExecution, execute_on_rtl
from verif.rtl.runner import BUILD, build


@dataclass(frozen=True)
class NetworkCheck:
    simulator: str
    commands: list[Command]
    model_outputs: list[torch.Tensor]
    golden_outputs: list[torch.Tensor]  # golden layer outputs cut into the same row chunks
    rtl: RtlExecution
    modelled_cycles: list[tuple[int, int]]
    seconds: float  # simulation only, the build excluded

    @property
    def total_cycles(self) -> int:
        return self.modelled_cycles[-1][1] + 1

    def mismatches(self) -> list[str]:
        """Every command whose Verilog output or cycles differ from the model, or model from golden."""
        found = []
        for index, command in enumerate(self.commands):
            where = f"command {index} (k={command.wbits}, {command.m}x{command.k_dim}x{command.n})"
            if not torch.equal(self.model_outputs[index], self.golden_outputs[index]):
                found.append(f"{where}: the cycle model differs from the golden integer path")
            if not torch.equal(torch.from_numpy(self.rtl.outputs[index]), self.model_outputs[index]):
                found.append(f"{where}: the {self.simulator} output differs from the model")
            if self.rtl.cycles[index] != self.modelled_cycles[index]:
                found.append(
                    f"{where}: {self.simulator} cycles {self.rtl.cycles[index]} != model {self.modelled_cycles[index]}"
                )
        return found


def check_network_on_rtl(
    simulator: str,
    cfg: EngineConfig,
    export: Export,
    input_codes: torch.Tensor,
    ks: list[int],
    batch: int,
    run_name: str,
    log=print,
) -> NetworkCheck:
    commands, model_outputs, golden_outputs = [], [], []
    for k in ks:
        for first in range(0, len(input_codes), batch):
            images = input_codes[first : first + batch]
            for command, output in run_batch(cfg, export, images, k).log:
                commands.append(command)
                model_outputs.append(output)
            golden_outputs += [
                layer.output[rows] for layer in layer_gemms(export, images, k) for rows in row_slices(cfg, layer.gemm.M)
            ]
    log(f"building the {cfg.rows}x{cfg.cols} engine on {simulator} (cached under {BUILD})")
    build(simulator, cfg)
    start = time.perf_counter()
    rtl = execute_on_rtl(simulator, cfg, commands, run_name)
    seconds = time.perf_counter() - start
    modelled = [result.span for result in EngineModel(cfg).run(commands)]
    return NetworkCheck(simulator, commands, model_outputs, golden_outputs, rtl, modelled, seconds)
