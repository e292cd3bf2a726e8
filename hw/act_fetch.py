"""Activation fetch: a layer descriptor in, the `act` beats of its X rows out, read from the scratchpad.

This is the on-chip source of what the host sends today on the engine's `act` stream for a conv or linear
layer (sim.streams: per N-tile, per K-tile, one beat per output row, `last` on the final one), in the
program's K order (contract.program, "Implicit im2col"): the address generator (hw/addrgen.py) walks
`sim.program.reads`, each read becomes one beat, whose codes are the word's lanes below the read's `lanes`
and 0 elsewhere (channels beyond C and zero padding, which reads no memory).

The memory answers a cycle after its address, and its answer goes straight into a register (no logic
between: a block RAM's output is slow on an FPGA), so the beat is two registered stages after the generator:
in the cycle a read is taken its word is addressed, in the next the word is registered, and in the one after
the beat is offered with it, the lanes masked. Both stages advance together, when the second is empty or
its beat is taken, and only then: the generator's `ready` and the read port's `en` are both that condition,
so while the beat waits the generator holds its read and the memory holds its word (a synchronous read port
keeps `data` while `en` is low), and no beat is lost or repeated. The beat leaves through a skid buffer
(hw/skid.py) whose `ready` is a register, so `act.ready` (the GEMM engine's stall) reaches only the buffer,
not the stages, the memory's `en` or the generator's counters. The buffer adds no cycle: with `act` always
ready one beat leaves per cycle, two cycles behind the generator's read, and `act` is valid in every cycle
it would be without the buffer.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from contract.config import EngineConfig
from hw.addrgen import ConvAddressGenerator, descriptor_layout
from hw.interface import payload_layout
from hw.scratchpad import read_signature
from hw.skid import SkidBuffer


class ActivationFetch(wiring.Component):
    """The `act` beats of one layer descriptor at a time (module docstring), read from a scratchpad.

    Parameters
    ----------
    cfg : EngineConfig
        The engine whose `act` beats are produced: R lanes of A-bit codes.
    depth : int
        Words of the scratchpad read (hw/scratchpad.py); addresses are ceil_log2(depth) bits.
    max_size, max_channels, max_n_tiles : int
        The address generator's limits (hw.addrgen.ConvAddressGenerator).
    check : bool
        Whether illegal descriptors are refused here (the address generator's `check`); False for a client
        that offers only descriptors `legal` accepts.
    settled : bool
        Whether each descriptor is on the payload a cycle before it is offered (the address generator's
        `settled`).

    Members
    -------
    descriptor : In(stream.Signature(descriptor))
        The layer descriptors (hw.addrgen.descriptor_layout); one is taken only between walks.
    act : Out(stream.Signature(act))
        The activation beats, as on the engine's `act` port, `last` on the descriptor's final beat.
    read : In(ReadPort.Signature(ceil_log2(depth), word))
        The scratchpad's read port (hw.scratchpad.Scratchpad.read), driven by this reader.
    error : Out(1)
        The descriptor in `descriptor` is illegal: it is taken in this cycle and dropped, making no beat.
    """

    def __init__(
        self,
        cfg: EngineConfig,
        depth: int,
        *,
        max_size: int = 64,
        max_channels: int = 1024,
        max_n_tiles: int = 64,
        check: bool = True,
        settled: bool = False,
    ):
        self._cfg = cfg
        limits = dict(
            address_bits=ceil_log2(depth), max_size=max_size, max_channels=max_channels, max_n_tiles=max_n_tiles
        )
        self._addresses = ConvAddressGenerator(cfg, **limits, check=check, settled=settled)
        super().__init__(
            {
                "descriptor": In(stream.Signature(descriptor_layout(**limits))),
                "act": Out(stream.Signature(payload_layout(cfg, "act"))),
                "read": In(read_signature(cfg, depth)),
                "error": Out(1),
            }
        )

    def legal(self, payload, stage=lambda value: value):
        """Whether a descriptor (any value of hw.addrgen.descriptor_layout) is one this fetch takes: the
        address generator's check (and its `stage`), for a client that checks before it offers."""
        return self._addresses.legal(payload, stage)

    def elaborate(self, platform):
        m = Module()
        m.submodules.addresses = addresses = self._addresses
        wiring.connect(m, wiring.flipped(self.descriptor), addresses.descriptor)
        read = addresses.reads
        m.submodules.skid = skid = SkidBuffer(payload_layout(self._cfg, "act"))
        wiring.connect(m, skid.output, wiring.flipped(self.act))
        beat = skid.input
        # The registered stages: the read taken when they last advanced (its word addressed), and the one before
        # with its word, the beat offered to the skid buffer.
        addressed, addressed_lanes, addressed_last = Signal(), Signal.like(read.payload.lanes), Signal()
        lanes, last, word = Signal.like(read.payload.lanes), Signal(), Signal.like(self.read.data)
        advance = ~beat.valid | beat.ready
        m.d.comb += [
            self.error.eq(addresses.error),
            read.ready.eq(advance),
            self.read.addr.eq(read.payload.address),
            self.read.en.eq(advance & read.valid & ~read.payload.pad),
        ]
        with m.If(advance):
            m.d.sync += [
                addressed.eq(read.valid),
                addressed_lanes.eq(read.payload.lanes),
                addressed_last.eq(read.payload.last),
                beat.valid.eq(addressed),
                lanes.eq(addressed_lanes),
                last.eq(addressed_last),
                word.eq(self.read.data),
            ]
        codes = beat.payload.codes
        m.d.comb += [codes[lane].eq(Mux(lane < lanes, word[lane], 0)) for lane in range(self._cfg.rows)]
        m.d.comb += beat.payload.last.eq(last)
        return m
