"""One processing element: a double-buffered B-bit weight code and one multiply-accumulate per cycle.

The PE stores the code, never a decoded weight, and decodes it with the run-time precision on every
cycle by masking (docs/numerics.md, "How the hardware computes the same numbers"): switching k or the
scheme is a change of three broadcast signals, not a reload.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, Value, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.interface import Scheme, weight_decode_layout


def decode_weight(m: Module, name: str, code: Value, decode) -> Signal:
    """2^(B-k) times the k-bit weight of `code`, as a signed (B+1)-bit signal, without an adder.

    offset: 2*(c AND hi_k) + 2^(B-k) - 2^B. The first two terms never overlap (2*(c AND hi_k) has no bit
    below B-k+1), so their sum is an OR, and subtracting 2^B from a (B+1)-bit value in 0..2^(B+1)-1
    is reading it as offset binary: invert the top bit and take it as two's complement.
    twos: (c AND hi_k) read as a signed B-bit number.
    """
    width = len(code)
    kept = Signal(width, name=f"{name}_kept")
    offset_binary = Signal(width + 1, name=f"{name}_offset_binary")
    weight = Signal(signed(width + 1), name=f"{name}_weight")
    m.d.comb += [
        kept.eq(code & decode.mask),
        offset_binary.eq((kept << 1) | decode.lsb),
        weight.eq(
            Mux(
                decode.scheme == Scheme.TWOS,
                kept.as_signed(),
                Cat(offset_binary[:width], ~offset_binary[width]).as_signed(),
            )
        ),
    ]
    return weight


def build_pe(
    m: Module, name: str, act_in: Value, swap_in: Value, psum_in: Value, load: Value, code: Value, decode
) -> tuple[Value, Value, Value]:
    """Adds one PE's registers and MAC to `m`; returns (act_out, swap_out, psum_out).

    `load` writes `code` into the shadow register (the next tile's weight). `swap_in` marks the first
    activation of a tile: that cycle already multiplies by the shadow code, which becomes the active one.
    The array builds its PEs with this function inside one module rather than as R*C submodules, which
    keeps Verilog generation of large arrays fast. `decode` None builds the fixed-precision baseline's PE
    (EngineConfig.switchable = False): the code is read as a signed B-bit weight, with no decode logic.
    """
    active = Signal(len(code), name=f"{name}_active")
    shadow = Signal(len(code), name=f"{name}_shadow")
    act_out = Signal(len(act_in), name=f"{name}_act")
    swap_out = Signal(name=f"{name}_swap")
    psum_out = Signal(psum_in.shape(), name=f"{name}_psum")
    # Intermediates are signals because an Amaranth expression used twice is emitted twice, which for
    # R*C PEs would bloat the generated netlist.
    code_now = Signal(len(code), name=f"{name}_code_now")
    m.d.comb += code_now.eq(Mux(swap_in, shadow, active))
    weight = code_now.as_signed() if decode is None else decode_weight(m, name, code_now, decode)
    with m.If(swap_in):
        m.d.sync += active.eq(shadow)
    with m.If(load):
        m.d.sync += shadow.eq(code)
    m.d.sync += [
        act_out.eq(act_in),
        swap_out.eq(swap_in),
        psum_out.eq(psum_in + act_in * weight),
    ]
    return act_out, swap_out, psum_out


class ProcessingElement(wiring.Component):
    """One PE as a component of its own (the array inlines `build_pe`): psum_out <= psum_in + act_in * w."""

    def __init__(self, cfg, psum_bits: int):
        self._switchable = cfg.switchable
        super().__init__(
            {
                "act_in": In(cfg.act_bits),
                "swap_in": In(1),
                "psum_in": In(signed(psum_bits)),
                "load": In(1),
                "code": In(cfg.base_bits),
                "act_out": Out(cfg.act_bits),
                "swap_out": Out(1),
                "psum_out": Out(signed(psum_bits)),
            }
            | ({"decode": In(weight_decode_layout(cfg))} if cfg.switchable else {})
        )

    def elaborate(self, platform):
        m = Module()
        decode = self.decode if self._switchable else None
        outputs = build_pe(m, "pe", self.act_in, self.swap_in, self.psum_in, self.load, self.code, decode)
        m.d.comb += [
            port.eq(value) for port, value in zip((self.act_out, self.swap_out, self.psum_out), outputs, strict=True)
        ]
        return m
