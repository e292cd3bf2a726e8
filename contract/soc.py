"""The SoC wrapper's contract (hw/soc.py): its register map and its memory layout, shared by the HDL and the driver.

Registers are 32 bits wide at byte offsets on the AXI4-Lite port (docs/architecture.md, "SoC wrapper").
In memory every beat of a stream is padded to a whole number of bus words and stored little-endian: beat i of
a region at base B occupies bytes [B + i*S, B + (i+1)*S) with S = `beat_stride(bits, bus_bytes)`, the
payload's bit 0 in bit 0 of the first byte, the padding zero. A region's base is aligned to `region_alignment`
(whole bursts, so that no burst crosses a 4 KiB boundary).
"""

from __future__ import annotations

#: Read by software to recognise the block: "NMAC" in ASCII.
IDENTIFIER = 0x4E4D4143
#: The register map's version (the VERSION register's low byte); bus_bytes and burst are bytes 1 and 2.
REGISTER_VERSION = 1

#: The five regions in memory, in register order: four read by the DMA, the last (logits) written.
READ_REGIONS = ("step", "image", "weight", "param")
REGIONS = (*READ_REGIONS, "logits")

ID, VERSION, CTRL, STATUS, IRQ_STATUS = 0x00, 0x04, 0x08, 0x0C, 0x10
#: Region r's base address and beat count.
REGION_BASE, REGION_BEATS = 0x20, 0x24
REGION_STRIDE = 8
#: Counters (read only, cleared by START): cycles of the run, logits beats, then per read region its stall
#: cycles (the engine ready, the stream not valid) and its bytes read.
CYCLES, LOGITS_BEATS = 0x60, 0x64
STALLS, BYTES_READ = 0x70, 0x80
#: Per region, the bytes of one beat in memory (read only: the hardware's `beat_stride`).
BEAT_BYTES = 0x90

#: CTRL bits: START (write 1: reset the engine and counters, start the run; reads 0), IRQ_ENABLE.
CTRL_START, CTRL_IRQ_ENABLE = 1 << 0, 1 << 1
#: STATUS bits: BUSY (a run is going on), DONE (the last run wrote all its logits), ERROR (the engine refused
#: a step or a parameter beat, sticky until START), BUS_ERROR (an AXI response other than OKAY), MISALIGNED
#: (START found a base not aligned to `region_alignment`: nothing runs).
STATUS_BUSY, STATUS_DONE, STATUS_ERROR, STATUS_BUS_ERROR, STATUS_MISALIGNED = (1 << i for i in range(5))
#: IRQ_STATUS bit: DONE (set when a run ends, cleared by writing 1); `irq` = DONE & IRQ_ENABLE.
IRQ_DONE = 1 << 0


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
