"""Fixtures shared across test folders: a folder of real Fashion-MNIST images written as PNG files."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from trials import DATASETS, TensorData, load_dataset

FASHION_CLASSES = ("tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot")
SIDES = (28, 36, 48)  # px: the PNGs come in several sizes


def write_fashion_pngs(root: Path, *, per_class: int, classes: int = 10, offset: int = 0) -> list[Path]:
    """Write `per_class` real Fashion-MNIST train images of each of the first `classes` classes as PNGs into
    root/CLASS/NNNN.png: sides cycle through SIDES, every third image is RGB (a tinted copy), the rest grayscale.
    `offset` skips that many images per class first (disjoint sets for train/ and test/ folders)."""
    from PIL import Image

    source = _fashion_train()
    written = []
    for label in range(classes):
        picks = np.flatnonzero(source.train_y.numpy() == label)[offset:offset + per_class]
        folder = root / FASHION_CLASSES[label]
        folder.mkdir(parents=True, exist_ok=True)
        for i, index in enumerate(picks):
            side = SIDES[i % len(SIDES)]
            image = Image.fromarray(source.train_x[index, 0].numpy()).resize((side, side), Image.Resampling.BILINEAR)
            if i % 3 == 2:
                image = Image.merge("RGB", (image, image.point(lambda v: v * 0.9), image.point(lambda v: v * 0.8)))
            path = folder / f"{offset + i:04d}.png"
            image.save(path)
            written.append(path)
    return written


@functools.cache
def _fashion_train() -> TensorData:
    return load_dataset("fashion_mnist", train_size=5000, val_size=1, seed=0)


@pytest.fixture
def fashion_pngs() -> Callable[..., list[Path]]:
    """Factory: fashion_pngs(root, per_class=N, classes=10, offset=0) -> the PNG files written (skips without the
    Fashion-MNIST files)."""
    if not Path(DATASETS["fashion_mnist"].default_root).is_dir():
        pytest.skip("Fashion-MNIST not installed (dataset-fashion-mnist)")
    return write_fashion_pngs
