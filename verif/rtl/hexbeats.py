"""Beats as `$readmemh` text and captured words back from `$writememh` text, vectorised with numpy.

A beat's bits are `sim.payload`'s (the fields at their `contract.streams` offsets), so the text is exactly
the integer on the port, most significant digit first. Arrays are `sim.streams`' per-stream dicts:
field -> [beats] or [beats, lanes].
"""

from __future__ import annotations

import numpy as np

from contract.streams import Stream
from sim.payload import bit_matrix, field_arrays

#: Beats converted at a time: bounds the bit matrix of wide payloads (a 16x16 `param` beat is 865 bits).
_CHUNK = 8192
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_NIBBLE = np.full(256, 255, dtype=np.uint8)  # ASCII -> nibble value; 255 for anything else (x, z)
_NIBBLE[_HEX] = np.arange(16)
_NIBBLE[np.frombuffer(b"ABCDEF", dtype=np.uint8)] = np.arange(10, 16)


class CaptureError(ValueError):
    """A captured file holds something that is not a word (x or z bits, a word too wide)."""


def _digits(width: int) -> int:
    return -(-width // 4)


def pack_hex(port: Stream, arrays: dict[str, np.ndarray]) -> bytes:
    """`$readmemh` text of the beats in `arrays`: one hex word per line."""
    count = len(next(iter(arrays.values())))
    digits = _digits(port.width)
    chunks = []
    for first in range(0, count, _CHUNK):
        chunk = {name: np.asarray(values)[first : first + _CHUNK] for name, values in arrays.items()}
        bits = bit_matrix(port, chunk)
        rows = len(bits)
        bits = np.pad(bits, ((0, 0), (0, digits * 4 - port.width)))
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


def unpack_hex(port: Stream, text: bytes) -> dict[str, np.ndarray]:
    """Field arrays of the words in `$writememh` text (array fields as [beats, lanes])."""
    return field_arrays(port, _bits(text, port.width))


def unpack_words(text: bytes) -> list[int]:
    """The words of `$writememh` text as unsigned integers (any width)."""
    words = []
    for line in _word_lines(text):
        try:
            words.append(int(line, 16))
        except ValueError:
            raise CaptureError(f"captured word {len(words)} has x or z bits: {line}") from None
    return words
