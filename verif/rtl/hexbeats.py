"""Beats as `$readmemh` text and captured words back from `$writememh` text, vectorised with numpy.

A beat is laid out bit by bit at the field offsets of its payload layout (`hw.interface`, flattened by
`hw.generate.layout_fields`), so the text is exactly the integer on the port, most significant digit first.
Arrays are `verif.rtl.beat_arrays`' per-stream dicts: field -> [beats] or [beats, lanes].
"""

from __future__ import annotations

import numpy as np
from amaranth.lib import data

from hw.generate import layout_fields

#: Beats converted at a time: bounds the bit matrix of wide payloads (a 16x16 `param` beat is 865 bits).
_CHUNK = 8192
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_NIBBLE = np.full(256, 255, dtype=np.uint8)  # ASCII -> nibble value; 255 for anything else (x, z)
_NIBBLE[_HEX] = np.arange(16)
_NIBBLE[np.frombuffer(b"ABCDEF", dtype=np.uint8)] = np.arange(10, 16)


class CaptureError(ValueError):
    """A captured file holds something that is not a word (x or z bits, a word too wide)."""


def _columns(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Field arrays by flattened layout name: `codes` [beats, R] becomes `codes.0` ... `codes.{R-1}`."""
    columns = {}
    for name, array in arrays.items():
        array = np.asarray(array)
        if array.ndim == 1:
            columns[name] = array
        else:
            columns.update({f"{name}.{lane}": array[:, lane] for lane in range(array.shape[1])})
    return columns


def _digits(width: int) -> int:
    return -(-width // 4)


def pack_hex(layout: data.Layout, arrays: dict[str, np.ndarray]) -> bytes:
    """`$readmemh` text of the beats in `arrays`: one hex word per line."""
    fields = layout_fields(layout)
    columns = _columns(arrays)
    count = len(next(iter(columns.values())))
    digits = _digits(layout.size)
    chunks = []
    for first in range(0, count, _CHUNK):
        rows = min(_CHUNK, count - first)
        bits = np.zeros((rows, digits * 4), dtype=np.uint8)
        for field in fields:
            offset, width = field["offset"], field["width"]
            column = columns[field["name"]][first : first + rows].astype(np.int64) & ((1 << width) - 1)
            bits[:, offset : offset + width] = (column[:, None] >> np.arange(width)) & 1
        nibbles = bits.reshape(rows, digits, 4) @ np.array([1, 2, 4, 8], dtype=np.uint8)
        text = np.empty((rows, digits + 1), dtype=np.uint8)
        text[:, :digits] = _HEX[nibbles[:, ::-1]]
        text[:, digits] = ord("\n")
        chunks.append(text.tobytes())
    return b"".join(chunks)


def _word_lines(text: bytes) -> list[str]:
    lines = (line.strip() for line in text.decode("ascii", errors="replace").splitlines())
    return [line for line in lines if line and not line.startswith(("//", "@"))]


def _bits(text: bytes, width: int) -> np.ndarray:
    """The words of `$writememh` text as a bit matrix [words, width], least significant bit first."""
    digits = _digits(width)
    lines = _word_lines(text)
    if not lines:
        return np.zeros((0, width), dtype=np.uint8)
    if any(len(line) > digits for line in lines):
        raise CaptureError(f"a captured word is wider than {width} bits")
    chars = np.frombuffer("".join(line.rjust(digits, "0") for line in lines).encode(), dtype=np.uint8)
    nibbles = _NIBBLE[chars.reshape(len(lines), digits)]
    bad = (nibbles == 255).any(axis=1)
    if bad.any():
        word = int(np.argmax(bad))
        raise CaptureError(f"captured word {word} has x or z bits: {lines[word]}")
    bits = (nibbles[:, ::-1, None] >> np.arange(4, dtype=np.uint8)) & 1
    return bits.reshape(len(lines), digits * 4)[:, :width]


def _field(bits: np.ndarray, offset: int, width: int, signed: bool) -> np.ndarray:
    value = (bits[:, offset : offset + width].astype(np.int64) << np.arange(width)).sum(axis=1)
    if signed:
        value -= (value >> (width - 1) & 1) << width
    return value


def unpack_hex(layout: data.Layout, text: bytes) -> dict[str, np.ndarray]:
    """Field arrays of the words in `$writememh` text (array fields as [beats, lanes])."""
    bits = _bits(text, layout.size)
    values, lanes = {}, {}
    for field in layout_fields(layout):
        column = _field(bits, field["offset"], field["width"], field.get("signed", False))
        name, dot, _ = field["name"].partition(".")
        if dot:
            lanes.setdefault(name, []).append(column)
        else:
            values[name] = column
    width = len(bits)
    return values | {
        name: np.stack(columns, axis=1) if columns else np.zeros((width, 0), np.int64)
        for name, columns in lanes.items()
    }


def unpack_words(text: bytes) -> list[int]:
    """The words of `$writememh` text as unsigned integers (any width)."""
    words = []
    for line in _word_lines(text):
        try:
            words.append(int(line, 16))
        except ValueError:
            raise CaptureError(f"captured word {len(words)} has x or z bits: {line}") from None
    return words
