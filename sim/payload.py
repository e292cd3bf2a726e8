"""Payload bits: a stream's beats, as field arrays, packed into the words on its port and back, vectorised.

The one packer of payload bits. Fields sit at the offsets `contract.streams` gives them, least significant
bit first, which is how the HDL's payload layouts (built from the same description) place them, so a word is
exactly the integer on the port. Arrays are per field: [beats] for a scalar, [beats, lanes] for an array.
"""

from __future__ import annotations

import numpy as np

from contract.config import EngineConfig
from contract.streams import Stream, stream


def bit_matrix(port: Stream, arrays: dict[str, np.ndarray]) -> np.ndarray:
    """The beats in `arrays` as a bit matrix [beats, port.width] (uint8), least significant bit first."""
    count = len(next(iter(arrays.values())))
    bits = np.zeros((count, port.width), dtype=np.uint8)
    for field in port.fields:
        values = np.asarray(arrays[field.name]).astype(np.int64).reshape(count, -1) & ((1 << field.width) - 1)
        offset, span = port.offsets[field.name], values.shape[1] * field.width
        bits[:, offset : offset + span] = ((values[:, :, None] >> np.arange(field.width)) & 1).reshape(count, span)
    return bits


def field_arrays(port: Stream, bits: np.ndarray) -> dict[str, np.ndarray]:
    """The field arrays of a bit matrix [beats, port.width] (array fields as [beats, lanes])."""
    arrays = {}
    for field in port.fields:
        width, lanes = field.width, field.lanes or 1
        offset = port.offsets[field.name]
        chunk = bits[:, offset : offset + lanes * width].reshape(len(bits), lanes, width).astype(np.int64)
        values = (chunk << np.arange(width)).sum(axis=2)
        if field.signed:
            values -= (values >> (width - 1) & 1) << width
        arrays[field.name] = values if field.lanes else values[:, 0]
    return arrays


def to_bits(cfg: EngineConfig, name: str, beat: dict) -> int:
    """One beat (a dict of the stream's fields) as the integer on the stream's payload port."""
    row = bit_matrix(stream(cfg, name), {field: np.array([value]) for field, value in beat.items()})[0]
    return int.from_bytes(np.packbits(row, bitorder="little").tobytes(), "little")


def from_bits(cfg: EngineConfig, name: str, word: int) -> dict:
    """The integer on a stream's payload port as a beat dict (lists for array fields)."""
    port = stream(cfg, name)
    raw = np.frombuffer(word.to_bytes(-(-port.width // 8), "little"), dtype=np.uint8)
    bits = np.unpackbits(raw, bitorder="little")[None, : port.width]
    return {field: values[0].tolist() for field, values in field_arrays(port, bits).items()}
