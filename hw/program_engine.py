"""The program engine: a whole network run from an activation scratchpad, one step (layer) after another.

The GEMM engine (hw/engine.py) is reused unchanged; around it, the pieces of contract.program's layer programs:

    image ──► scratchpad ◄── output path ◄── engine.result         weight, param ──► engine
                  │   └─────► (operands)         ▲   └──► logits
                  └──► activation fetch ──► engine.act

A program is a sequence of *steps* on the `step` stream (`step_layout`): an image step writes the `image`
beats, one scratchpad word each in the layout of contract.program, from its `target` until the beat with
`last`; a layer step runs one layer descriptor. For a layer the engine derives everything that must agree
between its units from the step's own fields, so that they cannot disagree: the GEMM command (M = OH*OW,
K = KH*KW*ceil(C/R)*R, N, the precisions, the mode), the address generator's walk (its N-tiles are
ceil(N/C)) and the output path's writes. The three take their parts in the same cycle, the engine's `act`
comes from the fetch and its `result` goes to the output path; the next step is taken once all three are
idle again, so a layer never reads a word before the layer that writes it has written it. The host's part is
only the steps, the image, the weight and parameter beats in program order, and reading the logits.

Cycles of a step, with every stream ideal (`sim.program_cycles.program_step_cycles`; docs/architecture.md,
"Program engine"): an image step takes one cycle to accept and one per word; a layer step takes the cycle
that accepts it, two that decode it (a multiplier deep each), the GEMM command's own cycles
(sim.model.command_cycles, counted from the dispatch cycle in which the engine accepts it) and the output
path's tail after the last result beat.

An illegal step is dropped: in the decode cycles the step is checked by the address generator's and the output
path's own rules (their `legal`, evaluated here from the stable step and registered, so that no check lies in
the cycle that hands the units their parts) and contract.program's rules on candidates; a step that fails is
offered to no unit. The GEMM engine checks its command itself (as the sequencer refuses a command); the units
that took their parts of a step it refuses are reset in the next cycle, as are those of a step whose K, a
product formed in the last decode cycle, exceeds max_k (compared in the offering cycle, but only for the
refusal, not for the offers). Either way nothing is written, `error`
rises and stays high until reset, and the next step runs normally. Like the GEMM engine, a refused layer's
weight and parameter beats must not be sent.

For performance counters the engine says what it did in every cycle (`events`: the cycle's class, `Cycle`, and
the MACs of the result beat it gave; docs/architecture.md, "Performance counters"): the GEMM engine's slots and
the FSM's states say whether it advanced or which beat it waited for, so that a parent (hw/soc.py) can count
cycles that equal the model's.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, ResetInserter, Signal, Value
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from contract.config import EngineConfig
from contract.program import MAX_CANDIDATES, MAX_DECISIONS, MAX_KERNEL, MAX_RAW_PLANES, MAX_STRIDE
from contract.soc import CYCLE_CLASSES
from hw.act_fetch import ActivationFetch
from hw.decision import DecisionUnit
from hw.engine import BLOCK_ORDER, MEMORY_MODULES, OTHER_BLOCK, Engine, accumulator_memory, engine_blocks
from hw.interface import Mode, Scheme, payload_layout
from hw.output_path import OutputPath, Store, operand_layout
from hw.scratchpad import Scratchpad, word_layout
from hw.sequencer import command_legal
from hw.shift_add import times

#: The blocks `eda.synth --program` reports the program engine's gates under, in its table's order: the GEMM
#: engine's own (hw.engine.BLOCK_ORDER) under `engine.`, then the units around it; PROGRAM_OTHER_BLOCK is the
#: top module itself (the step register, the decode products, the FSM and the scratchpad's write multiplexer).
PROGRAM_OTHER_BLOCK = "program control"
PROGRAM_BLOCK_ORDER = (
    *(f"engine.{block}" for block in BLOCK_ORDER),
    "scratchpad",
    "address_generator",
    "activation_fetch",
    "output_path",
    "decision_unit",
    PROGRAM_OTHER_BLOCK,
)

#: The submodule paths holding the memories `ProgramEngine.memory_summary` lists (the scratchpad's and the GEMM
#: engine's accumulator), which an ASIC flow leaves as SRAM macros.
PROGRAM_MEMORY_MODULES = ("scratchpad", *(f"engine.{path}" for path in MEMORY_MODULES))


def program_engine_blocks(cfg: EngineConfig) -> dict[str, str]:
    """Submodule paths below the top -> their block in PROGRAM_BLOCK_ORDER, what `eda.synth --program` reads. A
    module's block is that of its nearest named ancestor (itself first), so `engine` stands for the GEMM engine's
    control (its modules that hw.engine.engine_blocks does not name, as in the GEMM engine's own report) and
    `fetch` for the activation fetch around its address generator; the top alone is PROGRAM_OTHER_BLOCK."""
    return (
        {"engine": f"engine.{OTHER_BLOCK}"}
        | {f"engine.{path}": f"engine.{block}" for path, block in engine_blocks(cfg).items()}
        | {"scratchpad": "scratchpad", "fetch": "activation_fetch", "fetch.addresses": "address_generator"}
        | {"output": "output_path", "decision": "decision_unit"}
    )


class StepKind(enum.Enum, shape=1):
    """What a step of a program does: write the image into the scratchpad, or run a layer."""

    IMAGE = 0
    LAYER = 1


class Cycle(enum.Enum, shape=3):
    """What the program engine did in a cycle (`ProgramEngine.events`; the SoC's counters, contract.soc's
    CYCLE_CLASSES in this order): it advanced, or it waited for an input stream's beat, for the logits stream
    to take one (OUTPUT) or for something else (OTHER: an activation beat the fetch has not yet read)."""

    ACTIVE = 0
    STEP = 1
    IMAGE = 2
    WEIGHT = 3
    PARAM = 4
    OUTPUT = 5
    OTHER = 6


assert tuple(member.name.lower() for member in Cycle) == CYCLE_CLASSES, "the cycle classes and the counters differ"


def events_layout(cfg: EngineConfig, max_size: int, max_channels: int) -> data.StructLayout:
    """The program engine's per-cycle events: the cycle's class and the MACs of the result beat it gave (0 when
    it gave none): the layer's own K (KH*KW*C, no channel group's padding lanes) times the beat's N-tile's
    columns (no padding column), so that a layer's beats sum to M x K x N."""
    return data.StructLayout(
        {"cycle": Cycle, "macs": range(most_taps_times_channels(max_size, max_channels) * cfg.cols + 1)}
    )


def most_taps_times_channels(max_size: int, max_channels: int) -> int:
    """The largest K = KH*KW*C of a layer (a linear layer's kernel is its whole map)."""
    return max(MAX_KERNEL, max_size) ** 2 * max_channels


def step_layout(
    cfg: EngineConfig, address_bits: int, max_size: int, max_channels: int, max_operands: int
) -> data.StructLayout:
    """One step of a program: the fields of contract.program.Descriptor that the hardware reads (an image step
    reads only `kind` and `target`)."""
    size = range(max_size + 1)
    channels = range(max_channels + 1)
    kernel = range(max(MAX_KERNEL, max_size) + 1)
    return data.StructLayout(
        {
            "kind": StepKind,
            "in_channels": channels,
            "height": size,
            "width": size,
            "source": address_bits,
            "out_channels": channels,
            "out_height": size,
            "out_width": size,
            "kernel_height": kernel,
            "kernel_width": kernel,
            "stride": range(MAX_STRIDE + 1),
            "padding": range(MAX_KERNEL),
            "wbits": range(cfg.base_bits + 1),
            "abits": range(cfg.act_bits + 1),
            "scheme": Scheme,
            "mode": Mode,
            "store": Store,
            "target": address_bits,
            "planes": range(MAX_RAW_PLANES + 1),
            "operand_count": range(max_operands + 1),
            "operands": data.ArrayLayout(operand_layout(address_bits), max_operands),
            "k_source": range(MAX_DECISIONS + 1),
            "candidate_count": range(MAX_CANDIDATES + 1),
            "candidates": data.ArrayLayout(range(cfg.base_bits + 1), MAX_CANDIDATES),
        }
    )


def image_layout(cfg: EngineConfig) -> data.StructLayout:
    """One beat of the `image` stream: a scratchpad word (R codes, lane l the channel g*R + l) and `last`."""
    return data.StructLayout({"codes": word_layout(cfg), "last": 1})


def stream_layouts(
    cfg: EngineConfig, depth: int, max_size: int, max_channels: int, max_operands: int
) -> dict[str, data.Layout]:
    """The payload layout of each of the program engine's streams, by port name (for hosts that pack beats
    without building the engine)."""
    return {
        "step": step_layout(cfg, ceil_log2(depth), max_size, max_channels, max_operands),
        "image": image_layout(cfg),
        "weight": payload_layout(cfg, "weight"),
        "param": payload_layout(cfg, "param"),
        "logits": payload_layout(cfg, "result"),
    }


def weight_request_layout(cfg: EngineConfig, max_n_tiles: int) -> data.StructLayout:
    """A layer's weight request (`ProgramEngine(weight_requests=True)`): its N-tiles, its K (rows per N-tile,
    K/R tiles) and the k it runs at, what a reader of bit-plane weights needs (hw/plane_reader.py)."""
    return data.StructLayout(
        {"n_tiles": range(max_n_tiles + 1), "rows": range(cfg.max_k + 1), "k": range(cfg.base_bits + 1)}
    )


class ProgramEngine(wiring.Component):
    """A network run as a program of steps from an activation scratchpad (module docstring).

    Parameters
    ----------
    config : EngineConfig
        The GEMM engine inside (its max_m, max_k, max_n bound a layer's M, K and N).
    depth : int
        Words of the scratchpad (R codes each).
    max_size, max_channels, max_n_tiles, max_operands : int
        The largest map side, channel count, N-tile count and fused-add operand count of a layer.

    Members
    -------
    step : In(stream.Signature(step))
        The program's steps (`step_layout`), one taken when the previous one has finished.
    image : In(stream.Signature(image))
        An image step's words, in the scratchpad's layout, `last` on the final one.
    weight, param : In(stream.Signature(...))
        The GEMM engine's streams, the layers' beats in program order (contract.program's images).
    logits : Out(stream.Signature(result))
        The last layer's result beats.
    error : Out(1)
        Sticky: a step was refused, or a parameter beat carried a shift beyond the contract's range.
    weight_request : Out(stream.Signature(weight_request_layout(...)))
        With `weight_requests=True` only: one per layer step handed to the GEMM engine, offered from the cycle
        after it is (the step's RUN ends only once it is taken), so that a reader fetching each layer's
        weights at the k it runs at knows that k (a controlled layer's chosen candidate) and its tiles, and
        a refused step asks for nothing.

    Attributes
    ----------
    events : Signal(events_layout)
        Per cycle, its class and the MACs of the result beat given (docs/architecture.md, "Performance
        counters"): what a parent counts (hw/soc.py). Not a port, so the emitted program engine's interface
        does not change.
    """

    def __init__(
        self,
        config: EngineConfig,
        depth: int,
        *,
        max_size: int = 64,
        max_channels: int = 1024,
        max_n_tiles: int = 64,
        max_operands: int = 2,
        weight_requests: bool = False,
    ):
        self.config, self.depth = config, depth
        self.weight_requests = weight_requests
        self._limits = dict(max_size=max_size, max_channels=max_channels, max_n_tiles=max_n_tiles)
        self._max_operands = max_operands
        layouts = stream_layouts(config, depth, max_size, max_channels, max_operands)
        self.events = Signal(events_layout(config, max_size, max_channels))
        super().__init__(
            {name: In(stream.Signature(layouts[name])) for name in ("step", "image", "weight", "param")}
            | {"logits": Out(stream.Signature(layouts["logits"])), "error": Out(1)}
            | (
                {"weight_request": Out(stream.Signature(weight_request_layout(config, max_n_tiles)))}
                if weight_requests
                else {}
            )
        )

    def memory_summary(self) -> list[dict]:
        """On-chip memories, for the generator's manifest: the scratchpad and the GEMM engine's."""
        cfg = self.config
        scratchpad = {
            "name": "scratchpad",
            "depth": self.depth,
            "width": cfg.rows * cfg.act_bits,
            "purpose": "activation maps of a layer program, one word = R codes of one channel group at one pixel; "
            "two read ports (activation fetch, fused-add operands), one write port with an enable per lane",
        }
        return [scratchpad, accumulator_memory(cfg)]

    def elaborate(self, platform):
        m = Module()
        cfg, depth = self.config, self.depth
        # Resets the units of a refused layer step, in the ABORT state: a register of its own rather than a decode
        # of the FSM's state, since it gates the input streams and fans out to every unit's registers.
        abort = Signal()
        m.submodules.scratchpad = scratchpad = Scratchpad(cfg, depth, operand_port=True)
        m.submodules.engine = engine = ResetInserter(abort)(Engine(cfg))
        # The fetch and the output path take only steps checked in DECODE (`checked`), so they do not check again;
        # the step is stable from DECODE, so the fetch is `settled`.
        m.submodules.fetch = fetch = ResetInserter(abort)(
            ActivationFetch(cfg, depth, **self._limits, check=False, settled=True)
        )
        m.submodules.output = output = ResetInserter(abort)(
            OutputPath(cfg, depth, **self._limits, max_operands=self._max_operands, check=False)
        )
        # In the abort cycle the engine may already be loading the refused layer's weights: it sees no beat, so
        # the next layer's beats stay where they are. A controlled layer's parameter beats are one block of
        # N-tiles per candidate: the chosen block's pass to the engine, the others' are dropped as they come.
        # The filter counts the beats by block and N-tile (no product of the two, which in the decode cycles
        # was a critical path), and its verdicts on the next beat (`in_window`: pass it, `drop`: drop it) are
        # registers, each loaded with its value for the next beat when a beat moves, so that no comparison lies
        # between `param.valid` and the GEMM engine's stall. `abort` gates only the `ready`s: the engine it
        # resets may see a beat in that cycle but takes none, and its `valid`s (fanned out to every stall copy
        # of the GEMM engine) come from no register but the filter's verdict.
        filtering = Signal()
        block = Signal(range(MAX_CANDIDATES + 1))  # the candidate whose block the next parameter beat is in
        tile = Signal(range(self._limits["max_n_tiles"]))  # and its N-tile in that block
        in_window, drop = Signal(init=1), Signal()
        for name in ("weight", "param"):
            outer, inner = getattr(self, name), getattr(engine, name)
            passing = in_window if name == "param" else 1
            m.d.comb += [
                inner.payload.eq(outer.payload),
                inner.valid.eq(outer.valid & passing),
                outer.ready.eq(~abort & ((inner.ready & passing) | (drop if name == "param" else 0))),
            ]
        wiring.connect(m, fetch.act, engine.act)
        m.submodules.decision = decision = ResetInserter(abort)(DecisionUnit(cfg, self._limits["max_channels"]))
        wiring.connect(m, output.logits, wiring.flipped(self.logits))
        wiring.connect(m, fetch.read, scratchpad.read)
        wiring.connect(m, output.read, scratchpad.operand_read)

        step = Signal.like(self.step.payload)
        cmd, walk, out = engine.cmd.payload, fetch.descriptor.payload, output.descriptor.payload
        # A controller's results go to the decision unit, every other layer's to the output path.
        deciding = step.store == Store.DECISION
        m.d.comb += [
            output.result.payload.eq(engine.result.payload),
            decision.result.payload.eq(engine.result.payload),
            output.result.valid.eq(engine.result.valid & ~deciding),
            decision.result.valid.eq(engine.result.valid & deciding),
            engine.result.ready.eq(Mux(deciding, decision.result.ready, output.result.ready)),
            decision.channels.eq(step.out_channels),
            decision.candidates.eq(step.candidate_count),
        ]
        # The layer's GEMM shape, formed in DECODE and PLAN from the step's sizes (products of small fields, once
        # per layer): M = OH*OW, K = KH*KW*G*R with G = ceil(C/R) channel groups, in full (the command's fields
        # hold only up to max_m and max_k, which the checks compare against).
        rows, cols = cfg.rows, cfg.cols
        kernel_side = max(MAX_KERNEL, self._limits["max_size"])
        most_channels = (self._limits["max_channels"] + rows - 1) // rows * rows
        m_dim = Signal(range(self._limits["max_size"] ** 2 + 1))
        k_dim = Signal(range(kernel_side**2 * most_channels + 1))
        n_tiles = Signal.like(walk.n_tiles)
        wbits = Signal.like(cmd.wbits)  # the step's k, or a controlled layer's chosen candidate
        groups = (step.in_channels + rows - 1) // rows
        m.d.comb += [
            cmd.m.eq(m_dim),
            cmd.k_dim.eq(k_dim),
            cmd.n.eq(step.out_channels),
            cmd.wbits.eq(wbits),
            cmd.abits.eq(step.abits),
            cmd.scheme.eq(step.scheme),
            cmd.mode.eq(step.mode),
            walk.channels.eq(step.in_channels),
            walk.height.eq(step.height),
            walk.width.eq(step.width),
            walk.out_height.eq(step.out_height),
            walk.out_width.eq(step.out_width),
            walk.kernel_height.eq(step.kernel_height),
            walk.kernel_width.eq(step.kernel_width),
            walk.stride.eq(step.stride),
            walk.padding.eq(step.padding),
            walk.source.eq(step.source),
            walk.n_tiles.eq(n_tiles),
            out.channels.eq(step.out_channels),
            out.out_height.eq(step.out_height),
            out.out_width.eq(step.out_width),
            out.target.eq(step.target),
            out.store.eq(step.store),
            out.planes.eq(step.planes),
            out.operand_count.eq(step.operand_count),
            out.operands.eq(step.operands),
        ]

        # The scratchpad's write port: the image loader's in an image step, else the output path's.
        loading = Signal()
        load_address = Signal(ceil_log2(depth))
        write = scratchpad.write
        with m.If(loading):
            m.d.comb += [
                write.addr.eq(load_address),
                write.data.eq(self.image.payload.codes),
                write.en.eq(self.image.valid.replicate(rows)),
                self.image.ready.eq(1),
            ]
        with m.Else():
            m.d.comb += [
                write.addr.eq(output.write.addr),
                write.data.eq(output.write.data),
                write.en.eq(output.write.en),
            ]

        with m.If(engine.error):
            m.d.sync += self.error.eq(1)
        # The units' checks on the step (the fetch's walk with this step's N-tiles, the output path's writes
        # unless the decision unit takes the results, the candidates' rules), evaluated from the stable step and
        # registered: the output path's and the candidates' in DECODE, the walk's over DECODE (its arithmetic,
        # into free-running registers) and PLAN (its comparisons). DISPATCH offers the parts only on their
        # verdicts, so that no check lies in the cycle that offers them.
        walk_legal, out_legal, candidates_legal, checked = Signal(), Signal(), Signal(), Signal()
        tiles = Signal.like(n_tiles)
        walk_checked = Signal.like(walk)
        m.d.comb += [
            tiles.eq((step.out_channels + cols - 1) // cols),
            walk_checked.eq(walk),
            walk_checked.n_tiles.eq(tiles),
        ]

        def registered(value):
            copy = Signal(Value.cast(value).shape())
            m.d.sync += copy.eq(value)
            return copy

        walk_verdict = fetch.legal(walk_checked, stage=registered)
        # The products, a multiplier deep per cycle: KH*KW and OH*OW in DECODE, K in PLAN.
        kernel_taps, padded_channels = Signal(range(kernel_side**2 + 1)), Signal(range(most_channels + 1))  # KH*KW, G*R
        chosen = Signal(range(MAX_CANDIDATES))  # a controlled layer's candidate, from its register

        cycle = self.events.cycle
        params_done = ~filtering | (block == step.candidate_count)
        with m.If(filtering & self.param.valid & self.param.ready):
            block_ends = tile + 1 == n_tiles
            next_block = Mux(block_ends, block + 1, block)
            next_in_window = next_block == chosen
            m.d.sync += [
                tile.eq(Mux(block_ends, 0, tile + 1)),
                block.eq(next_block),
                in_window.eq(next_in_window),
                drop.eq(~next_in_window & (next_block < step.candidate_count)),
            ]
        run_cycle = self._run_cycle(m, engine, output, decision, params_done)
        self._count_macs(m, engine, step, kernel_taps, m_dim, n_tiles)

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.step.ready.eq(1)
                m.d.sync += [step.eq(self.step.payload), load_address.eq(self.step.payload.target)]
                with m.If(self.step.valid & (self.step.payload.kind == StepKind.IMAGE)):
                    m.next = "IMAGE"
                with m.Elif(self.step.valid):
                    m.next = "DECODE"
                with m.Else():
                    m.d.comb += cycle.eq(Cycle.STEP)
            with m.State("IMAGE"):
                m.d.comb += loading.eq(1)
                with m.If(self.image.valid):
                    m.d.sync += load_address.eq(load_address + 1)
                    with m.If(self.image.payload.last):
                        m.next = "IDLE"
                with m.Else():
                    m.d.comb += cycle.eq(Cycle.IMAGE)
            with m.State("DECODE"):
                m.d.sync += [
                    out_legal.eq(deciding | output.legal(out)),
                    candidates_legal.eq(self._precision_legal(step)),
                    m_dim.eq(step.out_height * step.out_width),
                    kernel_taps.eq(step.kernel_height * step.kernel_width),
                    padded_channels.eq(times(groups, rows)),
                    n_tiles.eq(tiles),
                    chosen.eq(decision.decisions[(step.k_source - 1)[: ceil_log2(MAX_DECISIONS)]]),
                ]
                m.next = "PLAN"
            with m.State("PLAN"):
                first_block = (chosen == 0) & (n_tiles != 0)
                m.d.sync += [
                    walk_legal.eq(walk_verdict),
                    checked.eq(out_legal & candidates_legal & (m_dim <= cfg.max_m)),
                    k_dim.eq(kernel_taps * padded_channels),
                    wbits.eq(Mux(step.k_source != 0, step.candidates[chosen], step.wbits)),
                    filtering.eq(step.k_source != 0),
                    block.eq(0),
                    tile.eq(0),
                    # The verdicts on beat 0: the window starts there when the first candidate is chosen.
                    in_window.eq((step.k_source == 0) | first_block),
                    drop.eq((step.k_source != 0) & ~first_block & (n_tiles != 0) & (step.candidate_count != 0)),
                ]
                m.next = "DISPATCH"
            with m.State("DISPATCH"):
                # All units are idle here (the last step finished), so each takes its part now: the output path,
                # or for a controller the decision unit. A step that failed the registered checks is refused
                # here, nothing offered. K (a product from PLAN) is compared here too, but only for the FSM and
                # `error`, not for the offers, so that no comparison lies before every unit's taking: a step
                # whose K is too large, like one the GEMM engine refuses (its own check), has its parts reset in
                # ABORT.
                offered = walk_legal & checked
                accepted = offered & (k_dim <= cfg.max_k)
                m.d.comb += [
                    engine.cmd.valid.eq(offered),
                    fetch.descriptor.valid.eq(offered),
                    output.descriptor.valid.eq(offered & ~deciding),
                    decision.start.eq(offered & deciding),
                ]
                with m.If(~accepted):
                    m.d.sync += self.error.eq(1)
                with m.If(~accepted | ~command_legal(cfg, cmd)):
                    m.d.sync += abort.eq(1)
                    m.next = "ABORT"
                with m.Else():
                    m.next = "RUN"
                    if self.weight_requests:
                        request = self.weight_request
                        m.d.sync += [
                            request.valid.eq(1),
                            request.payload.n_tiles.eq(n_tiles),
                            request.payload.rows.eq(k_dim),
                            request.payload.k.eq(wbits),
                        ]
            with m.State("ABORT"):
                m.d.sync += [abort.eq(0), filtering.eq(0), in_window.eq(1), drop.eq(0)]
                m.next = "IDLE"
            with m.State("RUN"):
                m.d.comb += cycle.eq(run_cycle)
                idle = engine.cmd.ready & fetch.descriptor.ready & ~output.busy & ~decision.busy & params_done
                if self.weight_requests:
                    idle &= ~self.weight_request.valid
                with m.If(idle):
                    m.next = "IDLE"
        if self.weight_requests:
            with m.If(self.weight_request.valid & self.weight_request.ready):
                m.d.sync += self.weight_request.valid.eq(0)
        return m

    def _run_cycle(self, m: Module, engine, output, decision, params_done) -> Signal:
        """The class of a cycle in RUN (docs/architecture.md, "Performance counters"). The GEMM engine's slots
        are the layer's schedule: a cycle in which it runs but does not advance waits for the first input its
        slot needs that is not valid (weight, then parameter, then activation: OTHER), or, with every input
        there, for room in its output FIFO, which is the layer's own pace (ACTIVE, as the model counts it)
        unless the output path holds a logits beat the stream does not take (OUTPUT). With the engine done or
        advancing, a cycle waits only if the output path's logits beat is not taken while the engine does not
        advance (OUTPUT), or if a controlled layer's trailing parameter beats (dropped) are all that is left
        and the stream has none (PARAM); every other cycle advances."""
        activity = engine.activity
        cycle = Signal(Cycle)
        waiting = activity.running & ~activity.advance
        logits_held = self.logits.valid & ~self.logits.ready
        units_done = ~activity.running & ~output.busy & ~decision.busy
        with m.If(waiting & activity.want_weight & ~self.weight.valid):
            m.d.comb += cycle.eq(Cycle.WEIGHT)
        with m.Elif(waiting & activity.want_param & ~self.param.valid):
            m.d.comb += cycle.eq(Cycle.PARAM)
        with m.Elif(waiting & activity.want_act & ~engine.act.valid):
            m.d.comb += cycle.eq(Cycle.OTHER)
        with m.Elif(logits_held & ~activity.advance):
            m.d.comb += cycle.eq(Cycle.OUTPUT)
        with m.Elif(units_done & ~params_done & ~self.param.valid):
            m.d.comb += cycle.eq(Cycle.PARAM)
        return cycle

    def _count_macs(self, m: Module, engine, step, kernel_taps, m_dim, n_tiles) -> None:
        """`events.macs`: per result beat the engine gives (to the output path or the decision unit), the layer's
        K = KH*KW*C times the columns of the beat's N-tile (C, or N - (T-1)*C for the last), formed in PLAN,
        DISPATCH and RUN's first cycle (a multiply or a subtraction each; the first beat comes many cycles
        later); the beats are counted row by
        row (M per N-tile) to know their N-tile."""
        cols = self.config.cols
        useful_k = Signal(range(most_taps_times_channels(self._limits["max_size"], self._limits["max_channels"]) + 1))
        row_macs, last_row_macs = Signal.like(self.events.macs), Signal.like(self.events.macs)
        row, tile = Signal.like(m_dim), Signal.like(n_tiles)
        m.d.sync += useful_k.eq(kernel_taps * step.in_channels)  # kernel_taps from DECODE: read in PLAN
        # The last N-tile's columns, registered (from PLAN's n_tiles) so that no subtraction lies before the multiply.
        last_cols = Signal.like(step.out_channels)
        m.d.sync += last_cols.eq(step.out_channels - times(n_tiles - 1, cols))
        m.d.sync += [row_macs.eq(times(useful_k, cols)), last_row_macs.eq(useful_k * last_cols)]  # read in RUN
        with m.If(engine.cmd.valid & engine.cmd.ready):
            m.d.sync += [row.eq(0), tile.eq(0)]
        given = engine.result.valid & engine.result.ready
        with m.If(given):
            m.d.comb += self.events.macs.eq(Mux(tile == n_tiles - 1, last_row_macs, row_macs))
            m.d.sync += row.eq(Mux(row == m_dim - 1, 0, row + 1))
            with m.If(row == m_dim - 1):
                m.d.sync += tile.eq(tile + 1)

    @staticmethod
    def _precision_legal(step):
        """A decision step's and a controlled layer's candidates (contract.program's rules the units do not
        check): a controller has whole layers' worth of columns for at most MAX_DECISIONS registers, and a
        controlled layer's chosen candidate is one of its candidates."""
        count = step.candidate_count
        no_output = (step.planes == 0) & (step.operand_count == 0)
        deciding = (count >= 1) & (step.out_channels <= count * MAX_DECISIONS) & no_output
        controlled = (count >= 1) & (count <= MAX_CANDIDATES)
        return Mux(step.store == Store.DECISION, deciding, 1) & Mux(step.k_source != 0, controlled, 1)
