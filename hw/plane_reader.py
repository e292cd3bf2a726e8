"""The SoC wrapper's weight reader (hw/soc.py): each layer's weights fetched as its k bit-planes, no more.

The weight region holds the program's weight image as bit-planes (contract.bitplanes: per tile of R*C codes,
its B planes MSB first, each S bytes, so tile t's plane p lies at (t*B + p)*S from the base). A layer at k
needs planes 0..k-1 of each of its tiles, one contiguous run of k*S bytes per tile (`fetch_runs`), and the
weight port takes rows of C B-bit codes, so:

    weight request (N-tiles, K, k) ──► tile walk ──► RunReader (k*S bytes a tile) ──► PlaneAssembler ──► weight
    from the program engine                         bursts via the arbiter        k planes -> R rows of codes

**Where each step's k and tiles come from.** The program engine emits a weight request when it hands a layer
step to the GEMM engine (hw/program_engine.py, `weight_requests=True`): its N-tiles, its rows per N-tile
(K) and the k the layer runs at. It is the one place that knows all three for sure: a controlled layer's k is
the candidate its decision register chose at run time (the step carries only the candidates), a step it
refuses (its own checks or the GEMM engine's) takes no weights and so emits no request, and K is its own
product of the step's fields, already checked. Decoding the step stream in the wrapper instead would have to
repeat those checks and the decision unit. The request carries no address: the weight image lies in program
order, each layer's tiles after the previous layer's (contract.program), so the reader walks the tiles from
the region's base, request after request. As before, a refused step's weights must not be in the image.

**The reader.** One request is held at a time, from the cycle it is taken until its last row has gone to the
engine (a layer's weights are all taken before the program engine dispatches the next step, so this costs
nothing but the next layer's first latency). While it is held, a tile walk starts one run per tile, at the
next tile's address, as soon as the previous run has been asked for in full: the RunReader splits it into
bursts that never cross a burst boundary (nor so a 4 KiB page), sized to its FIFO's free room, through the
arbiter's window check, stop and idle like every read channel. A tile beyond the region's tile count (its
REGION_BEATS) is never read: the run waits there, and the watchdog ends it.

**The plane assembler** (`PlaneAssembler`) gathers a tile's k planes (S/bus_bytes words each) into a buffer of
B planes of R*C bits, then hands on its R rows: code c of row r has bit B-1-p equal to bit r*C + c of plane p
for p < k, and its low B-k bits zero (the planes not fetched, masked, never cleared): `decode_planes` at k,
what the weight port took before, and every PE kind masks the low B-k bits anyway. A row needs every plane of
the tile, so one buffer could not take the next tile's words while its rows go out; there are two, one
gathering while the other hands on, so a tile costs max(k*S/bus_bytes, R) cycles rather than their sum
(2*B*S*8 bits: 1,024 on a 4x4 array on a 64-bit bus with B = 8, 4,096 on 16x16). They are B memories of bus
words read without a clock, LUT RAM on an FPGA: as flip-flops they took every code bit through a 2R:1
multiplexer (on the ECP5 at 16x16, 3,459 LUT4 and 4,109 FF, now 428 LUT4, 13 FF and 128 TRELLIS_DPR16X4).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from contract.bitplanes import PlaneLayout
from contract.config import EngineConfig
from hw.dma import RunReader, request_signature
from hw.interface import payload_layout
from hw.program_engine import weight_request_layout
from hw.shift_add import times


class PlaneAssembler(wiring.Component):
    """Bus words of one tile's planes 0..k-1 in, its R rows of C codes out (module docstring).

    `k` must stay put while a tile is gathered and handed on; `last_tile` marks the rows of the request's last
    tile (`last` on its final row); `tile_done` pulses as a tile's final row is taken.
    """

    def __init__(self, config: EngineConfig, bus_bytes: int):
        self.config, self.bus_bytes = config, bus_bytes
        self.layout = PlaneLayout(config.rows, config.cols, config.base_bits, bus_bytes)
        self.plane_words = self.layout.plane_bytes // bus_bytes
        super().__init__(
            {
                "k": In(range(config.base_bits + 1)),
                "last_tile": In(1),
                "word": In(stream.Signature(8 * bus_bytes)),
                "beat": Out(stream.Signature(payload_layout(config, "weight"))),
                "tile_done": Out(1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        rows, cols, base_bits = self.config.rows, self.config.cols, self.config.base_bits
        bus_bits, plane_words = 8 * self.bus_bytes, self.plane_words
        full, fill, drain = Signal(2), Signal(), Signal()  # per buffer: holds a whole tile; which one each side uses
        plane, word, row = Signal(range(base_bits)), Signal(range(plane_words)), Signal(range(rows))
        gathered, handed = Signal(), Signal()  # a tile's last word taken, its last row taken

        # Per plane, both tile buffers' words in one memory (buffer b's word w at b*plane_words + w), read
        # without a clock: LUT RAM on an FPGA, where flip-flops would take a 2R:1 multiplexer per code bit.
        # Row r's C bits lie in the words from r*C // bus_bits (`first`) on, `spans` of them at most, from bit
        # r*C % bus_bits (`offset`) of the first: one read port per word spanned.
        first = [r * cols // bus_bits for r in range(rows)]
        offset = [r * cols % bus_bits for r in range(rows)]
        spans = max(((r + 1) * cols - 1) // bus_bits - first[r] + 1 for r in range(rows))
        row_first = Signal(range(plane_words), name="row_first")
        with m.Switch(row):
            for r in range(rows):
                with m.Case(r):
                    m.d.comb += row_first.eq(first[r])
        taken = self.word.valid & self.word.ready
        kept = [Signal(cols, name=f"row_plane{p}") for p in range(base_bits)]
        for p, bits in enumerate(kept):  # plane p (bit B-1-p) of row r's C codes, zero beyond k
            m.submodules[f"plane{p}"] = memory = Memory(shape=bus_bits, depth=2 * plane_words, init=[])
            write = memory.write_port()
            m.d.comb += [write.addr.eq(fill * plane_words + word), write.data.eq(self.word.payload)]
            m.d.comb += write.en.eq(taken & (plane == p))
            words = []
            for i in range(spans):  # a word beyond the buffer's last is read but never selected
                read = memory.read_port(domain="comb")
                m.d.comb += read.addr.eq(drain * plane_words + row_first + i)
                words.append(read.data)
            source = Cat(*words)
            with m.Switch(row):
                for start in sorted(set(offset)):
                    with m.Case(*(r for r in range(rows) if offset[r] == start)):
                        m.d.comb += bits.eq(Mux(self.k > p, source[start : start + cols], 0))

        m.d.comb += self.word.ready.eq(~full.bit_select(fill, 1))
        with m.If(taken):
            with m.If(word == plane_words - 1):
                m.d.sync += [word.eq(0), plane.eq(plane + 1)]
                with m.If(plane == self.k - 1):
                    m.d.sync += [plane.eq(0), fill.eq(~fill)]
                    m.d.comb += gathered.eq(1)
            with m.Else():
                m.d.sync += word.eq(word + 1)

        last_row = row == rows - 1
        m.d.comb += [
            self.beat.valid.eq(full.bit_select(drain, 1)),
            self.beat.payload.last.eq(self.last_tile & last_row),
        ]
        for c in range(cols):
            m.d.comb += self.beat.payload.codes[c].eq(Cat(kept[base_bits - 1 - b][c] for b in range(base_bits)))
        with m.If(self.beat.valid & self.beat.ready):
            m.d.sync += row.eq(Mux(last_row, 0, row + 1))
            with m.If(last_row):
                m.d.sync += drain.eq(~drain)
                m.d.comb += [handed.eq(1), self.tile_done.eq(1)]
        for b in (0, 1):  # never both on one buffer: the one filling is not full, the one draining is
            with m.If(gathered & (fill == b)):
                m.d.sync += full[b].eq(1)
            with m.If(handed & (drain == b)):
                m.d.sync += full[b].eq(0)
        return m


class WeightReader(wiring.Component):
    """The weight region read as bit-planes, request by request (module docstring).

    `go` (one cycle) latches `base` and `beats`, the region's tiles; reset the reader before each run.
    """

    def __init__(
        self,
        config: EngineConfig,
        max_n_tiles: int,
        bus_bytes: int,
        burst: int,
        address_bits: int,
        count_bits: int = 32,
    ):
        self.config, self.max_n_tiles = config, max_n_tiles
        self.bus_bytes, self.burst, self.address_bits = bus_bytes, burst, address_bits
        super().__init__(
            {
                "go": In(1),
                "base": In(address_bits),
                "beats": In(count_bits),
                "weight_request": In(stream.Signature(weight_request_layout(config, max_n_tiles))),
                "request": Out(request_signature(address_bits, burst)),
                "word": In(stream.Signature(8 * bus_bytes)),
                "beat": Out(stream.Signature(payload_layout(config, "weight"))),
            }
        )

    def elaborate(self, platform):
        m = Module()
        m.submodules.assembler = assembler = PlaneAssembler(self.config, self.bus_bytes)
        plane_words = assembler.plane_words
        word_bits = (self.config.base_bits * plane_words).bit_length()
        m.submodules.runs = runs = RunReader(self.bus_bytes, self.burst, self.address_bits, word_bits)
        wiring.connect(m, wiring.flipped(self.request), runs.request)
        wiring.connect(m, wiring.flipped(self.word), runs.word)
        wiring.connect(m, runs.data, assembler.word)
        wiring.connect(m, assembler.beat, wiring.flipped(self.beat))

        held = Signal()
        request = Signal.like(self.weight_request.payload)
        m.d.comb += [self.weight_request.ready.eq(~held), assembler.k.eq(request.k)]
        taken = self.weight_request.valid & ~held
        with m.If(taken):
            m.d.sync += [held.eq(1), request.eq(self.weight_request.payload)]
        issue_done, _ = self._tile_walk(m, "issue", taken, request, runs.start)
        emit_done, emit_last = self._tile_walk(m, "emit", taken, request, assembler.tile_done)
        m.d.comb += assembler.last_tile.eq(emit_last)
        with m.If(held & emit_done):
            m.d.sync += held.eq(0)

        address, tile, region_tiles = Signal.like(self.base), Signal.like(self.beats), Signal.like(self.beats)
        m.d.comb += [
            runs.start.eq(held & ~issue_done & runs.idle & (tile < region_tiles)),
            runs.address.eq(address),
            runs.words.eq(times(request.k, plane_words)),
        ]
        with m.If(runs.start):
            m.d.sync += [address.eq(address + assembler.layout.tile_bytes), tile.eq(tile + 1)]
        with m.If(self.go):
            m.d.sync += [address.eq(self.base), tile.eq(0), region_tiles.eq(self.beats)]
        return m

    def _tile_walk(self, m: Module, name: str, load, request, advance):
        """A count of the held request's tiles, N-tile by N-tile (K/R tiles each, so no multiplier): loaded
        the cycle a request is taken, one tile on with `advance`. Returns (done, last): no tile left, and
        the current tile is the request's last."""
        rows = self.config.rows
        n_left = Signal.like(request.n_tiles, name=f"{name}_n_left")  # N-tiles not finished
        rows_left = Signal.like(request.rows, name=f"{name}_rows_left")  # rows of this N-tile from this tile on
        with m.If(load):
            payload = self.weight_request.payload
            m.d.sync += [n_left.eq(Mux(payload.rows == 0, 0, payload.n_tiles)), rows_left.eq(payload.rows)]
        with m.Elif(advance):
            with m.If(rows_left <= rows):
                m.d.sync += [n_left.eq(n_left - 1), rows_left.eq(request.rows)]
            with m.Else():
                m.d.sync += rows_left.eq(rows_left - rows)
        return n_left == 0, (n_left == 1) & (rows_left <= rows)
