"""Generation parameters of the engine, validated once, shared by the RTL, the generator and `sim`.

Keeping every width derivation here means the Verilog, its JSON manifest and the cycle model can never
disagree about how wide a field is or which K the accumulator can hold without wrapping.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from enum import Enum

from contract.cli import InputError
from contract.numerics import ACC_BITS_RANGE, ACT_BITS_RANGE, BASE_BITS_RANGE, MULT_BITS, SHIFT_BITS

# Limits sized by what generation costs (README, "Limits"): a 48x48 array takes about 40 s and 650 MB (64x64
# took 78 s and 1 GB, over the minute a generation may take), and
# the accumulator's memory initialiser costs about 25 s and 780 MB at MAX_ACCUMULATOR_BITS (2^16 x 16 x 32);
# both grow linearly beyond, to hours and tens of GB at the old 256x256 and 2^20 limits.
MAX_ARRAY_DIM = 48
MAX_M = 1 << 16
MAX_ACCUMULATOR_BITS = 1 << 25


class ConfigError(InputError):
    """An invalid generation parameter; the CLIs print it as a one-line error and exit 2."""


def parse_array(text: str) -> tuple[int, int]:
    """'16x16' or '4x8' -> (rows, cols)."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match:
        raise ConfigError(f"--array must look like ROWSxCOLS (e.g. 16x16), got {text!r}")
    return int(match[1]), int(match[2])


def parse_gemm(text: str, option: str = "--gemm") -> tuple[int, int, int]:
    """'256x1024x256' -> (M, K, N), each at least 1."""
    match = re.fullmatch(r"\s*(\d+)x(\d+)x(\d+)\s*", text)
    if not match or 0 in (shape := (int(match[1]), int(match[2]), int(match[3]))):
        raise ConfigError(f"{option} must look like MxKxN with each at least 1 (e.g. 256x1024x256), got {text!r}")
    return shape


class PEKind(Enum):
    """What a PE multiplies by: the one choice that most of the engine's structure follows (the load port's
    decode, the column stage below the array, the requantizer's pre-shift, the command's digit slots)."""

    #: The fixed-precision baseline: a signed B-bit code times the activation, at k = B only.
    FIXED = "fixed"
    #: The switchable bit-parallel PE: one B x A multiply per slot at any k, the code decoded at the load port.
    BIT_PARALLEL = "bit-parallel"
    #: The switchable digit-serial PE: one D-bit digit of the code per slot, ceil(k/D) slots a row.
    DIGIT_SERIAL = "digit-serial"


class Dataflow(Enum):
    """What stays in the PEs while the rest streams past (named as Gemmini names its dataflows)."""

    #: Weights stay, activations flow right and partial sums down (TPU style, hw/array.py).
    WEIGHT_STATIONARY = "weight-stationary"


#: Named engines: the variants docs/estimates.md measures, by the fields that make them that variant (the
#: widths and depths keep each command's defaults), so `--preset NAME` rebuilds one without spelling it out.
PRESETS: dict[str, dict] = {
    "bit-parallel-16x16": {"rows": 16, "cols": 16},
    "fixed-16x16": {"rows": 16, "cols": 16, "switchable": False},
    "digit-serial-16x16": {"rows": 16, "cols": 16, "digit_bits": 1},
    "fpga-4x4": {"rows": 4, "cols": 4, "pipelined": True},
    "fpga-8x8": {"rows": 8, "cols": 8, "pipelined": True},
    "fpga-digit-serial-16x16": {"rows": 16, "cols": 16, "digit_bits": 1, "pipelined": True},
}


@dataclass(frozen=True)
class EngineConfig:
    """R x C array of B-bit weight codes and A-bit activation codes with ACC-bit accumulators.

    max_m is the accumulator depth (rows of X one command may have); max_k and max_n bound the other
    GEMM dimensions and set the command's field widths.

    switchable = False builds the fixed-precision baseline that exists to measure what run-time precision
    switching costs: the same engine with plain PEs that multiply the code read as a signed B-bit number
    (the twos scheme at k = B), no activation mask and no requantizer pre-shift. It computes every command
    at k = B, j = A, twos, whatever its wbits, abits and scheme fields say (docs/estimates.md).

    digit_bits = D < B builds the digit-serial array (docs/architecture.md, "Digit-serial engines"): each PE
    multiplies by one D-bit digit of its code per cycle, most significant first, so a command at precision k
    holds each activation row for ceil(k/D) slots. None (or B, normalised to None so that configs, their
    dicts and every existing manifest stay as they were) is the bit-parallel PE.

    pipelined = True adds the registers an FPGA needs for its clock rate (docs/estimates.md, "Issue 13"):
    each PE registers its multiplier's weight input and its product, so a DSP block (about 4 ns alone on
    an ECP5) is the only thing between two registers, at two more slots through the array
    (contract/timing.py) and (A + B + 1) register bits per PE (the bit-parallel weight register equals the
    active weight register, and synthesis merges them); a bit-parallel engine registers its
    column sums below the array (one more slot); and the accumulator's memory read is registered (a block
    RAM's clock-to-output is about 6 ns), issued one slot earlier, at no cycle. Omitted from the config's
    dict when False, like digit_bits.
    """

    rows: int = 16
    cols: int = 16
    base_bits: int = 8
    act_bits: int = 8
    acc_bits: int = 32
    max_m: int = 1024
    max_k: int = 4096
    max_n: int = 4096
    switchable: bool = True
    digit_bits: int | None = None
    pipelined: bool = False

    def __post_init__(self):
        if not isinstance(self.switchable, bool):
            raise ConfigError(f"switchable must be True or False, got {self.switchable!r}")
        if not isinstance(self.pipelined, bool):
            raise ConfigError(f"pipelined must be True or False, got {self.pipelined!r}")
        _check("--array rows", self.rows, 1, MAX_ARRAY_DIM)
        _check("--array columns", self.cols, 1, MAX_ARRAY_DIM)
        _check("--base-bits", self.base_bits, *BASE_BITS_RANGE)
        _check("--act-bits", self.act_bits, *ACT_BITS_RANGE)
        _check("--acc-bits", self.acc_bits, *ACC_BITS_RANGE)
        _check("--max-m", self.max_m, 1, MAX_M)
        _check("--max-k", self.max_k, 1, 1 << 24)
        _check("--max-n", self.max_n, 1, 1 << 24)
        if self.max_k * self.max_product >= 1 << (self.acc_bits - 1):
            raise ConfigError(
                f"--acc-bits {self.acc_bits} is too narrow for --max-k {self.max_k}: the sum of up to "
                f"{self.max_k} products of magnitude {self.max_product} needs {self.min_acc_bits} bits"
            )
        if self.max_m * self.cols * self.acc_bits > MAX_ACCUMULATOR_BITS:
            raise ConfigError(
                f"the accumulator (--max-m {self.max_m} x {self.cols} columns x {self.acc_bits} bits) exceeds "
                f"{MAX_ACCUMULATOR_BITS} bits, the most that generates in under a minute; lower --max-m"
            )
        self._check_digit_bits()

    def _check_digit_bits(self) -> None:
        if self.digit_bits == self.base_bits:
            object.__setattr__(self, "digit_bits", None)  # D = B is the bit-parallel engine
        if self.digit_bits is None:
            return
        if self.digit_bits not in (1, 2, 4) or isinstance(self.digit_bits, bool) or self.base_bits % self.digit_bits:
            raise ConfigError(
                f"--digit-bits must be one of 1, 2, 4 or B = {self.base_bits} and divide B, got {self.digit_bits!r}"
            )
        if not self.switchable:
            raise ConfigError("--digit-bits below B needs the switchable engine, not --fixed-precision")

    @classmethod
    def from_export(cls, export, rows: int, cols: int, max_m: int, digit_bits: int | None = None) -> EngineConfig:
        """The switchable engine that runs an exported model (contract.model_format.Export): the export's widths
        (`base_bits`, `act_bits`, `acc_bits`), K and N limits that cover every layer and every controller's
        layer, and the caller's array and accumulator depth; `digit_bits` D < B builds the digit-serial engine."""
        layers = [*export.layers, *(controller.layer for controller in export.controllers)]
        widths = {name: getattr(export, name) for name in ("base_bits", "act_bits", "acc_bits")}
        return cls(
            rows=rows,
            cols=cols,
            max_m=max_m,
            max_k=max(layer.K for layer in layers),
            max_n=max(layer.N for layer in layers),
            digit_bits=digit_bits,
            **widths,
        )

    @property
    def pe_kind(self) -> PEKind:
        """The variant the `switchable` and `digit_bits` fields name together (D < B needs switchable)."""
        if not self.switchable:
            return PEKind.FIXED
        return PEKind.BIT_PARALLEL if self.digit_bits is None else PEKind.DIGIT_SERIAL

    @property
    def dataflow(self) -> Dataflow:
        """Every engine is weight-stationary so far: a property rather than a field, so that configs, their
        ids and every manifest stay as they were until a second dataflow gives it a value to choose."""
        return Dataflow.WEIGHT_STATIONARY

    @property
    def digit_serial(self) -> bool:
        return self.pe_kind is PEKind.DIGIT_SERIAL

    @property
    def digit_width(self) -> int:
        """D: the bits of a weight code a PE multiplies by per cycle (B for the bit-parallel PE)."""
        return self.base_bits if self.digit_bits is None else self.digit_bits

    @property
    def digit_count(self) -> int:
        """B / D: the digits of a stored code."""
        return self.base_bits // self.digit_width

    def digits(self, k: int) -> int:
        """ceil(k/D): the digits (slots per activation row) a command at weight precision k takes."""
        return -(-k // self.digit_width)

    @property
    def max_product(self) -> int:
        """Largest |x * w| at any precision (docs/numerics.md, Accumulation)."""
        return ((1 << self.act_bits) - 1) * ((1 << self.base_bits) - 1)

    @property
    def min_acc_bits(self) -> int:
        return (self.max_k * self.max_product).bit_length() + 1

    @property
    def pe_count(self) -> int:
        return self.rows * self.cols

    @property
    def mult_bits(self) -> int:
        return MULT_BITS

    @property
    def shift_bits(self) -> int:
        return SHIFT_BITS

    def field_bits(self, maximum: int) -> int:
        """Width of an unsigned command field that must hold 1..maximum."""
        return max(1, maximum.bit_length())

    def as_dict(self) -> dict:
        """The fields, without digit_bits for the bit-parallel engine and pipelined when False (as every
        manifest before them had)."""
        fields = asdict(self)
        if self.digit_bits is None:
            del fields["digit_bits"]
        if not self.pipelined:
            del fields["pipelined"]
        return fields


def _check(label: str, value: int, lo: int, hi: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise ConfigError(f"{label} must be an integer in {lo}..{hi}, got {value!r}")


def engine_tag(cfg: EngineConfig) -> str:
    """A short name for every generation parameter that changes the netlist, e.g. 16x16-b8a8-m1024-switchable
    (a digit-serial engine adds -d<D>, a pipelined one -p): what synthesis reports and default run outputs are
    named after, so that two engines never share one."""
    kind = "switchable" if cfg.switchable else "fixed"
    digits = "" if cfg.digit_bits is None else f"-d{cfg.digit_bits}"
    pipelined = "-p" if cfg.pipelined else ""
    return f"{cfg.rows}x{cfg.cols}-b{cfg.base_bits}a{cfg.act_bits}-m{cfg.max_m}-{kind}{digits}{pipelined}"
