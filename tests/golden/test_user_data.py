"""The user's own RGB data sets (--data npz / folder): read exactly, split like the digits, every bad input one
error naming the file; and a small RGB model trains from the command line above chance, exports and scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from contract.cli import InputError
from golden import evaluate, export, train
from golden.data import load_split
from golden.user_data import read_image_folder
from tests.golden.test_golden_cli import assert_one_line_error, run_in_process
from tests.rgb_data import CLASSES, SHAPE, rgb_set, write_image_folder, write_npz


def test_an_npz_file_is_split_80_20_by_class_and_scaled_by_255(tmp_path):
    x, y = rgb_set(40, seed=1)
    np.savez(tmp_path / "set.npz", x=x, y=y)
    split = load_split("npz", tmp_path / "set.npz")
    assert split.train_x.shape == (32, *SHAPE) and split.test_x.shape == (8, *SHAPE)
    assert torch.bincount(split.test_y).tolist() == [2] * CLASSES
    # Every scaled training image is one of the file's images, with its label.
    pixels = {bytes(image): label for image, label in zip(x, y, strict=True)}
    for image, label in zip(split.train_x, split.train_y, strict=True):
        assert pixels[bytes((image * 255).round().to(torch.uint8).numpy())] == label


def test_a_directory_of_train_and_test_npz_keeps_its_halves(tmp_path):
    write_npz(tmp_path / "train.npz", 12, seed=2)
    write_npz(tmp_path / "test.npz", 8, seed=3)
    split = load_split("npz", tmp_path, limit=5)
    x, y = rgb_set(8, seed=3)
    assert torch.equal(split.test_x * 255, torch.from_numpy(x[:5].astype("float32")))
    assert split.test_y.tolist() == y[:5].tolist() and len(split.train_y) == 5


def test_png_folders_read_back_exactly_labelled_by_sorted_folder_name(tmp_path):
    write_image_folder(tmp_path, 12, seed=4)
    images, labels = read_image_folder(tmp_path)
    x, y = rgb_set(12, seed=4)
    order = np.argsort(y, kind="stable")  # folder c0 first, its files in name (= generation) order
    assert np.array_equal(images, x[order]) and np.array_equal(labels, y[order])


def test_a_folder_of_train_and_test_is_used_as_split(tmp_path):
    write_image_folder(tmp_path / "train", 8, seed=5)
    write_image_folder(tmp_path / "test", 4, seed=6, suffix=".jpg")
    split = load_split("folder", tmp_path)
    assert split.train_x.shape == (8, *SHAPE) and sorted(split.test_y.tolist()) == list(range(CLASSES))


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


GOOD_X, GOOD_Y = rgb_set(8, seed=7)


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"x": GOOD_X}, "no array 'y'"),
        ({"x": GOOD_X.astype(np.float32), "y": GOOD_Y}, "x must be uint8 .N, C, H, W.*float32"),
        ({"x": GOOD_X[:, 0], "y": GOOD_Y}, r"x must be uint8 .* \[8, 16, 16\]"),
        ({"x": GOOD_X, "y": GOOD_Y[:5]}, "y must be integer labels .N. with N = 8"),
        ({"x": GOOD_X, "y": GOOD_Y.astype(np.float64)}, "y must be integer labels"),
        ({"x": GOOD_X, "y": GOOD_Y - 1}, "labels must lie in 0..1023, found -1..2"),
        ({"x": GOOD_X, "y": np.array([object()] * 8)}, "not a readable .npz file of plain arrays"),
    ],
)
def test_a_bad_npz_is_one_error_naming_it(tmp_path, arrays, message):
    path = _npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(InputError, match=message) as raised:
        load_split("npz", path)
    assert str(raised.value).startswith(str(path))


def test_bad_npz_files_and_halves(tmp_path):
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(InputError, match="text.npz: not a readable .npz file"):
        load_split("npz", tmp_path / "text.npz")
    np.save(tmp_path / "one.npy", GOOD_X)
    with pytest.raises(InputError, match="one.npy: one array, not an .npz archive"):
        load_split("npz", tmp_path / "one.npy")
    halves = tmp_path / "halves"
    halves.mkdir()
    write_npz(halves / "train.npz", 8, seed=8)
    with pytest.raises(InputError, match="must hold train.npz and test.npz .missing test.npz"):
        load_split("npz", halves)
    _npz(halves / "test.npz", x=GOOD_X[:, :, :8], y=GOOD_Y)
    with pytest.raises(InputError, match="train images are 3x16x16 .* test images 3x8x16"):
        load_split("npz", halves)
    _npz(halves / "test.npz", x=GOOD_X, y=GOOD_Y + 4)
    with pytest.raises(InputError, match="test label 4 never occurs in the training half"):
        load_split("npz", halves)
    with pytest.raises(InputError, match="cannot split 3 images 80/20 by class"):
        load_split("npz", _npz(tmp_path / "tiny.npz", x=GOOD_X[:3], y=GOOD_Y[:3]))
    with pytest.raises(InputError, match="needs --data-dir"):
        load_split("npz")


def _break_folder(root, how):
    """One defect in a good folder data set; returns the file or folder the error must name."""
    from PIL import Image

    first = root / "c0" / "0000.png"
    if how == "rgba":
        Image.new("RGBA", (16, 16)).save(first)
        return first
    if how == "size":
        Image.new("RGB", (16, 8)).save(root / "c3" / "9999.png")
        return root / "c3" / "9999.png"
    if how == "corrupt":
        first.write_bytes(first.read_bytes()[:40])
        return first
    if how == "suffix":
        (root / "c1" / "notes.txt").write_text("x")
        return root / "c1" / "notes.txt"
    if how == "stray":
        (root / "README").write_text("x")
        return root / "README"
    (root / "c9").mkdir()
    return root / "c9"


@pytest.mark.parametrize(
    "how, message",
    [
        ("rgba", "image mode RGBA is neither L .greyscale. nor RGB"),
        ("size", "image is 3x8x16 .C x H x W. but .* is 3x16x16"),
        ("corrupt", "not a readable image"),
        ("suffix", "not a PNG or JPEG image file"),
        ("stray", "not a class folder"),
        ("empty", "empty class folder"),
    ],
)
def test_a_bad_image_folder_is_one_error_naming_the_file(tmp_path, how, message):
    root = write_image_folder(tmp_path / "set", 8, seed=9)
    culprit = _break_folder(root, how)
    with pytest.raises(InputError, match=message) as raised:
        load_split("folder", root)
    assert str(raised.value).startswith(str(culprit))


@pytest.mark.train  # trains a small CNN for one epoch (about 10 s on one core)
def test_an_rgb_model_trains_from_the_command_line_exports_and_scores(tmp_path, capsys):
    data = write_npz(tmp_path / "rgb.npz", 400, seed=0)
    model, out = tmp_path / "rgb.pt", tmp_path / "export"
    common = ["--data-dir", str(data)]
    trained = run_in_process(
        train.main,
        ["--method", "qat", "--scheme", "offset", "--data", "npz", *common, "--epochs", "1", "--batch-size", "16"]
        + ["--lr", "1e-2", "--out", str(model)],
        capsys,
    )
    assert trained.returncode == 0, trained.stderr
    assert run_in_process(export.main, [str(model), "--out", str(out)], capsys).returncode == 0
    # The export records the data set, so evaluate needs only where it is.
    scored = run_in_process(evaluate.main, [str(out), "--bits", "8", *common], capsys)
    assert scored.returncode == 0, scored.stderr
    accuracy = float(scored.stdout.split()[-1])
    assert accuracy > 100 / CLASSES + 15, scored.stdout  # chance is 25 %; measured 66 %
    assert_one_line_error(run_in_process(evaluate.main, [str(out)], capsys))


def test_the_train_command_refuses_bad_rgb_data_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "m.pt"
    bad = _npz(tmp_path / "bad.npz", x=GOOD_X.astype(np.int16), y=GOOD_Y)
    many = _npz(tmp_path / "many.npz", x=np.repeat(GOOD_X, 15, axis=0), y=np.arange(120) % 12)
    for argv in (
        ["--data", "npz", "--data-dir", str(bad)],
        ["--data", "folder"],
        ["--data", "digits", "--data-dir", str(tmp_path)],
        ["--data", "npz", "--data-dir", str(many)],  # 12 classes, the digits net has 10 outputs
    ):
        result = run_in_process(train.main, ["--method", "qat", "--scheme", "offset", *argv, "--out", str(out)], capsys)
        assert_one_line_error(result)
        assert not out.exists()
