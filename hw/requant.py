"""Requantization of complete column sums into one result beat (docs/numerics.md, Requantization).

Two register stages: (1) undo the precision scaling and add the bias, t = wrap_ACC((sum >> shift_kj) +
bias); (2) p = t * mult + 2^(shift-1), or t itself in raw mode; then combinationally y = p >> shift,
clamped for relu. The parameter register holds one N-tile's columns and is reloaded when that tile's
first complete row arrives, while the previous tile's last rows may still be in stage 2: that is why
mult and shift travel with the data instead of being read from the register in stage 2.
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hw.interface import Mode, param_layout, precision_layout, result_layout, token_layout


class Requantizer(wiring.Component):
    def __init__(self, cfg):
        self._cfg = cfg
        super().__init__(
            {
                "sums": In(data.ArrayLayout(signed(cfg.acc_bits), cfg.cols)),
                "token": In(token_layout(cfg)),
                "params": In(param_layout(cfg)),
                "load_params": In(1),
                "precision": In(precision_layout(cfg)),
                "out_lanes": In(cfg.cols),
                "result": Out(result_layout(cfg)),
                "result_valid": Out(1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        acc, cols = cfg.acc_bits, cfg.cols
        product_shape = signed(acc + cfg.mult_bits + 1)
        lane = data.StructLayout({"mult": signed(cfg.mult_bits), "shift": unsigned(cfg.shift_bits)})
        params = Signal(param_layout(cfg))
        with m.If(self.load_params):
            m.d.sync += params.eq(self.params)

        t = Signal(data.ArrayLayout(signed(acc), cols))
        t_lane = Signal(data.ArrayLayout(lane, cols))
        t_token = Signal.like(self.token)
        p = Signal(data.ArrayLayout(product_shape, cols))
        p_shift = Signal(data.ArrayLayout(unsigned(cfg.shift_bits), cols))
        p_token = Signal.like(self.token)
        raw = self.precision.mode == Mode.RAW
        top_code = (1 << cfg.act_bits) - 1
        for c in range(cols):
            unscaled = self.sums[c] >> self.precision.acc_shift if cfg.switchable else self.sums[c]
            y = p[c] >> p_shift[c]
            clamped = Mux(y < 0, 0, Mux(y > top_code, top_code, y))
            value = Mux(raw, p[c], clamped)
            shown = ~p_token.last_ntile | self.out_lanes[c]
            m.d.sync += [
                t[c].eq((unscaled + params.bias[c])[:acc].as_signed()),
                t_lane[c].mult.eq(params.mult[c]),
                t_lane[c].shift.eq(params.shift[c]),
                p[c].eq(Mux(raw, t[c], t[c] * t_lane[c].mult + ((Const(1, unsigned(1)) << t_lane[c].shift) >> 1))),
                p_shift[c].eq(t_lane[c].shift),
            ]
            m.d.comb += self.result.values[c].eq(Mux(shown, value, 0))
        m.d.sync += [t_token.eq(self.token), p_token.eq(t_token)]
        m.d.comb += [
            self.result.last.eq(p_token.last),
            self.result_valid.eq(p_token.valid),
        ]
        return m
