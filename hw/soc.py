"""The program engine on a bus: AXI4-Lite registers, an AXI4 master DMA over memory, an interrupt.

    AXI4-Lite ──► registers ──► start, bases, beat counts         irq ◄── IRQ_STATUS & IRQ_ENABLE
                                   │
    AXI4 AR/R ◄──► arbiter ◄── read channels: step, image, weight, param ──► ProgramEngine ──► logits
    AXI4 AW/W/B ◄──────────────────────────────────────────── logits writer ◄──────────────────┘

Software lays a compiled program out in memory as five regions (contract.soc: each beat padded to whole bus
words, little-endian; bases aligned to one burst), writes their bases and beat counts, and writes START. START
resets the engine (so its sticky `error` and every counter start from zero), checks the alignment (a
misaligned base sets STATUS.MISALIGNED and nothing runs), and the next cycle the four read channels start
walking their regions while the writer waits for the logits. The run is DONE when the last logits write has
been answered: STATUS.BUSY falls, STATUS.DONE and IRQ_STATUS.DONE rise and `irq` follows if enabled. A run
whose program the engine refuses in part still ends (a refused step takes none of its beats, which software
must not lay out).

Nothing hangs: a run whose regions do not match its program (too few beats, too few logits) is aborted by the
watchdog after WATCHDOG cycles without a beat on any stream (STATUS.TIMEOUT); a burst that would leave the
memory window (WINDOW_BASE, WINDOW_SIZE) is never issued and aborts the run (STATUS.OUTSIDE); an AXI error
response aborts it too (STATUS.BUS_ERROR). An aborted run lets the burst in flight finish, issues no other, and
ends (BUSY falls, IRQ_STATUS.DONE rises, STATUS.DONE stays low). On the register port an access to an offset
outside the map, a write to a read-only register and START while a run or a burst is in flight are answered
SLVERR and change nothing, as are writes to the window during a run (the address a burst offers is checked
against it until taken). The register map is in docs/architecture.md, "SoC wrapper".
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, ResetInserter, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from contract import soc
from contract.config import EngineConfig
from contract.program import ProgramLimits
from hw.axi import BURST_INCR, axi_lite_signature, axi_signature
from hw.axi_lite import AxiLiteRegisters
from hw.dma import LogitsWriter, ReadArbiter, ReadChannel, size_code
from hw.plane_reader import WeightReader
from hw.program_engine import Cycle, ProgramEngine

COUNTER_BITS = 32
REGISTER_ADDRESS_BITS = 8
#: STATUS's flags that the wrapper keeps (ERROR is the engine's own), in the order of contract.soc.STATUS_NAMES.
_STATUS_FLAGS = ("busy", "done", "bus_error", "misaligned", "timeout", "outside")


class NestmacSoC(wiring.Component):
    """The program engine (hw/program_engine.py) behind AXI4-Lite registers and an AXI4 master (module docstring).

    Parameters
    ----------
    config, limits :
        The program engine's GEMM engine and its program limits (contract.program.ProgramLimits).
    bus_bytes : int
        The AXI4 master's data width in bytes (a power of two, 4 to 128).
    burst : int
        The longest burst in bus words (a power of two, at most 256, bus_bytes * burst dividing 4 KiB).
    address_bits : int
        The AXI4 master's address width.

    Members
    -------
    s_axil : In(axi_lite_signature(REGISTER_ADDRESS_BITS))
        The register block (slave).
    m_axi : Out(axi_signature(address_bits, 8 * bus_bytes))
        The DMA (master).
    irq : Out(1)
        High while IRQ_STATUS.DONE and CTRL.IRQ_ENABLE are both set.
    """

    def __init__(
        self, config: EngineConfig, limits: ProgramLimits, bus_bytes: int = 8, burst: int = 16, address_bits: int = 32
    ):
        soc.BusParameters(bus_bytes, burst, address_bits)  # InputError (a ValueError) on a bus it cannot have
        self.config, self.limits = config, limits
        self.bus_bytes, self.burst, self.address_bits = bus_bytes, burst, address_bits
        fields = limits.as_dict()
        self.engine = ProgramEngine(config, fields.pop("words"), **fields, weight_requests=True)
        super().__init__(
            {
                "s_axil": In(axi_lite_signature(REGISTER_ADDRESS_BITS)),
                "m_axi": Out(axi_signature(address_bits, 8 * bus_bytes)),
                "irq": Out(1),
            }
        )

    def memory_summary(self) -> list[dict]:
        """On-chip memories, for the generator's manifest: the program engine's (the DMA's FIFOs and plane buffers
        are small LUT RAMs)."""
        return self.engine.memory_summary()

    def beat_bits(self) -> dict[str, int]:
        """The payload width of each region's stream on the engine's ports (contract.soc.REGIONS)."""
        engine = self.engine
        return {name: len(getattr(engine, name).payload.as_value()) for name in soc.REGIONS}

    def beat_bytes(self) -> dict[str, int]:
        """The bytes each region's beat takes in memory (its BEAT_BYTES register): a whole tile of bit-planes
        for the weight region, the payload in whole bus words for the others (contract.soc.region_strides)."""
        return soc.region_strides(self.config, self.beat_bits(), self.bus_bytes)

    def elaborate(self, platform):
        m = Module()
        bus_bytes, burst, address_bits = self.bus_bytes, self.burst, self.address_bits
        bits = self.beat_bits()
        start = Signal()  # the cycle after START is written: everything of the last run is reset
        go = Signal()  # the cycle after that: the channels latch their regions
        m.submodules.registers = registers = AxiLiteRegisters(REGISTER_ADDRESS_BITS)
        wiring.connect(m, wiring.flipped(self.s_axil), registers.bus)
        m.submodules.engine = engine = ResetInserter(start)(self.engine)
        channels = []
        for name in soc.READ_REGIONS:
            if name == "weight":  # bit-planes, each layer's k planes (hw/plane_reader.py)
                max_n_tiles = self.limits.max_n_tiles
                channel = WeightReader(self.config, max_n_tiles, bus_bytes, burst, address_bits, COUNTER_BITS)
            else:
                channel = ReadChannel(bus_bytes, bits[name], burst, address_bits, COUNTER_BITS)
            m.submodules[f"{name}_channel"] = channel = ResetInserter(start)(channel)
            wiring.connect(m, channel.beat, getattr(engine, name))
            channels.append(channel)
        wiring.connect(m, engine.weight_request, channels[soc.READ_REGIONS.index("weight")].weight_request)
        m.submodules.arbiter = arbiter = ResetInserter(start)(
            ReadArbiter(len(channels), bus_bytes, burst, address_bits)
        )
        writer = LogitsWriter(bus_bytes, bits["logits"], burst, address_bits, COUNTER_BITS)
        m.submodules.writer = writer = ResetInserter(start)(writer)
        wiring.connect(m, engine.logits, writer.logits)
        for index, channel in enumerate(channels):
            wiring.connect(m, channel.request, arbiter.requests[index])
            wiring.connect(m, arbiter.words[index], channel.word)
        self._connect_master(m, arbiter, writer)

        # Registers written by software.
        bases = [Signal(address_bits, name=f"{name}_base") for name in soc.REGIONS]
        beats = [Signal(COUNTER_BITS, name=f"{name}_beats") for name in soc.REGIONS]
        watchdog = Signal(COUNTER_BITS, init=soc.WATCHDOG_RESET)
        window_base, window_size = Signal(address_bits), Signal(address_bits, init=(1 << address_bits) - 1)
        irq_enable, irq_done = Signal(), Signal()
        # Status.
        busy, done, bus_error, misaligned, timeout, outside = (Signal(name=name) for name in _STATUS_FLAGS)
        cycles, logits_beats, quiet = Signal(COUNTER_BITS), Signal(COUNTER_BITS), Signal(COUNTER_BITS)
        bytes_read = [Signal(COUNTER_BITS, name=f"{name}_bytes") for name in soc.READ_REGIONS]
        classes = [Signal(COUNTER_BITS, name=f"{name}_cycles") for name in soc.CYCLE_CLASSES]
        macs = Signal(COUNTER_BITS)
        dma_idle = arbiter.idle & writer.idle
        aborted = bus_error | timeout | outside  # the run goes no further: the DMA issues nothing more

        writable = {register.offset for register in soc.registers() if register.access != "RO"}
        address = registers.write_address
        start_requested = registers.write_data[0] & (address == soc.CTRL)
        moves_window = (address == soc.WINDOW_BASE) | (address == soc.WINDOW_SIZE)  # a burst waiting is checked
        m.d.comb += [  # SLVERR: an offset not in the map (or not a whole register), START or the window in a run
            registers.write_error.eq(
                ~Cat(address == offset for offset in writable).any()
                | ((start_requested | moves_window) & (busy | ~dma_idle))
            ),
            registers.read_error.eq(~Cat(registers.read_address == r.offset for r in soc.registers()).any()),
        ]
        with m.If(registers.write):
            with m.Switch(registers.write_address):
                with m.Case(soc.CTRL):
                    m.d.sync += irq_enable.eq(registers.write_data[1])
                    with m.If(registers.write_data[0]):  # BUSY at once: a poll right after START sees it
                        m.d.sync += [start.eq(1), busy.eq(1)]
                with m.Case(soc.IRQ_STATUS):
                    with m.If(registers.write_data[0]):
                        m.d.sync += irq_done.eq(0)
                for target, offset in (
                    (watchdog, soc.WATCHDOG),
                    (window_base, soc.WINDOW_BASE),
                    (window_size, soc.WINDOW_SIZE),
                ):
                    with m.Case(offset):
                        m.d.sync += target.eq(registers.write_data)
                for index in range(len(soc.REGIONS)):
                    with m.Case(soc.region_base(index)):
                        m.d.sync += bases[index].eq(registers.write_data)
                    with m.Case(soc.region_beats(index)):
                        m.d.sync += beats[index].eq(registers.write_data)
        with m.If(start):
            m.d.sync += start.eq(0)

        alignment = soc.region_alignment(bus_bytes, burst)
        aligned = ~Cat(base[: alignment.bit_length() - 1] for base in bases).any()
        with m.If(start):
            reset = [cycles, logits_beats, quiet, *bytes_read, *classes, macs]
            m.d.sync += [signal.eq(0) for signal in reset]
            m.d.sync += [done.eq(0), bus_error.eq(0), timeout.eq(0), outside.eq(0)]
            m.d.sync += [misaligned.eq(~aligned), busy.eq(aligned), go.eq(aligned)]
            with m.If(~aligned):
                m.d.sync += irq_done.eq(1)
        with m.Else():
            m.d.sync += go.eq(0)
        m.d.comb += [channel.go.eq(go) for channel in channels]
        m.d.comb += [writer.go.eq(go), writer.base.eq(bases[-1]), writer.beats.eq(beats[-1])]
        for index, channel in enumerate(channels):
            m.d.comb += [channel.base.eq(bases[index]), channel.beats.eq(beats[index])]
        for dma in (arbiter, writer):
            m.d.comb += [dma.stop.eq(~busy | aborted), dma.window_base.eq(window_base)]
            m.d.comb += dma.window_size.eq(window_size)

        running = busy & ~start & ~go
        with m.If(running & (writer.done | (aborted & dma_idle))):
            m.d.sync += [busy.eq(0), done.eq(~aborted), irq_done.eq(1)]
        with m.If(arbiter.error | writer.error):
            m.d.sync += bus_error.eq(1)
        with m.If(arbiter.outside | writer.outside):
            m.d.sync += outside.eq(1)
        ports = [getattr(engine, name) for name in soc.REGIONS]
        progress = Cat(port.valid & port.ready for port in ports).any()
        progress |= (self.m_axi.rvalid & self.m_axi.rready) | (self.m_axi.bvalid & self.m_axi.bready)
        with m.If(running):
            m.d.sync += quiet.eq(Mux(progress, 0, quiet + 1))
            with m.If((watchdog != 0) & (quiet == watchdog)):
                m.d.sync += timeout.eq(1)
        with m.If(busy & ~start):  # START's cycle clears the counters (BUSY is already high in it)
            m.d.sync += cycles.eq(cycles + 1)
            with m.If(engine.logits.valid & engine.logits.ready):
                m.d.sync += logits_beats.eq(logits_beats + 1)
            for index in range(len(channels)):
                with m.If(arbiter.words[index].valid & arbiter.words[index].ready):
                    m.d.sync += bytes_read[index].eq(bytes_read[index] + bus_bytes)
        self._count_cycles(m, running, classes, macs, logits_beats, beats[-1])
        m.d.comb += self.irq.eq(irq_done & irq_enable)

        status = [busy, done, engine.error, bus_error, misaligned, timeout, outside]
        readable = {
            soc.ID: soc.IDENTIFIER,
            soc.VERSION: soc.REGISTER_VERSION | bus_bytes << 8 | burst << 16,
            soc.CTRL: irq_enable << 1,
            soc.STATUS: sum(bit << i for i, bit in enumerate(status)),
            soc.IRQ_STATUS: irq_done,
            soc.WATCHDOG: watchdog,
            soc.WINDOW_BASE: window_base,
            soc.WINDOW_SIZE: window_size,
            soc.CYCLES: cycles,
            soc.LOGITS_WRITTEN: logits_beats,
        }
        beat_bytes = self.beat_bytes()
        for index, name in enumerate(soc.REGIONS):
            readable[soc.region_base(index)] = bases[index]
            readable[soc.region_beats(index)] = beats[index]
            readable[soc.BEAT_BYTES + 4 * index] = beat_bytes[name]
        for index in range(len(soc.READ_REGIONS)):
            readable[soc.BYTES_READ + 4 * index] = bytes_read[index]
        for index, counter in enumerate(classes):
            readable[soc.CYCLE_COUNTERS + 4 * index] = counter
        readable[soc.MACS] = macs
        assert set(readable) == {register.offset for register in soc.registers()}, "the map and the decoder differ"
        with m.Switch(registers.read_address):
            for address, value in readable.items():
                with m.Case(address):
                    m.d.comb += registers.read_data.eq(value)
        return m

    def _count_cycles(self, m: Module, running, classes, macs, logits_beats, logits_total) -> None:
        """The cycle classes (contract.soc.CYCLE_CLASSES) and MACS: each cycle of a run after `go` goes to the
        class the engine's events give it (hw/program_engine.py), except that from the cycle that gives the last
        logits beat on, where the model's program has ended, the cycles wait for the logits' writes (OTHER)."""
        events, logits = self.engine.events, self.engine.logits
        ended = logits_beats + (logits.valid & logits.ready) >= logits_total
        cycle = Mux(ended, Cycle.OTHER.value, events.cycle.as_value())
        with m.If(running):
            m.d.sync += macs.eq(macs + events.macs)
            with m.Switch(cycle):
                for member, counter in zip(Cycle, classes, strict=True):
                    with m.Case(member.value):
                        m.d.sync += counter.eq(counter + 1)

    def _connect_master(self, m: Module, arbiter: ReadArbiter, writer: LogitsWriter) -> None:
        """The arbiter's AR/R and the writer's AW/W/B onto the AXI4 master port, whole-bus INCR bursts."""
        bus, size = self.m_axi, size_code(self.bus_bytes)
        for prefix, address in (("ar", arbiter.ar), ("aw", writer.aw)):
            m.d.comb += [
                getattr(bus, f"{prefix}addr").eq(address.payload.address),
                getattr(bus, f"{prefix}len").eq(address.payload.length),
                getattr(bus, f"{prefix}size").eq(size),
                getattr(bus, f"{prefix}burst").eq(BURST_INCR),
                getattr(bus, f"{prefix}valid").eq(address.valid),
                address.ready.eq(getattr(bus, f"{prefix}ready")),
            ]
        m.d.comb += [
            arbiter.r.payload.data.eq(bus.rdata),
            arbiter.r.payload.resp.eq(bus.rresp),
            arbiter.r.payload.last.eq(bus.rlast),
            arbiter.r.valid.eq(bus.rvalid),
            bus.rready.eq(arbiter.r.ready),
            bus.wdata.eq(writer.w.payload.data),
            bus.wstrb.eq(-1),
            bus.wlast.eq(writer.w.payload.last),
            bus.wvalid.eq(writer.w.valid),
            writer.w.ready.eq(bus.wready),
            writer.b.payload.eq(bus.bresp),
            writer.b.valid.eq(bus.bvalid),
            bus.bready.eq(writer.b.ready),
        ]
