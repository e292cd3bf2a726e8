"""External memory in the model: what a layer program reads and writes per inference, how long the bus takes,
and what it costs in energy, engine, on-chip memory and DRAM apart.

**Streams** (bytes per inference, each region counted in whole bus words, as the bus moves them):
- `image`: the input's A-bit codes, packed (the program engine writes them into its scratchpad);
- `program`: the encoded program (contract.program.encode_program), its header with the image step and each
  layer's descriptor with that layer (`encoded_sizes`);
- `params`: each layer's parameter rows, ACC + MULT_BITS + SHIFT_BITS bits each, packed (what the param port
  carries; a driver's layout may pad rows, which item 3 of issue 23 decides);
- `weights`: each layer's bit-planes 0..k-1 at its descriptor's k (contract.bitplanes: k*S bytes per tile),
  what the SoC wrapper's weight reader reads (hw/plane_reader.py; its WEIGHT_BYTES counter equals this figure,
  tests/hw/test_soc.py and rtl_tests/test_soc_rtl.py). A controlled layer's descriptor k is its largest
  candidate, so for a dynamic program this is a bound: the hardware reads the planes of the k chosen. A layer
  in M-blocks (contract.program) reads its planes and its parameter rows once per block;
- `logits` (written): the last layer's outputs, ACC bits each.
Nothing else crosses: the activations stay in the scratchpad (docs/architecture.md, "Layer programs").

**Bus.** An AXI-like port of `bus_bytes` bytes a beat. A contiguous run is split into bursts of at most
`burst_beats` beats that do not cross a 4 KB boundary (weights at their plane-image addresses from a 4 KB-
aligned base; every other stream's region starts 4 KB-aligned). Bursts are issued in order, one address a
cycle, at most `outstanding` in flight; a burst's first beat arrives `latency` cycles after its address, and
the data channel carries one beat a cycle, in order (`burst_cycles`):

    issue_i = max(issue_(i-1) + 1, end_(i-O))      end_i = max(issue_i + latency, end_(i-1)) + beats_i

A step's bus cycles are those of its reads from idle (so each step pays one latency), or of its writes if
more (AXI's write channel is separate; the logits are written with the same latency and burst rules).

**Overlap.** A step takes max(engine cycles, bus cycles): the DMA runs ahead of the engine through FIFOs deep
enough to hold `outstanding` bursts, and a step's reads start while the step before it runs. That is a bound
(an engine that waits for nothing but the bus), reached when the FIFOs cover the latency; it charges each
step one latency that, with the reads issued during the previous step, would be hidden, so it is
slightly pessimistic on the bus side. The engine cycles are sim.program_cycles' (every stream ideal).

**Energy** (`memory_energy`):
- engine: sim.program_cost's multiply, add, registers, accumulator and requantizer parts, unchanged;
- on-chip: the scratchpad (sim.program_cost's, the image's writes included) and the operand buffer
  (sim.energy.BUFFER_BYTES): every byte that crosses the bus but the image is written into the buffer once
  and read from it once (the weights as the k planes fetched, which the weight port takes as codes with the
  low B-k bits zero: wires, no storage). This replaces program_cost's `buffers`, which priced reads only,
  of B-bit weight codes;
- DRAM: every byte read or written, at the energy table's `dram_access` price (format 2 of
  sim.energy_table; Horowitz's 1.3 nJ per 64 bits in the shipped table).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from contract.bitplanes import BUS_BYTES, PlaneLayout, fetch_runs
from contract.cli import InputError
from contract.config import EngineConfig
from contract.numerics import MULT_BITS, SHIFT_BITS
from contract.program import Program, encoded_sizes
from contract.widths import ceil_div
from sim.energy import BUFFER_BYTES
from sim.energy_table import DEFAULT_TABLE, EnergyTable
from sim.program_cost import ProgramCost
from sim.program_cycles import program_step_cycles

#: The streams read from external memory, then the one written.
READ_STREAMS = ("image", "program", "params", "weights")
STREAMS = (*READ_STREAMS, "logits")
#: An AXI burst may not cross a 4 KB boundary.
BOUNDARY_BYTES = 4096
#: The engine parts sim.program_cost prices that stay as they are (the rest is memory).
ENGINE_PARTS = ("multiply", "add", "registers", "accumulator", "requant")


@dataclass(frozen=True)
class Bus:
    """The external memory port (module docstring). The defaults are assumptions, not a measured system: a
    64-bit port (BISMO's HP0 width), 16-beat bursts, 32 cycles to the first beat, 4 bursts in flight."""

    bus_bytes: int = 8
    burst_beats: int = 16
    latency: int = 32
    outstanding: int = 4

    def __post_init__(self):
        if type(self.bus_bytes) is not int or self.bus_bytes not in BUS_BYTES:
            raise InputError(f"bus_bytes must be one of {', '.join(map(str, BUS_BYTES))}, got {self.bus_bytes!r}")
        for name, lo, hi in (("burst_beats", 1, 256), ("latency", 0, 1 << 20), ("outstanding", 1, 256)):
            value = getattr(self, name)
            if type(value) is not int or not lo <= value <= hi:
                raise InputError(f"{name} must be an integer in {lo}..{hi}, got {value!r}")

    def words(self, nbytes: float) -> int:
        """Bytes rounded up to whole bus words."""
        return ceil_div(math.ceil(nbytes), self.bus_bytes) * self.bus_bytes

    def bursts(self, address: int, nbytes: int) -> list[int]:
        """The beats of each burst of a contiguous run from `address` (bus-aligned): at most `burst_beats`, never
        across a 4 KB boundary."""
        beats, end = [], address + nbytes
        while address < end:
            boundary = (address // BOUNDARY_BYTES + 1) * BOUNDARY_BYTES
            limit = min(end, address + self.burst_beats * self.bus_bytes, boundary)
            beats.append(ceil_div(limit - address, self.bus_bytes))
            address = limit
        return beats


def burst_cycles(bursts: list[int], bus: Bus) -> int:
    """Cycles from the first address to the last beat of `bursts` (beats each) issued in order from an idle
    port (module docstring's recurrence); 0 for none."""
    issue, ends = -1, []
    for index, beats in enumerate(bursts):
        issue = max(issue + 1, ends[index - bus.outstanding] if index >= bus.outstanding else 0)
        ends.append(max(issue + bus.latency, ends[-1] if ends else 0) + beats)
    return ends[-1] if ends else 0


@dataclass(frozen=True)
class StepTraffic:
    """One program step's external traffic (bytes per stream, in whole bus words) and cycles."""

    name: str  # "input" for the image step
    streams: dict[str, int]  # bytes per stream
    engine_cycles: int
    bus_cycles: int

    @property
    def cycles(self) -> int:
        """The step's time when the bus may be the bottleneck (module docstring, "Overlap")."""
        return max(self.engine_cycles, self.bus_cycles)


@dataclass(frozen=True)
class MemoryTraffic:
    bus: Bus
    steps: tuple[StepTraffic, ...]

    def stream_bytes(self) -> dict[str, int]:
        return {stream: sum(step.streams[stream] for step in self.steps) for stream in STREAMS}

    @property
    def read_bytes(self) -> int:
        return sum(self.stream_bytes()[stream] for stream in READ_STREAMS)

    @property
    def written_bytes(self) -> int:
        return self.stream_bytes()["logits"]

    @property
    def engine_cycles(self) -> int:
        return sum(step.engine_cycles for step in self.steps)

    @property
    def cycles(self) -> int:
        return sum(step.cycles for step in self.steps)


def memory_traffic(cfg: EngineConfig, program: Program, bus: Bus = Bus()) -> MemoryTraffic:
    """Per step of `program` on engine `cfg`: the bytes each stream moves, the engine's cycles, the bus's."""
    layout = PlaneLayout.of(program, bus.bus_bytes)
    header, descriptors = encoded_sizes(program)
    image = math.prod(program.input_shape) * program.act_bits / 8
    first = dict(image=bus.words(image), program=bus.words(header))
    steps = [_step(bus, "input", first, [], program_step_cycles(cfg, program, None))]
    row_bits = program.acc_bits + MULT_BITS + SHIFT_BITS
    for d, descriptor_bytes in zip(program.descriptors, descriptors, strict=True):
        blocks = len(d.blocks())  # each M-block reads the layer's weights and parameters again
        runs = fetch_runs(program, d, layout) * blocks
        streams = dict(
            program=bus.words(descriptor_bytes),
            params=blocks * bus.words(d.param_rows(program.cols) * row_bits / 8),
            weights=sum(length for _, length in runs),
        )
        if d.store == "logits":
            streams["logits"] = bus.words(math.prod(d.out_shape) * program.acc_bits / 8)
        steps.append(_step(bus, d.name, streams, runs, program_step_cycles(cfg, program, d)))
    return MemoryTraffic(bus, tuple(steps))


def _step(bus: Bus, name: str, streams: dict[str, int], weight_runs: list, engine_cycles: int) -> StepTraffic:
    """A step's traffic: its reads in order (image or descriptor, parameters, weight runs) and its write."""
    reads = [beats for stream in ("image", "program", "params") for beats in bus.bursts(0, streams.get(stream, 0))]
    reads += [beats for address, length in weight_runs for beats in bus.bursts(address, length)]
    bus_cycles = max(burst_cycles(reads, bus), burst_cycles(bus.bursts(0, streams.get("logits", 0)), bus))
    return StepTraffic(name, {stream: streams.get(stream, 0) for stream in STREAMS}, engine_cycles, bus_cycles)


@dataclass(frozen=True)
class MemoryEnergy:
    """pJ per inference: the engine, the on-chip memories, DRAM (module docstring, "Energy")."""

    engine: float
    onchip: float
    dram: float

    @property
    def total(self) -> float:
        return self.engine + self.onchip + self.dram

    def as_dict(self) -> dict[str, float]:
        return dict(engine=self.engine, onchip=self.onchip, dram=self.dram, total=self.total)


def dram_pj(traffic: MemoryTraffic, table: EnergyTable = DEFAULT_TABLE) -> float:
    """Every byte read from or written to external memory at the table's DRAM price per bit."""
    return (traffic.read_bytes + traffic.written_bytes) * 8 * table.dram_bit_pj()


def memory_energy(cost: ProgramCost, traffic: MemoryTraffic, table: EnergyTable = DEFAULT_TABLE) -> MemoryEnergy:
    """The energy of one inference of the program that `cost` (sim.program_cost) and `traffic` describe."""
    energy = cost.energy
    buffered = traffic.read_bytes - traffic.stream_bytes()["image"] + traffic.written_bytes
    return MemoryEnergy(
        engine=sum(getattr(energy, part) for part in ENGINE_PARTS),
        onchip=energy.scratchpad + 2 * buffered * 8 * table.sram_bit_pj(BUFFER_BYTES),
        dram=dram_pj(traffic, table),
    )
