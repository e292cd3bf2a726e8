"""The output path of layer programs: the engine's `result` beats of one layer descriptor written to the
scratchpad (codes, a raw region, or the fused residual add), or passed out as the logits.

It does exactly what `sim.program` does with a layer's results (contract.program, "Raw regions" and "Fused
residual add"): each beat of N-tile nt, output row m = oy*OW + ox (per N-tile, M = OH*OW beats of C values),
splits into the segments of `sim.program.writes`, lanes lo..hi-1 of the word at offset (g*OH + oy)*OW + ox of
each plane of the output map, beat column `channel - nt*C` going to lane lo. A codes store writes
clamp(value + the fused operands, 0, 2^A - 1), each operand read at its address + p*G*OH*OW + offset for each of
its planes p and put together as `sim.program._read_operand` does (sign-extended when signed); a raw store
writes the value in two's complement over its P planes, plane p holding bits p*A .. p*A+A-1 at
target + p*G*OH*OW + offset; a logits store passes the beats out unchanged. Lanes outside lo..hi are never
written (the write port's per-lane enables). A codes store without operands clamps too: the engine's relu
codes are already in 0..2^A - 1, so it is the executor's plain store.

**Steps.** A segment takes one *step* per operand plane read or plane written, whichever is more, at least
one (contract.timing.output_segment_cycles): a codes store reads one operand plane per step and writes in
its last, a raw store (never fused) writes plane p in step p. Five stages, one step entering per cycle:

1. issue: the step's lane values (the beat's columns moved to the segment's lanes), its lane enables and
   word address are registered, and its operand plane is addressed on the read port;
2. read: the plane's word is on the read port, and is registered with the step (nothing between the memory
   and that register: on an FPGA a block RAM's output is slow, and the add after it is as wide as a raw
   operand's eight planes);
3. add: each lane adds the word, shifted to its plane's place (its top plane signed for a signed operand),
   to the segment's running sum (started from the value), which is registered (a sum as wide as a raw
   operand's eight planes: its carry chain fills the cycle);
4. clamp: the sum clamped to a code (from its sign and high bits), or the raw plane's bits of the value, is
   registered into the write port;
5. write: the memory takes the write port's lanes.

So a segment of one read and one write (C = R, one code operand: the common fused add) costs one cycle, as
does a plain codes store, and a beat one cycle per step of each of its segments. Nothing stalls the steps
(the memory always answers, the write port always takes): they wait only for a beat.

**Beats.** `result` enters a two-beat buffer (amaranth.lib.fifo.SyncFIFO, as the engine's output FIFO), so
`result.ready` is the buffer's registered "not full" and depends on nothing outside; the beat at its head is
popped in the cycle of its last step (or, for logits, when `logits` takes it), and the next one is there
without a bubble. The buffer is not tied to a descriptor: beats that arrive before theirs is taken wait.

**Descriptors.** One is taken only while `busy` is low; the cycle after, the strides G*OH*OW (a plane) and
(C // R)*OH*OW (an N-tile's step in groups) are formed, with the walk's last indices (planes - 1, OH*OW - 1,
operands - 1) that its end-of-step comparisons read, and the steps start in the next cycle. G = ceil(N/R)
(N output channels) needs no divider: it is a multiply by a constant reciprocal, checked exact for every
channel count at elaboration. Everything per step is additions and comparisons: offsets advance by 1 per
row, by OH*OW per channel group and by the N-tile stride, plane addresses by G*OH*OW, as running sums.
`busy` stays high until the last write has reached the memory (or the last logits beat has left): the next
layer may read what this one wrote from the cycle `busy` falls. With `result` always valid and `logits`
always ready a descriptor takes contract.timing.output_path_cycles cycles from its taking to the first
cycle the next can be.

A descriptor out of range (contract.program's checks that concern the output path, within this component's
maxima) is taken and dropped with `error` high, as hw/addrgen.py refuses one, and the next one runs. Whether
the regions lie inside the scratchpad and overlap nothing read is the compiler's check; addresses wrap at
the address width. A client whose descriptor is stable a cycle before it offers it (the program engine)
evaluates `legal` in that cycle, registers the verdict, offers only legal descriptors and builds the path with
`check=False`, so that the check is not in the logic of the cycle that takes the descriptor.
"""

from __future__ import annotations

import itertools

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import WritePort
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from contract.config import EngineConfig
from contract.program import MAX_RAW_PLANES, STORES
from contract.streams import code_bits
from contract.widths import ceil_div
from hw.interface import payload_layout
from hw.scratchpad import read_signature, word_layout


class Store(enum.Enum, shape=code_bits(STORES)):
    """Where a layer's output goes (contract.program.STORES)."""

    CODES = STORES.index("codes")
    RAW = STORES.index("raw")
    LOGITS = STORES.index("logits")
    DECISION = STORES.index("decision")  # the program engine's decision unit's, never the output path's


def operand_layout(address_bits: int) -> data.StructLayout:
    """A fused add's operand: its region's word, its planes (1 for a code map), whether it is signed."""
    return data.StructLayout({"address": address_bits, "planes": range(MAX_RAW_PLANES + 1), "signed": 1})


def output_descriptor_layout(
    address_bits: int, max_size: int, max_channels: int, max_operands: int
) -> data.StructLayout:
    """What the output path needs of a layer descriptor: the output map [channels, out_height, out_width],
    where it goes (`target`, `store`, `planes`: 1 for codes, P for raw, 0 for logits) and the fused add's
    other operands (the first `operand_count` of `operands`)."""
    size = range(max_size + 1)
    return data.StructLayout(
        {
            "channels": range(max_channels + 1),
            "out_height": size,
            "out_width": size,
            "target": address_bits,
            "store": Store,
            "planes": range(MAX_RAW_PLANES + 1),
            "operand_count": range(max_operands + 1),
            "operands": data.ArrayLayout(operand_layout(address_bits), max_operands),
        }
    )


def _step_layout(cfg: EngineConfig, address_bits: int) -> data.StructLayout:
    """One step between the issue and the write stage: the segment's lane values and enables, the word
    written (if `write`), whether the operand plane on the read port is added (`read`; `signed` for a signed
    operand's top plane), its plane (or the raw plane written), and whether it starts the segment's sum."""
    return data.StructLayout(
        {
            "valid": 1,
            "write": 1,
            "read": 1,
            "first": 1,
            "signed": 1,
            "raw": 1,
            "plane": range(MAX_RAW_PLANES),
            "address": address_bits,
            "lanes": cfg.rows,
            "values": data.ArrayLayout(signed(cfg.acc_bits), cfg.rows),
        }
    )


def _reciprocal(divisor: int, largest: int) -> tuple[int, int]:
    """(mult, k) with x * mult >> k == x // divisor for every x in 0..largest: the smallest such k."""
    for k in itertools.count():
        mult = ceil_div(1 << k, divisor)
        if all(x * mult >> k == x // divisor for x in range(largest + 1)):
            return mult, k
    raise AssertionError("unreachable: k = bits(largest) + bits(divisor) is always exact")


class OutputPath(wiring.Component):
    """The writes (or logits) of one layer descriptor at a time from the engine's result beats (module
    docstring).

    Parameters
    ----------
    cfg : EngineConfig
        The engine: C columns of ACC-bit values per result beat, words of R lanes of A-bit codes.
    depth : int
        Words of the scratchpad written (hw/scratchpad.py); addresses are ceil_log2(depth) bits.
    max_size, max_channels, max_n_tiles : int
        Largest output height or width, most output channels, most N-tiles of a descriptor.
    max_operands : int
        Most fused add operands read from the scratchpad (at least 1).
    check : bool
        Whether the path refuses an illegal descriptor itself. False for a client that offers only descriptors
        `legal` accepts (module docstring, "Descriptors"): `error` is then always low.

    Members
    -------
    descriptor : In(stream.Signature(output descriptor))
        The layer descriptors (`output_descriptor_layout`); one is taken only while `busy` is low.
    result : In(stream.Signature(result))
        The engine's result beats of the descriptors taken, in order; `ready` is registered state only.
    logits : Out(stream.Signature(result))
        A logits store's beats, unchanged (`last` included).
    read : In(ReadPort.Signature(ceil_log2(depth), word))
        A scratchpad read port, for the fused add's operands.
    write : In(WritePort.Signature(ceil_log2(depth), word, granularity=1))
        The scratchpad's write port: one word's lanes lo..hi-1 per write.
    busy : Out(1)
        A descriptor is in progress: taken, and its last write (or logits beat) not yet done.
    error : Out(1)
        The descriptor in `descriptor` is illegal: it is taken in this cycle and dropped, writing nothing.
    """

    def __init__(
        self,
        cfg: EngineConfig,
        depth: int,
        *,
        max_size: int = 64,
        max_channels: int = 1024,
        max_n_tiles: int = 64,
        max_operands: int = 2,
        check: bool = True,
    ):
        if max_operands < 1:
            raise ValueError(f"max_operands must be at least 1, got {max_operands}")
        self._cfg, self._check = cfg, check
        self._address_bits = ceil_log2(depth)
        self.max_size, self.max_channels = max_size, max_channels
        self.max_n_tiles, self.max_operands = max_n_tiles, max_operands
        layout = output_descriptor_layout(self._address_bits, max_size, max_channels, max_operands)
        beat = stream.Signature(payload_layout(cfg, "result"))
        super().__init__(
            {
                "descriptor": In(stream.Signature(layout)),
                "result": In(beat),
                "logits": Out(beat),
                "read": In(read_signature(cfg, depth)),
                "write": In(WritePort.Signature(addr_width=self._address_bits, shape=word_layout(cfg), granularity=1)),
                "busy": Out(1),
                "error": Out(1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        cfg, width = self._cfg, self._address_bits
        rows, cols = cfg.rows, cfg.cols
        payload = self.descriptor.payload
        command = Signal.like(payload)

        # The beat buffer (module docstring, "Beats").
        beat_layout = payload_layout(cfg, "result")
        m.submodules.beats = beats = SyncFIFO(width=data.Layout.cast(beat_layout).size, depth=2)
        head = beat_layout(beats.r_data)
        m.d.comb += [
            beats.w_data.eq(self.result.payload.as_value()),
            beats.w_en.eq(self.result.valid),
            self.result.ready.eq(beats.w_rdy),
            self.logits.payload.eq(head),
        ]

        # The walk: N-tile (channels_left, first lane lo0, group offset), row, segment, step.
        pixels = Signal(range(self.max_size * self.max_size + 1))  # OH*OW: words of a channel group
        groups = Signal(range(ceil_div(self.max_channels, rows) + 1))  # G
        plane_words, tile_step = Signal(width), Signal(width)  # G*OH*OW, (C // R)*OH*OW
        channels_left = Signal(range(self.max_channels + 1))  # N - nt*C
        lo0 = Signal(range(rows))  # (nt*C) mod R: the lane of the N-tile's first channel
        tile_offset, beat_offset, segment_offset = Signal(width), Signal(width), Signal(width)
        row = Signal(range(self.max_size * self.max_size))
        shift = Signal(range(-rows, cols + 1))  # s*R - lo0: lane l of segment s takes beat column l + shift
        left = Signal(range(rows + cols + 1))  # lanes from segment s's lane 0 to the N-tile's last channel
        first_segment = Signal()
        operand = Signal(range(self.max_operands))
        plane = Signal(range(MAX_RAW_PLANES))
        read_base, plane_base = Signal(width), Signal(width)  # the step's plane of the operand / the target

        raw = command.store == Store.RAW
        reading = (command.store == Store.CODES) & (command.operand_count != 0)
        current = command.operands[operand]
        # The walk's last indices (planes - 1 and so on), registered in SETUP (an operand's with `operand`), so
        # that each `last_` flag below compares two registers with no subtraction before it (the step's flags
        # were a critical path).
        last_plane = Signal.like(plane)  # of a raw store
        operand_last_plane = Signal.like(plane)  # of the operand at `operand`, loaded with it
        last_operand = Signal.like(operand)
        last_pixel = Signal.like(row)
        last_operand_plane = plane == operand_last_plane
        last_step = Mux(raw, plane == last_plane, ~reading | ((operand == last_operand) & last_operand_plane))
        last_segment = left <= rows
        last_row = row == last_pixel
        last_tile = channels_left <= cols
        head_valid = beats.r_rdy

        writing, passing = Signal(), Signal()  # the WRITE and PASS states
        advance = (writing & head_valid) | (passing & head_valid & self.logits.ready)  # a step (or logits beat)
        beat_done = advance & (passing | (last_step & last_segment))
        m.d.comb += [
            beats.r_en.eq(beat_done),
            self.read.en.eq(writing & head_valid & reading),
            self.read.addr.eq(read_base + segment_offset),
        ]
        with m.FSM() as fsm:
            with m.State("IDLE"):
                m.d.comb += self.descriptor.ready.eq(~self.busy)
                # Every cycle it could take one, the walk's start is loaded from the payload (valid or not).
                with m.If(self.descriptor.ready):
                    first_lanes = Mux(payload.channels < cols, payload.channels, cols)
                    m.d.sync += [
                        command.eq(payload),
                        pixels.eq(payload.out_height * payload.out_width),
                        groups.eq(self._groups(payload.channels)),
                        channels_left.eq(payload.channels),
                        lo0.eq(0),
                        tile_offset.eq(0),
                        beat_offset.eq(0),
                        segment_offset.eq(0),
                        row.eq(0),
                        shift.eq(0),
                        left.eq(first_lanes),
                        first_segment.eq(1),
                        operand.eq(0),
                        operand_last_plane.eq(payload.operands[0].planes - 1),
                        plane.eq(0),
                        read_base.eq(payload.operands[0].address),
                        plane_base.eq(payload.target),
                    ]
                with m.If(self.descriptor.valid & self.descriptor.ready):
                    with m.If(self.legal(payload) if self._check else Const(1)):
                        m.next = "SETUP"
                    with m.Else():
                        m.d.comb += self.error.eq(1)  # taken and dropped: nothing written
            with m.State("SETUP"):
                m.d.sync += [
                    plane_words.eq(groups * pixels),
                    tile_step.eq((cols // rows) * pixels),
                    last_plane.eq(command.planes - 1),
                    last_operand.eq(command.operand_count - 1),
                    last_pixel.eq(pixels - 1),
                ]
                with m.If(command.store == Store.LOGITS):
                    m.next = "PASS"
                with m.Else():
                    m.next = "WRITE"
            with m.State("WRITE"):
                m.d.comb += writing.eq(1)
                with m.If(beat_done & last_row & last_tile):
                    m.next = "IDLE"
            with m.State("PASS"):
                m.d.comb += [passing.eq(1), self.logits.valid.eq(head_valid)]
                with m.If(beat_done & last_row & last_tile):
                    m.next = "IDLE"

        with m.If(advance):
            with m.If(writing & ~last_step):  # the next step of this segment
                with m.If(raw):
                    m.d.sync += [plane.eq(plane + 1), plane_base.eq(plane_base + plane_words)]
                with m.Elif(~last_operand_plane):
                    m.d.sync += [plane.eq(plane + 1), read_base.eq(read_base + plane_words)]
                with m.Else():
                    m.d.sync += [
                        operand.eq(operand + 1),
                        operand_last_plane.eq(command.operands[operand + 1].planes - 1),
                        plane.eq(0),
                        read_base.eq(command.operands[operand + 1].address),
                    ]
            with m.Else():
                m.d.sync += [
                    operand.eq(0),
                    operand_last_plane.eq(command.operands[0].planes - 1),
                    plane.eq(0),
                    read_base.eq(command.operands[0].address),
                    plane_base.eq(command.target),
                ]
                with m.If(writing & ~last_segment):  # the next channel group of this beat
                    m.d.sync += [
                        shift.eq(shift + rows),
                        left.eq(left - rows),
                        segment_offset.eq(segment_offset + pixels),
                        first_segment.eq(0),
                    ]
                with m.Elif(~last_row):  # the next row of this N-tile
                    tile_lanes = lo0 + Mux(channels_left < cols, channels_left, cols)
                    m.d.sync += [
                        row.eq(row + 1),
                        beat_offset.eq(beat_offset + 1),
                        segment_offset.eq(beat_offset + 1),
                        shift.eq(-lo0),
                        left.eq(tile_lanes),
                        first_segment.eq(1),
                    ]
                with m.Elif(~last_tile):  # the next N-tile: C channels on, (C // R) groups and C mod R lanes
                    lanes = lo0 + cols % rows
                    carry = lanes >= rows
                    next_lo0 = Mux(carry, lanes - rows, lanes)
                    next_offset = tile_offset + tile_step + Mux(carry, pixels, 0)
                    next_left = channels_left - cols
                    m.d.sync += [
                        row.eq(0),
                        channels_left.eq(next_left),
                        lo0.eq(next_lo0),
                        tile_offset.eq(next_offset),
                        beat_offset.eq(next_offset),
                        segment_offset.eq(next_offset),
                        shift.eq(-next_lo0),
                        left.eq(next_lo0 + Mux(next_left < cols, next_left, cols)),
                        first_segment.eq(1),
                    ]

        # Stage 1 -> 2: the step, registered.
        step = Signal(_step_layout(cfg, width))
        lo = Mux(first_segment, lo0, 0)
        m.d.sync += [
            step.valid.eq(writing & head_valid),
            step.write.eq(raw | last_step),
            step.read.eq(reading),
            step.first.eq((operand == 0) & (plane == 0)),
            step.signed.eq(current.signed & last_operand_plane),
            step.raw.eq(raw),
            step.plane.eq(plane),
            step.address.eq(Mux(raw, plane_base, command.target) + segment_offset),
            step.lanes.eq(Cat((lane >= lo) & (lane < left) for lane in range(rows))),
        ]
        with m.Switch(shift):
            for offset in self._shifts():
                with m.Case(offset):
                    for lane in range(rows):
                        if 0 <= lane + offset < cols:
                            m.d.sync += step.values[lane].eq(head.values[lane + offset])
        # Stage 2 -> 3: the step and its operand plane's word, registered as the word leaves the memory (no logic
        # between them: a block RAM's slow output goes straight into a flip-flop).
        fetched, word = Signal(_step_layout(cfg, width)), Signal.like(self.read.data)
        m.d.sync += [fetched.eq(step), word.eq(self.read.data)]
        summed = self._add_stage(m, fetched, word)
        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE") | step.valid | fetched.valid | summed.valid | self.write.en.any())
        return m

    def _add_stage(self, m: Module, step, words):
        """Stage 3 -> 4: per lane, the operand plane's word added to the segment's running sum (started from
        the value), registered (`running`) with the step's write, its address and lanes, and the raw plane's bits
        of the value; stage 4 -> 5 clamps the sum and registers the code, or the raw bits, into the write port.
        Returns stage 4's step (its `valid`: a step is there)."""
        act_bits, top = self._cfg.act_bits, (1 << self._cfg.act_bits) - 1
        sum_shape = signed(max(self._cfg.acc_bits, MAX_RAW_PLANES * act_bits + 1) + ceil_log2(self.max_operands + 1))
        summed = Signal(
            data.StructLayout({"valid": 1, "raw": 1, "address": len(step.address), "lanes": len(step.lanes)})
        )
        m.d.sync += [
            summed.valid.eq(step.valid & step.write),
            summed.raw.eq(step.raw),
            summed.address.eq(step.address),
            summed.lanes.eq(step.lanes),
        ]
        for lane, value in enumerate(step.values):
            word = words[lane]
            part, total = Signal(sum_shape, name=f"part_{lane}"), Signal(sum_shape, name=f"total_{lane}")
            running = Signal(sum_shape, name=f"running_{lane}")  # the segment's value plus its planes so far
            extended = Signal(signed(MAX_RAW_PLANES * act_bits), name=f"extended_{lane}")
            raw_code = Signal(act_bits, name=f"raw_code_{lane}")
            summed_raw_code = Signal(act_bits, name=f"summed_raw_code_{lane}")
            with m.Switch(step.plane):
                for index in range(MAX_RAW_PLANES):
                    with m.Case(index):
                        m.d.comb += [
                            part.eq(Mux(step.signed, word.as_signed(), word) << (index * act_bits)),
                            raw_code.eq(extended[index * act_bits : (index + 1) * act_bits]),
                        ]
            m.d.comb += [
                extended.eq(value),
                total.eq(Mux(step.first, value, running) + Mux(step.read, part, 0)),
            ]
            with m.If(step.valid):
                m.d.sync += running.eq(total)
            m.d.sync += summed_raw_code.eq(raw_code)
            # The clamp from the sum's bits, no comparison after its carry chain: below 0 when the sign is set,
            # above 2^A - 1 when any bit from A up is (with the sign clear).
            negative, over = running[-1], running[act_bits:-1].any()
            code = Mux(negative, 0, Mux(over, top, running[:act_bits]))
            m.d.sync += self.write.data[lane].eq(Mux(summed.raw, summed_raw_code, code))
        m.d.sync += [
            self.write.addr.eq(summed.address),
            self.write.en.eq(Mux(summed.valid, summed.lanes, 0)),
        ]
        return summed

    def _groups(self, channels):
        """ceil(channels / R) as a multiply by a constant reciprocal (module docstring)."""
        rows = self._cfg.rows
        mult, k = _reciprocal(rows, self.max_channels + rows - 1)
        return ((channels + rows - 1) * mult)[k:]

    def _shifts(self) -> list[int]:
        """Every s*R - lo0 a walk reaches: lo0 = (nt*C) mod R, s over the segments of an N-tile."""
        rows, cols = self._cfg.rows, self._cfg.cols
        firsts = {nt * cols % rows for nt in range(self.max_n_tiles)}
        return sorted({s * rows - lo0 for lo0 in firsts for s in range(ceil_div(lo0 + cols, rows))})

    def legal(self, payload):
        """What contract.program accepts of a descriptor's output (module docstring), within the maxima: a
        function of any value of `output_descriptor_layout`, for a client that checks before it offers."""
        most_channels = min(self.max_channels, self.max_n_tiles * self._cfg.cols)
        legal = (payload.channels >= 1) & (payload.channels <= most_channels)
        for size in (payload.out_height, payload.out_width):
            legal &= (size >= 1) & (size <= self.max_size)
        count, planes = payload.operand_count, payload.planes
        legal &= count <= self.max_operands
        for index, operand in enumerate(payload.operands):
            legal &= (count <= index) | ((operand.planes >= 1) & (operand.planes <= MAX_RAW_PLANES))
        codes = (payload.store == Store.CODES) & (planes == 1)
        raw = (payload.store == Store.RAW) & (planes >= 1) & (planes <= MAX_RAW_PLANES) & (count == 0)
        logits = (payload.store == Store.LOGITS) & (planes == 0) & (count == 0)
        return legal & (codes | raw | logits)
