"""The 8x8 digits data set (bundled with scikit-learn, so nothing is ever downloaded) and its input codes.

The split is fixed (stratified, seed 0) so that every model, export, test and benchmark is scored on
the same 360 test images and their numbers can be compared with each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from golden.quant import activation_code

SPLIT_SEED = 0
TEST_FRACTION = 0.2
PIXEL_MAX = 16  # digits pixels are integers 0..16
CLASSES = 10
IMAGE_SHAPE = (1, 8, 8)


@dataclass(frozen=True)
class Split:
    """Images as float tensors [N, 1, 8, 8] in [0, 1] and labels as int64 [N]."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor


@lru_cache(maxsize=1)
def digits_split() -> Split:
    data = load_digits()
    x = torch.tensor(data.data, dtype=torch.float32).reshape(-1, *IMAGE_SHAPE) / PIXEL_MAX
    y = torch.tensor(data.target, dtype=torch.int64)
    train_idx, test_idx = train_test_split(
        range(len(y)), test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=data.target
    )
    train_idx, test_idx = torch.tensor(train_idx), torch.tensor(test_idx)
    return Split(x[train_idx], y[train_idx], x[test_idx], y[test_idx])


def input_codes(images: torch.Tensor, act_bits: int) -> torch.Tensor:
    """A-bit activation codes (int64) of images in [0, 1]: what the host sends to the first layer."""
    return activation_code(images, act_bits).to(torch.int64)
