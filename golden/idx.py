"""The IDX file format of MNIST and Fashion-MNIST, read strictly: a bad file is one clear error, never garbage.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of dimensions), one big-endian
uint32 per dimension, then the data in row-major order. The data sets ship gzip-compressed (`*.gz`); a
plain file is read as it is. Only the unsigned-byte type (0x08) is used by these data sets and accepted.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from contract.cli import InputError

UBYTE = 0x08
#: More than any real IDX file holds (Fashion-MNIST's training images are 47 MB): a corrupt header must
#: not make us allocate terabytes.
MAX_BYTES = 1 << 30


def read_idx(path: Path, dims: int) -> np.ndarray:
    """The uint8 array stored in `path`, which must hold exactly `dims` dimensions of unsigned bytes."""
    raw = _read_bytes(path)
    if len(raw) < 4 + 4 * dims:
        raise InputError(f"{path}: too short for an IDX header ({len(raw)} bytes)")
    zero, kind, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or kind != UBYTE or ndim != dims:
        raise InputError(
            f"{path}: wrong magic number 0x{int.from_bytes(raw[:4], 'big'):08x}, "
            f"expected 0x{0x800 | dims:08x} (unsigned bytes, {dims} dimensions)"
        )
    shape = struct.unpack(f">{dims}I", raw[4 : 4 + 4 * dims])
    size = int(np.prod(shape, dtype=np.int64))
    body = raw[4 + 4 * dims :]
    if size > MAX_BYTES or len(body) != size:
        raise InputError(f"{path}: header says {'x'.join(map(str, shape))} = {size} bytes, the file holds {len(body)}")
    return np.frombuffer(body, dtype=np.uint8).reshape(shape)


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, decompressed when it is `.gz`; a broken archive is an InputError naming the file."""
    if path.suffix != ".gz":
        return path.read_bytes()
    try:
        with gzip.open(path, "rb") as file:
            return file.read(MAX_BYTES + 1)
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise InputError(f"{path}: not a readable gzip file ({exc or type(exc).__name__})") from None
