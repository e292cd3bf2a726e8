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
    columns = {}
    for name, array in arrays.items():
        array = np.asarray(array)
        if array.ndim == 1:
            columns[name] = array
        else:
            columns.update({f"{name}.{lane}": array[:, lane] for lane in range(array.shape[1])})
    count = len(next(iter(columns.values())))
    bits = np.zeros((count, port.width), dtype=np.uint8)
    for field in port.flat:
        column = columns[field.name].astype(np.int64) & ((1 << field.width) - 1)
        bits[:, field.offset : field.offset + field.width] = (column[:, None] >> np.arange(field.width)) & 1
    return bits


def field_arrays(port: Stream, bits: np.ndarray) -> dict[str, np.ndarray]:
    """The field arrays of a bit matrix [beats, port.width] (array fields as [beats, lanes])."""
    values, lanes = {}, {}
    for field in port.flat:
        width = field.width
        value = (bits[:, field.offset : field.offset + width].astype(np.int64) << np.arange(width)).sum(axis=1)
        if field.signed:
            value -= (value >> (width - 1) & 1) << width
        name, dot, _ = field.name.partition(".")
        if dot:
            lanes.setdefault(name, []).append(value)
        else:
            values[name] = value
    return values | {name: np.stack(columns, axis=1) for name, columns in lanes.items()}


def to_bits(cfg: EngineConfig, name: str, beat: dict) -> int:
    """One beat (a dict of the stream's fields) as the integer on the stream's payload port."""
    row = bit_matrix(stream(cfg, name), {field: np.array([value]) for field, value in beat.items()})[0]
    return int.from_bytes(np.packbits(row, bitorder="little").tobytes(), "little")


def from_bits(cfg: EngineConfig, name: str, word: int) -> dict:
    """The integer on a stream's payload port as a beat dict (lists for array fields)."""
    port = stream(cfg, name)
    raw = np.frombuffer(word.to_bytes(-(-port.width // 8) or 1, "little"), dtype=np.uint8)
    bits = np.unpackbits(raw, bitorder="little")[None, : port.width]
    return {field: values[0].tolist() for field, values in field_arrays(port, bits).items()}
