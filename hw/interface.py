"""The HDL shapes of the engine's ports and of its internal per-command bookkeeping.

The stream payloads and the engine's signature are built from `contract.streams`, the one description of
the ports (names, directions, field widths) that the host-side packer (`sim.streams`) and the verification
library also read, so a payload is defined exactly once. Each port is a `lib.stream` (valid/ready,
AXI-Stream compatible); `last` marks the final beat of one command on that stream (TLAST for a DMA): the
engine itself counts beats from the command and does not need it on its inputs. docs/architecture.md gives
the beat order.
"""

from __future__ import annotations

from amaranth.hdl import signed, unsigned
from amaranth.lib import data, enum, stream, wiring

from contract.config import EngineConfig
from contract.numerics import MODES, SCHEMES
from contract.streams import IN, Field, code_bits, streams
from contract.streams import stream as stream_of


class Scheme(enum.Enum, shape=code_bits(SCHEMES)):
    """How the top k bits of a weight code are read (docs/numerics.md, Weights)."""

    OFFSET = SCHEMES.index("offset")
    TWOS = SCHEMES.index("twos")


class Mode(enum.Enum, shape=code_bits(MODES)):
    """Output of the requantizer: an A-bit activation code (relu), the ACC-bit value t (raw), or the
    requantized value without the clamp (linear)."""

    RELU = MODES.index("relu")
    RAW = MODES.index("raw")
    LINEAR = MODES.index("linear")


_ENUMS = {SCHEMES: Scheme, MODES: Mode}


def _shape(field: Field):
    if field.codes:
        return _ENUMS[field.codes]
    element = signed(field.width) if field.signed else unsigned(field.width)
    return element if field.lanes is None else data.ArrayLayout(element, field.lanes)


def payload_layout(cfg: EngineConfig, name: str) -> data.StructLayout:
    """The payload of stream `name` (`contract.streams` says what each field is)."""
    return data.StructLayout({field.name: _shape(field) for field in stream_of(cfg, name).fields})


def stream_members(cfg: EngineConfig) -> dict[str, wiring.Member]:
    """Every stream of the engine as a signature member, in port order."""
    return {
        port.name: (wiring.In if port.direction == IN else wiring.Out)(stream.Signature(payload_layout(cfg, port.name)))
        for port in streams(cfg)
    }


def weight_decode_layout(cfg: EngineConfig) -> data.StructLayout:
    """What decodes a code at run-time precision k.

    Bit-parallel engines decode at the load port: hi_k (`mask`), the scheme, and `drop` = B - k, by which the
    column scales the offset scheme's constant term (hw/offset.py).
    Digit-serial engines decode in the PEs, digit by digit, with what travels beside each activation (hw/pe.py,
    `decode_digit`): the scheme and, with D > 1, `low` = (B - k) mod D, the bits of the last kept digit below
    bit B - k (every other kept digit is whole).
    """
    if cfg.digit_serial:
        return data.StructLayout({"scheme": Scheme} | ({"low": range(cfg.digit_width)} if cfg.digit_width > 1 else {}))
    return data.StructLayout({"mask": cfg.base_bits, "scheme": Scheme, "drop": range(cfg.base_bits)})


def precision_layout(cfg: EngineConfig) -> data.StructLayout:
    """Per-command settings derived from (wbits, abits, scheme, mode) when the command is accepted."""
    return data.StructLayout(
        {
            "weight": weight_decode_layout(cfg),
            "act_mask": cfg.act_bits,
            "acc_shift": range(cfg.act_bits + cfg.base_bits - 1),
            "mode": Mode,
        }
        | ({"last_place": range(cfg.digit_count)} if cfg.digit_serial else {})
    )


def row_precision_layout(cfg: EngineConfig) -> data.StructLayout:
    """The part of a command's settings that its rows need below the array, carried in each row's token so
    that the next command's rows may follow them into the pipeline at another precision: the mode and the
    N-tile's existing columns (the requantizer's clamp and padded-column mask), the pre-shift (A-j)+(B-k)
    (switchable engines) and, for the offset term of a switchable bit-parallel engine, the scheme and B - k."""
    fields = {"mode": Mode, "columns": range(cfg.cols + 1)}
    if cfg.switchable:
        fields["acc_shift"] = range(cfg.act_bits + cfg.base_bits - 1)
    if cfg.switchable and not cfg.digit_serial:
        fields |= {"scheme": Scheme, "drop": range(cfg.base_bits)}
    return data.StructLayout(fields)


def token_layout(cfg: EngineConfig) -> data.StructLayout:
    """Bookkeeping that travels through the pipeline beside one activation row (one digit of it, in a
    digit-serial engine: `place` is the digit's index in the code, B/D - 1 for the most significant).

    Carrying it with the data (instead of recomputing it from counters at the far end) is what lets every
    stage be stalled by one global enable without any stage needing to know the schedule, and, with the
    row's `precision`, lets two commands at different precisions share the pipeline.
    """
    return data.StructLayout(
        {
            "valid": 1,
            "row": range(cfg.max_m),
            "first_ktile": 1,
            "last_ktile": 1,
            "last_ntile": 1,
            "last": 1,
            "precision": row_precision_layout(cfg),
        }
        | ({"place": range(cfg.digit_count), "last_digit": 1} if cfg.digit_serial else {})
    )
