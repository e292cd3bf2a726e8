"""Small IDX data sets written by the tests themselves, from the format's definition (struct.pack).

Tests that need only *a* 28x28 data set (loaders, shape refusals, converters, the integer path of a ResNet)
use these instead of the Debian package, so they run on any machine; only tests about the real Fashion-MNIST
(its published counts, accuracy) need the package (tests/golden/test_fashion_mnist.py).
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from golden.data import CLASSES, FASHION_MNIST_FILES


def idx_bytes(array: np.ndarray, kind: int = 0x08) -> bytes:
    """An IDX file's bytes: the magic (two zero bytes, element kind, rank), the big-endian sizes, the data."""
    return struct.pack(">HBB", 0, kind, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write(path: Path, payload: bytes) -> Path:
    path.write_bytes(gzip.compress(payload) if path.suffix == ".gz" else payload)
    return path


def write_split(directory: Path, arrays: dict[str, np.ndarray]) -> Path:
    """The four Fashion-MNIST files of `arrays` (train_x, train_y, test_x, test_y) in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    for field, name in FASHION_MNIST_FILES.items():
        write(directory / name, idx_bytes(arrays[field]))
    return directory


def pattern_images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """28x28 uint8 images a small network tells apart in a few steps: dim noise and a bright square whose
    side grows with the class (4 + 2 x label pixels) at a random place, so that predictions vary with the
    input as on real images, whatever the network's pooling."""
    images = rng.integers(0, 60, (len(labels), 28, 28)).astype(np.uint8)
    for index, label in enumerate(labels):
        side = 4 + 2 * int(label)
        top, left = rng.integers(0, 28 - side + 1, 2)
        images[index, top : top + side, left : left + side] = rng.integers(180, 256, (side, side))
    return images


def synthetic_fashion_dir(directory: Path, train: int = 384, test: int = 384, seed: int = 0) -> Path:
    """A Fashion-MNIST-shaped data set (28x28 bytes, labels 0..9, every class present) for --data-dir."""
    rng = np.random.default_rng(seed)
    halves = {"train": np.arange(train) % CLASSES, "test": np.arange(test) % CLASSES}
    arrays = {}
    for half, labels in halves.items():
        labels = rng.permutation(labels).astype(np.uint8)
        arrays[f"{half}_x"], arrays[f"{half}_y"] = pattern_images(labels, rng), labels
    return write_split(directory, arrays)
