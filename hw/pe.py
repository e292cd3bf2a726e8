"""One processing element: a double-buffered B-bit weight and one multiply-accumulate per cycle.

A bit-parallel PE multiplies the activation by a signed B-bit value, the same B x A multiplier as the
fixed-precision baseline's. In a switchable engine that value is the code decoded once per column at the
load port with the command's precision (`load_value`): the code's top k bits, read as two's complement
(twos) or with the top bit inverted (offset, which leaves a constant term that the column adds once per
row, hw/offset.py). Every command streams its own weights, so decoding at load time costs no reload.

A digit-serial PE (EngineConfig.digit_bits = D < B) stores the whole code and decodes, every cycle, the
D-bit digit whose index travels with the activation, so the same stored code serves every k in
ceil(k/D) cycles. The decode's precision (the scheme, and which digit is the last, partial one) travels
with the activation too, so that the rows of two commands at different k can be in the array at once.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hw.interface import Scheme, weight_decode_layout


def row_input_layout(cfg) -> data.StructLayout:
    """What enters row r at the left edge and passes from PE to PE: a masked activation code, the
    first-of-tile mark and, digit-serial, the index of the weight digit to multiply it by and its command's
    decode (hw.interface.weight_decode_layout), with D > 1 also whether the digit is the row's last."""
    if not cfg.digit_serial:
        return data.StructLayout({"act": cfg.act_bits, "swap": 1})
    last = {"last_digit": 1} if cfg.digit_width > 1 else {}
    return data.StructLayout(
        {"act": cfg.act_bits, "swap": 1, "place": range(cfg.digit_count), "decode": weight_decode_layout(cfg)} | last
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


def load_value(m: Module, name: str, code: Value, decode) -> Signal:
    """The signed B-bit value v that a bit-parallel PE stores for `code` at run-time precision k.

    With kept = code AND hi_k, 2^(B-k) times the k-bit weight (docs/numerics.md) is, by scheme,
    twos: kept read as signed, so v = kept;
    offset: 2*kept + 2^(B-k) - 2^B = 2*(kept - 2^(B-1)) + 2^(B-k), and kept - 2^(B-1) is kept with its top
    bit inverted read as signed, so v = kept XOR 2^(B-1) and the weight is 2v + 2^(B-k). The array sums
    act * v; the factor 2 and the row's 2^(B-k) * sum(act) are added once per column (hw/offset.py),
    which keeps the PE's multiplier B bits wide instead of B + 1.
    """
    top = 1 << (len(code) - 1)
    kept = code & decode.mask
    value = Signal(len(code), name=f"{name}_value")
    m.d.comb += value.eq(Mux(decode.scheme == Scheme.TWOS, kept, kept ^ top))
    return value


def decode_digit(m: Module, name: str, code: Value, row, digit_bits: int) -> Signal:
    """Digit `row.place` (counted from the least significant) of `code`'s top k bits, signed (D+1) bits, with
    the decode that travels in `row` (row_input_layout).

    Its weight in the code, 2^(D*place), is applied below the array by the shift-and-add stage. Every kept
    digit but the last is whole (its lowest kept bit is bit 0); the last keeps the bits from `low` =
    (B-k) mod D up. With D = 1 no digit is ever partial and every kept bit is its digit's lowest, so no mask
    is needed.
    """
    place, decode = row.place, row.decode
    signed_top = place == len(code) // digit_bits - 1
    if digit_bits == 1:
        kept, lsb = code.bit_select(place, 1), Const(1, 1)
    else:
        whole = (1 << digit_bits) - 1
        kept = Signal(digit_bits, name=f"{name}_kept")
        lsb = Signal(digit_bits, name=f"{name}_lsb")
        digit = code.word_select(place, digit_bits)
        m.d.comb += [
            kept.eq(Mux(row.last_digit, digit & (Const(whole, digit_bits) << decode.low)[:digit_bits], digit)),
            lsb.eq(Mux(row.last_digit, (Const(1, digit_bits) << decode.low)[:digit_bits], 1)),
        ]
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


def _registered(m: Module, name: str, value: Value) -> Signal:
    register = Signal(value.shape(), name=name)
    m.d.sync += register.eq(value)
    return register


def build_pe(
    m: Module,
    name: str,
    row_in,
    psum_in: Value,
    load: Value,
    code: Value,
    digit_bits: int | None = None,
    pipelined: bool = False,
) -> tuple[Value, Value]:
    """Adds one PE's registers and MAC to `m`; returns (row_out, psum_out), `row_in` delayed one cycle
    and psum_in + act * weight.

    `load` writes `code` into the shadow register (the next tile's weight). `row_in.swap` marks the first
    activation of a tile: that cycle already multiplies by the shadow code, which becomes the active one.
    The array builds its PEs with this function inside one module rather than as R*C submodules, which
    keeps Verilog generation of large arrays fast. `digit_bits` None builds the bit-parallel PE: `code` is
    read as a signed B-bit weight (a fixed engine's code, or a switchable engine's `load_value`).
    `digit_bits` D builds the digit-serial PE: the weight is digit `row_in.place` of the code, decoded with
    the precision that travels in `row_in` (`decode_digit`).
    `pipelined` (EngineConfig.pipelined) registers the weight in front of the multiplier and the product
    behind it, and adds the product two cycles later: psum_in must then arrive two cycles later too, which
    it does, since every PE above is delayed alike. The weight register takes the multiplexed (and
    decoded) weight, so the multiplier's inputs both come straight from flip-flops: the activation is
    then `row_out`'s. (Bit-parallel, that register always equals `active`, since both take
    `swap ? shadow : active`, and synthesis merges the two; digit-serial, it holds the decoded digit.)
    The top row, whose psum_in is a constant, registers the multiplier's inputs once more instead of its
    product.
    """
    active = Signal(len(code), name=f"{name}_active")
    shadow = Signal(len(code), name=f"{name}_shadow")
    row_out = Signal(row_in.shape(), name=f"{name}_row")
    psum_out = Signal(psum_in.shape(), name=f"{name}_psum")
    # Intermediates are signals because an Amaranth expression used twice is emitted twice, which for
    # R*C PEs would bloat the generated netlist.
    code_now = Signal(len(code), name=f"{name}_code_now")
    m.d.comb += code_now.eq(Mux(row_in.swap, shadow, active))
    if digit_bits is None:
        weight = code_now.as_signed()
    else:
        weight = decode_digit(m, name, code_now, row_in, digit_bits)
    act = row_in.act
    if pipelined:
        act, weight = row_out.act, _registered(m, f"{name}_weight_in", weight)
    if pipelined and isinstance(psum_in, Const):
        # The top row adds nothing to its product, so a product register would feed the psum register
        # directly; Yosys 0.70's ABC9 (synth_ecp5) fails an assertion on that chain. Registering the
        # multiplier's inputs once more instead gives the same latency.
        act, weight = _registered(m, f"{name}_act_in", act), _registered(m, f"{name}_weight_in2", weight)
    product = act * weight if digit_bits is None else digit_product(m, name, act, weight)
    if pipelined and not isinstance(psum_in, Const):
        product = _registered(m, f"{name}_product", product)
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
    """One PE as a component of its own (the array inlines `build_pe`): psum_out <= psum_in + act * w,
    `code` being a digit-serial PE's code or a bit-parallel PE's signed value.

    Parameters
    ----------
    cfg : EngineConfig
        The engine the PE belongs to (its PE kind, widths and pipelining).
    psum_bits : int
        Width of the partial sums passed down the column (contract.widths.psum_bits).

    Members
    -------
    row_in : In(row input)
        The activation code (already masked to j bits), the tile's `swap` mark and, digit-serial, the
        place of the weight digit it meets and its command's decode; from the PE on the left or the row skew.
    psum_in : In(signed(psum_bits))
        The partial sum from the PE above (zero in the top row).
    load : In(1)
        Write `code` into the shadow weight register.
    code : In(B)
        The weight to load: a bit-parallel PE's decoded signed value, a digit-serial PE's code.
    row_out : Out(row input)
        `row_in` one cycle later, to the PE on the right.
    psum_out : Out(signed(psum_bits))
        psum_in + act * w, registered (pipelined engines: two registers), to the PE below.
    """

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
        )

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        row_out, psum_out = build_pe(
            m, "pe", self.row_in, self.psum_in, self.load, self.code, cfg.digit_bits, cfg.pipelined
        )
        m.d.comb += [self.row_out.eq(row_out), self.psum_out.eq(psum_out)]
        return m
