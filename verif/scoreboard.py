"""The scoreboard: what a run of a scenario must produce, and the check of what the engine did produce.

Expected result beats come from two independent places that must agree with each other first: golden's
integer path (`golden.nested.int_gemm` + `requantize`, padded lanes 0) and the cycle-exact model
(`sim.model.EngineModel`, packed by `sim.streams`). Expected cycles come from the model: with ideal streams,
each command's acceptance and last result beat, relative to the first acceptance, exactly. Every failure
names the scenario, its seed, the `NESTMAC_SEED` it came from and the command that reproduces it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from contract.config import EngineConfig
from golden.nested import int_gemm, requantize
from sim.command import Command
from sim.model import EngineModel
from sim.streams import last_result_beats, pack_sequence
from verif.coverage import Coverage
from verif.scenarios import SEED_ENV, Scenario, base_seed


@dataclass
class Observed:
    """What a bench saw on the engine's ports during a run."""

    received: list[dict] = field(default_factory=list)  # result beats, as `sim.payload.from_bits` dicts
    accepts: list[int] = field(default_factory=list)  # cycle of each `cmd` transfer
    results: list[int] = field(default_factory=list)  # cycle of each `result` transfer
    result_trace: list[tuple[int, int]] = field(default_factory=list)  # (valid, ready) of `result`, every cycle

    def spans(self, cfg: EngineConfig, commands: list[Command]) -> list[tuple[int, int]]:
        """(acceptance, last result beat) of each command, relative to the first acceptance."""
        ends = last_result_beats(cfg, commands)
        return [(self.accepts[i] - self.accepts[0], self.results[end] - self.accepts[0]) for i, end in enumerate(ends)]


def golden_beats(cfg: EngineConfig, commands: list[Command]) -> list[list[int]]:
    """Each result beat's values straight from golden.nested, padded lanes 0, in the documented order."""
    rows = []
    for c in commands:
        acc = int_gemm(c.X, c.W, c.wbits, c.abits, c.scheme, cfg.base_bits, cfg.act_bits, cfg.acc_bits)
        out = requantize(acc, c.bias, c.mult, c.shift, c.mode, cfg.act_bits, cfg.acc_bits).numpy()
        for first in range(0, c.n, cfg.cols):
            block = np.zeros((c.m, cfg.cols), dtype=np.int64)
            block[:, : min(cfg.cols, c.n - first)] = out[:, first : first + cfg.cols]
            rows += block.tolist()
    return rows


class Scoreboard:
    """`Scoreboard(cfg, scenario, where, reproduce).check(observed)`; raises AssertionError on any mismatch.

    `where` names the run (stack, simulator, configuration) and `reproduce` is the shell command that
    replays it; both go into every failure message, with the seeds. `coverage` holds the bins the run hit."""

    def __init__(self, cfg: EngineConfig, scenario: Scenario, where: str, reproduce: str):
        self.cfg = cfg
        self.scenario = scenario
        self.context = (
            f"scenario {scenario.name!r} on {where}, seed {scenario.seed} (from {SEED_ENV}={base_seed()}); "
            f"reproduce with: {SEED_ENV}={base_seed()} {reproduce}"
        )
        commands = scenario.commands
        self.model = EngineModel(cfg).run(commands)
        self.expected = pack_sequence(cfg, commands)["result"]
        self.coverage = Coverage()
        for command in commands:
            self.coverage.sample_command(cfg, command)
        for index, (beat, gold) in enumerate(zip(self.expected, golden_beats(cfg, commands), strict=True)):
            assert beat["values"] == gold, f"model and golden disagree on result beat {index}: {self.context}"

    def fail(self, message: str):
        raise AssertionError(f"{message}\n  {self.context}")

    def check(self, observed: Observed) -> None:
        """Every result beat, in order and nothing more; with ideal streams, the cycles; then the coverage
        this scenario exists for."""
        received, expected = observed.received, self.expected
        for index, (got, want) in enumerate(zip(received, expected, strict=False)):
            if got != want:
                self.fail(f"result beat {index} of {len(expected)}: engine {got}, golden and model {want}")
        if len(received) != len(expected):
            self.fail(f"{len(received)} result beats, want {len(expected)}")
        if self.scenario.ideal:
            spans = observed.spans(self.cfg, self.scenario.commands)
            for index, (measured, result) in enumerate(zip(spans, self.model, strict=True)):
                if measured != result.span:
                    self.fail(
                        f"command {index}: accepted and last beat at cycles {measured}, model says {result.span}: "
                        f"off by {measured[1] - result.span[1]} ({result.cycles})"
                    )
        if self.scenario.ideal_inputs:
            self.coverage.sample_result_stream(self.cfg, self.scenario.commands, observed.result_trace)
        missing = self.coverage.missing(self.scenario.targets)
        if missing:
            self.fail(f"the scenario ran correctly but missed the coverage it exists for: {', '.join(missing)}")
