"""A formal proof of the convolution address generator (hw/addrgen.py) on a tiny configuration, by SymbiYosys.

`AddressHarness` leaves every input of the generator free in every cycle: any descriptor payload (legal or
not) at any time, any `ready` on the reads. For each descriptor taken without `error` (whose map the solver
must place inside the address space, as the compiler places it inside the scratchpad) it asserts:

- every read that is not padding lies in the map: source <= address < source + G*H*W, with 1..R lanes;
  a padding read has 0 lanes;
- the walk makes exactly N-tiles * KH * KW * G * OH * OW reads, `last` on the final one only, and no read
  comes outside a walk (so a refused descriptor makes none) nor any descriptor is taken during one;
- `error` rises only in a cycle a descriptor is taken;
- `reads` keeps `valid` and its payload until `ready` (the rule a sink relies on).

Covers show walks that end, with padding and memory reads in them, two in a row and one after a refusal.
`slack` tightens the bound by that many words, so a proof with slack 1 must fail: the map's last word is
read. tests/verif/test_formal_addrgen.py runs these 12 steps deep (about 20 s): every walk of up to 10 reads
whole, and the first 10 reads of longer ones.
"""

from __future__ import annotations

from amaranth.hdl import Assert, Assume, Cover, Elaboratable, Module, ResetSignal, Signal, Value

from contract.config import EngineConfig
from hw.addrgen import ConvAddressGenerator
from verif.formal import ceil_div_signal, kept_until_ready

#: Two lanes, maps of at most 2x2 with up to 4 channels (two groups), two N-tiles, 5-bit addresses: the proof
#: grows steeply with depth (12 steps take about 20 s, 14 take 75 s), so the maps are small (2x2 still pads
#: on every side).
ADDRGEN_CONFIG = EngineConfig(rows=2, cols=2)
ADDRGEN_LIMITS = dict(address_bits=5, max_size=2, max_channels=4, max_n_tiles=2)


class AddressHarness(Elaboratable):
    """The generator with free inputs and the properties of the module docstring asserted."""

    def __init__(self, cfg: EngineConfig = ADDRGEN_CONFIG, limits: dict = ADDRGEN_LIMITS, slack: int = 0):
        self.cfg, self.limits, self.slack = cfg, limits, slack
        self.generator = ConvAddressGenerator(cfg, **limits)

    def ports(self) -> list[Signal]:
        """The generator's ports: to the solver, its inputs are free in every cycle."""
        return [Value.cast(value) for _, _, value in self.generator.signature.flatten(self.generator)]

    def elaborate(self, platform):
        m = Module()
        m.submodules.generator = generator = self.generator
        started = Signal(reset_less=True)  # reset in the first cycle only
        m.d.sync += started.eq(1)
        m.d.comb += Assume(ResetSignal() == ~started)
        checking = Signal()  # the previous cycle was out of reset
        m.d.sync += checking.eq(~ResetSignal())
        m.d.comb += [Assert(rule) for rule in kept_until_ready(m, generator.reads, checking)]

        descriptor, reads = generator.descriptor, generator.reads
        payload, read = descriptor.payload, reads.payload
        width, rows = self.limits["address_bits"], self.cfg.rows
        taken = descriptor.valid & descriptor.ready
        groups = ceil_div_signal(m, payload.channels, rows, self.limits["max_channels"], "groups")
        words = Signal(2 * width, name="map_words")  # G*H*W of the descriptor offered
        total = Signal(16, name="reads_due")  # N-tiles * KH * KW * G * OH * OW of the descriptor offered
        m.d.comb += [
            words.eq(groups * payload.height * payload.width),
            total.eq(
                payload.n_tiles
                * payload.kernel_height
                * payload.kernel_width
                * groups
                * payload.out_height
                * payload.out_width
            ),
        ]
        source, end, due = Signal(width), Signal(width + 1), Signal.like(total)  # of the walk under way
        count = Signal.like(total)
        walking = Signal()
        with m.If(taken & ~generator.error):
            m.d.comb += Assume(payload.source + words <= 1 << width)  # the compiler's placement
            m.d.sync += [
                source.eq(payload.source),
                end.eq(payload.source + words),
                due.eq(total),
                count.eq(0),
                walking.eq(1),
            ]
        m.d.comb += [Assert(~generator.error | taken), Assert(~(walking & descriptor.ready))]
        with m.If(reads.valid):
            m.d.comb += Assert(walking)
            with m.If(read.pad):
                m.d.comb += Assert(read.lanes == 0)
            with m.Else():
                m.d.comb += [
                    Assert(read.address >= source),
                    Assert(read.address + self.slack < end),
                    Assert((read.lanes >= 1) & (read.lanes <= rows)),
                ]
        transfer = reads.valid & reads.ready
        with m.If(transfer):
            m.d.comb += [Assert(count < due), Assert(read.last == (count + 1 == due))]
            m.d.sync += count.eq(count + 1)
            with m.If(read.last):
                m.d.sync += walking.eq(0)
        self._covers(m, generator, transfer, taken)
        return m

    def _covers(self, m, generator, transfer, taken) -> None:
        """Walks end, one with both padding and memory reads, a second after the first, one after a refusal."""
        read = generator.reads.payload
        padded, fetched, ended, refused = (Signal(name=n) for n in ("padded", "fetched", "ended", "refused"))
        with m.If(transfer):
            m.d.sync += [padded.eq(padded | read.pad), fetched.eq(fetched | ~read.pad)]
        with m.If(transfer & read.last):
            m.d.sync += ended.eq(1)
        with m.If(taken & generator.error):
            m.d.sync += refused.eq(1)
        done = transfer & read.last
        m.d.comb += [
            Cover(done & padded & fetched & read.pad & ~read.lanes.any()),
            Cover(done & ended),
            Cover(done & refused),
        ]
