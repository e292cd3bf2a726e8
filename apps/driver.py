"""A host driver for the SoC wrapper (hw/soc.py): a compiled program laid out in memory, run through registers.

`NestmacDriver(backend, config, limits)` talks to the hardware only through a `Backend`: 32-bit register reads
and writes on the AXI4-Lite port and byte reads and writes of the memory the AXI4 master sees. The same driver
runs on the Amaranth simulator and on Verilator under cocotb (the backends in verif/) and, through
`MmioBackend`, on a board.

`load(program, images, codes)` lays the five regions out in memory (contract.soc: each beat padded to whole
bus words, little-endian, but the weights as bit-planes, contract.bitplanes.encode_planes, so that the hardware
reads only each layer's k planes; bases aligned to one burst, starting at `memory_base`, in the order step,
image, weight, param, logits); `run()` writes the bases and beat counts, starts the run and waits on STATUS (or the
interrupt, where the backend has one); `logits()` and `counters()` read the results. The bus width and burst
come from the hardware's VERSION register and each region's beat size from its BEAT_BYTES registers, which
the driver checks against its own packing before it writes anything.
"""

from __future__ import annotations

import mmap
import os
import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from contract import soc
from contract.bitplanes import encode_planes
from contract.cli import InputError
from contract.config import EngineConfig
from contract.program import Program, ProgramImages, ProgramLimits, check_fits
from hw.program_engine import stream_layouts
from sim.payload import from_bits
from verif.program_steps import program_beats


class Backend(Protocol):
    """How the driver reaches the hardware: registers (byte offsets) and the memory the DMA reads and writes
    (addresses as the AXI4 master sees them: `memory_size` bytes from the driver's `memory_base`); `pause()`
    lets time pass between two polls of STATUS. A register access answered SLVERR raises
    contract.soc.SlaveError."""

    memory_size: int

    def read32(self, offset: int) -> int: ...

    def write32(self, offset: int, value: int) -> None: ...

    def write_mem(self, address: int, data: bytes) -> None: ...

    def read_mem(self, address: int, length: int) -> bytes: ...

    def pause(self) -> None: ...


@dataclass(frozen=True)
class Region:
    base: int
    beats: int
    stride: int  # bytes per beat

    @property
    def size(self) -> int:
        return self.beats * self.stride


class RunError(InputError):
    """The hardware refused or aborted a run (misaligned region, time-out, a burst outside the memory window,
    an AXI error response), or it did not finish in time (one line)."""


#: Why the hardware ended a run early, per STATUS bit (contract.soc.STATUS_ABORTED), in the words of RunError.
ABORT_REASONS = {
    soc.STATUS_MISALIGNED: "the hardware refused the run: a region's base is not aligned to a burst",
    soc.STATUS_OUTSIDE: "the hardware aborted the run: a DMA burst would have left the memory window",
    soc.STATUS_TIMEOUT: "the hardware aborted the run: no progress for WATCHDOG cycles (do the regions match "
    "the program?)",
    soc.STATUS_BUS_ERROR: "the hardware aborted the run: the memory answered a burst with an AXI error",
}


class NestmacDriver:
    """Runs compiled programs on a NestmacSoC through `backend` (module docstring)."""

    def __init__(self, backend: Backend, config: EngineConfig, limits: ProgramLimits, memory_base: int = 0):
        self.backend, self.config, self.limits = backend, config, limits
        identifier = backend.read32(soc.ID)
        if identifier != soc.IDENTIFIER:
            raise InputError(f"no nestmac SoC there: ID register reads {identifier:#010x}")
        version = backend.read32(soc.VERSION)
        if version & 0xFF != soc.REGISTER_VERSION:
            raise InputError(f"register map version {version & 0xFF}, this driver speaks {soc.REGISTER_VERSION}")
        self.bus_bytes, self.burst = (version >> 8) & 0xFF, (version >> 16) & 0xFFFF
        self._layouts = stream_layouts(config, limits.words, limits.max_size, limits.max_channels, limits.max_operands)
        bits = {name: layout.size for name, layout in self._layouts.items()}
        self._strides = soc.region_strides(config, bits, self.bus_bytes)
        self.planes = soc.weight_layout(config, self.bus_bytes)
        self.memory_base = memory_base
        self.regions: dict[str, Region] = {}
        self._logits_count = 0
        for index, name in enumerate(soc.REGIONS):
            hardware = backend.read32(soc.BEAT_BYTES + 4 * index)
            if hardware != self._stride(name):
                raise InputError(
                    f"the hardware's {name} beats take {hardware} bytes, this configuration's {self._stride(name)}"
                )

    def _bits(self, name: str) -> int:
        return self._layouts[name].size

    def _stride(self, name: str) -> int:
        return self._strides[name]

    def load(self, program: Program, images: ProgramImages, codes: np.ndarray, extra_steps: tuple[dict, ...] = ()):
        """Lay out one image's run of `program` (its [C, H, W] input `codes`) in memory; `extra_steps` run first
        (beats of verif.program_steps.layer_step, e.g. illegal ones a test wants refused)."""
        self._check_program(program, images, codes)
        beats = program_beats(program, images, codes)
        beats["step"] = [*extra_steps, *beats["step"]]
        last = program.descriptors[-1]
        self._logits_count = last.out_shape[0]
        logits_beats = last.n_tiles(self.config.cols) * last.out_shape[1] * last.out_shape[2]
        weights = images.weights[: program.weight_length]
        counts = {name: len(beats[name]) for name in soc.READ_REGIONS} | {"logits": logits_beats}
        counts["weight"] = weights.size // self.planes.tile_codes
        alignment = soc.region_alignment(self.bus_bytes, self.burst)
        if self.memory_base % alignment:
            raise InputError(f"memory base {self.memory_base:#x} is not aligned to {alignment} bytes")
        address, regions = self.memory_base, {}
        for name in soc.REGIONS:
            regions[name] = Region(address, counts[name], self._stride(name))
            address += -(-regions[name].size // alignment) * alignment
        if address - self.memory_base > self.backend.memory_size:
            needed = address - self.memory_base
            raise InputError(f"the program needs {needed} bytes of memory, the backend has {self.backend.memory_size}")
        for name in soc.READ_REGIONS:
            if name == "weight":
                data = encode_planes(weights, self.planes).tobytes()
            else:
                values = [self._layouts[name].const(beat).as_value().value for beat in beats[name]]
                data = soc.pack_beats(values, self._bits(name), self.bus_bytes)
            self.backend.write_mem(regions[name].base, data)
        self.regions = regions

    def _check_program(self, program: Program, images: ProgramImages, codes: np.ndarray) -> None:
        """InputError (one line) unless the program runs on this engine, within its scratchpad, and reads only
        the weights, parameters and image given."""
        gemm = dict(max_m=self.config.max_m, max_k=self.config.max_k, max_n=self.config.max_n)
        check_fits(program, self.limits, gemm)
        if (program.rows, program.cols, program.act_bits) != (self.config.rows, self.config.cols, self.config.act_bits):
            raise InputError("the program was compiled for another array or activation width than this engine's")
        for what, given, needed in (
            ("weight codes", images.weights.size, program.weight_length),
            ("parameter rows", len(images.params), program.param_length),
        ):
            if given < needed:
                raise InputError(f"the program reads {needed} {what}, the images hold {given}")
        if tuple(codes.shape) != tuple(program.input_shape):
            raise InputError(f"the image is {list(codes.shape)}, the program reads {list(program.input_shape)}")

    def run(self, timeout: float = 60.0, irq: bool = True, watchdog: int = soc.WATCHDOG_RESET) -> int:
        """Start the loaded run and wait until it has ended; returns STATUS. The DMA may touch only the backend's
        `memory_size` bytes from `memory_base`, and the hardware aborts the run after `watchdog` cycles
        without progress. RunError if the hardware refused or aborted the run (ABORT_REASONS) or it has not
        ended within `timeout` seconds of wall time."""
        if not self.regions:
            raise InputError("nothing loaded: call load() before run()")
        write = self.backend.write32
        for index, name in enumerate(soc.REGIONS):
            write(soc.region_base(index), self.regions[name].base)
            write(soc.region_beats(index), self.regions[name].beats)
        write(soc.WINDOW_BASE, self.memory_base)
        write(soc.WINDOW_SIZE, min(self.backend.memory_size, (1 << 32) - 1))
        write(soc.WATCHDOG, watchdog)
        write(soc.IRQ_STATUS, soc.IRQ_DONE)
        write(soc.CTRL, soc.CTRL_START | (soc.CTRL_IRQ_ENABLE if irq else 0))
        deadline = time.monotonic() + timeout
        while (status := self.backend.read32(soc.STATUS)) & soc.STATUS_BUSY:
            if time.monotonic() > deadline:
                raise RunError(f"the run had not ended after {timeout} s (STATUS {status:#x})")
            self.backend.pause()
        for bit, reason in ABORT_REASONS.items():
            if status & bit:
                raise RunError(reason)
        return status

    def logits(self) -> np.ndarray:
        """The last run's logits (the last layer's N values, int64)."""
        region = self.regions["logits"]
        data = self.backend.read_mem(region.base, region.size)
        words = soc.unpack_beats(data, self._bits("logits"), self.bus_bytes)
        values = np.concatenate([from_bits(self.config, "result", word)["values"] for word in words])
        return values[: self._logits_count].astype(np.int64)

    def counters(self) -> dict[str, int]:
        """The performance counters of the last run: cycles, logits beats, per read region its bytes read, the
        cycles of each class (`<class>_cycles`, contract.soc.CYCLE_CLASSES: `active_cycles` is the model's
        cycles, `<stream>_cycles` the waits for each stream) and the MACs."""
        read = self.backend.read32
        counters = {"cycles": read(soc.CYCLES), "logits_beats": read(soc.LOGITS_WRITTEN)}
        for index, name in enumerate(soc.READ_REGIONS):
            counters[f"{name}_bytes"] = read(soc.BYTES_READ + 4 * index)
        for index, name in enumerate(soc.CYCLE_CLASSES):
            counters[f"{name}_cycles"] = read(soc.CYCLE_COUNTERS + 4 * index)
        counters["macs"] = read(soc.MACS)
        return counters


class MmioBackend:
    """The hardware on a board: its registers mapped from a UIO device (/dev/uioN, map 0) or /dev/mem at
    `register_base`, and a physically contiguous buffer that the AXI4 master reaches, mapped from /dev/mem at
    `memory_physical` (`memory_size` bytes; the driver's addresses are offsets into it plus `bus_offset`, the
    buffer's address as the master sees it). Needs root or the device's permissions; not tested here (no board).
    A register access the hardware answers SLVERR reaches the CPU as a bus fault (SIGBUS on Linux), not as
    SlaveError: the driver makes none on a healthy block.

    Example (a Zynq with the SoC's registers at 0x43C00000 and a 16 MiB reserved buffer at 0x30000000)::

        backend = MmioBackend("/dev/mem", 0x43C00000, 0x30000000, 16 << 20)
        driver = NestmacDriver(backend, config, limits, memory_base=0x30000000)
    """

    def __init__(
        self, device: str, register_base: int, memory_physical: int, memory_size: int, bus_offset: int | None = None
    ):
        self.memory_size = memory_size
        self._bus_offset = memory_physical if bus_offset is None else bus_offset
        page = mmap.PAGESIZE
        self._fd = os.open(device, os.O_RDWR | os.O_SYNC)
        offset = 0 if device.startswith("/dev/uio") else register_base
        self._registers = mmap.mmap(self._fd, page, offset=offset)
        self._memory_fd = os.open("/dev/mem", os.O_RDWR | os.O_SYNC)
        self._memory = mmap.mmap(self._memory_fd, memory_size, offset=memory_physical)
        self._uio = device.startswith("/dev/uio")

    def read32(self, offset: int) -> int:
        return int.from_bytes(self._registers[offset : offset + 4], "little")

    def write32(self, offset: int, value: int) -> None:
        self._registers[offset : offset + 4] = value.to_bytes(4, "little")

    def write_mem(self, address: int, data: bytes) -> None:
        start = address - self._bus_offset
        self._memory[start : start + len(data)] = data

    def read_mem(self, address: int, length: int) -> bytes:
        start = address - self._bus_offset
        return bytes(self._memory[start : start + length])

    def pause(self) -> None:
        """On a UIO device, block until its interrupt (re-armed first); on /dev/mem, sleep briefly."""
        if self._uio:
            os.write(self._fd, (1).to_bytes(4, "little"))
            os.read(self._fd, 4)
        else:
            time.sleep(1e-4)

    def close(self) -> None:
        self._registers.close()
        self._memory.close()
        os.close(self._fd)
        os.close(self._memory_fd)
