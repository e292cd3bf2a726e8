"""The engine's streams as plain data: names, directions, payload fields and their widths, and beat counts.

This is the one description of the ports (docs/architecture.md, "Streams"). The HDL builds its payload
layouts and the engine's signature from it (`hw.interface`), the host packs beats by it (`sim.streams`), and
the verification library's players, scenarios and proofs iterate over it, so no list of streams or field
width is written anywhere else. Streams are listed in the engine's port order, which the Verilog and its
manifest follow. Fields are packed least significant bit first in the order given; `last` marks the final
beat of one command on a stream (TLAST for a DMA).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from contract.config import EngineConfig
from contract.numerics import MODES, SCHEMES

IN, OUT = "in", "out"


@dataclass(frozen=True)
class Field:
    """One payload field: `lanes` elements of `width` bits each (a scalar when lanes is None). A field with
    `codes` holds the index of one of those names (the scheme and mode of a command)."""

    name: str
    width: int
    signed: bool = False
    lanes: int | None = None
    codes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Stream:
    name: str
    direction: str  # IN or OUT, seen from the engine
    fields: tuple[Field, ...]

    @functools.cached_property
    def offsets(self) -> dict[str, int]:
        """The bit offset of each field (of its lane 0; lane i follows at i * width)."""
        offsets, offset = {}, 0
        for field in self.fields:
            offsets[field.name] = offset
            offset += field.width * (field.lanes or 1)
        return offsets

    @property
    def width(self) -> int:
        return sum(field.width * (field.lanes or 1) for field in self.fields)


def code_bits(codes: tuple[str, ...]) -> int:
    """Bits of a field that holds an index into `codes` (a scheme, an output mode): the HDL's enums take it too."""
    return max(1, (len(codes) - 1).bit_length())


def _code_field(name: str, codes: tuple[str, ...]) -> Field:
    return Field(name, code_bits(codes), codes=codes)


def _cmd(cfg: EngineConfig) -> tuple[Field, ...]:
    """One GEMM Y[m x n] = requant(X[m x k_dim] . W[k_dim x n]) at weight precision wbits, act precision abits.
    Sizes are plain values (1..max); a command outside the config's limits is the host's error."""
    return (
        Field("m", cfg.field_bits(cfg.max_m)),
        Field("k_dim", cfg.field_bits(cfg.max_k)),
        Field("n", cfg.field_bits(cfg.max_n)),
        Field("wbits", cfg.field_bits(cfg.base_bits)),
        Field("abits", cfg.field_bits(cfg.act_bits)),
        _code_field("scheme", SCHEMES),
        _code_field("mode", MODES),
    )


def _weight(cfg: EngineConfig) -> tuple[Field, ...]:
    """One row of a weight tile: the B-bit codes of array row r for the C columns of the N-tile."""
    return Field("codes", cfg.base_bits, lanes=cfg.cols), Field("last", 1)


def _act(cfg: EngineConfig) -> tuple[Field, ...]:
    """One row m of X restricted to the R inputs of the current K-tile."""
    return Field("codes", cfg.act_bits, lanes=cfg.rows), Field("last", 1)


def _param(cfg: EngineConfig) -> tuple[Field, ...]:
    """Requantization parameters of the C columns of one N-tile."""
    return (
        Field("bias", cfg.acc_bits, signed=True, lanes=cfg.cols),
        Field("mult", cfg.mult_bits, signed=True, lanes=cfg.cols),
        Field("shift", cfg.shift_bits, lanes=cfg.cols),
        Field("last", 1),
    )


def _result(cfg: EngineConfig) -> tuple[Field, ...]:
    """One row m of Y for the C columns of one N-tile; relu codes are zero-extended, padded lanes are 0."""
    return Field("values", cfg.acc_bits, signed=True, lanes=cfg.cols), Field("last", 1)


_STREAMS = {
    "cmd": (IN, _cmd),
    "weight": (IN, _weight),
    "act": (IN, _act),
    "param": (IN, _param),
    "result": (OUT, _result),
}
STREAMS = tuple(_STREAMS)
INPUTS = tuple(name for name, (direction, _) in _STREAMS.items() if direction == IN)


@functools.cache
def stream(cfg: EngineConfig, name: str) -> Stream:
    """Stream `name` of the engine built with `cfg` (cached: the per-beat packers ask for it every beat)."""
    direction, fields = _STREAMS[name]
    return Stream(name, direction, fields(cfg))


def streams(cfg: EngineConfig) -> tuple[Stream, ...]:
    """Every stream of the engine built with `cfg`, in port order."""
    return tuple(stream(cfg, name) for name in STREAMS)


def beat_counts(cfg: EngineConfig, m, k_tiles, n_tiles) -> dict:
    """Beats of one command on each stream, in the documented order (`sim.streams`): cmd 1; param one per
    N-tile; weight R per N-tile per K-tile; act M per N-tile per K-tile; result M per N-tile. Plain
    arithmetic, so it counts for integers and for the HDL values of a formal proof alike."""
    return {
        "cmd": 1,
        "weight": n_tiles * k_tiles * cfg.rows,
        "act": n_tiles * k_tiles * m,
        "param": n_tiles,
        "result": n_tiles * m,
    }
