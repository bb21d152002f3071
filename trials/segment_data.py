"""Segmentation data: images with a class index per pixel, held as whole uint8 tensors like ``TensorData``.

``SEGMENTATION_DATASETS`` is the registry of the segment task's sources (``trials.tasks``): ``fashion_scenes``
(Fashion-MNIST garments pasted on a 64×64 canvas, ``trials.scenes``) and ``mask_folder`` (the user's ``images/`` +
``masks/``, ``trials.mask_folder``). ``load_segmentation`` turns one into :class:`MaskData`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from trials.data import DEFAULT_CACHE_ROOT, TensorData
from trials.mask_folder import load_mask_folder
from trials.published import FASHION_DEBIAN_ROOT, LoadFn
from trials.scenes import load_fashion_scenes
from trials.dataset_source import DatasetError, LoadRequest

MASK_TEST_SUBSET_SEED = 20241  # load_segmentation(test_size=N): the fixed generator of the test subset


@dataclass
class MaskData(TensorData):
    """``TensorData`` whose labels are masks: ``train_y``/``val_y``/``test_y`` are uint8 N×H×W class indices in
    ``[0, num_classes)`` (0 = background where the data has one), the same H×W as the images. ``num_classes``
    counts every class a pixel may have. ``to(device)`` and ``image_shape`` are TensorData's."""


@dataclass(frozen=True)
class SegmentationSpec:
    """How to get one segmentation dataset (the ``Source`` it returns holds masks as its labels)."""

    name: str
    load: LoadFn
    system_root: str = ""  # looked in before data.cache when data.root is not set


SEGMENTATION_DATASETS: dict[str, SegmentationSpec] = {
    "fashion_scenes": SegmentationSpec("fashion_scenes", load_fashion_scenes, system_root=FASHION_DEBIAN_ROOT),
    "mask_folder": SegmentationSpec("mask_folder", load_mask_folder),  # the user's own: data.root=DIR
}
_DEFAULT_TRAIN = 4000  # generated scenes when train_size is None


def load_segmentation(
    name: str, *, root: str | Path | None = None, train_size: int | None = None, val_size: int = 500, seed: int = 0,
    test: bool = False, test_size: int | None = None, image_size: int | None = None, cache: str | Path | None = None,
    download: bool = False, log: Callable[[str], None] = lambda line: None,
) -> MaskData:
    """Load segmentation dataset ``name`` (a key of SEGMENTATION_DATASETS) as CPU tensors.

    val_size: validation images (fashion_scenes: scenes generated from garments no train scene uses; mask_folder:
    drawn from outside its test fifth with ``seed``). train_size: training images (fashion_scenes generates that
    many, default 4,000; mask_folder: the first that many of the rest, None = all). test: also the test split
    (fashion_scenes: 2,000 scenes of t10k garments; mask_folder: its fixed fifth); test_size: a fixed subset of it.
    image_size: mask_folder's square side in px (fashion_scenes are 64×64). download: fashion_scenes may fetch
    Fashion-MNIST into ``cache`` through torchvision when it is not on disk. Raises ValueError (DatasetError
    included) with one line for a bad name, size or folder, DatasetMissingError when Fashion-MNIST is absent.
    """
    if name not in SEGMENTATION_DATASETS:
        raise ValueError(f"unknown segmentation dataset {name!r}; valid: {', '.join(sorted(SEGMENTATION_DATASETS))}")
    if image_size is not None and image_size < 1:
        raise DatasetError(f"image_size={image_size} must be an integer >= 1 (px)")
    if val_size < 1:
        raise DatasetError(f"val_size={val_size} must be >= 1")
    if train_size is not None and train_size < 1:
        raise DatasetError(f"train_size={train_size} must be >= 1 (None = the dataset's default)")
    spec = SEGMENTATION_DATASETS[name]
    source = spec.load(LoadRequest(
        root=None if root is None else Path(root).expanduser(), cache=Path(cache or DEFAULT_CACHE_ROOT).expanduser(),
        system_root=Path(spec.system_root) if spec.system_root else None, download=download, seed=seed,
        val_size=val_size, test=test, image_size=image_size,
        pool_size=val_size + (train_size if train_size is not None else _DEFAULT_TRAIN), log=log))
    train_x, train_y = source.train_x, source.train_y
    if train_size is not None:
        if not 0 < train_size <= len(train_y):
            raise DatasetError(f"train_size={train_size} must be in 1..{len(train_y)} for {name!r}")
        train_x, train_y = train_x[:train_size], train_y[:train_size]
    test_x = test_y = None
    if test:
        test_x, test_y = source.test_x, source.test_y
        if test_size is not None:
            if not 0 < test_size <= len(test_y):
                raise DatasetError(f"test_size={test_size} must be in 1..{len(test_y)} for {name!r}")
            keep = np.sort(np.random.default_rng(MASK_TEST_SUBSET_SEED).permutation(len(test_y))[:test_size])
            test_x, test_y = test_x[keep], test_y[keep]
        test_x, test_y = _tensor(test_x), _tensor(test_y)
    return MaskData(
        name=name, train_x=_tensor(train_x), train_y=_tensor(train_y), val_x=_tensor(source.val_x),
        val_y=_tensor(source.val_y), num_classes=source.num_classes, in_chans=int(train_x.shape[1]),
        mean=tuple(source.mean), std=tuple(source.std), crop_padding=source.crop_padding, flip=source.flip,
        test_x=test_x, test_y=test_y, classes=tuple(source.classes))


def _tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(array, dtype=np.uint8, order="C", copy=True))

