"""The IDX reader and the Fashion-MNIST split: exact on well-formed files, one clear error on every bad one.

Small IDX files are written here from the format's definition (struct.pack), independently of the reader;
the installed data set is checked against facts its authors publish (10,000 test images, 1,000 per class,
the first training labels).
"""

from __future__ import annotations

import gzip
import os
import struct

import numpy as np
import pytest
import torch

from contract.cli import InputError
from golden.data import FASHION_MNIST_DIR, FASHION_MNIST_FILES, augment, fashion_mnist_split, load_split
from golden.idx import read_idx
from tests.idx_files import idx_bytes, write


@pytest.mark.parametrize("name", ["images.gz", "images"])
def test_reads_what_the_format_defines(tmp_path, name):
    array = np.random.default_rng(0).integers(0, 256, (3, 4, 5), dtype=np.uint8)
    assert np.array_equal(read_idx(write(tmp_path / name, idx_bytes(array)), 3), array)


@pytest.mark.parametrize(
    "payload, message",
    [
        (idx_bytes(np.zeros((2, 3, 3), np.uint8), kind=0x0D), "wrong magic number 0x00000d03"),
        (idx_bytes(np.zeros((2, 3), np.uint8)), "wrong magic number 0x00000802"),
        (idx_bytes(np.zeros((2, 3, 3), np.uint8))[:-1], "header says 2x3x3 = 18 bytes, the file holds 17"),
        (b"\x00\x00\x08", "too short for an IDX header"),
        (struct.pack(">HBB3I", 0, 8, 3, 60000, 60000, 60000), "the file holds 0"),
    ],
)
def test_a_malformed_file_is_one_error_naming_it(tmp_path, payload, message):
    path = write(tmp_path / "bad.gz", payload)
    with pytest.raises(InputError, match=message) as raised:
        read_idx(path, 3)
    assert str(path) in str(raised.value)


def test_a_corrupt_archive_is_an_error(tmp_path):
    path = tmp_path / "broken.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros((2, 2, 2), np.uint8)))[:-6])
    with pytest.raises(InputError, match="not a readable gzip file"):
        read_idx(path, 3)


def fake_fashion_dir(tmp_path, train: int = 6, test: int = 4, top_label: int = 9):
    tmp_path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    halves = {"train": train, "test": test}
    for field, name in FASHION_MNIST_FILES.items():
        n = halves[field.split("_")[0]]
        if field.endswith("_x"):
            array = rng.integers(0, 256, (n, 28, 28), np.uint8)
        else:
            array = np.arange(n, dtype=np.uint8)
            array[-1] = top_label
        write(tmp_path / name, idx_bytes(array))
    return tmp_path


def test_the_split_scales_pixels_and_keeps_labels(tmp_path):
    split = fashion_mnist_split(fake_fashion_dir(tmp_path))
    assert split.train_x.shape == (6, 1, 28, 28) and split.test_x.shape == (4, 1, 28, 28)
    raw = read_idx(tmp_path / FASHION_MNIST_FILES["test_x"], 3)
    assert torch.equal(split.test_x[:, 0] * 255, torch.from_numpy(raw.astype("float32")))
    assert split.train_y.tolist() == [0, 1, 2, 3, 4, 9] and split.test_y.dtype == torch.int64


def test_a_missing_data_set_names_the_package_and_the_files(tmp_path):
    with pytest.raises(InputError) as raised:
        load_split("fashion-mnist", tmp_path)
    message = str(raised.value)
    assert "dataset-fashion-mnist" in message and all(name in message for name in FASHION_MNIST_FILES.values())


def test_labels_outside_the_classes_and_mismatched_halves_are_errors(tmp_path):
    with pytest.raises(InputError, match="labels must lie in 0..9"):
        fashion_mnist_split(fake_fashion_dir(tmp_path / "a", top_label=12))
    directory = fake_fashion_dir(tmp_path / "b")
    write(directory / FASHION_MNIST_FILES["train_y"], idx_bytes(np.zeros(5, np.uint8)))
    with pytest.raises(InputError, match="train images"):
        fashion_mnist_split(directory)


def test_limit_and_unknown_names(tmp_path):
    split = load_split("fashion-mnist", fake_fashion_dir(tmp_path), limit=2)
    assert len(split.train_x) == len(split.test_y) == 2
    with pytest.raises(InputError, match="unknown data set 'cifar'"):
        load_split("cifar")
    with pytest.raises(InputError, match="--limit must be at least 1"):
        load_split("digits", limit=0)


def test_the_installed_data_set_is_the_published_one():
    if not FASHION_MNIST_DIR.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{FASHION_MNIST_DIR} is missing: `make test` installs dataset-fashion-mnist")
        pytest.skip("dataset-fashion-mnist is not installed on this machine (make test installs it)")
    split = load_split("fashion-mnist")
    assert split.train_x.shape == (60000, 1, 28, 28) and split.test_x.shape == (10000, 1, 28, 28)
    assert split.train_y[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert torch.bincount(split.test_y).tolist() == [1000] * 10
    assert 0 <= float(split.train_x.min()) and float(split.train_x.max()) == 1.0


def test_augmentation_is_a_padded_crop_or_its_mirror():
    images = torch.rand(6, 2, 5, 5)
    out = augment(images, torch.Generator().manual_seed(3), pad=1)
    padded = torch.nn.functional.pad(images, (1, 1, 1, 1))
    for image, window in zip(padded, out, strict=True):
        crops = [image[:, dy : dy + 5, dx : dx + 5] for dy in range(3) for dx in range(3)]
        assert any(torch.equal(window, crop) or torch.equal(window, crop.flip(-1)) for crop in crops)
