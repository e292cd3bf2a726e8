"""A bounded proof that the program engine (hw/program_engine.py) refuses an illegal layer step and does not
hang on it, on a tiny configuration, by SymbiYosys.

Whether the engine never hangs on any program is beyond bounded model checking (a legal layer runs for
hundreds of cycles); what an illegal step does takes a few, so it is proved here for the first step after
reset, every input free (the step's payload, the image, weight and parameter beats, `logits.ready`):

- a layer step illegal by contract.program's rules for the GEMM command and the output (written here from
  them: N, OH, OW of 0 or beyond the maxima, OH*OW beyond max_m, k or j outside 1..B or 1..A, a mode
  beyond the modes, a store with the wrong planes or operands, an operand of 0 or too many planes, a decision
  store without candidates or with more columns than its registers take, a controlled layer without
  candidates or whose chosen candidate is no k, after reset its first) has
  `error` high and `step.ready` back in the fifth cycle after its taking (decode, plan, dispatch, abort), with
  nothing written to the scratchpad, no logits beat and `step.ready` low meanwhile;
- whatever refuses a step (the address generator's rules included), `error` rises only in the fourth or
  fifth cycle after the step's taking (the fourth when the program engine's checks of the units' rules refuse
  it, the fifth when the GEMM engine does: its own `error` is registered), and `step.ready` follows as above.

`late` makes the proof expect `step.ready` a cycle later, so it must fail.
"""

from __future__ import annotations

from amaranth.hdl import Assert, Assume, Cover, Elaboratable, Module, Mux, Signal

from contract.config import EngineConfig
from contract.numerics import MODES
from contract.program import MAX_CANDIDATES, MAX_DECISIONS, MAX_RAW_PLANES
from hw.output_path import Store
from hw.program_engine import ProgramEngine, StepKind
from verif.formal import free_ports, reset_in_first_cycle_only

#: The engine of verif/formal.py's proofs (2x2, B = 4, A = 2) with 16 words and maps of at most 2x2.
PROGRAM_CONFIG = EngineConfig(rows=2, cols=2, base_bits=4, act_bits=2, acc_bits=12, max_m=2, max_k=4, max_n=4)
PROGRAM_DEPTH_WORDS = 16
PROGRAM_LIMITS = dict(max_size=2, max_channels=4, max_n_tiles=2, max_operands=1)
#: Cycles from a layer step's taking to the earliest `error` (decode, plan, dispatch, then the sticky flag) and to
#: `step.ready` (and the latest `error`).
ERROR_CYCLES, READY_CYCLES = 4, 5


class _WatchedEngine(ProgramEngine):
    """The program engine with its scratchpad's write enables brought out, to see that nothing is written."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.scratchpad_written = Signal()

    def elaborate(self, platform):
        m = super().elaborate(platform)
        m.d.comb += self.scratchpad_written.eq(m.submodules.scratchpad.write.en.any())
        return m


class IllegalStepHarness(Elaboratable):
    """The program engine with free inputs and the refusal properties of the module docstring asserted."""

    def __init__(
        self,
        cfg: EngineConfig = PROGRAM_CONFIG,
        depth: int = PROGRAM_DEPTH_WORDS,
        limits: dict = PROGRAM_LIMITS,
        late: bool = False,
    ):
        self.cfg, self.limits = cfg, limits
        self.engine = _WatchedEngine(cfg, depth, **limits)
        self.ready_cycles = READY_CYCLES + late

    def ports(self) -> list[Signal]:
        return free_ports(self.engine)

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine = engine = self.engine
        written = engine.scratchpad_written
        reset_in_first_cycle_only(m)

        step = engine.step
        taken = step.valid & step.ready
        first = Signal(init=1)  # no step taken yet
        with m.If(taken):
            m.d.sync += first.eq(0)
        with m.If(taken & first):
            m.d.comb += Assume(step.payload.kind == StepKind.LAYER)
        illegal = Signal()
        since = Signal(range(self.ready_cycles + 2))  # cycles since the first step was taken (0: not yet)
        with m.If(taken & first):
            m.d.sync += [since.eq(1), illegal.eq(self._illegal(step.payload))]
        with m.Elif((since != 0) & (since <= self.ready_cycles)):
            m.d.sync += since.eq(since + 1)

        error_was = Signal()
        m.d.sync += error_was.eq(engine.error)
        rises = engine.error & ~error_was
        m.d.comb += Assert(~rises | (since >= ERROR_CYCLES) & (since <= READY_CYCLES))
        with m.If(rises):
            m.d.sync += illegal.eq(1)  # refused, by whichever unit: step.ready must follow
        with m.If(illegal & (since >= 1) & (since <= self.ready_cycles)):
            m.d.comb += [Assert(~engine.logits.valid), Assert(~written)]
        with m.If(illegal & (since == READY_CYCLES)):
            m.d.comb += Assert(engine.error)
        with m.If(illegal & (since >= 1) & (since < self.ready_cycles)):
            m.d.comb += Assert(~step.ready)
        with m.If(illegal & (since == self.ready_cycles)):
            m.d.comb += Assert(step.ready)
        m.d.comb += [
            Cover(illegal & (since == self.ready_cycles) & step.ready),
            Cover(rises & (since == ERROR_CYCLES)),  # refused by the checks of the units' rules
            Cover(rises & (since == READY_CYCLES)),  # refused by the GEMM engine
        ]
        return m

    def _illegal(self, payload):
        """contract.program's rules for the GEMM command and the output that a step may break (module
        docstring), within this engine's maxima."""
        cfg, limits = self.cfg, self.limits
        bad = (payload.out_channels < 1) | (payload.out_channels > min(limits["max_channels"], cfg.max_n))
        for side in (payload.out_height, payload.out_width):
            bad |= (side < 1) | (side > limits["max_size"])
        bad |= payload.out_height * payload.out_width > cfg.max_m
        # A controlled layer runs at the candidate its decision register names: after reset, its first.
        count = payload.candidate_count
        wbits = Mux(payload.k_source != 0, payload.candidates[0], payload.wbits)
        bad |= (wbits < 1) | (wbits > cfg.base_bits)
        bad |= (payload.k_source != 0) & ((count < 1) | (count > MAX_CANDIDATES))
        bad |= (payload.abits < 1) | (payload.abits > cfg.act_bits)
        bad |= payload.mode.as_value() >= len(MODES)
        decision = (payload.store == Store.DECISION) & (count >= 1) & (payload.out_channels <= count * MAX_DECISIONS)
        count = payload.operand_count
        bad |= count > limits["max_operands"]
        for index, operand in enumerate(payload.operands):
            bad |= (index < count) & ((operand.planes < 1) | (operand.planes > MAX_RAW_PLANES))
        store_ok = Mux(
            payload.store == Store.CODES,
            payload.planes == 1,
            Mux(
                payload.store == Store.RAW,
                (payload.planes >= 1) & (payload.planes <= MAX_RAW_PLANES) & (count == 0),
                Mux(payload.store == Store.LOGITS, 1, decision) & (payload.planes == 0) & (count == 0),
            ),
        )
        return bad | ~store_ok
