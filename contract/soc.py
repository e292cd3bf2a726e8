"""The SoC wrapper's contract (hw/soc.py): its register map and its memory layout, shared by the HDL and the driver.

Registers are 32 bits wide at byte offsets on the AXI4-Lite port (docs/architecture.md, "SoC wrapper").
In memory every beat of a stream is padded to a whole number of bus words and stored little-endian: beat i of
a region at base B occupies bytes [B + i*S, B + (i+1)*S) with S = `beat_stride(bits, bus_bytes)`, the
payload's bit 0 in bit 0 of the first byte, the padding zero. The weight region is the exception: it holds the
program's weight image as bit-planes (contract.bitplanes, `weight_layout`), so a layer at k reads k of each
tile's B planes; its "beats" are tiles (REGION_BEATS counts them, BEAT_BYTES is a tile's B*S bytes). A
region's base is aligned to `region_alignment` (whole bursts, so that no burst crosses a 4 KiB boundary).
"""

from __future__ import annotations

from dataclasses import dataclass

from contract.bitplanes import PlaneLayout
from contract.cli import InputError
from contract.config import EngineConfig

#: Read by software to recognise the block: "NMAC" in ASCII.
IDENTIFIER = 0x4E4D4143
#: The register map's version (the VERSION register's low byte); bus_bytes and burst are bytes 1 and 2.
REGISTER_VERSION = 4

#: The five regions in memory, in register order: four read by the DMA, the last (logits) written.
READ_REGIONS = ("step", "image", "weight", "param")
REGIONS = (*READ_REGIONS, "logits")

ID, VERSION, CTRL, STATUS, IRQ_STATUS = 0x00, 0x04, 0x08, 0x0C, 0x10
#: Cycles without progress (no beat on any engine stream or AXI data channel) after which a run is aborted
#: (0: never); the memory window every DMA burst must lie in (a burst outside it is never issued).
WATCHDOG, WINDOW_BASE, WINDOW_SIZE = 0x14, 0x18, 0x1C
#: WATCHDOG after reset: about 10 ms at 100 MHz, far above any gap between two beats of a legal run.
WATCHDOG_RESET = 1 << 20
#: Region r's base address and beat count.
REGION_BASE, REGION_BEATS = 0x20, 0x24
REGION_STRIDE = 8
#: Counters (read only, cleared by START): cycles of the run, logits beats, then per read region its bytes read.
#: The cycles the engine waited for each stream are cycle classes (CYCLE_COUNTERS). 0x70..0x7C held per-stream
#: STALLS until version 4 (the engine ready, the stream not valid): the GEMM engine's weight and parameter
#: `ready` follow its stall enable, which waits for their `valid`, so two of the four were always 0, and the
#: other two counted what STEP_WAIT and IMAGE_WAIT count; those offsets now answer SLVERR.
CYCLES, LOGITS_WRITTEN = 0x60, 0x64
BYTES_READ = 0x80
#: Per region, the bytes of one beat in memory (read only: the hardware's `beat_stride`).
BEAT_BYTES = 0x90
#: The cycle counters (read only, cleared by START): every cycle of a run after START's is counted in CYCLES
#: and, except the first (`go`: the DMA latches its regions), in exactly one of these classes, in register
#: order from CYCLE_COUNTERS: the engine advances (`active`: the model's cycles, exactly when the output path
#: keeps pace with the engine, docs/architecture.md, "Performance counters"), or it waits for a step, an image
#: beat, a weight beat or a parameter beat, for the logits stream to take a beat (`output`), or for anything else
#: (`other`: an activation beat the fetch has not yet read, and every cycle from the one that gives the last
#: logits beat on, while its writes are answered).
CYCLE_CLASSES = ("active", "step", "image", "weight", "param", "output", "other")
CYCLE_COUNTERS = 0xA4  # after LOGITS_BEAT_BYTES (0xA0), up to 0xBC
#: The multiply-accumulates the layers performed: per layer M x K x N with the layer's own K (channel groups'
#: padding lanes and an N-tile's padding columns not counted), what sim.program_cost counts. Beside CYCLES and
#: LOGITS_WRITTEN: 0xA4..0xBC hold the seven cycle classes.
MACS = 0x68
#: The cycles of a run in CYCLES and in none of the classes: the one after START's (`go`).
UNCLASSIFIED_CYCLES = 1

#: CTRL bits: START (write 1: reset the engine and counters, start the run; reads 0), IRQ_ENABLE.
CTRL_START, CTRL_IRQ_ENABLE = 1 << 0, 1 << 1
#: STATUS bits: BUSY (a run is going on), DONE (the last run wrote all its logits), ERROR (the engine refused
#: a step or a parameter beat, sticky until START), BUS_ERROR (an AXI response other than OKAY: the run is
#: aborted), MISALIGNED (START found a base not aligned to `region_alignment`: nothing runs), TIMEOUT (no
#: progress for WATCHDOG cycles: the run is aborted), OUTSIDE (a burst would have left the memory window: the
#: run is aborted, the burst never issued).
STATUS_NAMES = ("BUSY", "DONE", "ERROR", "BUS_ERROR", "MISALIGNED", "TIMEOUT", "OUTSIDE")
STATUS_BUSY, STATUS_DONE, STATUS_ERROR, STATUS_BUS_ERROR, STATUS_MISALIGNED, STATUS_TIMEOUT, STATUS_OUTSIDE = (
    1 << i for i in range(len(STATUS_NAMES))
)
#: The STATUS bits that end a run early (or refuse it): the run's logits are not to be read.
STATUS_ABORTED = STATUS_BUS_ERROR | STATUS_MISALIGNED | STATUS_TIMEOUT | STATUS_OUTSIDE
#: IRQ_STATUS bit: DONE (set when a run ends, completed, aborted or refused; cleared by writing 1);
#: `irq` = DONE & IRQ_ENABLE.
IRQ_DONE = 1 << 0


@dataclass(frozen=True)
class Register:
    """One register of the map: its name (C and Python identifiers are built from it), byte offset, access
    ("RO", "RW", "RW1C") and meaning."""

    name: str
    offset: int
    access: str
    doc: str


def registers() -> tuple[Register, ...]:
    """The whole register map, in offset order: the one list the generated C header and Python module, the
    hardware's address decoder (which answers SLVERR off it) and the docs' table follow."""
    fixed = [
        Register("ID", ID, "RO", 'reads 0x4E4D4143, "NMAC"'),
        Register("VERSION", VERSION, "RO", "bits 7:0 register-map version, 15:8 bus_bytes, 31:16 burst"),
        Register("CTRL", CTRL, "RW", "bit 0 START (write 1; reads 0), bit 1 IRQ_ENABLE"),
        Register("STATUS", STATUS, "RO", ", ".join(STATUS_NAMES) + " (bits 0 up)"),
        Register("IRQ_STATUS", IRQ_STATUS, "RW1C", "bit 0 DONE: a run ended"),
        Register("WATCHDOG", WATCHDOG, "RW", "cycles without progress before a run is aborted (0: never)"),
        Register("WINDOW_BASE", WINDOW_BASE, "RW", "the lowest byte address the DMA may touch"),
        Register("WINDOW_SIZE", WINDOW_SIZE, "RW", "the bytes from WINDOW_BASE the DMA may touch"),
    ]
    regions = []
    for index, name in enumerate(REGIONS):
        regions.append(Register(f"{name.upper()}_BASE", region_base(index), "RW", f"the {name} region's address"))
        beats = "tiles (B bit-planes each)" if name == "weight" else "beats"
        regions.append(Register(f"{name.upper()}_BEATS", region_beats(index), "RW", f"the {name} region's {beats}"))
    counters = [
        Register("CYCLES", CYCLES, "RO", "cycles of the last run"),
        Register("LOGITS_WRITTEN", LOGITS_WRITTEN, "RO", "logits beats the engine gave"),
    ]
    for index, name in enumerate(READ_REGIONS):
        counters.append(
            Register(f"{name.upper()}_BYTES", BYTES_READ + 4 * index, "RO", f"bytes read for the {name} stream")
        )
    for index, name in enumerate(CYCLE_CLASSES):
        counters.append(Register(cycle_register_name(name), CYCLE_COUNTERS + 4 * index, "RO", CYCLE_DOCS[name]))
    counters.append(Register("MACS", MACS, "RO", "multiply-accumulates of the run's layers (M x K x N each)"))
    for index, name in enumerate(REGIONS):
        beat = "weight tile (its B planes)" if name == "weight" else f"{name} beat"
        counters.append(
            Register(f"{name.upper()}_BEAT_BYTES", BEAT_BYTES + 4 * index, "RO", f"bytes of one {beat} in memory")
        )
    return tuple(sorted(fixed + regions + counters, key=lambda register: register.offset))


#: What each cycle class counts, for the register map's table.
CYCLE_DOCS = {
    "active": "cycles the engine advanced (the model's cycles)",
    "step": "cycles the engine waited for a step beat",
    "image": "cycles the engine waited for an image beat",
    "weight": "cycles the engine waited for a weight beat",
    "param": "cycles the engine waited for a parameter beat",
    "output": "cycles the engine waited for the logits stream to take a beat",
    "other": "cycles waiting otherwise (an activation beat; the logits' writes after the last beat)",
}


def cycle_register_name(name: str) -> str:
    """The register of cycle class `name`: ACTIVE_CYCLES, then STEP_WAIT, IMAGE_WAIT, ..."""
    return "ACTIVE_CYCLES" if name == "active" else f"{name.upper()}_WAIT"


def bits() -> dict[str, int]:
    """The named bits of CTRL, STATUS and IRQ_STATUS, as masks (for the generated header and module)."""
    return {
        "CTRL_START": CTRL_START,
        "CTRL_IRQ_ENABLE": CTRL_IRQ_ENABLE,
        **{f"STATUS_{name}": 1 << i for i, name in enumerate(STATUS_NAMES)},
        "IRQ_DONE": IRQ_DONE,
    }


class SlaveError(InputError):
    """The register port answered SLVERR: an offset outside the map, a read-only register written, or START
    during a run (raised by the driver's backends, one line)."""


#: The AXI4 master's data widths in bytes and burst lengths in words the wrapper can be generated with.
BUS_BYTES = (4, 8, 16, 32, 64, 128)
BURSTS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


@dataclass(frozen=True)
class BusParameters:
    """The SoC wrapper's bus, a generation parameter: the AXI4 master's data width in bytes, its longest burst in
    words (bus_bytes * burst dividing 4 KiB, so that an aligned burst never crosses a page) and its address
    width. Constructing one checks it (InputError, one line)."""

    bus_bytes: int = 8
    burst: int = 16
    address_bits: int = 32

    def __post_init__(self):
        if self.bus_bytes not in BUS_BYTES:
            raise InputError(f"bus_bytes must be one of {', '.join(map(str, BUS_BYTES))}, got {self.bus_bytes!r}")
        if self.burst not in BURSTS or self.bus_bytes * self.burst > 4096:
            raise InputError(
                f"burst must be a power of two up to 256 with bus_bytes * burst <= 4096, got {self.burst!r}"
            )
        if not (isinstance(self.address_bits, int) and 12 <= self.address_bits <= 64):
            raise InputError(f"address_bits must be an integer in 12..64, got {self.address_bits!r}")


def check_response(response: int, what: str) -> None:
    """SlaveError unless an AXI response is OKAY (0): what a backend calls on each register access."""
    if response != 0:
        raise SlaveError(f"the register port answered the {what} with response {response}")


def region_base(index: int) -> int:
    return REGION_BASE + REGION_STRIDE * index


def region_beats(index: int) -> int:
    return REGION_BEATS + REGION_STRIDE * index


def bus_words(bits: int, bus_bytes: int) -> int:
    """Bus words that one beat of `bits` bits takes in memory."""
    return -(-bits // (8 * bus_bytes))


def beat_stride(bits: int, bus_bytes: int) -> int:
    """Bytes that one beat of `bits` bits takes in memory: whole bus words."""
    return bus_words(bits, bus_bytes) * bus_bytes


def weight_layout(config: EngineConfig, bus_bytes: int) -> PlaneLayout:
    """The bit-plane layout of the weight region of an engine built with `config`."""
    return PlaneLayout(config.rows, config.cols, config.base_bits, bus_bytes)


def region_strides(config: EngineConfig, bits: dict[str, int], bus_bytes: int) -> dict[str, int]:
    """Per region (REGIONS), the bytes one of its beats takes in memory, its BEAT_BYTES register: a tile of B
    planes for the weight region, `beat_stride` of its payload's `bits` for the others."""
    return {
        name: weight_layout(config, bus_bytes).tile_bytes if name == "weight" else beat_stride(bits[name], bus_bytes)
        for name in REGIONS
    }


def region_alignment(bus_bytes: int, burst: int) -> int:
    """The alignment of every region's base: one whole burst (a power of two dividing 4 KiB)."""
    return bus_bytes * burst


def pack_beats(values: list[int], bits: int, bus_bytes: int) -> bytes:
    """The beats (the integers on the port) as they lie in memory."""
    stride = beat_stride(bits, bus_bytes)
    return b"".join(value.to_bytes(stride, "little") for value in values)


def unpack_beats(data: bytes, bits: int, bus_bytes: int) -> list[int]:
    """The inverse of `pack_beats` (the padding must be zero)."""
    stride = beat_stride(bits, bus_bytes)
    return [int.from_bytes(data[i : i + stride], "little") for i in range(0, len(data), stride)]
