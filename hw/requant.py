"""Requantization of complete column sums into one result beat (docs/numerics.md, Requantization).

Six register stages, each short enough for 100 MHz on an ECP5 (docs/estimates.md, "Issue 13" and "Issue 25"):

1. u = sum >> shift_kj, undoing the precision scaling (a barrel shifter; a plain register when fixed);
2. t = wrap_ACC(u + bias);
3. t * mult as partial products of 16 x 16 bits, one DSP block each on an FPGA (an iCE40 SB_MAC16 or an
   ECP5 MULT18X18D): t in 16-bit slices, each low (unsigned) slice s times mult computed as
   s * (mult + 2^15), an unsigned product, less s * 2^15, so that every product is one multiplier;
4. the products' sum q, and beside it r = 2^(shift-1) less the low slices' s * 2^15;
5. p = q + r;
6. y = p >> shift;

then combinationally the relu clamp into the output FIFO (linear mode skips it: the result keeps y's low
ACC bits). Raw mode reuses the same stages with mult = 1, shift = 0 (so p = y = t, bit for bit what the
contract says), chosen in stage 2 so nothing later needs the mode but the clamp. The pre-shift, the mode and
the N-tile's existing columns come from each row's token (`precision`), so that the rows of a command at
another precision can follow the previous command's last rows through the stages. The parameter register
holds one N-tile's columns and is reloaded when that tile's first complete row arrives, while the previous
tile's last rows may still be in the pipeline (M = 1 reloads it every slot): that is why bias, mult and
shift are copied into stage 1 and travel with the data instead of being read from the register later.
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from contract.timing import REQUANT_STAGES
from hw.interface import Mode, payload_layout, token_layout
from hw.skew import delay_line


def product_parts(acc_bits: int, part_bits: int) -> list[tuple[int, int]]:
    """(start, width) of the slices of t whose products with mult add up to t * mult: unsigned low slices
    of `part_bits` (the mult's width), and a signed top slice of at most as many bits."""
    parts, start = [], 0
    while acc_bits - start > part_bits:
        parts.append((start, part_bits))
        start += part_bits
    return [*parts, (start, acc_bits - start)]


class Requantizer(wiring.Component):
    """Complete column sums of one row in, one result beat out, six register stages later (module docstring).

    Parameters
    ----------
    cfg : EngineConfig
        Widths, columns and PE kind of the engine.

    Members
    -------
    sums : In(ArrayLayout(signed(ACC), C))
        The row's complete sums from the accumulator.
    token : In(token)
        What the row is (valid, row, tile flags, `last`) and its command's `precision`: the pre-shift
        (A-j)+(B-k), the mode and the N-tile's existing columns (the others give 0); a result is produced for
        valid tokens only.
    params : In(param payload)
        The N-tile's bias, mult and shift per column, as the `param` stream's beat.
    load_params : In(1)
        Take `params` into the parameter register (the N-tile's first complete row).
    result : Out(result payload)
        The requantized row with `last` set on the command's final beat.
    result_valid : Out(1)
        `result` holds a row to write into the output FIFO this slot.
    result_due : Out(1)
        `result_valid` after the next slot (the stall copies' output room, hw/stall.py).
    """

    def __init__(self, cfg):
        self._cfg = cfg
        super().__init__(
            {
                "sums": In(data.ArrayLayout(signed(cfg.acc_bits), cfg.cols)),
                "token": In(token_layout(cfg)),
                "params": In(payload_layout(cfg, "param")),
                "load_params": In(1),
                "result": Out(payload_layout(cfg, "result")),
                "result_valid": Out(1),
                "result_due": Out(1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        acc, cols = cfg.acc_bits, cfg.cols
        params = Signal(payload_layout(cfg, "param"))
        with m.If(self.load_params):
            m.d.sync += params.eq(self.params)

        top_code = (1 << cfg.act_bits) - 1
        parts = product_parts(acc, cfg.mult_bits)
        offset = 1 << (cfg.mult_bits - 1)
        tokens = delay_line(m, self.token, REQUANT_STAGES, "requant_token")
        raw = tokens[1].precision.mode == Mode.RAW  # the row in stage 2
        out_token = tokens[-1]
        for c in range(cols):
            # Stage 1: the exact pre-shift; this column's parameters join the data.
            u = Signal(signed(acc), name=f"u{c}")
            bias = Signal(signed(acc), name=f"bias{c}")
            u_mult = Signal(signed(cfg.mult_bits), name=f"u_mult{c}")
            u_shift = Signal(unsigned(cfg.shift_bits), name=f"u_shift{c}")
            m.d.sync += [
                u.eq(self.sums[c] >> self.token.precision.acc_shift if cfg.switchable else self.sums[c]),
                bias.eq(params.bias[c]),
                u_mult.eq(params.mult[c]),
                u_shift.eq(params.shift[c]),
            ]
            # Stage 2: the bias; raw mode becomes mult = 1, shift = 0.
            # mult + 2^15 (the low slices' unsigned factor) is registered here too, so that both factors of
            # every partial product come straight from flip-flops into the DSP block.
            t = Signal(signed(acc), name=f"t{c}")
            t_mult = Signal(signed(cfg.mult_bits), name=f"t_mult{c}")
            mult_offset = Signal(cfg.mult_bits, name=f"mult_offset{c}")
            t_shift = Signal(unsigned(cfg.shift_bits), name=f"t_shift{c}")
            stage_mult = Mux(raw, 1, u_mult)
            m.d.sync += [
                t.eq((u + bias)[:acc].as_signed()),
                t_mult.eq(stage_mult),
                mult_offset.eq(stage_mult.as_unsigned() ^ offset),
                t_shift.eq(Mux(raw, 0, u_shift)),
            ]
            # Stage 3: partial products: the top slice signed, the low ones unsigned against mult + 2^15.
            products, corrections = [], []
            for start, width in parts:
                if start + width == acc:
                    product = Signal(signed(width + cfg.mult_bits), name=f"product{c}_{start}")
                    m.d.sync += product.eq(t[start:].as_signed() * t_mult)
                    products.append(product << start)
                    continue
                product = Signal(width + cfg.mult_bits, name=f"product{c}_{start}")
                piece = Signal(width, name=f"piece{c}_{start}")
                m.d.sync += [product.eq(t[start : start + width] * mult_offset), piece.eq(t[start : start + width])]
                products.append(product << start)
                corrections.append(piece << (start + cfg.mult_bits - 1))
            x_shift = Signal(unsigned(cfg.shift_bits), name=f"x_shift{c}")
            m.d.sync += x_shift.eq(t_shift)
            # Stage 4: the products' sum (straight from the DSP blocks' output registers into one adder) and,
            # beside it, the rounding term less the low slices' 2^15 corrections: two independent sums.
            q = Signal(signed(acc + cfg.mult_bits + 1), name=f"q{c}")
            r = Signal(signed(acc + cfg.mult_bits + 1), name=f"r{c}")
            s_shift = Signal(unsigned(cfg.shift_bits), name=f"s_shift{c}")
            rounding = (Const(1, unsigned(1)) << x_shift) >> 1
            m.d.sync += [
                q.eq(sum(products)),
                r.eq(rounding - sum(corrections)),
                s_shift.eq(x_shift),
            ]
            # Stage 5: p = t * mult + 2^(shift-1), one two-operand adder.
            p = Signal(signed(acc + cfg.mult_bits + 1), name=f"p{c}")
            p_shift = Signal(unsigned(cfg.shift_bits), name=f"p_shift{c}")
            m.d.sync += [p.eq(q + r), p_shift.eq(s_shift)]
            # Stage 6: the output shift; then the clamp (relu) and the padded-column mask.
            y = Signal.like(p, name=f"y{c}")
            m.d.sync += y.eq(p >> p_shift)
            clamped = Mux(y < 0, 0, Mux(y > top_code, top_code, y))
            value = Mux(out_token.precision.mode == Mode.RELU, clamped, y)
            shown = ~out_token.last_ntile | (out_token.precision.columns > c)
            m.d.comb += self.result.values[c].eq(Mux(shown, value, 0))
        m.d.comb += [
            self.result.last.eq(out_token.last),
            self.result_valid.eq(out_token.valid),
            self.result_due.eq(tokens[-2].valid),
        ]
        return m
