"""The convolution address generator (implicit im2col): the scratchpad reads of one layer descriptor.

It walks exactly `sim.program.reads` (contract.program, "Implicit im2col"): per N-tile, per K-tile
kt = (ky*KW + kx)*G + g, per output row (oy, ox), the word of channel group g at y = oy*s - p + ky,
x = ox*s - p + kx of the map [C, H, W] at `source`,

    word = source + (g*H + y)*W + x,

or a padding read (code 0, no memory access) where (y, x) is outside the map. One read leaves per cycle when
the sink is ready, and the per-cycle logic has no multiplier: every position is a running sum. Stepping ox
adds s to the address, stepping oy adds s*W to the row's start; a new K-tile's first word is one add from a
register: the K-tile before's first word + H*W for the next channel group, the current tap's group-0 word + 1
for the next kx, that tap row's group-0 word + W for the next ky, and the first tap's word source - p*(W + 1)
after the last tap (the running sums are the words themselves, so no second add follows the choice).
The three products H*W, s*W and p*(W + 1) are formed once, when the descriptor is taken (or in the cycle
before, `settled`, below; the last two, of a stride of at most 4 and a padding of at most 6, as shifts and
adds: hw/shift_add.py). y and x are small signed counters beside the address, compared with H and W to flag
padding (the flag a register loaded with the comparisons of the next y and x, so that no carry chain lies
between the walk's counters and the reads' consumers in the cycle the read is offered); the lanes that hold
channels, min(R, C - g*R), come from a count of the channels left, so no division by R is needed either.

A descriptor is taken only between walks: its first read is offered in the next cycle, and the next
descriptor can be taken in the cycle after its last read, so with a sink always ready a walk of n reads takes
n + 1 cycles.

A descriptor that is out of range is taken and dropped with `error` high (as hw/sequencer.py refuses a
command): it makes no read, and the next descriptor runs normally. The check (`legal`, a function of a
descriptor) has multiplies and carry chains between the descriptor and the generator's state; a client whose
descriptor is stable a cycle before it is offered (the program engine) evaluates `legal` itself in that cycle,
registers the verdict, offers only legal descriptors and builds the generator with `check=False`, which takes
the check out of the offering cycle. Such a client also builds it `settled`: the walk's products of the
descriptor (its first word source - p*(W + 1), H*W and s*W, several adds or a DSP block deep) are then
registered from the payload in every cycle and taken from those registers when the descriptor is, which is
right only if the payload was the same in the cycle before it was offered (the program engine's step is
stable from its DECODE). Legal is what contract.program accepts: a
conv layer with kernel 1..MAX_KERNEL, stride 1..MAX_STRIDE, padding below both kernel sides and the output
size that follows from them, or a linear layer (a kernel of the whole map, stride 1, no padding, one output
pixel); every size at least 1 and within the generator's maxima. Whether the map lies inside the scratchpad
is the compiler's check (contract.program); addresses wrap at `address_bits`.
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from contract.config import EngineConfig
from contract.program import MAX_KERNEL, MAX_STRIDE
from hw.shift_add import small_times


def within(y, x, descriptor):
    """Whether the coordinates (y, x) lie in the map of `descriptor` (its height and width): a read of memory,
    not padding."""
    return (y >= 0) & (y < descriptor.height) & (x >= 0) & (x < descriptor.width)


def descriptor_layout(address_bits: int, max_size: int, max_channels: int, max_n_tiles: int) -> data.StructLayout:
    """What the generator needs of a layer descriptor: the map read (its size and address), the output size,
    the window, and the N-tiles over which the whole walk repeats. A kernel side may reach `max_size` (a
    linear layer's kernel is its whole map)."""
    size = range(max_size + 1)
    return data.StructLayout(
        {
            "channels": range(max_channels + 1),
            "height": size,
            "width": size,
            "out_height": size,
            "out_width": size,
            "kernel_height": range(max(MAX_KERNEL, max_size) + 1),
            "kernel_width": range(max(MAX_KERNEL, max_size) + 1),
            "stride": range(MAX_STRIDE + 1),
            "padding": range(MAX_KERNEL),
            "source": address_bits,
            "n_tiles": range(max_n_tiles + 1),
        }
    )


def read_layout(rows: int, address_bits: int, max_size: int) -> data.StructLayout:
    """One read: the word (meaningless when `pad`), the lanes holding channels (0 for padding), the output row
    it feeds, and the tile boundaries the datapath acts on (as the sequencer's token carries them)."""
    return data.StructLayout(
        {
            "address": address_bits,
            "pad": 1,
            "lanes": range(rows + 1),
            "row": range(max_size * max_size),
            "first_ktile": 1,
            "last_ktile": 1,
            "last_ntile": 1,
            "last_row": 1,
            "last": 1,
        }
    )


class ConvAddressGenerator(wiring.Component):
    """The scratchpad reads of one layer descriptor at a time (module docstring), one per cycle.

    Parameters
    ----------
    cfg : EngineConfig
        The engine whose rows R are a word's lanes (a channel group).
    address_bits : int
        Width of a scratchpad word address.
    max_size : int
        Largest height or width of a map read or written.
    max_channels : int
        Most channels of a map read.
    max_n_tiles : int
        Most N-tiles of a layer.
    check : bool
        Whether the generator refuses an illegal descriptor itself. False for a client that offers only
        descriptors `legal` accepts (module docstring): `error` is then always low.
    settled : bool
        Whether every descriptor offered is on the payload, unchanged, in the cycle before (module docstring):
        the walk's products are then formed a cycle ahead.

    Members
    -------
    descriptor : In(stream.Signature(descriptor))
        The layer descriptors; one is taken (or refused) only while no walk is under way.
    reads : Out(stream.Signature(read))
        The read sequence of the descriptor taken, `last` on its final read.
    error : Out(1)
        The descriptor in `descriptor` is illegal: it is taken in this cycle and dropped, making no read.
    """

    def __init__(
        self,
        cfg: EngineConfig,
        *,
        address_bits: int = 16,
        max_size: int = 64,
        max_channels: int = 1024,
        max_n_tiles: int = 64,
        check: bool = True,
        settled: bool = False,
    ):
        self._cfg, self._check, self._settled = cfg, check, settled
        self.address_bits, self.max_size = address_bits, max_size
        self.max_channels, self.max_n_tiles = max_channels, max_n_tiles
        super().__init__(
            {
                "descriptor": In(
                    stream.Signature(descriptor_layout(address_bits, max_size, max_channels, max_n_tiles))
                ),
                "reads": Out(stream.Signature(read_layout(cfg.rows, address_bits, max_size))),
                "error": Out(1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        rows, width = self._cfg.rows, self.address_bits
        payload = self.descriptor.payload
        command = Signal.like(payload)
        kernel = range(max(MAX_KERNEL, self.max_size))
        # Coordinates in the map, and their starts for the current tap (ky - p, kx - p).
        coordinate = range(-MAX_KERNEL, 2 * self.max_size + MAX_KERNEL + MAX_STRIDE)
        y, x, y_start, x_start = (Signal(coordinate, name=name) for name in ("y", "x", "y_start", "x_start"))
        n_tile = Signal(range(self.max_n_tiles))
        ky, kx = Signal(kernel), Signal(kernel)
        channels_left = Signal(range(self.max_channels + 1))  # C - g*R
        oy, ox = Signal(range(self.max_size)), Signal(range(self.max_size))
        row = Signal(range(self.max_size * self.max_size))
        first_ktile = Signal()
        # Word addresses, wrapping at `width` bits: the true ones whenever the read is not padding. Each K-tile's
        # first word is one add from a register: the next group's is this K-tile's first + H*W, the next tap's
        # the current tap's group-0 word + 1 (or its row's + W), the first tap's a constant of the descriptor.
        map_words, row_step = Signal(width), Signal(width)  # H*W, s*W
        first_word = Signal(width)  # source - p*(W + 1): tap (0, 0) of group 0
        row_word = Signal(width)  # source + (ky - p)*W - p: tap (ky, 0) of group 0
        tap_word = Signal(width)  # source + (ky - p)*W + kx - p: tap (ky, kx) of group 0
        ktile_word = Signal(width)  # tap_word + g*H*W: the current K-tile's first word
        row_start = Signal(width)  # the word of (oy, ox = 0)
        address = Signal(width)

        # The counters' last values, registered with the descriptor: the walk compares for equality only, with no
        # subtraction before the choice of the next address.
        ox_end, oy_end = Signal.like(ox), Signal.like(oy)
        kx_end, ky_end, n_tile_end = Signal.like(kx), Signal.like(ky), Signal.like(n_tile)
        last_ox = ox == ox_end
        last_oy = oy == oy_end
        # Whether the current channel group is the last (channels_left <= R), a register loaded with its next value
        # like channels_left, so that no comparison lies before the choice of the next K-tile's word.
        last_group, one_group = Signal(), Signal()  # one_group: C <= R, what last_group becomes after the last group
        last_kx = kx == kx_end
        last_ky = ky == ky_end
        last_ktile = last_group & last_kx & last_ky
        last_ntile = n_tile == n_tile_end
        # (y, x) is in the map: a memory read, not padding. A register loaded with the value of the coordinates
        # it loads (`within` the next y and x), as the walk's other flags are.
        inside = Signal()
        next_y, next_x = Signal(coordinate, name="next_y"), Signal(coordinate, name="next_x")
        m.d.comb += [next_y.eq(y), next_x.eq(x)]  # held unless the walk below moves them
        read = self.reads.payload
        m.d.comb += [
            read.address.eq(address),
            read.pad.eq(~inside),
            read.lanes.eq(Mux(inside, Mux(last_group, channels_left, rows), 0)),
            read.row.eq(row),
            read.first_ktile.eq(first_ktile),
            read.last_ktile.eq(last_ktile),
            read.last_ntile.eq(last_ntile),
            read.last_row.eq(last_ox & last_oy),
            read.last.eq(last_ox & last_oy & last_ktile & last_ntile),
        ]

        # The walk's products of the descriptor, a cycle ahead of its taking when `settled`.
        start_word = Signal(width)  # source - p*(W + 1): the word of tap (0, 0) of group 0
        m.d.comb += start_word.eq(payload.source - small_times(payload.width + 1, payload.padding, MAX_KERNEL - 1))
        start_word, words_of_map, step_of_row = (
            self._prepared(m, value)
            for value in (
                start_word,
                (payload.height * payload.width)[:width],
                small_times(payload.width, payload.stride, MAX_STRIDE)[:width],
            )
        )

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.descriptor.ready.eq(1)
                # Every idle cycle loads the walk's start from the payload, valid or not (as the sequencer
                # does): nothing reads it while idle, and the accepting cycle loads the accepted descriptor.
                m.d.sync += [
                    command.eq(payload),
                    ox_end.eq(payload.out_width - 1),
                    oy_end.eq(payload.out_height - 1),
                    kx_end.eq(payload.kernel_width - 1),
                    ky_end.eq(payload.kernel_height - 1),
                    n_tile_end.eq(payload.n_tiles - 1),
                    map_words.eq(words_of_map),
                    row_step.eq(step_of_row),
                    first_word.eq(start_word),
                    row_word.eq(start_word),
                    tap_word.eq(start_word),
                    ktile_word.eq(start_word),
                    row_start.eq(start_word),
                    address.eq(start_word),
                    y.eq(-payload.padding),
                    x.eq(-payload.padding),
                    inside.eq(within(-payload.padding, -payload.padding, payload)),
                    y_start.eq(-payload.padding),
                    x_start.eq(-payload.padding),
                    n_tile.eq(0),
                    ky.eq(0),
                    kx.eq(0),
                    channels_left.eq(payload.channels),
                    last_group.eq(payload.channels <= rows),
                    one_group.eq(payload.channels <= rows),
                    oy.eq(0),
                    ox.eq(0),
                    row.eq(0),
                    first_ktile.eq(1),
                ]
                refused = self.descriptor.valid & ~self.legal(payload) if self._check else Const(0)
                with m.If(refused):
                    m.d.comb += self.error.eq(1)  # taken and dropped: no read, the next descriptor starts clean
                with m.Elif(self.descriptor.valid):
                    m.next = "WALK"
            with m.State("WALK"):
                m.d.comb += self.reads.valid.eq(1)
                # One read per transfer: ox, else oy, else the next K-tile. Only additions and comparisons.
                with m.If(self.reads.ready):
                    m.d.sync += row.eq(row + 1)
                    with m.If(~last_ox):
                        m.d.comb += next_x.eq(x + command.stride)
                        m.d.sync += [ox.eq(ox + 1), address.eq(address + command.stride)]
                    with m.Elif(~last_oy):
                        next_row = row_start + row_step
                        m.d.comb += [next_x.eq(x_start), next_y.eq(y + command.stride)]
                        m.d.sync += [
                            ox.eq(0),
                            oy.eq(oy + 1),
                            row_start.eq(next_row),
                            address.eq(next_row),
                        ]
                    with m.Else():
                        m.d.sync += [oy.eq(0), ox.eq(0), row.eq(0), first_ktile.eq(0)]
                        # The next K-tile: the next group at this tap, else group 0 at the next tap (after the
                        # last tap, the first tap of the next N-tile). Its first word is one add from a register.
                        first = Signal(width, name="next_ktile_word")
                        m.d.comb += [first.eq(ktile_word + map_words), next_y.eq(y_start), next_x.eq(x_start)]
                        m.d.sync += [channels_left.eq(channels_left - rows), last_group.eq(channels_left <= 2 * rows)]
                        with m.If(last_group):
                            m.d.sync += [channels_left.eq(command.channels), last_group.eq(one_group)]
                            with m.If(~last_kx):
                                m.d.comb += [first.eq(tap_word + 1), next_x.eq(x_start + 1)]
                                m.d.sync += [kx.eq(kx + 1), tap_word.eq(first)]
                            with m.Elif(~last_ky):
                                m.d.comb += [
                                    first.eq(row_word + command.width),
                                    next_y.eq(y_start + 1),
                                    next_x.eq(-command.padding),
                                ]
                                m.d.sync += [kx.eq(0), ky.eq(ky + 1), row_word.eq(first), tap_word.eq(first)]
                            with m.Else():
                                m.d.comb += [
                                    first.eq(first_word),
                                    next_y.eq(-command.padding),
                                    next_x.eq(-command.padding),
                                ]
                                m.d.sync += [
                                    kx.eq(0),
                                    ky.eq(0),
                                    n_tile.eq(n_tile + 1),
                                    first_ktile.eq(1),
                                    row_word.eq(first),
                                    tap_word.eq(first),
                                ]
                                with m.If(last_ntile):
                                    m.next = "IDLE"
                        m.d.sync += [
                            ktile_word.eq(first),
                            y_start.eq(next_y),
                            x_start.eq(next_x),
                            row_start.eq(first),
                            address.eq(first),
                        ]
                m.d.sync += [y.eq(next_y), x.eq(next_x), inside.eq(within(next_y, next_x, command))]
        return m

    def _prepared(self, m: Module, value):
        """`value`, a function of the payload, registered when `settled` (formed in the cycle before the
        descriptor is taken), else as it is."""
        if not self._settled:
            return value
        ahead = Signal(value.shape())
        m.d.sync += ahead.eq(value)
        return ahead

    def legal(self, payload, stage=lambda value: value):
        """What contract.program accepts of a descriptor (module docstring), within this generator's maxima: a
        function of any value of `descriptor_layout`, for a client that checks before it offers. `stage` is
        applied to every value between the check's arithmetic and its last comparisons: a client may register
        them there (the program engine does), taking two cycles of a stable descriptor for the check."""
        sizes = (
            (payload.channels, self.max_channels),
            (payload.height, self.max_size),
            (payload.width, self.max_size),
            (payload.out_height, self.max_size),
            (payload.out_width, self.max_size),
            (payload.n_tiles, self.max_n_tiles),
            (payload.stride, MAX_STRIDE),
        )
        legal = 1
        for value, maximum in sizes:
            legal &= (value >= 1) & (value <= maximum)
        conv, reaches = 1, 1
        axes = (
            (payload.height, payload.kernel_height, payload.out_height),
            (payload.width, payload.kernel_width, payload.out_width),
        )
        for size, kernel, out in axes:
            conv &= (kernel >= 1) & (kernel <= MAX_KERNEL) & (payload.padding < kernel)
            # out = (size + 2p - kernel) // s + 1, that is (out - 1)*s + kernel <= size + 2p < out*s + kernel:
            # with reach = out*s + kernel, reach <= size + 2p + s and size + 2p < reach. No divider, and no
            # multiplier either (s <= MAX_STRIDE: hw/shift_add.py).
            padded = size + 2 * payload.padding
            reach = stage(small_times(out, payload.stride, MAX_STRIDE) + kernel)
            reaches &= (reach <= stage(padded + payload.stride)) & (stage(padded) < reach)
        linear = (
            (payload.kernel_height == payload.height)
            & (payload.kernel_width == payload.width)
            & (payload.stride == 1)
            & (payload.padding == 0)
            & (payload.out_height == 1)
            & (payload.out_width == 1)
        )
        return stage(legal) & ((stage(conv) & reaches) | stage(linear))
