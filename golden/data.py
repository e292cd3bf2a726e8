"""The data sets, all installed offline, and their input codes.

- `digits`: the 8x8 digits bundled with scikit-learn, the tiny smoke set. The split is fixed (stratified,
  seed 0) so that every model, export, test and benchmark is scored on the same 360 test images.
- `fashion-mnist`: the standard 60,000 + 10,000 28x28 images from Debian's `dataset-fashion-mnist` package
  (IDX files under /usr/share/datasets/fashion-mnist/), where precision matters.
- `npz` and `folder`: the user's own data set at --data-dir (golden.user_data), any C x H x W (RGB or greyscale)
  of bytes; a single set is split as the digits are (stratified, 20 % test, seed 0).

Nothing is ever downloaded: a missing data set is one error naming the package and its files.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from contract.cli import InputError
from contract.datasets import DATASETS, DIRECTORY_DATASETS, PIXEL_MAX, USER_DATASETS, chosen_dataset
from golden.idx import read_idx
from golden.quant import activation_code
from golden.user_data import Labelled, read_user_data

SPLIT_SEED = 0
TEST_FRACTION = 0.2
CLASSES = 10
IMAGE_SHAPE = (1, 8, 8)

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_PACKAGE = "dataset-fashion-mnist"
#: Split field -> file name, as the data set's authors publish them.
FASHION_MNIST_FILES = {
    "train_x": "train-images-idx3-ubyte.gz",
    "train_y": "train-labels-idx1-ubyte.gz",
    "test_x": "t10k-images-idx3-ubyte.gz",
    "test_y": "t10k-labels-idx1-ubyte.gz",
}
FASHION_MNIST_SHAPE = (1, 28, 28)


@dataclass(frozen=True)
class Split:
    """Images as float tensors [N, C, H, W] in [0, 1] and labels as int64 [N]."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor


@lru_cache(maxsize=1)
def digits_split() -> Split:
    data = load_digits()
    x = torch.tensor(data.data, dtype=torch.float32).reshape(-1, *IMAGE_SHAPE) / PIXEL_MAX["digits"]
    y = torch.tensor(data.target, dtype=torch.int64)
    train_idx, test_idx = train_test_split(
        range(len(y)), test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=data.target
    )
    train_idx, test_idx = torch.tensor(train_idx), torch.tensor(test_idx)
    return Split(x[train_idx], y[train_idx], x[test_idx], y[test_idx])


def input_codes(images: torch.Tensor, act_bits: int) -> torch.Tensor:
    """A-bit activation codes (int64) of images in [0, 1]: what the host sends to the first layer."""
    return activation_code(images, act_bits).to(torch.int64)


def load_split(name: str, data_dir: Path | None = None, limit: int | None = None) -> Split:
    """The named data set's split; `limit` keeps the first N images of each half, for quick runs."""
    if name == "digits":
        split = digits_split()
    elif name == "fashion-mnist":
        split = fashion_mnist_split(Path(data_dir or FASHION_MNIST_DIR))
    elif name in USER_DATASETS:
        if data_dir is None:
            raise InputError(
                f"--data {name} (given, or recorded with the model) needs --data-dir PATH, its file or directory"
            )
        split = user_split(name, Path(data_dir))
    else:
        raise InputError(f"unknown data set {name!r}; expected one of {', '.join(DATASETS)}")
    if limit is None:
        return split
    if limit < 1:
        raise InputError(f"--limit must be at least 1, got {limit}")
    return Split(split.train_x[:limit], split.train_y[:limit], split.test_x[:limit], split.test_y[:limit])


@lru_cache(maxsize=2)
def fashion_mnist_split(data_dir: Path) -> Split:
    """Images as float32 [N, 1, 28, 28] in [0, 1] (pixel / 255), labels int64 [N], checked for agreement."""
    missing = [name for name in FASHION_MNIST_FILES.values() if not (data_dir / name).is_file()]
    if missing:
        raise InputError(
            f"Fashion-MNIST not found in {data_dir} (missing {', '.join(missing)}): install the Debian package "
            f"{FASHION_MNIST_PACKAGE} (apt-get install {FASHION_MNIST_PACKAGE}) or pass --data-dir with the four "
            f"files {', '.join(FASHION_MNIST_FILES.values())}"
        )
    arrays = {
        field: read_idx(data_dir / name, 3 if field.endswith("_x") else 1)
        for field, name in FASHION_MNIST_FILES.items()
    }
    for half in ("train", "test"):
        images, labels = arrays[f"{half}_x"], arrays[f"{half}_y"]
        if images.shape[1:] != FASHION_MNIST_SHAPE[1:] or len(images) != len(labels):
            raise InputError(
                f"{data_dir}: {half} images {images.shape} and labels {labels.shape} are not N x 28 x 28 and N"
            )
        if labels.max(initial=0) >= CLASSES:
            raise InputError(f"{data_dir}: {half} labels must lie in 0..{CLASSES - 1}, found {labels.max()}")
    images = {
        field: torch.from_numpy(arrays[field].astype("float32") / PIXEL_MAX["fashion-mnist"]).unsqueeze(1)
        for field in ("train_x", "test_x")
    }
    labels = {field: torch.from_numpy(arrays[field].astype("int64")) for field in ("train_y", "test_y")}
    return Split(images["train_x"], labels["train_y"], images["test_x"], labels["test_y"])


def user_split(kind: str, path: Path) -> Split:
    """The user's `npz` or `folder` data set at `path`, pixels / 255; a single set is split as the digits are."""
    train, test = read_user_data(kind, path)
    if test is None:
        train, test = _split_one_set(path, *train)
    x_train, x_test = (torch.from_numpy(x.astype("float32") / PIXEL_MAX[kind]) for x in (train[0], test[0]))
    return Split(x_train, torch.from_numpy(train[1]), x_test, torch.from_numpy(test[1]))


def _split_one_set(path: Path, images, labels) -> tuple[Labelled, Labelled]:
    """Stratified TEST_FRACTION split with SPLIT_SEED, so that training and every later scoring agree."""
    try:
        train_idx, test_idx = train_test_split(
            range(len(labels)), test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=labels
        )
    except ValueError as exc:  # too few images of a class, or fewer test images than classes
        raise InputError(f"{path}: cannot split {len(labels)} images 80/20 by class: {exc}") from None
    return (images[train_idx], labels[train_idx]), (images[test_idx], labels[test_idx])


def augment(images: torch.Tensor, generator: torch.Generator, pad: int = 2) -> torch.Tensor:
    """The usual training augmentation: a random crop after zero padding by `pad`, and a random
    horizontal flip, drawn per image from `generator` so that a seeded run is repeatable."""
    n, _, height, width = images.shape
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad))
    rows = torch.randint(0, 2 * pad + 1, (n, 1), generator=generator) + torch.arange(height)
    cols = torch.randint(0, 2 * pad + 1, (n, 1), generator=generator) + torch.arange(width)
    # Advanced indices around a slice put their broadcast shape first: [n, height, width, channels].
    cropped = padded[torch.arange(n)[:, None, None], :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    flip = torch.rand(n, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], cropped.flip(-1), cropped)


def data_split(args, recorded: str | None = None) -> Split:
    """The split chosen by contract.datasets' flags; without --data, the data set `recorded` with the model
    (which `args.data` then names, so that what a tool prints and saves says what it ran on)."""
    args.data = chosen_dataset(args.data, recorded)
    if args.data_dir is not None and args.data not in DIRECTORY_DATASETS:
        raise InputError(f"--data-dir applies to --data {', '.join(DIRECTORY_DATASETS)} only, not {args.data}")
    return load_split(args.data, args.data_dir, args.limit)
