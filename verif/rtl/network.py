"""A network's engine commands on the Verilog, through the stream players, compared with the model and golden.

The commands of every layer are derived from the model's run (each layer's input is the previous layer's
model output), so all of them can run back to back in one simulation; if every layer's Verilog output
equals the model's, the Verilog run alone would have produced the same chain, layer by layer. Streams are
ideal, so every command's cycles must equal the model's (relative to its batch's first acceptance).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from contract.config import EngineConfig
from golden.export import Export
from golden.infer import layer_gemms, run_integer
from sim.command import Command, row_slices
from sim.network import run_batch
from verif.rtl.player_top import Depths
from verif.rtl.players import Batch, Capture, outputs_of, play, problems, split
from verif.rtl.runner import BUILD, build


@dataclass(frozen=True)
class NetworkCheck:
    simulator: str
    cfg: EngineConfig
    commands: list[Command]
    model_outputs: list[torch.Tensor]
    golden_outputs: list[torch.Tensor]  # golden layer outputs cut into the same row chunks
    batches: list[Batch]
    captures: list[Capture]
    seconds: float  # batch files, simulation and reading the captures back; the build excluded

    @property
    def total_cycles(self) -> int:
        """Simulated cycles of all batches (each from its reset to its last result beat and the drain)."""
        return sum(capture.status["cycles"] for capture in self.captures)

    @property
    def rtl_outputs(self) -> list[np.ndarray]:
        """Each command's [M, N] output as the Verilog computed it."""
        return [
            out for b, c in zip(self.batches, self.captures, strict=True) for out in outputs_of(self.cfg, b.commands, c)
        ]

    def mismatches(self) -> list[str]:
        """Every command whose model output differs from golden, and everything any batch on the Verilog does
        differently from the model: values, beat counts, handshakes, cycles."""
        found = []
        for index, command in enumerate(self.commands):
            if not torch.equal(self.model_outputs[index], self.golden_outputs[index]):
                found.append(
                    f"command {index} (k={command.wbits}): the cycle model differs from the golden integer path"
                )
        first = 0
        for number, (batch, capture) in enumerate(zip(self.batches, self.captures, strict=True)):
            outputs = [o.numpy() for o in self.model_outputs[first : first + len(batch.commands)]]
            found += [f"{self.simulator} batch {number}: {p}" for p in problems(self.cfg, batch, capture, outputs)]
            first += len(batch.commands)
        return found

    def logits_mismatches(self, export: Export, input_codes: torch.Tensor, ks: list[int]) -> list[str]:
        """The Verilog's logits (each image's last command, one image per pass and one command per layer)
        against golden's own chain of layers (golden.infer, host adds included), per image and k."""
        images, layers = len(input_codes), len(export.layers)
        if len(self.commands) != len(ks) * images * layers:
            raise ValueError("logits are located for one image per pass and one command per layer only")
        found = []
        for index, k in enumerate(ks):
            golden_logits = run_integer(export, input_codes, k)[0]
            for image in range(images):
                logits = torch.from_numpy(self.rtl_outputs[(index * images + image + 1) * layers - 1])
                if not torch.equal(logits[0], golden_logits[image]):
                    found.append(f"k={k} image {image}: the Verilog's logits differ from golden's")
        return found


def network_commands(cfg: EngineConfig, export: Export, input_codes: torch.Tensor, ks: list[int], batch: int):
    """Every layer command of `input_codes` at each k, with the model's and golden's output of each."""
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
    return commands, model_outputs, golden_outputs


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
    commands, model_outputs, golden_outputs = network_commands(cfg, export, input_codes, ks, batch)
    batches = [Batch(part, seed=index) for index, part in enumerate(split(cfg, commands, Depths()))]
    log(f"building the {cfg.rows}x{cfg.cols} engine in the stream players on {simulator} (cached under {BUILD})")
    build(simulator, cfg, Depths())
    log(f"{len(commands)} commands in {len(batches)} batches on {simulator}")
    start = time.perf_counter()
    captures = play(simulator, cfg, batches, run_name)
    seconds = time.perf_counter() - start
    return NetworkCheck(simulator, cfg, commands, model_outputs, golden_outputs, batches, captures, seconds)
