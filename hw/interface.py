"""Stream payload layouts of the engine's ports, as functions of the generation parameters.

The RTL, the host-side packer (`sim.streams`) and the cocotb tests all read the field widths from here,
so a payload is defined exactly once. Each port is a `lib.stream` (valid/ready, AXI-Stream compatible);
`last` marks the final beat of one command on that stream (TLAST for a DMA): the engine itself counts
beats from the command and does not need it on its inputs. docs/architecture.md gives the beat order.
"""

from __future__ import annotations

from amaranth.hdl import signed, unsigned
from amaranth.lib import data, enum

from contract.config import EngineConfig


class Scheme(enum.Enum, shape=1):
    """How the top k bits of a weight code are read (docs/numerics.md, Weights)."""

    OFFSET = 0
    TWOS = 1


class Mode(enum.Enum, shape=1):
    """Output of the requantizer: an A-bit activation code (relu) or the ACC-bit value t (raw)."""

    RELU = 0
    RAW = 1


def command_layout(cfg: EngineConfig) -> data.StructLayout:
    """One GEMM Y[m x n] = requant(X[m x k_dim] . W[k_dim x n]) at weight precision wbits, act precision abits.

    Sizes are stored as plain values (1..max); a command outside the config's limits is the host's error.
    """
    return data.StructLayout(
        {
            "m": cfg.field_bits(cfg.max_m),
            "k_dim": cfg.field_bits(cfg.max_k),
            "n": cfg.field_bits(cfg.max_n),
            "wbits": cfg.field_bits(cfg.base_bits),
            "abits": cfg.field_bits(cfg.act_bits),
            "scheme": Scheme,
            "mode": Mode,
        }
    )


def weight_layout(cfg: EngineConfig) -> data.StructLayout:
    """One row of a weight tile: the B-bit codes of array row r for the C columns of the N-tile."""
    return data.StructLayout({"codes": data.ArrayLayout(cfg.base_bits, cfg.cols), "last": 1})


def act_layout(cfg: EngineConfig) -> data.StructLayout:
    """One row m of X restricted to the R inputs of the current K-tile."""
    return data.StructLayout({"codes": data.ArrayLayout(cfg.act_bits, cfg.rows), "last": 1})


def param_layout(cfg: EngineConfig) -> data.StructLayout:
    """Requantization parameters of the C columns of one N-tile."""
    return data.StructLayout(
        {
            "bias": data.ArrayLayout(signed(cfg.acc_bits), cfg.cols),
            "mult": data.ArrayLayout(signed(cfg.mult_bits), cfg.cols),
            "shift": data.ArrayLayout(unsigned(cfg.shift_bits), cfg.cols),
            "last": 1,
        }
    )


def result_layout(cfg: EngineConfig) -> data.StructLayout:
    """One row m of Y for the C columns of one N-tile; relu codes are zero-extended, padded lanes are 0."""
    return data.StructLayout({"values": data.ArrayLayout(signed(cfg.acc_bits), cfg.cols), "last": 1})


def psum_bits(cfg: EngineConfig) -> int:
    """Width of a partial sum inside the array: a column adds at most R masked products of one digit.

    Each masked product is bounded by the full-precision one (docs/numerics.md), so this never exceeds
    what the ACC-bit accumulator needs and saves flip-flops on every PE. A decoded D-bit digit has
    magnitude at most 2^D - 1, so a digit-serial array's partial sums are B - D bits narrower.
    """
    digit_product = ((1 << cfg.act_bits) - 1) * ((1 << cfg.digit_width) - 1)
    return min(cfg.acc_bits, (cfg.rows * digit_product).bit_length() + 1)


def column_sum_bits(cfg: EngineConfig) -> int:
    """Width of one column's sum of R full products, which the accumulator adds: the digit-serial
    engine's shift-and-add stage rebuilds it from the digit sums."""
    return min(cfg.acc_bits, (cfg.rows * cfg.max_product).bit_length() + 1)


def weight_decode_layout(cfg: EngineConfig) -> data.StructLayout:
    """What decodes a code at run-time precision k: hi_k (`mask`) and the scheme, and

    bit-parallel engines, which decode at the load port: `drop` = B - k, by which the column scales the
    offset scheme's constant term (hw/offset.py);
    digit-serial engines, whose PEs decode: `lsb`, the lowest kept bit of every kept digit (bit 0 of each
    full digit, bit 2^(B-k) in the last, partial one), which is what the offset decode of each digit adds.
    """
    own = {"lsb": cfg.base_bits} if cfg.digit_serial else {"drop": range(cfg.base_bits)}
    return data.StructLayout({"mask": cfg.base_bits, "scheme": Scheme} | own)


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


def token_layout(cfg: EngineConfig) -> data.StructLayout:
    """Bookkeeping that travels through the pipeline beside one activation row (one digit of it, in a
    digit-serial engine: `place` is the digit's index in the code, B/D - 1 for the most significant).

    Carrying it with the data (instead of recomputing it from counters at the far end) is what lets every
    stage be stalled by one global enable without any stage needing to know the schedule.
    """
    return data.StructLayout(
        {
            "valid": 1,
            "row": range(cfg.max_m),
            "first_ktile": 1,
            "last_ktile": 1,
            "last_ntile": 1,
            "last": 1,
        }
        | ({"place": range(cfg.digit_count), "last_digit": 1} if cfg.digit_serial else {})
    )
