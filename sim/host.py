"""The host's share of a network: the residual adds, poolings and concats between engine commands, counted and
priced.

The engine runs every GEMM; a residual add, a max or average pooling and a concat along channels
(docs/numerics.md, "Host operations") run on the host between commands, and their cost is reported next to the
engine's, never hidden. Per output element of an add with operands that are activation codes (unsigned or
signed) or raw layer outputs:
  - per raw operand: one ACC x MULT multiply, one ACC-bit rounding add and one shift (the requantization
    without clamp), and one ACC-bit read;
  - per activation-code operand: one A-bit read;
  - the sum: one ACC-bit add per operand after the first, and one add of the zero-point offset when it is not
    0 (a linear add, or signed-code operands: AddStep.offset); the clamp: two compares (priced as ACC-bit adds);
  - one A-bit write of the result.
Per output element of a concat: one A-bit read and one A-bit write (a copy of the codes).
Per output element of a pooling whose window has T taps inside the map (padding taps are skipped, not read):
  - T A-bit reads and one A-bit write;
  - max: T - 1 compares (priced as ACC-bit adds);
  - average: T - 1 adds for the sum S, one add of floor(n/2), and the division by the window's constant
    divisor n as one multiply by its precomputed reciprocal and one shift (exact for sums this small:
    Granlund and Montgomery, PLDI 1994), priced as an ACC x MULT multiply and an ACC-bit shift.
A run-time controller adds its decision (`decision_ops`): an argmax over its raw outputs per image.
Cycles assume an in-order scalar host at the engine's clock doing one operation (ALU, load or store) per
cycle, with no overlap with the engine (the next command needs the host's output): an explicit, pessimistic
assumption. Energy uses sim.energy's operand buffer and an energy table (sim.energy_table), by default the
shipped 45 nm prices (Horowitz, ISSCC 2014).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from contract.config import EngineConfig
from contract.model_format import AddStep, ConcatStep, Export, PoolStep, steps
from sim.energy import BUFFER_BYTES
from sim.energy_table import DEFAULT_TABLE, EnergyTable


@dataclass(frozen=True)
class HostOps:
    """Operation counts of the host adds for some number of images."""

    elements: int = 0  # add and pooling outputs
    multiplies: int = 0
    adds: int = 0  # rounding adds, sums and clamp compares
    shifts: int = 0
    loads: int = 0
    stores: int = 0
    read_bits: int = 0
    write_bits: int = 0

    @property
    def cycles(self) -> int:
        """One operation per cycle (module docstring)."""
        return self.multiplies + self.adds + self.shifts + self.loads + self.stores

    def scaled(self, factor: int) -> HostOps:
        return HostOps(*(factor * getattr(self, name) for name in self.__dataclass_fields__))

    def __add__(self, other: HostOps) -> HostOps:
        return HostOps(*(getattr(self, name) + getattr(other, name) for name in self.__dataclass_fields__))

    def energy_pj(self, cfg: EngineConfig, table: EnergyTable = DEFAULT_TABLE) -> float:
        return (
            self.multiplies * table.multiply_pj(cfg.acc_bits, cfg.mult_bits)
            + (self.adds + self.shifts) * table.add_pj(cfg.acc_bits)
            + (self.read_bits + self.write_bits) * table.sram_bit_pj(BUFFER_BYTES)
        )


def host_ops(export: Export, images: int = 1) -> HostOps:
    """The host adds', poolings' and concats' operations for `images` images (they depend on neither the data nor
    k)."""
    total = HostOps()
    for step in steps(export):
        if isinstance(step, AddStep):
            total = total + _add_ops(export, step)
        elif isinstance(step, PoolStep):
            total = total + _pool_ops(export, step)
        elif isinstance(step, ConcatStep):
            total = total + _concat_ops(export, step)
    return total.scaled(images)


def _add_ops(export: Export, step: AddStep) -> HostOps:
    raw = {layer.name for layer in export.layers if layer.mode == "raw"}
    raw_operands = sum(name in raw for name in step.operands)
    code_operands = len(step.operands) - raw_operands
    return HostOps(
        elements=1,
        multiplies=raw_operands,
        adds=raw_operands + (len(step.operands) - 1) + int(step.offset(export.act_bits) != 0) + 2,
        shifts=raw_operands,
        loads=len(step.operands),
        stores=1,
        read_bits=raw_operands * export.acc_bits + code_operands * export.act_bits,
        write_bits=export.act_bits,
    ).scaled(math.prod(step.shape))


def _concat_ops(export: Export, step: ConcatStep) -> HostOps:
    elements = math.prod(step.shape)
    bits = elements * export.act_bits
    return HostOps(elements=elements, loads=elements, stores=elements, read_bits=bits, write_bits=bits)


def _pool_ops(export: Export, step: PoolStep) -> HostOps:
    """One pooling (module docstring): its taps inside the map, summed over the outputs, are the product of the
    two axes' sums, per channel."""
    channels, height, width = step.source_shape
    windows = (step.pooling.windows(size, axis) for axis, size in enumerate((height, width)))
    taps = channels * math.prod(sum(len(window) for window in axis) for axis in windows)
    outputs = math.prod(step.shape)
    average = int(step.op == "avgpool")
    return HostOps(
        elements=outputs,
        multiplies=average * outputs,
        adds=taps - outputs + average * outputs,
        shifts=average * outputs,
        loads=taps,
        stores=outputs,
        read_bits=taps * export.act_bits,
        write_bits=outputs * export.act_bits,
    )


def decision_ops(export: Export, controller, images: int = 1) -> HostOps:
    """The host's share of a run-time controller (contract.model_format.ExportedController) for `images` images: per
    image and controlled layer, the argmax over the controller's raw outputs for its candidate k (one
    ACC-bit read each, one compare per candidate after the first, priced as an ACC-bit add) and one write
    of the chosen k (a byte). The controller's GEMM itself runs on the engine."""
    candidates, decisions = len(controller.candidates), len(controller.controls)
    return HostOps(
        adds=decisions * (candidates - 1),
        loads=decisions * candidates,
        stores=decisions,
        read_bits=decisions * candidates * export.acc_bits,
        write_bits=decisions * 8,
    ).scaled(images)
