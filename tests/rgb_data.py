"""A small synthetic RGB data set written by the tests: 3x16x16 byte images of 4 classes that a small CNN tells
apart within one epoch. Each image is dim noise with a bright 6x6 square at a random place, red, green or blue
for classes 0..2 and white for class 3, so that the signal is the colour, wherever it sits."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SHAPE = (3, 16, 16)
CLASSES = 4
SIDE = 6
#: Per class, the channels the square lights up.
COLOURS = ((0,), (1,), (2,), (0, 1, 2))


def rgb_images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """uint8 [N, 3, 16, 16] images of `labels` (module docstring)."""
    images = rng.integers(0, 60, (len(labels), *SHAPE), dtype=np.uint8)
    for image, label in zip(images, labels, strict=True):
        top, left = rng.integers(0, SHAPE[1] - SIDE + 1, 2)
        for channel in COLOURS[label]:
            image[channel, top : top + SIDE, left : left + SIDE] = 230
    return images


def rgb_set(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(x, y): `count` images, the classes in turn, drawn from `seed`."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count, dtype=np.int64) % CLASSES
    return rgb_images(labels, rng), labels


def write_npz(path: Path, count: int, seed: int) -> Path:
    x, y = rgb_set(count, seed)
    np.savez(path, x=x, y=y)
    return path


def write_image_folder(directory: Path, count: int, seed: int, suffix: str = ".png") -> Path:
    """The set as class folders c0..c3 of image files (PNG is lossless, so the pixels read back exactly)."""
    from PIL import Image

    x, y = rgb_set(count, seed)
    for index, (image, label) in enumerate(zip(x, y, strict=True)):
        folder = directory / f"c{label}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image.transpose(1, 2, 0), "RGB").save(folder / f"{index:04d}{suffix}")
    return directory
