"""The user's own image data sets, read strictly: every bad file is one error naming it and the problem.

- `npz`: NumPy arrays, `x` [N, C, H, W] uint8 and `y` [N] integer labels, in one `.npz` file (split here)
  or as a directory holding `train.npz` and `test.npz`.
- `folder`: one sub-folder of PNG or JPEG images per class (labels in the sorted order of the folder names),
  in one directory (split here) or as a directory whose only sub-folders are `train/` and `test/`, each of
  them with the same class folders. Every image must be greyscale (mode L, one channel) or RGB (three), and
  all of one size: nothing is resized or converted, so that what is trained is what the user has.

Here are only the reading and the checks, in NumPy; golden.data splits a single set and scales the pixels.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from contract.cli import InputError

#: A pair (images uint8 [N, C, H, W], labels int64 [N]).
Labelled = tuple[np.ndarray, np.ndarray]

MAX_BYTES = 1 << 30  # no user data set of this project's scale is larger; a corrupt header must not allocate more
MAX_CLASSES = 1024
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
CHANNELS_OF_MODE = {"L": 1, "RGB": 3}
HALVES = ("train", "test")


def read_user_data(kind: str, path: Path) -> tuple[Labelled, Labelled | None]:
    """(train, test) of the `kind` data set at `path`; test is None when `path` holds one set to be split."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or directory (--data {kind} --data-dir PATH)")
    read = read_npz if kind == "npz" else read_image_folder
    if kind == "npz" and path.is_dir():
        files = [path / f"{half}.npz" for half in HALVES]
        missing = [file.name for file in files if not file.is_file()]
        if missing:
            raise InputError(f"{path}: a directory of npz data must hold train.npz and test.npz (missing {missing[0]})")
    elif kind == "folder" and path.is_dir() and sorted(entry.name for entry in _visible(path)) == sorted(HALVES):
        files = [path / half for half in HALVES]
    else:
        return read(path), None
    train, test = (read(file) for file in files)
    check_halves(path, train, test)
    return train, test


def check_halves(path: Path, train: Labelled, test: Labelled) -> None:
    """The test half must hold images of the training half's shape and only classes the training half has."""
    if train[0].shape[1:] != test[0].shape[1:]:
        raise InputError(
            f"{path}: train images are {_dims(train[0].shape[1:])} (C x H x W) but test images "
            f"{_dims(test[0].shape[1:])}"
        )
    unseen = sorted(set(test[1].tolist()) - set(train[1].tolist()))
    if unseen:
        raise InputError(f"{path}: test label {unseen[0]} never occurs in the training half")


def read_npz(path: Path) -> Labelled:
    """x [N, C, H, W] uint8 and y [N] integers in 0..MAX_CLASSES-1 from a `.npz` file (no pickled objects)."""
    if not path.is_file():
        raise InputError(f"{path}: expected a .npz file")
    arrays = _npz_arrays(path)
    missing = [name for name in ("x", "y") if name not in arrays]
    if missing:
        raise InputError(f"{path}: no array {missing[0]!r} (expected x [N, C, H, W] uint8 and y [N] labels)")
    x, y = arrays["x"], arrays["y"]
    if x.dtype != np.uint8 or x.ndim != 4 or 0 in x.shape:
        raise InputError(f"{path}: x must be uint8 [N, C, H, W] with N, C, H, W >= 1, got {x.dtype} {list(x.shape)}")
    if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer):
        raise InputError(
            f"{path}: y must be integer labels [N] with N = {len(x)} (as x), got {y.dtype} {list(y.shape)}"
        )
    if y.min() < 0 or y.max() >= MAX_CLASSES:
        raise InputError(f"{path}: labels must lie in 0..{MAX_CLASSES - 1}, found {y.min()}..{y.max()}")
    return np.ascontiguousarray(x), y.astype(np.int64)


def _npz_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of the archive (at most MAX_BYTES of them, by the sizes its directory states)."""
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):  # a .npy file: one array
            raise InputError(f"{path}: one array, not an .npz archive of x and y (np.savez(path, x=x, y=y))")
        with archive:
            size = sum(info.file_size for info in archive.zip.infolist())
            if size > MAX_BYTES:
                raise InputError(f"{path}: its arrays hold {size} bytes, more than the {MAX_BYTES} read here")
            return {name: archive[name] for name in archive.files}
    except InputError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:  # not a zip, a pickled object, truncated
        raise InputError(f"{path}: not a readable .npz file of plain arrays ({type(exc).__name__})") from None


def read_image_folder(path: Path) -> Labelled:
    """The images of `path`'s class folders, labelled 0.. in the sorted order of the folders' names."""
    Image = _pillow()
    if not path.is_dir():
        raise InputError(f"{path}: expected a directory of class sub-folders")
    stray = [entry for entry in _visible(path) if not entry.is_dir()]
    if stray:
        raise InputError(f"{stray[0]}: not a class folder (a folder data set holds one sub-folder per class)")
    classes = sorted(_visible(path))
    if not classes or len(classes) > MAX_CLASSES:
        raise InputError(f"{path}: expected 1..{MAX_CLASSES} class sub-folders, found {len(classes)}")
    images, labels, first = [], [], None
    for label, folder in enumerate(classes):
        files = sorted(_visible(folder))
        if not files:
            raise InputError(f"{folder}: empty class folder")
        for file in files:
            image = _read_image(Image, file)
            if first is None:
                first = (file, image.shape)
            elif image.shape != first[1]:
                raise InputError(
                    f"{file}: image is {_dims(image.shape)} (C x H x W) but {first[0]} is {_dims(first[1])}; "
                    "all images must be of one size and mode"
                )
            images.append(image)
            labels.append(label)
            if len(images) * image.nbytes > MAX_BYTES:
                raise InputError(f"{path}: more than {MAX_BYTES} bytes of pixels, more than is read here")
    return np.stack(images), np.array(labels, dtype=np.int64)


def _read_image(Image, file: Path) -> np.ndarray:
    """One PNG or JPEG image as uint8 [C, H, W]."""
    if not file.is_file() or file.suffix.lower() not in IMAGE_SUFFIXES:
        raise InputError(f"{file}: not a PNG or JPEG image file ({', '.join(IMAGE_SUFFIXES)})")
    try:
        with Image.open(file) as image:
            image.load()
            mode = image.mode
            pixels = np.asarray(image) if mode in CHANNELS_OF_MODE else None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise InputError(f"{file}: not a readable image ({type(exc).__name__})") from None
    if pixels is None:
        raise InputError(f"{file}: image mode {mode} is neither L (greyscale) nor RGB; save it as one of them")
    return pixels[None] if pixels.ndim == 2 else np.ascontiguousarray(pixels.transpose(2, 0, 1))


def _pillow():
    """PIL.Image, needed by the folder data set only (the `train` extra installs it)."""
    try:
        from PIL import Image
    except ImportError:
        raise InputError("--data folder needs Pillow (pip install 'nestmac[train]'); --data npz does not") from None
    return Image


def _visible(directory: Path) -> list[Path]:
    """The entries of `directory` but hidden ones (.DS_Store, .git and the like)."""
    return [entry for entry in directory.iterdir() if not entry.name.startswith(".")]


def _dims(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))
