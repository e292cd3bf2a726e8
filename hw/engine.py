"""nestmac engine top: one GEMM Y = requant(X . W) per command, over five valid/ready streams.

Stall strategy: a single pipeline-advance enable. The sequencer says which input beats the current
slot consumes; the slot runs (every register of the datapath and the sequencer's counters move) only
when all of those beats are valid and the output FIFO can take the result row that the slot completes.
Nothing is ever half-consumed, so no pattern of valid/ready stalls can lose, duplicate or reorder data.
The two-entry output FIFO decouples `result.ready` from the pipeline, so no ready depends
combinationally on `result.ready`. The enable is one signal in function but several in the netlist:
the sequencer and the input readies, each datapath region and the FIFO's write take an equal copy of
it, each computed from registers of its own and the input valids (hw/stall.py), so that no net reaches
every register and none runs from one corner of the chip (the FIFO's level) to another.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import Out

from contract.config import EngineConfig
from hw.datapath import Datapath, datapath_blocks
from hw.interface import payload_layout, stream_members
from hw.sequencer import Sequencer
from hw.stall import StallCopies

#: Entries of the output FIFO: two, so that `result.ready` reaches the pipeline only through registers.
OUTPUT_FIFO_DEPTH = 2

#: What the engine does in a cycle, for a parent's performance counters (`Engine.activity`; the program engine's
#: events, hw/program_engine.py): a command runs or rows drain (`running`), the pipeline advances (`advance`,
#: copy 0 of the stall enable), and which input beats the slot needs (the sequencer's and the datapath's
#: registered wants, whatever the streams' `valid`s).
ACTIVITY_LAYOUT = data.StructLayout({"running": 1, "advance": 1, "want_act": 1, "want_weight": 1, "want_param": 1})

#: The blocks `eda.synth` reports an ASIC engine's gates under, in its table's order; OTHER_BLOCK is every
#: module that `engine_blocks` does not name: the sequencer, the stall copies, the output FIFO and the
#: datapath's own registers.
OTHER_BLOCK = "control"
BLOCK_ORDER = ("pe_array", "skew", "accumulators", "requantization", OTHER_BLOCK)


def engine_blocks(cfg: EngineConfig) -> dict[str, str]:
    """Each submodule's path below the top (dotted, as the Verilog names its module after the top's name
    and a dot) -> its block in BLOCK_ORDER: what `eda.synth` reads instead of module names."""
    return {f"datapath.{path}": block for path, block in datapath_blocks(cfg).items()}


#: The submodule paths that hold the memories `Engine.memory_summary` lists, which an ASIC flow leaves as
#: memories (SRAM macros) instead of mapping them to flip-flops.
MEMORY_MODULES = ("datapath.accumulator",)


def accumulator_memory(cfg: EngineConfig) -> dict:
    """The accumulator memory as the manifest lists it."""
    return {
        "name": "accumulator",
        "depth": cfg.max_m,
        "width": cfg.acc_bits * cfg.cols,
        "purpose": "partial sums of one N-tile across K-tiles, one word = C columns of row m",
    }


class Engine(wiring.Component):
    """Ports: `cmd`, `weight`, `act`, `param` in, `result` out, and the sticky `error` flag;
    docs/architecture.md has the order of the beats and what an illegal command does.

    Parameters
    ----------
    config : EngineConfig
        Everything the engine is generated for.

    Members
    -------
    cmd : In(stream.Signature(cmd payload))
        One beat per command: M, K, N, the precisions k and j, scheme and mode (contract/streams.py).
    weight : In(stream.Signature(weight payload))
        R beats per tile of C weight codes.
    act : In(stream.Signature(act payload))
        M beats per tile of R activation codes.
    param : In(stream.Signature(param payload))
        One beat per N-tile: C columns' bias, mult and shift.
    result : Out(stream.Signature(result payload))
        M beats per N-tile of C requantized values.
    error : Out(1)
        Sticky: an illegal command was refused (cleared only by reset).

    Attributes
    ----------
    activity : Signal(ACTIVITY_LAYOUT)
        What the engine does in this cycle, for a parent's counters: not a port (the emitted GEMM engine's
        interface does not change), so only a design that instantiates the engine reads it.
    """

    def __init__(self, config: EngineConfig):
        self.config = config
        self.activity = Signal(ACTIVITY_LAYOUT)
        super().__init__(stream_members(config) | {"error": Out(1)})

    def memory_summary(self) -> list[dict]:
        """On-chip memories, for the generator's manifest."""
        return [accumulator_memory(self.config)]

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        m.submodules.sequencer = sequencer = Sequencer(cfg)
        m.submodules.datapath = datapath = Datapath(cfg)
        result_width = data.Layout.cast(payload_layout(cfg, "result")).size
        m.submodules.out_fifo = out_fifo = SyncFIFO(width=result_width, depth=OUTPUT_FIFO_DEPTH)
        regions = len(datapath.advance.as_value())
        # Copy 0 is the sequencer's and the input readies', copies 1.. the datapath's regions, the last the
        # FIFO write's.
        m.submodules.stall = stall = StallCopies(regions + 2, OUTPUT_FIFO_DEPTH)
        advance = stall.advance[0]

        wiring.connect(m, wiring.flipped(self.cmd), sequencer.cmd)
        m.d.comb += [
            stall.starting.eq(sequencer.cmd.valid & sequencer.cmd.ready & ~sequencer.refused),
            stall.ending.eq(sequencer.ending),
            stall.want_act_after_slot.eq(sequencer.want_act_after_slot),
            stall.want_weight_after_slot.eq(sequencer.want_weight_after_slot),
            stall.param_wanted.eq(datapath.param_wanted),
            stall.param_wanted_after_slot.eq(datapath.param_wanted_after_slot),
            stall.result_valid.eq(datapath.result_valid),
            stall.result_due.eq(datapath.result_due),
            stall.fifo_level.eq(out_fifo.level),
            stall.fifo_read.eq(out_fifo.r_rdy & out_fifo.r_en),
            stall.act_valid.eq(self.act.valid),
            stall.weight_valid.eq(self.weight.valid),
            stall.param_valid.eq(self.param.valid),
            datapath.advance.as_value().eq(stall.advance[1 : regions + 1]),
            sequencer.advance.eq(advance),
            self.act.ready.eq(advance & sequencer.take_act),
            self.weight.ready.eq(advance & sequencer.want_weight),
            self.param.ready.eq(advance & datapath.param_wanted),
            self.activity.running.eq(sequencer.running),
            self.activity.advance.eq(advance),
            self.activity.want_act.eq(sequencer.want_act),
            self.activity.want_weight.eq(sequencer.want_weight),
            self.activity.want_param.eq(datapath.param_wanted),
            datapath.act_codes.eq(self.act.payload.codes),
            datapath.act_lanes.eq(sequencer.act_lanes),
            datapath.token.eq(sequencer.token),
            datapath.weight_codes.eq(self.weight.payload.codes),
            datapath.weight_load.eq(sequencer.want_weight),
            datapath.precision.eq(sequencer.precision),
            datapath.params.eq(self.param.payload),
            out_fifo.w_data.eq(datapath.result),
            out_fifo.w_en.eq(stall.advance[regions + 1] & datapath.result_valid),
            self.result.payload.eq(out_fifo.r_data),
            self.result.valid.eq(out_fifo.r_rdy),
            out_fifo.r_en.eq(self.result.ready),
        ]
        # Sticky until reset: an illegal command was dropped, or a parameter beat carried a shift beyond the
        # contract's range (that command still runs; the affected column's values are unspecified).
        param_taken = self.param.valid & self.param.ready
        shift_limit = cfg.acc_bits + cfg.mult_bits - 2
        bad_shift = param_taken & Cat(shift > shift_limit for shift in self.param.payload.shift).any()
        with m.If(sequencer.refused | bad_shift):
            m.d.sync += self.error.eq(1)
        return m
