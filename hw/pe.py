"""One processing element: a double-buffered B-bit weight code and one multiply-accumulate per cycle.

The PE stores the code, never a decoded weight, and decodes it with the run-time precision on every
cycle by masking (docs/numerics.md, "How the hardware computes the same numbers"): switching k or the
scheme is a change of three broadcast signals, not a reload. A digit-serial PE (EngineConfig.digit_bits
= D < B) multiplies by one D-bit digit of the code per cycle, the digit whose index travels with the
activation, so the same stored code serves every k in ceil(k/D) cycles.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hw.interface import Scheme, weight_decode_layout


def row_input_layout(cfg) -> data.StructLayout:
    """What enters row r at the left edge and passes from PE to PE: a masked activation code, the
    first-of-tile mark and, digit-serial, the index of the weight digit to multiply it by."""
    return data.StructLayout(
        {"act": cfg.act_bits, "swap": 1} | ({"place": range(cfg.digit_count)} if cfg.digit_serial else {})
    )


def decode_kept(m: Module, name: str, kept: Value, lsb: Value, scheme: Value, signed_top: Value | None = None):
    """The signed (W+1)-bit value of W masked code bits `kept`, without an adder.

    offset: 2*kept + lsb - 2^W, `lsb` being the lowest kept bit. The first two terms never overlap, so
    their sum is an OR, and subtracting 2^W from a (W+1)-bit value is reading it as offset binary: invert
    the top bit and take it as two's complement. For a whole code that is 2^(B-k) times the k-bit weight;
    for one digit it is the digit's share of it, sum of (2 q_i - 1) 2^i over its kept bits.
    twos: `kept` read as a signed number, or as an unsigned one when `signed_top` is low (every digit
    but the most significant).
    """
    width = len(kept)
    offset_binary = Signal(width + 1, name=f"{name}_offset_binary")
    weight = Signal(signed(width + 1), name=f"{name}_weight")
    twos = kept.as_signed() if signed_top is None else Cat(kept, kept[width - 1] & signed_top).as_signed()
    m.d.comb += [
        offset_binary.eq((kept << 1) | lsb),
        weight.eq(Mux(scheme == Scheme.TWOS, twos, Cat(offset_binary[:width], ~offset_binary[width]).as_signed())),
    ]
    return weight


def decode_weight(m: Module, name: str, code: Value, decode) -> Signal:
    """2^(B-k) times the k-bit weight of `code`, as a signed (B+1)-bit signal (docs/numerics.md)."""
    kept = Signal(len(code), name=f"{name}_kept")
    m.d.comb += kept.eq(code & decode.mask)
    return decode_kept(m, name, kept, decode.lsb, decode.scheme)


def decode_digit(m: Module, name: str, code: Value, place: Value, decode, digit_bits: int) -> Signal:
    """Digit `place` (counted from the least significant) of `code`'s top k bits, signed (D+1) bits.

    Its weight in the code, 2^(D*place), is applied below the array by the shift-and-add stage. With
    D = 1 no digit is ever partial and every kept bit is its digit's lowest, so no mask is needed.
    """
    signed_top = place == len(code) // digit_bits - 1
    if digit_bits == 1:
        kept, lsb = code.bit_select(place, 1), Const(1, 1)
    else:
        kept = Signal(digit_bits, name=f"{name}_kept")
        m.d.comb += kept.eq((code & decode.mask).word_select(place, digit_bits))
        lsb = decode.lsb.word_select(place, digit_bits)
    return decode_kept(m, name, kept, lsb, decode.scheme, signed_top)


def digit_product(m: Module, name: str, act: Value, weight: Value) -> Value:
    """act * weight for a decoded digit (signed, D + 1 bits) without a multiplier: the sum of act shifted by
    each set bit of |weight| (D partial products, one for D = 1), then the two's complement, (x XOR -1) + 1,
    when the weight is negative. Synthesised (`eda.synth --target asic`, 4x4) this PE array is 10%, 7% and
    5% smaller for D = 1, 2 and 4 than with a signed multiply."""
    width = len(weight)
    negative = weight[width - 1]
    magnitude = Signal(width - 1, name=f"{name}_magnitude")
    partial = Signal(len(act) + width - 1, name=f"{name}_partial")
    inverted = Signal(signed(len(partial) + 1), name=f"{name}_inverted")
    m.d.comb += [
        magnitude.eq(Mux(negative, -weight, weight)),
        partial.eq(sum(Mux(magnitude[i], act << i, 0) for i in range(width - 1))),
        inverted.eq(partial ^ negative.replicate(len(inverted))),
    ]
    return inverted + negative


def build_pe(
    m: Module, name: str, row_in, psum_in: Value, load: Value, code: Value, decode, digit_bits: int | None = None
) -> tuple[Value, Value]:
    """Adds one PE's registers and MAC to `m`; returns (row_out, psum_out), `row_in` delayed one cycle
    and psum_in + act * weight.

    `load` writes `code` into the shadow register (the next tile's weight). `row_in.swap` marks the first
    activation of a tile: that cycle already multiplies by the shadow code, which becomes the active one.
    The array builds its PEs with this function inside one module rather than as R*C submodules, which
    keeps Verilog generation of large arrays fast. `decode` None builds the fixed-precision baseline's PE
    (EngineConfig.switchable = False): the code is read as a signed B-bit weight, with no decode logic.
    `digit_bits` D builds the digit-serial PE: the weight is digit `row_in.place` of the code.
    """
    active = Signal(len(code), name=f"{name}_active")
    shadow = Signal(len(code), name=f"{name}_shadow")
    row_out = Signal(row_in.shape(), name=f"{name}_row")
    psum_out = Signal(psum_in.shape(), name=f"{name}_psum")
    # Intermediates are signals because an Amaranth expression used twice is emitted twice, which for
    # R*C PEs would bloat the generated netlist.
    code_now = Signal(len(code), name=f"{name}_code_now")
    m.d.comb += code_now.eq(Mux(row_in.swap, shadow, active))
    if decode is None:
        weight = code_now.as_signed()
    elif digit_bits is None:
        weight = decode_weight(m, name, code_now, decode)
    else:
        weight = decode_digit(m, name, code_now, row_in.place, decode, digit_bits)
    product = row_in.act * weight if digit_bits is None else digit_product(m, name, row_in.act, weight)
    with m.If(row_in.swap):
        m.d.sync += active.eq(shadow)
    with m.If(load):
        m.d.sync += shadow.eq(code)
    m.d.sync += [
        row_out.eq(row_in),
        psum_out.eq(psum_in + product),
    ]
    return row_out, psum_out


class ProcessingElement(wiring.Component):
    """One PE as a component of its own (the array inlines `build_pe`): psum_out <= psum_in + act * w."""

    def __init__(self, cfg, psum_bits: int):
        self._cfg = cfg
        super().__init__(
            {
                "row_in": In(row_input_layout(cfg)),
                "psum_in": In(signed(psum_bits)),
                "load": In(1),
                "code": In(cfg.base_bits),
                "row_out": Out(row_input_layout(cfg)),
                "psum_out": Out(signed(psum_bits)),
            }
            | ({"decode": In(weight_decode_layout(cfg))} if cfg.switchable else {})
        )

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        decode = self.decode if cfg.switchable else None
        row_out, psum_out = build_pe(m, "pe", self.row_in, self.psum_in, self.load, self.code, decode, cfg.digit_bits)
        m.d.comb += [self.row_out.eq(row_out), self.psum_out.eq(psum_out)]
        return m
