"""What a dataset loader gets (`LoadRequest`) and hands back (`Source`), and the stratified split they share.

A loader (an entry of `trials.DATASETS`) turns a request into arrays: the pool that validation is cut from
(normally the official train split), the held-out test split when asked for, optionally its own validation split,
and what the data says about itself (classes, channels, normalisation, augmentation). `trials.load_dataset` turns
a `Source` into `TensorData`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class DatasetMissingError(RuntimeError):
    """A dataset is not on disk. The message is one line: which dataset, where we looked, how to get it."""


class DatasetError(ValueError):
    """The data on disk (or the request) cannot be used: an empty or one-class folder, an unreadable image, a size
    the dataset cannot supply. The message is one line naming the file or value."""


@dataclass(frozen=True)
class LoadRequest:
    """What `load_dataset` asks of a loader."""

    root: Path | None  # data.root, or None = the dataset's default folders (system_root, then cache)
    system_root: Path | None  # a read-only folder the dataset may be installed in (Debian's Fashion-MNIST)
    cache: Path  # downloads and image-folder tensor caches go under here (data.cache)
    download: bool  # may torchvision download missing files (short timeout)
    seed: int  # the search seed: the validation split (and generated data) depend on it
    val_size: int  # images held out for validation (a loader with its own val split may ignore it)
    test: bool  # also return the held-out test split
    image_size: int | None  # square side in px the images should have (None = the dataset's default)
    pool_size: int  # generated data only: how many train-pool images to make
    log: Callable[[str], None] = lambda line: None  # one-line progress messages (memory, decoding)


@dataclass(frozen=True)
class Source:
    """A loaded dataset before the train/val split: uint8 arrays N×C×H×W with int64 labels.

    `val_x/val_y` are None unless the data has its own validation split (then `load_dataset` does not cut one).
    `test_x/test_y` are None unless `LoadRequest.test` asked for them. `mean`/`std` are per channel on the 0–1
    scale and apply to every split.
    """

    train_x: np.ndarray  # the pool validation is cut from (uint8 N×C×H×W)
    train_y: np.ndarray  # int64 N
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_padding: int  # px, random-crop padding for augmentation
    flip: bool  # random horizontal flip
    val_x: np.ndarray | None = None
    val_y: np.ndarray | None = None
    test_x: np.ndarray | None = None
    test_y: np.ndarray | None = None
    classes: tuple[str, ...] = ()  # class names by label (empty when the dataset has none)


def stratified_split(labels: np.ndarray, *, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Pick `count` indices of `labels` so that every class is represented in proportion (largest remainders get the
    leftover places), at random within each class. Returns (picked, rest), each sorted."""
    classes, sizes = np.unique(labels, return_counts=True)
    exact = count * sizes / len(labels)
    quota = np.floor(exact).astype(int)
    quota[np.argsort(-(exact - quota), kind="stable")[: count - int(quota.sum())]] += 1
    picked = [rng.permutation(np.flatnonzero(labels == c))[:q] for c, q in zip(classes, quota)]
    chosen = np.sort(np.concatenate(picked)) if picked else np.zeros(0, dtype=int)
    mask = np.ones(len(labels), dtype=bool)
    mask[chosen] = False
    return chosen, np.flatnonzero(mask)
