"""The schedule of one command: which stream beats each pipeline slot consumes, and what it computes.

A *slot* is one cycle in which the whole pipeline advances (the engine's global `advance`). The schedule
is a fixed function of (M, K, N, R, C), which is what makes the cycle count exact:

    preload   R slots   weight rows 0..R-1 of tile 0
    tile t    L slots   slot i: activation row i (i < M) and weight row i of tile t+1 (i < R, if any),
                        L = max(M, R); the last tile has only M slots (no next tile to load)
    drain     D slots   no input; D = pipeline latency, so the last row reaches the output FIFO

Tiles run N-tile outer, K-tile inner. Lanes of the last K-tile beyond K are masked here (`act_lanes`),
columns of the last N-tile beyond N by the requantizer (each row's token carries how many exist).
Precision settings are decoded from the `cmd` payload in every idle cycle; those of the accepting cycle
hold until the command's last activation row has entered.

The drain overlaps the next command: after its last activation slot the sequencer is idle again and takes
the next command, whose acceptance and weight preload run while the last rows drain (a counter of the drain
slots left keeps the pipeline advancing, `running`). Everything a row needs below the array travels with it:
its token carries the mode, the pre-shift, the offset term's scheme and B - k, and the N-tile's columns; a
digit-serial row carries its weight decode beside its activation (hw/pe.py). The only per-command state the
pipeline keeps is in the PEs' weights, which a tile's `swap` wave replaces row by row anyway.

A digit-serial engine (D < B) holds each activation row for n = ceil(k/D) slots, one per weight digit,
most significant first: a tile takes max(M*n, R) slots (M*n for the last) and the activation beat is
taken (`take_act`) in its row's last digit slot, its payload being stable while it waits.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from contract.numerics import MODES
from contract.timing import drain_slots
from hw.interface import payload_layout, precision_layout, token_layout


def command_legal(cfg, payload):
    """Whether a command lies within the contract and this engine's limits (docs/architecture.md, "Illegal
    commands"). The fixed-precision baseline ignores wbits and abits, so it does not check them."""
    legal = (
        (payload.m >= 1)
        & (payload.m <= cfg.max_m)
        & (payload.k_dim >= 1)
        & (payload.k_dim <= cfg.max_k)
        & (payload.n >= 1)
        & (payload.n <= cfg.max_n)
    )
    legal &= payload.mode.as_value() < len(MODES)  # the mode field's codes beyond the modes
    if cfg.switchable:
        legal &= (payload.wbits >= 1) & (payload.wbits <= cfg.base_bits)
        legal &= (payload.abits >= 1) & (payload.abits <= cfg.act_bits)
    return legal


class Sequencer(wiring.Component):
    """The schedule of one command (module docstring): per slot, which beats are due and what they are.

    Parameters
    ----------
    cfg : EngineConfig
        The engine whose schedule this is.

    Members
    -------
    cmd : In(stream.Signature(cmd payload))
        The command stream; a command is accepted (or refused) only while idle.
    advance : In(1)
        The global enable: this cycle is a slot.
    running : Out(1)
        A command is being executed or rows are still draining: the pipeline advances in this cycle if its
        beats are ready (for the stall copies).
    ending : Out(1)
        This is the last drain slot (the last result row reaches the output FIFO) and no command runs.
    want_act : Out(1)
        The slot needs an activation beat (registered).
    take_act : Out(1)
        The slot consumes the activation beat (digit-serial: in the row's last digit slot).
    want_weight : Out(1)
        The slot needs a weight beat (registered).
    want_act_after_slot, want_weight_after_slot : Out(1)
        What `want_act` and `want_weight` will be after this cycle if it is a slot (their registers' inputs
        when `advance` is high; while idle, whether or not it is), for the stall copies' own registered
        copies of them (hw/stall.py), which load them under their own enable: no copy waits on `advance`.
    token : Out(token)
        What the slot's activation row is: row, tile flags, `last` (and the digit place).
    act_lanes : Out(R)
        Activation lanes that exist in this K-tile (< K).
    precision : Out(precision)
        The command's decoded precision, held until its last activation row has entered.
    refused : Out(1)
        The command in `cmd` is illegal (field out of range): it is consumed and the engine's sticky
        `error` is set instead of running it.
    """

    def __init__(self, cfg):
        self._cfg = cfg
        super().__init__(
            {
                "cmd": In(stream.Signature(payload_layout(cfg, "cmd"))),
                "advance": In(1),
                "running": Out(1),
                "ending": Out(1),
                "want_act": Out(1),
                "take_act": Out(1),
                "want_weight": Out(1),
                "want_act_after_slot": Out(1),
                "want_weight_after_slot": Out(1),
                "token": Out(token_layout(cfg)),
                "act_lanes": Out(cfg.rows),
                "precision": Out(precision_layout(cfg)),
                "refused": Out(1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        rows, cols = cfg.rows, cfg.cols
        command = Signal(payload_layout(cfg, "cmd"))
        k_left = Signal(range(cfg.max_k + 1))
        n_left = Signal(range(cfg.max_n + 1))
        first_ktile = Signal()
        drain = drain_slots(cfg)
        drain_left = Signal(range(drain + 1))  # slots until the last activation row's result is in the FIFO
        draining = drain_left != 0
        # Digit-serial, `slot` counts only a tile's first R slots (its weight loads).
        slot = Signal(range(rows + 1) if cfg.digit_serial else range(max(cfg.max_m, rows)))
        if cfg.digit_serial:
            row = Signal(range(cfg.max_m + 1))  # the activation row of the tile; M once all are in
            place = Signal(range(cfg.digit_count), init=cfg.digit_count - 1)  # its digit, counting down
            last_digit = place == self.precision.last_place
            m.d.comb += [self.token.place.eq(place), self.token.last_digit.eq(last_digit)]
        else:
            row, last_digit = slot, Const(1)

        # Registered flags, so that the wants feeding the engine's `advance` (an enable of every datapath
        # register) come straight from flip-flops: each is set from its counters' next values.
        last_ktile = Signal()  # k_left <= R
        last_ntile = Signal()  # n_left <= C
        rows_left = Signal()  # in TILES, row < M: an activation row is due
        weights_left = Signal()  # PRELOAD, or in TILES slot < R and not the last tile: a weight row is due
        last_tile = last_ktile & last_ntile
        # Registered likewise, so that the end of a tile (an enable of every counter) needs no comparator:
        # `last_row` is row == M-1 and, bit-parallel, `tile_end` is slot == max(M, R)-1. Both hold their
        # row-0 values from IDLE through PRELOAD (row, and `slot` as TILES sees it, start at 0), take them
        # again when a tile ends, and otherwise compare the counter with the index before the last (-1 when
        # there is none) as it steps.
        last_row = Signal()
        single_row = Signal()  # M = 1: the value of `last_row` at row 0
        row_before_last = Signal(range(-1, cfg.max_m - 1))  # M - 2
        if not cfg.digit_serial:
            tile_end = Signal()
            tile_before_end = Signal(range(-1, max(cfg.max_m, rows) - 1))  # max(M, R) - 2
        # The last-tile flag of the tile that follows this one (used only when this one is not the last).
        next_last_tile = Mux(
            last_ktile,
            (command.k_dim <= rows) & (n_left <= 2 * cols),
            (k_left <= 2 * rows) & last_ntile,
        )
        # Both wants are set through their values after a slot, which the stall copies follow (hw/stall.py):
        # formed below whether or not this cycle is a slot, and taken in a slot or while idle.
        act_after, weight_after = self.want_act_after_slot, self.want_weight_after_slot
        m.d.comb += [act_after.eq(rows_left), weight_after.eq(weights_left)]  # held unless the FSM below sets them
        m.d.comb += [
            self.want_act.eq(rows_left),
            self.want_weight.eq(weights_left),
            self.want_act.eq(rows_left),
            self.want_weight.eq(weights_left),
            self.take_act.eq(self.want_act & last_digit),
            self.act_lanes.eq(Cat(k_left > r for r in range(rows))),
            self.token.row.eq(row),
            self.token.first_ktile.eq(first_ktile),
            self.token.last_ktile.eq(last_ktile),
            self.token.last_ntile.eq(last_ntile),
            self.token.last.eq(last_tile & last_row & last_digit),
            self.token.precision.mode.eq(self.precision.mode),
            self.token.precision.columns.eq(n_left[: len(self.token.precision.columns)]),  # n_left <= C when last
        ]
        if cfg.switchable:
            m.d.comb += self.token.precision.acc_shift.eq(self.precision.acc_shift)
        if cfg.switchable and not cfg.digit_serial:
            m.d.comb += [
                self.token.precision.scheme.eq(self.precision.weight.scheme),
                self.token.precision.drop.eq(self.precision.weight.drop),
            ]
        with m.If(self.advance & draining):
            m.d.sync += drain_left.eq(drain_left - 1)

        with m.FSM():
            with m.State("IDLE"):
                # The previous command's last rows may still be draining: the pipeline runs on meanwhile.
                m.d.comb += [
                    self.cmd.ready.eq(1),
                    self.running.eq(draining),
                    self.ending.eq(drain_left == 1),
                ]
                # Every idle cycle loads the command, its counters and its decoded precision from the payload,
                # whether or not it is valid or legal: nothing reads them while idle (no activation or weight
                # enters, and the rows still draining carry their own precision), and in the accepting cycle
                # they load exactly the accepted command's. So only the state and
                # `weights_left` wait for the legality checks, and the decode is off that path.
                self._load(m, self.cmd.payload, command)
                one_row = self.cmd.payload.m == 1
                m.d.sync += [
                    last_row.eq(one_row),
                    single_row.eq(one_row),
                    row_before_last.eq(self.cmd.payload.m - 2),
                    k_left.eq(self.cmd.payload.k_dim),
                    n_left.eq(self.cmd.payload.n),
                    last_ktile.eq(self.cmd.payload.k_dim <= rows),
                    last_ntile.eq(self.cmd.payload.n <= cols),
                    first_ktile.eq(1),
                    slot.eq(0),
                ]
                if cfg.digit_serial:
                    m.d.sync += row.eq(0)
                else:
                    m.d.sync += [
                        tile_end.eq(one_row & (rows == 1)),  # max(M, R) = 1
                        tile_before_end.eq(Mux(self.cmd.payload.m > rows, self.cmd.payload.m, rows) - 2),
                    ]
                with m.If(self.cmd.valid & ~command_legal(cfg, self.cmd.payload)):
                    # Taken and dropped: it takes no beat and makes none, so the next command starts clean.
                    m.d.comb += self.refused.eq(1)
                with m.Elif(self.cmd.valid):
                    m.d.comb += weight_after.eq(1)
                    m.next = "PRELOAD"
                m.d.sync += [rows_left.eq(act_after), weights_left.eq(weight_after)]
            with m.State("PRELOAD"):
                m.d.comb += self.running.eq(1)
                with m.If(slot == rows - 1):
                    m.d.comb += [act_after.eq(1), weight_after.eq(~last_tile)]
                with m.If(self.advance):
                    m.d.sync += [slot.eq(Mux(slot == rows - 1, 0, slot + 1)), rows_left.eq(act_after)]
                    m.d.sync += weights_left.eq(weight_after)
                    with m.If(slot == rows - 1):
                        m.next = "TILES"
            with m.State("TILES"):
                m.d.comb += [self.running.eq(1), self.token.valid.eq(rows_left)]
                if cfg.digit_serial:
                    # A tile that loads the next one's weights lasts at least R slots; `slot` stays at R
                    # after them.
                    rows_in = ~rows_left | (last_row & last_digit)
                    tile_done = Mux(last_tile, last_row & last_digit, (slot >= rows - 1) & rows_in)
                else:
                    tile_done = Mux(last_tile, last_row, tile_end)
                with m.If(slot == rows - 1):
                    m.d.comb += weight_after.eq(0)
                with m.If(self.take_act & last_row):
                    m.d.comb += act_after.eq(0)
                with m.If(tile_done):
                    m.d.comb += [act_after.eq(~last_tile), weight_after.eq(~last_tile & ~next_last_tile)]
                with m.If(self.advance):
                    m.d.sync += [rows_left.eq(act_after), weights_left.eq(weight_after)]
                    if cfg.digit_serial:
                        with m.If(slot != rows):
                            m.d.sync += slot.eq(slot + 1)
                        with m.If(self.want_act):
                            m.d.sync += place.eq(Mux(last_digit, cfg.digit_count - 1, place - 1))
                            with m.If(last_digit):
                                m.d.sync += [row.eq(row + 1), last_row.eq(row == row_before_last)]
                    else:
                        m.d.sync += [
                            slot.eq(slot + 1),
                            last_row.eq(slot == row_before_last),
                            tile_end.eq(slot == tile_before_end),
                        ]
                    with m.If(tile_done):
                        m.d.sync += [
                            slot.eq(0),
                            first_ktile.eq(last_ktile),
                            last_row.eq(single_row),
                        ]
                        if cfg.digit_serial:
                            m.d.sync += row.eq(0)
                        else:
                            m.d.sync += tile_end.eq(single_row & (rows == 1))
                        with m.If(last_ktile):
                            m.d.sync += [
                                k_left.eq(command.k_dim),
                                n_left.eq(n_left - cols),
                                last_ktile.eq(command.k_dim <= rows),
                                last_ntile.eq(n_left <= 2 * cols),
                            ]
                        with m.Else():
                            m.d.sync += [k_left.eq(k_left - rows), last_ktile.eq(k_left <= 2 * rows)]
                        with m.If(last_tile):
                            # The last activation row has entered: drain it while the next command comes.
                            m.d.sync += drain_left.eq(drain)
                            m.next = "IDLE"
        return m

    def _load(self, m, payload, command):
        """Latch the command and decode its precision into masks and the column sum's exact shift (every
        idle cycle, so that the last one is the accepted command's)."""
        cfg = self._cfg
        precision = self.precision
        m.d.sync += [command.eq(payload), precision.mode.eq(payload.mode)]
        if not cfg.switchable:
            return  # the fixed-precision baseline has no masks or pre-shift to decode
        weight_drop = Signal(range(cfg.base_bits), name="weight_drop")
        act_drop = Signal(range(cfg.act_bits), name="act_drop")
        m.d.comb += [
            weight_drop.eq(cfg.base_bits - payload.wbits),
            act_drop.eq(cfg.act_bits - payload.abits),
        ]
        m.d.sync += [
            precision.weight.scheme.eq(payload.scheme),
            precision.act_mask.eq(Const((1 << cfg.act_bits) - 1, cfg.act_bits) << act_drop),
        ]
        if not cfg.digit_serial:
            m.d.sync += [
                precision.weight.mask.eq(Const((1 << cfg.base_bits) - 1, cfg.base_bits) << weight_drop),
                precision.weight.drop.eq(weight_drop),
                precision.acc_shift.eq(weight_drop + act_drop),
            ]
            return
        # Digit-serial: the last digit's place floor((B-k)/D) and its dropped bits (B-k) mod D, below which
        # the PEs mask it (hw/pe.py); and the column sums, which the shift-and-add scales by 2^(D*place) less
        # than the bit-parallel array's (hw/accumulator.py), need only those dropped bits shifted out.
        log_d = cfg.digit_width.bit_length() - 1  # D is 1, 2 or 4
        m.d.sync += [
            precision.last_place.eq(weight_drop >> log_d),
            precision.acc_shift.eq(weight_drop[:log_d] + act_drop),
        ]
        if cfg.digit_width > 1:
            m.d.sync += precision.weight.low.eq(weight_drop[:log_d])
