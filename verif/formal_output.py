"""Formal proofs of the output path of layer programs (hw/output_path.py) on a tiny configuration, by SymbiYosys.

The data the output path moves (the result beats' values, the operand words read) are driven with zero: no
property here depends on them, and Yosys then folds the adders and clamps away. Every other input is free.

`OutputHarness` leaves the descriptor, `result.valid` and `logits.ready` free in every cycle. For each
descriptor taken without `error` (whose regions the solver must place inside the address space, as the
compiler places them inside the scratchpad) it asserts:

- every write lies in the output region, target .. target + planes*G*OH*OW - 1 (`slack` tightens the upper
  bound by that many words, so a proof with slack 1 must fail: the region's last word is written); every
  operand read lies in the region of one of the descriptor's operands;
- every output element is written exactly once: for a (word, lane) the solver picks and keeps (`AnyConst`),
  the writes that hit it number 1 by the cycle `busy` falls if it holds an element (channel g*R + lane < N of
  channel group g, any pixel, any plane p < planes) and 0 otherwise, and never more meanwhile;
- a logits descriptor passes exactly ceil(N/C)*OH*OW beats out and writes nothing;
- `error` rises exactly in the cycles an illegal descriptor (by contract.program's rules, written here from
  them) is taken; outside a legal descriptor (so after a refusal) `busy` is low and nothing is written, read
  or passed out.

Covers show a fused add of two operands, a raw region of two planes, logits and a descriptor after a refusal
complete, and the watched element, in a second plane, counted.

`OutputLivenessHarness` fixes a legal descriptor (a contract.program.Descriptor), `result.valid` and
`logits.ready` high, and asserts `busy` is high from the cycle after its taking until exactly the cycle
contract.timing.output_path_cycles gives (or `cycles`, to show a wrong count fails), and low then.
"""

from __future__ import annotations

from amaranth.asserts import AnyConst
from amaranth.hdl import Assert, Assume, Cat, Cover, Elaboratable, Module, Mux, Signal, Value

from contract.config import EngineConfig
from contract.program import MAX_RAW_PLANES, Descriptor
from contract.timing import output_path_cycles
from contract.widths import ceil_div
from hw.output_path import OutputPath, Store
from verif.descriptors import output_fields
from verif.formal import ceil_div_signal, free_ports, reset_in_first_cycle_only

#: Two lanes, three columns (so the second N-tile starts at lane 1 and splits a channel group), maps of at
#: most 2x2 with up to 6 channels (two N-tiles, three groups), up to two fused operands, 16 words.
OUTPUT_CONFIG = EngineConfig(rows=2, cols=3, base_bits=4, act_bits=2, acc_bits=12, max_m=4, max_k=4, max_n=6)
OUTPUT_DEPTH_WORDS = 16
OUTPUT_LIMITS = dict(max_size=2, max_channels=6, max_n_tiles=2, max_operands=2)


class _Harness(Elaboratable):
    """What both proofs share: the output path, reset in the first cycle only, its data inputs zero."""

    def __init__(self, cfg: EngineConfig, depth: int, limits: dict):
        self.cfg, self.depth, self.limits = cfg, depth, limits
        self.path = OutputPath(cfg, depth, **limits)
        self.width = self.path.write.addr.shape().width

    def zeroed(self) -> list[Value]:
        """The result beats' payload and the words read: the values moved, on which no property depends."""
        return [self.path.result.payload.as_value(), Value.cast(self.path.read.data)]

    def ports(self) -> list[Signal]:
        return free_ports(self.path, self.zeroed())

    def setup(self) -> Module:
        m = Module()
        m.submodules.path = self.path
        reset_in_first_cycle_only(m)
        m.d.comb += [value.eq(0) for value in self.zeroed()]
        return m


class OutputHarness(_Harness):
    """The output path with free inputs and the safety properties of the module docstring asserted."""

    def __init__(
        self,
        cfg: EngineConfig = OUTPUT_CONFIG,
        depth: int = OUTPUT_DEPTH_WORDS,
        limits: dict = OUTPUT_LIMITS,
        slack: int = 0,
    ):
        super().__init__(cfg, depth, limits)
        self.slack = slack

    def elaborate(self, platform):
        m = self.setup()
        path, rows, cols = self.path, self.cfg.rows, self.cfg.cols
        payload = path.descriptor.payload
        taken = path.descriptor.valid & path.descriptor.ready
        legal = self._legal(payload)
        m.d.comb += Assert(path.error == (taken & ~legal))

        # The descriptor offered: its plane's words and every region's end, wide enough not to wrap.
        wide = self.width + 8  # planes * G * OH * OW and more fit
        groups = ceil_div_signal(m, payload.channels, rows, self.limits["max_channels"], "groups")
        n_tiles = ceil_div_signal(m, payload.channels, cols, self.limits["max_channels"], "n_tiles")
        pixels, plane_words = Signal(wide, name="pixels"), Signal(wide, name="plane_words")
        m.d.comb += [pixels.eq(payload.out_height * payload.out_width), plane_words.eq(groups * pixels)]
        with m.If(taken & legal):  # the compiler's placement: every region inside the address space
            m.d.comb += Assume(payload.target + payload.planes * plane_words <= 1 << self.width)
            for index, operand in enumerate(payload.operands):
                with m.If(index < payload.operand_count):
                    m.d.comb += Assume(operand.address + operand.planes * plane_words <= 1 << self.width)

        # The descriptor under way, as taken.
        walking = Signal()
        command = Signal.like(payload)
        held = {name: Signal(wide, name=f"held_{name}") for name in ("pixels", "plane_words", "groups", "beats")}
        written, passed = Signal(2), Signal(wide)  # writes to the watched element, logits beats out
        end = walking & ~path.busy  # the cycle `busy` falls
        with m.If(end):
            m.d.sync += walking.eq(0)
        with m.If(taken & legal):
            m.d.sync += [
                walking.eq(1),
                command.eq(payload),
                held["pixels"].eq(pixels),
                held["plane_words"].eq(plane_words),
                held["groups"].eq(groups),
                held["beats"].eq(n_tiles * pixels),
                written.eq(0),
                passed.eq(0),
            ]
        m.d.comb += Assert(walking | ~(path.busy | path.write.en.any() | path.read.en | path.logits.valid))

        self._writes(m, command, held, walking, written, end)
        self._reads(m, command, held["plane_words"], walking)
        logits = path.logits.valid & path.logits.ready
        with m.If(logits):
            m.d.comb += [Assert(command.store == Store.LOGITS), Assert(passed < held["beats"])]
            m.d.sync += passed.eq(passed + 1)
        with m.If(end & (command.store == Store.LOGITS)):
            m.d.comb += Assert(passed == held["beats"])
        self._covers(m, command, taken & ~legal, end, written)
        return m

    def _writes(self, m, command, held, walking, written, end) -> None:
        """Every write in the output region; the watched (word, lane) written exactly as often as it holds an
        element (0 or 1 times)."""
        write, rows = self.path.write, self.cfg.rows
        region = Signal.like(held["plane_words"], name="region_words")
        m.d.comb += region.eq(Mux(command.store == Store.LOGITS, 0, command.planes * held["plane_words"]))
        with m.If(write.en.any()):
            m.d.comb += [
                Assert(walking),
                Assert(write.addr >= command.target),
                Assert(write.addr + self.slack < command.target + region),
            ]

        # The watched (word, lane): plane p, channel group g, pixel q of the region, lane l. Over every choice
        # with p < planes, g < G, q < OH*OW these are every (word, lane) of the region, and it holds an element
        # exactly when channel g*R + l < N.
        max_groups, max_pixels = ceil_div(self.limits["max_channels"], rows), self.limits["max_size"] ** 2
        plane = Signal(range(MAX_RAW_PLANES), name="watched_plane")
        group = Signal(range(max_groups), name="watched_group")
        pixel = Signal(range(max_pixels), name="watched_pixel")
        lane = Signal(range(rows), name="watched_lane")
        m.d.comb += [value.eq(AnyConst(value.shape())) for value in (plane, group, pixel, lane)]
        address = Signal(self.width, name="watched_address")
        m.d.comb += address.eq(command.target + plane * held["plane_words"] + group * held["pixels"] + pixel)
        inside = (plane < command.planes) & (group < held["groups"]) & (pixel < held["pixels"])
        expected = Signal(name="watched_expected")
        m.d.comb += expected.eq(group * rows + lane < command.channels)
        hit = inside & write.en.bit_select(lane, 1) & (write.addr == address)
        with m.If(hit):
            m.d.comb += Assert(written < expected)
            m.d.sync += written.eq(written + 1)
        with m.If(end & inside):
            m.d.comb += Assert(written == expected)
        m.d.comb += Cover(end & inside & expected & (plane == 1) & (lane == 1))

    def _reads(self, m, command, plane_words, walking) -> None:
        """Every operand read in the region of one of the descriptor's operands."""
        read = self.path.read
        inside = [
            (index < command.operand_count)
            & (read.addr >= operand.address)
            & (read.addr < operand.address + operand.planes * plane_words)
            for index, operand in enumerate(command.operands)
        ]
        with m.If(read.en):
            m.d.comb += [Assert(walking), Assert(command.store == Store.CODES), Assert(Cat(inside).any())]

    def _legal(self, payload):
        """contract.program's rules for a descriptor's output, within the output path's maxima, written here
        from contract.program._validate_descriptor rather than taken from the HDL: the proof compares the two."""
        limits, cols = self.limits, self.cfg.cols
        most = min(limits["max_channels"], limits["max_n_tiles"] * cols)
        shape = (payload.channels >= 1) & (payload.channels <= most)
        for side in (payload.out_height, payload.out_width):
            shape &= (side >= 1) & (side <= limits["max_size"])
        count = payload.operand_count
        operands = count <= limits["max_operands"]
        for index, operand in enumerate(payload.operands):
            operands &= (index >= count) | ((operand.planes >= 1) & (operand.planes <= MAX_RAW_PLANES))
        store = Mux(
            payload.store == Store.CODES,
            payload.planes == 1,
            Mux(
                payload.store == Store.RAW,
                (payload.planes >= 1) & (payload.planes <= MAX_RAW_PLANES) & (count == 0),
                (payload.store == Store.LOGITS) & (payload.planes == 0) & (count == 0),
            ),
        )
        return shape & operands & store

    def _covers(self, m, command, refused, end, written) -> None:
        """A fused add of two operands, a raw region, logits and a descriptor after a refusal complete."""
        after_refusal = Signal()
        with m.If(refused):
            m.d.sync += after_refusal.eq(1)
        m.d.comb += [
            Cover(end & (command.store == Store.CODES) & (command.operand_count == 2)),
            Cover(end & (command.store == Store.RAW) & (command.planes == 2) & (command.channels == 4)),
            Cover(end & (command.store == Store.LOGITS) & (command.channels == 4)),
            Cover(end & after_refusal & written.any()),
        ]


class OutputLivenessHarness(_Harness):
    """A fixed legal descriptor with ideal streams: `busy` falls exactly in contract.timing's cycle."""

    def __init__(
        self,
        descriptor: Descriptor,
        cfg: EngineConfig = OUTPUT_CONFIG,
        depth: int = OUTPUT_DEPTH_WORDS,
        limits: dict = OUTPUT_LIMITS,
        cycles: int | None = None,
    ):
        super().__init__(cfg, depth, limits)
        self.descriptor = descriptor
        self.cycles = output_path_cycles(descriptor, cfg.rows, cfg.cols) if cycles is None else cycles

    def elaborate(self, platform):
        m = self.setup()
        path = self.path
        fixed = path.descriptor.payload.shape().const(output_fields(self.descriptor, self.limits["max_operands"]))
        m.d.comb += [
            Assume(path.result.valid),
            Assume(path.logits.ready),
            Assume(~path.descriptor.valid | (path.descriptor.payload.as_value() == fixed.as_value())),
        ]
        taken = path.descriptor.valid & path.descriptor.ready
        m.d.comb += Assert(~path.error)
        since = Signal(range(self.cycles + 2))  # cycles since the descriptor was taken (0: none under way)
        with m.If(taken):
            m.d.sync += since.eq(1)
        with m.Elif((since != 0) & (since != self.cycles)):
            m.d.sync += since.eq(since + 1)
        with m.Elif(since == self.cycles):
            m.d.sync += since.eq(0)
        with m.If((since != 0) & (since < self.cycles)):
            m.d.comb += Assert(path.busy)
        with m.If(since == self.cycles):
            m.d.comb += Assert(~path.busy)
        m.d.comb += Cover((since == self.cycles) & ~path.busy)
        return m
