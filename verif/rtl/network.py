"""A network's engine commands on the Verilog, through the stream players, compared with the model and golden.

The commands of every layer are derived from the model's run (each layer's input is the previous layer's
model output), so all of them can run back to back in one simulation; if every layer's Verilog output
equals the model's, the Verilog run alone would have produced the same chain, layer by layer. Streams are
ideal, so every command's cycles must equal the model's (relative to its batch's first acceptance).

A policy (contract.policy.ResolvedPolicy) is one k per GEMM layer or a run-time controller
(sim.network.lower_policy): under a
controller each image's layers run at the k it chose, so consecutive commands change precision wherever
the images' choices differ. What such a change costs is measured, not assumed (`NetworkCheck.transitions`):
the Verilog's cycles between consecutive commands against the formula, which charges a command the same
cycles whatever precision ran before it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from contract.config import EngineConfig
from contract.model_format import Export
from contract.policy import ResolvedPolicy
from contract.timing import overlap_cycles
from golden.infer import execute_golden
from sim.command import Command, row_slices
from sim.model import command_cycles
from sim.network import infer, lower_policy, run_batch
from verif.rtl.player_top import Depths
from verif.rtl.players import Batch, Capture, outputs_of, play, problems, spans, split
from verif.rtl.runner import BUILD, SIMULATION_LOG, build, run_directory


@dataclass(frozen=True)
class NetworkCheck:
    simulator: str
    cfg: EngineConfig
    commands: list[Command]
    model_outputs: list[torch.Tensor]
    golden_outputs: list[torch.Tensor]  # golden layer outputs cut into the same row chunks
    pass_ends: list[int]  # the index after each pass's last command
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

    def logits_mismatches(self, export: Export, input_codes: torch.Tensor, policies: list[ResolvedPolicy]) -> list[str]:
        """The Verilog's logits (the last command of each one-image pass) against golden's batched integer
        path (golden.fastpath, or golden.dynamic's under a controller), per image and policy."""
        if len(self.pass_ends) != len(policies) * len(input_codes):
            raise ValueError("logits are located for one image per pass only")
        outputs, found = self.rtl_outputs, []
        for index, policy in enumerate(policies):
            golden_logits, _ = infer(export, input_codes, policy)
            for image in range(len(input_codes)):
                logits = torch.from_numpy(outputs[self.pass_ends[index * len(input_codes) + image] - 1])
                if logits.shape[0] != 1 or not torch.equal(logits[0], golden_logits[image]):
                    found.append(f"{policy.label} image {image}: the Verilog's logits differ from golden's")
        return found

    def transitions(self) -> Transitions:
        """The cycles the Verilog spent between consecutive commands beyond the formula's, split by whether
        the weight precision changed (a transition) or not; each batch's first command has no predecessor."""
        steps = {True: [0, 0], False: [0, 0]}  # changed -> [pairs, extra cycles]
        for batch, capture in zip(self.batches, self.captures, strict=True):
            measured = spans(self.cfg, batch.commands, capture)
            for index in range(1, len(batch.commands)):
                command, before = batch.commands[index], batch.commands[index - 1]
                cycles = command_cycles(self.cfg, command.m, command.k_dim, command.n, command.wbits).total
                formula = cycles - overlap_cycles(self.cfg)  # the last beats' distance, back to back
                step = steps[command.wbits != before.wbits]
                step[0] += 1
                step[1] += measured[index][1] - measured[index - 1][1] - formula
        return Transitions(*steps[True], *steps[False])


@dataclass(frozen=True)
class Transitions:
    """Consecutive command pairs on the Verilog, and the cycles between their last result beats beyond the
    formula's cycles for the second command (0 when a command costs what it costs whatever ran before)."""

    changes: int  # pairs whose weight precision differs
    change_cycles: int  # extra cycles over those pairs: the measured cost of precision transitions
    repeats: int  # pairs at the same precision, the control
    repeat_cycles: int


def network_commands(
    cfg: EngineConfig, export: Export, input_codes: torch.Tensor, policies: list[ResolvedPolicy], batch: int
):
    """Every command of `input_codes` under each policy (one k per GEMM layer, or a controller), `batch`
    images per pass, with the model's and golden's output of each and the index after each pass's last."""
    commands, model_outputs, golden_outputs, pass_ends = [], [], [], []
    for policy in policies:
        for first in range(0, len(input_codes), batch):
            images = input_codes[first : first + batch]
            for command, output in run_batch(cfg, export, images, policy).log:
                commands.append(command)
                model_outputs.append(output)
            runs, _ = lower_policy(export, images, policy, execute_golden)
            golden_outputs += [run.output[rows] for run in runs for rows in row_slices(cfg, run.gemm.M)]
            pass_ends.append(len(commands))
    return commands, model_outputs, golden_outputs, pass_ends


def check_network_on_rtl(
    simulator: str,
    cfg: EngineConfig,
    export: Export,
    input_codes: torch.Tensor,
    policies: list[ResolvedPolicy],
    batch: int,
    run_name: str,
    log=print,
) -> NetworkCheck:
    commands, model_outputs, golden_outputs, pass_ends = network_commands(cfg, export, input_codes, policies, batch)
    batches = [Batch(part, seed=index) for index, part in enumerate(split(cfg, commands, Depths()))]
    log(f"building the {cfg.rows}x{cfg.cols} engine in the stream players on {simulator} (cached under {BUILD})")
    built = build(simulator, cfg, Depths())
    simulation_log = run_directory(simulator, cfg, run_name, Depths()) / SIMULATION_LOG
    log(
        f"{len(commands)} commands in {len(batches)} batches on {simulator}; tool output in {built.log} (build) "
        f"and {simulation_log} (simulation)"
    )
    start = time.perf_counter()
    captures = play(simulator, cfg, batches, run_name)
    seconds = time.perf_counter() - start
    return NetworkCheck(simulator, cfg, commands, model_outputs, golden_outputs, pass_ends, batches, captures, seconds)
