"""The SoC wrapper's DMA (hw/soc.py): read channels that walk a region into a stream, their arbiter onto one AXI4
read port, and the logits writer.

Memory layout (contract.soc): each beat of a stream is padded to W whole bus words, little-endian, so a read
channel walks its region linearly and turns every W words into one payload, and the writer turns every logits
beat into W words. Deliberately simple: one read burst outstanding at a time, a burst issued only when the
channel's FIFO has room for all of it (so the R channel is never back-pressured, and a stream the engine is not
yet taking can never block the others), one write burst at a time.

Protection (hw/soc.py drives it): every burst's address range is checked against a memory window before it
is issued, and one that would leave it is never put on the bus (`outside` pulses instead); `stop` lets the
burst in flight finish and issues no other, so that a run can be abandoned without breaking the AXI rules;
`idle` says nothing is in flight.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2, exact_log2

from contract.soc import bus_words
from hw.axi import RESP_OKAY
from hw.shift_add import times


def window_signature(address_bits: int) -> dict:
    """The members that protect a DMA engine's bursts (module docstring): `stop` and the window in, `outside`
    (a pulse: a burst refused) and `idle` out."""
    return {
        "stop": In(1),
        "window_base": In(address_bits),
        "window_size": In(address_bits),
        "outside": Out(1),
        "idle": Out(1),
    }


def inside(m: Module, component, address, words, bus_bytes: int):
    """Whether a burst of `words` whole-bus words at `address` lies in `component`'s window
    (window_base up to window_base + window_size, without wrapping around)."""
    offset = Signal(len(address) + 1)
    m.d.comb += offset.eq(address - component.window_base)
    span = words << exact_log2(bus_bytes)
    return (address >= component.window_base) & (offset + span <= component.window_size)


class Unpacker(wiring.Component):
    """Bus words in, one payload of `bits` bits per W words out (the first word the least significant)."""

    def __init__(self, bus_bits: int, bits: int):
        self.bus_bits, self.bits, self.words = bus_bits, bits, bus_words(bits, bus_bits // 8)
        super().__init__({"word": In(stream.Signature(bus_bits)), "beat": Out(stream.Signature(bits))})

    def elaborate(self, platform):
        m = Module()
        buffer = Signal(self.words * self.bus_bits)
        taken = Signal(range(self.words + 1))
        full = taken == self.words
        consumed = self.beat.valid & self.beat.ready
        m.d.comb += [
            self.word.ready.eq(~full | self.beat.ready),  # a whole beat goes out as the next one's first word comes
            self.beat.valid.eq(full),
            self.beat.payload.eq(buffer[: self.bits]),
        ]
        with m.If(self.word.valid & self.word.ready):  # shifted in from the top: after W words the first is at 0
            m.d.sync += [
                buffer.eq(Cat(buffer[self.bus_bits :], self.word.payload)),
                taken.eq(Mux(consumed, 1, taken + 1)),
            ]
        with m.Elif(consumed):
            m.d.sync += taken.eq(0)
        return m


class Packer(wiring.Component):
    """One payload of `bits` bits in, W bus words out (the least significant first, the padding zero)."""

    def __init__(self, bus_bits: int, bits: int):
        self.bus_bits, self.bits, self.words = bus_bits, bits, bus_words(bits, bus_bits // 8)
        super().__init__({"beat": In(stream.Signature(bits)), "word": Out(stream.Signature(bus_bits))})

    def elaborate(self, platform):
        m = Module()
        buffer = Signal(self.words * self.bus_bits)
        left = Signal(range(self.words + 1))
        sent = self.word.valid & self.word.ready
        m.d.comb += [
            self.beat.ready.eq((left == 0) | ((left == 1) & self.word.ready)),  # taken as the last word goes out
            self.word.valid.eq(left != 0),
            self.word.payload.eq(buffer[: self.bus_bits]),
        ]
        with m.If(self.beat.valid & self.beat.ready):
            m.d.sync += [buffer.eq(self.beat.payload), left.eq(self.words)]
        with m.Elif(sent):
            m.d.sync += [buffer.eq(buffer >> self.bus_bits), left.eq(left - 1)]
        return m


def request_signature(address_bits: int, burst: int) -> wiring.Signature:
    """A read channel's burst request to the arbiter: its address and length in words (1..burst)."""
    return stream.Signature(data.StructLayout({"address": address_bits, "length": range(1, burst + 1)}))


class RunReader(wiring.Component):
    """Contiguous runs of whole bus words read as bursts into a FIFO of 2*burst words, handed on as `data`.

    `start` (one cycle, only while `idle`) latches a run: `words` bus words from `address` (bus-aligned). The
    run is asked for in bursts of up to `burst` words that never cross a multiple of `burst` words (so never a
    4 KiB page, which `bus_bytes * burst` divides), and only when the FIFO has room for the whole burst, so the
    read data are never back-pressured. `idle` is high once every word of the run has been asked for: the next
    run may start while the words of this one still arrive.
    """

    def __init__(self, bus_bytes: int, burst: int, address_bits: int, word_bits: int):
        self.bus_bytes, self.burst = bus_bytes, burst
        self.fifo_depth = 2 * burst
        super().__init__(
            {
                "start": In(1),
                "address": In(address_bits),
                "words": In(word_bits),
                "idle": Out(1),
                "request": Out(request_signature(address_bits, burst)),
                "word": In(stream.Signature(8 * bus_bytes)),
                "data": Out(stream.Signature(8 * bus_bytes)),
            }
        )

    def elaborate(self, platform):
        m = Module()
        burst, depth, word_shift = self.burst, self.fifo_depth, exact_log2(self.bus_bytes)
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=8 * self.bus_bytes, depth=depth)
        address = Signal.like(self.address)
        remaining = Signal.like(self.words)  # words still to ask for
        in_flight = Signal(range(depth + 1))  # words asked for, not yet received
        # The words up to the next multiple of `burst` words (all `burst` of them from an aligned address).
        to_boundary = Signal(range(burst + 1))
        m.d.comb += to_boundary.eq(burst - address[word_shift : word_shift + exact_log2(burst)])
        length = Signal.like(self.request.payload.length)
        m.d.comb += length.eq(Mux(remaining < to_boundary, remaining, to_boundary))
        room = fifo.level + in_flight + length <= depth
        m.d.comb += [
            self.idle.eq(remaining == 0),
            self.request.valid.eq((remaining != 0) & room),
            self.request.payload.address.eq(address),
            self.request.payload.length.eq(length),
        ]
        granted = self.request.valid & self.request.ready
        arrived = self.word.valid & self.word.ready
        m.d.comb += [
            self.word.ready.eq(fifo.w_rdy),
            fifo.w_en.eq(self.word.valid),
            fifo.w_data.eq(self.word.payload),
            self.data.payload.eq(fifo.r_data),
            self.data.valid.eq(fifo.r_rdy),
            fifo.r_en.eq(self.data.ready),
        ]
        m.d.sync += in_flight.eq(in_flight + Mux(granted, length, 0) - arrived)
        with m.If(self.start):
            m.d.sync += [address.eq(self.address), remaining.eq(self.words)]
        with m.Elif(granted):
            m.d.sync += [address.eq(address + (length << word_shift)), remaining.eq(remaining - length)]
        return m


class ReadChannel(wiring.Component):
    """One region, `beats` beats of `bits` bits from `base`, read as one run (`RunReader`) and unpacked to `beat`.

    `go` (one cycle) latches `base` and `beats`; reset the channel before each run.
    """

    def __init__(self, bus_bytes: int, bits: int, burst: int, address_bits: int, count_bits: int = 32):
        self.bus_bytes, self.bits, self.burst = bus_bytes, bits, burst
        self.stride = bus_words(bits, bus_bytes)
        self._word_bits = count_bits + ceil_log2(self.stride + 1)
        self._address_bits = address_bits
        super().__init__(
            {
                "go": In(1),
                "base": In(address_bits),
                "beats": In(count_bits),
                "request": Out(request_signature(address_bits, burst)),
                "word": In(stream.Signature(8 * bus_bytes)),
                "beat": Out(stream.Signature(bits)),
            }
        )

    def elaborate(self, platform):
        m = Module()
        m.submodules.runs = runs = RunReader(self.bus_bytes, self.burst, self._address_bits, self._word_bits)
        m.submodules.unpacker = unpacker = Unpacker(8 * self.bus_bytes, self.bits)
        wiring.connect(m, wiring.flipped(self.request), runs.request)
        wiring.connect(m, wiring.flipped(self.word), runs.word)
        wiring.connect(m, runs.data, unpacker.word)
        wiring.connect(m, unpacker.beat, wiring.flipped(self.beat))
        m.d.comb += [runs.start.eq(self.go), runs.address.eq(self.base), runs.words.eq(times(self.beats, self.stride))]
        return m


class ReadArbiter(wiring.Component):
    """The read channels' requests, round robin, onto one AXI4 read port, one burst outstanding at a time; the R
    beats go to the channel that asked. `error` pulses with a beat whose response is not OKAY; a burst outside
    the window is dropped with an `outside` pulse (the module docstring's protection)."""

    def __init__(self, channels: int, bus_bytes: int, burst: int, address_bits: int):
        self.channels, self.bus_bytes = channels, bus_bytes
        super().__init__(
            {
                "requests": In(request_signature(address_bits, burst)).array(channels),
                "words": Out(stream.Signature(8 * bus_bytes)).array(channels),
                "ar": Out(stream.Signature(data.StructLayout({"address": address_bits, "length": 8}))),
                "r": In(stream.Signature(data.StructLayout({"data": 8 * bus_bytes, "resp": 2, "last": 1}))),
                "error": Out(1),
                "owner": Out(range(channels)),  # the channel the burst in flight belongs to
                **window_signature(address_bits),
            }
        )

    def elaborate(self, platform):
        m = Module()
        n = self.channels
        last = Signal(range(n))  # the channel served last: the search starts after it
        owner = self.owner
        for words in self.words:
            m.d.comb += words.payload.eq(self.r.payload.data)
        allowed = inside(m, self, self.ar.payload.address, self.ar.payload.length + 1, self.bus_bytes)
        with m.FSM():
            with m.State("PICK"):
                m.d.comb += self.idle.eq(1)
                pick, any_request = Signal(range(n)), Signal()
                with m.Switch(last):
                    for served in range(n):
                        with m.Case(served):
                            for offset in reversed(range(1, n + 1)):  # the last assignment wins: nearest first
                                channel = (served + offset) % n
                                with m.If(self.requests[channel].valid):
                                    m.d.comb += [pick.eq(channel), any_request.eq(1)]
                with m.If(any_request & ~self.stop):
                    m.d.sync += [owner.eq(pick), last.eq(pick)]
                    for channel, request in enumerate(self.requests):
                        with m.If(pick == channel):
                            m.d.comb += request.ready.eq(1)
                            m.d.sync += [
                                self.ar.payload.address.eq(request.payload.address),
                                self.ar.payload.length.eq(request.payload.length - 1),
                            ]
                    m.next = "ADDRESS"
            with m.State("ADDRESS"):  # the address is a register here: `allowed` stays as it is until it goes
                m.d.comb += [self.ar.valid.eq(allowed), self.outside.eq(~allowed)]
                with m.If(~allowed):
                    m.next = "PICK"
                with m.Elif(self.ar.ready):
                    m.next = "DATA"
            with m.State("DATA"):
                m.d.comb += self.r.ready.eq(1)  # the channel reserved room for the whole burst
                for channel, words in enumerate(self.words):
                    m.d.comb += words.valid.eq(self.r.valid & (owner == channel))
                with m.If(self.r.valid):
                    m.d.comb += self.error.eq(self.r.payload.resp != RESP_OKAY)
                    with m.If(self.r.payload.last):
                        m.next = "PICK"
        return m


class LogitsWriter(wiring.Component):
    """`beats` logits beats packed into bus words and written from `base` as AXI4 INCR bursts of up to `burst`
    words, one at a time, its address and data offered together. `go` (one cycle) latches base and beats;
    `done` is high once every write has been answered; `error` pulses with a response that is not OKAY; a burst
    outside the window is never issued (`outside` pulses; the module docstring's protection)."""

    def __init__(self, bus_bytes: int, bits: int, burst: int, address_bits: int, count_bits: int = 32):
        self.bus_bytes, self.bits, self.burst = bus_bytes, bits, burst
        self.stride = bus_words(bits, bus_bytes)
        bus_bits = 8 * bus_bytes
        super().__init__(
            {
                "go": In(1),
                "base": In(address_bits),
                "beats": In(count_bits),
                "logits": In(stream.Signature(bits)),
                "aw": Out(stream.Signature(data.StructLayout({"address": address_bits, "length": 8}))),
                "w": Out(stream.Signature(data.StructLayout({"data": bus_bits, "last": 1}))),
                "b": In(stream.Signature(2)),
                "done": Out(1),
                "error": Out(1),
                **window_signature(address_bits),
            }
        )

    def elaborate(self, platform):
        m = Module()
        burst, bus_bytes = self.burst, self.bus_bytes
        m.submodules.packer = packer = Packer(8 * bus_bytes, self.bits)
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=8 * bus_bytes, depth=2 * burst)
        wiring.connect(m, wiring.flipped(self.logits), packer.beat)
        m.d.comb += [
            fifo.w_data.eq(packer.word.payload),
            fifo.w_en.eq(packer.word.valid),
            packer.word.ready.eq(fifo.w_rdy),
        ]
        address = Signal.like(self.base)
        remaining = Signal(len(self.beats) + ceil_log2(self.stride + 1))  # words still to write
        length = Signal(range(burst + 1))
        sent = Signal(range(burst + 1))
        address_sent, data_sent = Signal(), Signal()
        m.d.comb += [
            length.eq(Mux(remaining < burst, remaining, burst)),
            self.w.payload.data.eq(fifo.r_data),
            self.w.payload.last.eq(sent == length - 1),
        ]
        with m.FSM():
            with m.State("WAIT"):  # until the FIFO holds the whole next burst
                m.d.comb += [self.done.eq(remaining == 0), self.idle.eq(1)]
                allowed = inside(m, self, address, length, bus_bytes)
                want = (remaining != 0) & (fifo.level >= length) & ~self.stop
                m.d.comb += self.outside.eq(want & ~allowed)
                with m.If(want & allowed):
                    m.d.sync += [self.aw.payload.address.eq(address), self.aw.payload.length.eq(length - 1)]
                    m.d.sync += [sent.eq(0), address_sent.eq(0), data_sent.eq(0)]
                    m.next = "BURST"
            with m.State("BURST"):  # address and data offered together: AXI forbids waiting for AWREADY first
                address_taken = self.aw.valid & self.aw.ready
                word_taken = self.w.valid & self.w.ready
                m.d.comb += [
                    self.aw.valid.eq(~address_sent),
                    self.w.valid.eq(fifo.r_rdy & ~data_sent),
                    fifo.r_en.eq(self.w.ready & ~data_sent),
                ]
                with m.If(address_taken):
                    m.d.sync += address_sent.eq(1)
                with m.If(word_taken):
                    m.d.sync += sent.eq(sent + 1)
                    with m.If(self.w.payload.last):
                        m.d.sync += data_sent.eq(1)
                address_done = address_sent | address_taken
                data_done = data_sent | (word_taken & self.w.payload.last)
                with m.If(address_done & data_done):
                    m.next = "RESPONSE"
            with m.State("RESPONSE"):
                m.d.comb += self.b.ready.eq(1)
                with m.If(self.b.valid):
                    m.d.comb += self.error.eq(self.b.payload != RESP_OKAY)
                    m.d.sync += [
                        address.eq(address + (length << exact_log2(bus_bytes))),
                        remaining.eq(remaining - length),
                    ]
                    m.next = "WAIT"
        with m.If(self.go):
            m.d.sync += [address.eq(self.base), remaining.eq(times(self.beats, self.stride))]
        return m


def size_code(bus_bytes: int) -> Const:
    """AXI's AxSIZE for whole-bus beats: log2 of the bytes."""
    return Const(exact_log2(bus_bytes), 3)
