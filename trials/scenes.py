"""``fashion_scenes``: a segmentation dataset built offline from real images, Fashion-MNIST garments on a canvas.

Each scene is a 64×64 grayscale canvas (black, as Fashion-MNIST's own background) with 2–4 garments (28×28, native
size) pasted at uniform random offsets that keep them wholly inside; a later garment covers an earlier one where its
own pixels are ink (> ``INK``), so garments overlap and occlude. The mask holds, per pixel, the class of the garment
seen there + 1, and 0 for background (11 classes: ``background`` then Fashion-MNIST's 10).

Splits (no garment image is in two of them):
- train and val scenes from the official train split (60,000 images), whose images are split once, by a fixed
  permutation (``GARMENT_SPLIT_SEED``), into garments for train scenes (50,000) and for val scenes (10,000);
- test scenes from the official t10k split only, generated with a fixed seed (``TEST_SEED``) and count
  (``TEST_SCENES``), so every search and seed scores on the same scenes.
Train and val scenes are drawn with the search seed (as a classification dataset's validation slice is).

Generation is deterministic (numpy ``default_rng``) and cached: ``CACHE/fashion_scenes/KEY.pt`` (+ ``KEY.json``),
KEY hashing the generator version, split, count and seed and the source files' sizes; a second load reads the cache.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch

from trials.published import FASHION_FILES
from trials.published import _download as download  # noqa: PLC2701 - the short-timeout downloader, one home
from trials.dataset_source import DatasetMissingError, LoadRequest, Source

CANVAS = 64  # px, side of a scene
GARMENTS = (2, 4)  # garments per scene, inclusive range, uniform
INK = 16  # a garment pixel brighter than this (0-255) is the garment's (Fashion-MNIST backgrounds are 0 to a few)
VAL_GARMENTS = 10_000  # train-split images reserved for val scenes
GARMENT_SPLIT_SEED = 36  # fixed: which train-split images make val scenes, the same for every search seed
TEST_SEED = 10_036  # fixed: the test scenes, the same for every search
TEST_SCENES = 2_000  # test scenes, from t10k garments only
CLASSES = ("background", "t-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
           "ankle boot")  # mask value -> name (Fashion-MNIST's label + 1)
_VERSION = 1  # bump when generated content changes meaning
_MEAN, _STD = (0.136,), (0.282,)  # 0–1 scale, measured over 8,000 train scenes of seed 0 (78% background)


def make_scenes(images: np.ndarray, labels: np.ndarray, *, count: int,
                seed: int | np.random.SeedSequence) -> tuple[np.ndarray, np.ndarray]:
    """``count`` scenes from garments ``images`` (uint8 N×1×28×28) with ``labels`` (int N, 0–9).

    Returns (uint8 count×1×CANVAS×CANVAS images, uint8 count×CANVAS×CANVAS masks with 0 = background and
    label + 1 where a garment is seen). Deterministic in ``seed``; garments are drawn with replacement.
    """
    rng = np.random.default_rng(seed)
    side = images.shape[-1]
    scenes = np.zeros((count, 1, CANVAS, CANVAS), dtype=np.uint8)
    masks = np.zeros((count, CANVAS, CANVAS), dtype=np.uint8)
    per_scene = rng.integers(GARMENTS[0], GARMENTS[1] + 1, size=count)
    for i in range(count):
        picks = rng.integers(0, len(images), size=per_scene[i])
        offsets = rng.integers(0, CANVAS - side + 1, size=(per_scene[i], 2))
        for pick, (y, x) in zip(picks, offsets):
            garment = images[pick, 0]
            ink = garment > INK
            scenes[i, 0, y:y + side, x:x + side][ink] = garment[ink]
            masks[i, y:y + side, x:x + side][ink] = labels[pick] + 1
    return scenes, masks


def load_fashion_scenes(request: LoadRequest) -> Source:
    """The ``fashion_scenes`` loader (``trials.segment_data.SEGMENTATION_DATASETS``): val scenes are its own split
    (``request.val_size`` of them), train scenes ``request.pool_size - request.val_size``, test scenes when asked."""
    folders = [request.root] if request.root is not None else [f for f in (request.system_root, request.cache) if f]
    folder = next((f for f in folders if not FASHION_FILES.missing(f, "train")), None)
    if folder is None and request.download:
        download(lambda: FASHION_FILES.fetch(folders[-1]), root=folders[-1])
        folder = folders[-1] if not FASHION_FILES.missing(folders[-1], "train") else None
    if folder is None:
        raise DatasetMissingError(f"dataset 'fashion_scenes' needs Fashion-MNIST, not found under "
                                  f"{' or '.join(map(str, folders))}: {FASHION_FILES.how}")
    stamp = _files_stamp(folder)
    train_count = request.pool_size - request.val_size

    @functools.cache
    def official(split: str) -> tuple[np.ndarray, np.ndarray]:
        return FASHION_FILES.read(folder, split)

    def garments(split: str) -> tuple[np.ndarray, np.ndarray]:
        """The garment images a split's scenes are made of (train/val: disjoint parts of the official train)."""
        x, y = official("train" if split in ("train", "val") else "test")
        if split == "test":
            return x, y
        order = np.random.default_rng(GARMENT_SPLIT_SEED).permutation(len(y))
        keep = order[VAL_GARMENTS:] if split == "train" else order[:VAL_GARMENTS]
        return x[keep], y[keep]

    def scenes(split: str, count: int, seed: int | np.random.SeedSequence) -> tuple[np.ndarray, np.ndarray]:
        key = hashlib.sha256(f"v{_VERSION} {split} {count} {seed} {stamp}".encode()).hexdigest()[:24]
        path = request.cache / "fashion_scenes" / f"{key}.pt"
        if path.is_file():
            saved = torch.load(path, weights_only=True)
            return saved["images"].numpy(), saved["masks"].numpy()
        request.log(f"fashion_scenes: generating {count} {split} scenes into {path}")
        images, masks = make_scenes(*garments(split), count=count, seed=seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{key}.{os.getpid()}.tmp")
        torch.save({"images": torch.from_numpy(images), "masks": torch.from_numpy(masks)}, tmp)
        os.replace(tmp, path)
        path.with_suffix(".json").write_text(json.dumps({"split": split, "count": count, "seed": str(seed),
                                                         "version": _VERSION, "source": str(folder)}))
        return images, masks

    # train and val scenes: two streams of the search seed (spawn keys 0 and 1), so neither repeats the other
    train_x, train_y = scenes("train", train_count, np.random.SeedSequence(request.seed, spawn_key=(0,)))
    val_x, val_y = scenes("val", request.val_size, np.random.SeedSequence(request.seed, spawn_key=(1,)))
    test_x = test_y = None
    if request.test:
        test_x, test_y = scenes("test", TEST_SCENES, TEST_SEED)
    return Source(train_x=train_x, train_y=train_y, val_x=val_x, val_y=val_y, test_x=test_x, test_y=test_y,
                  num_classes=len(CLASSES), mean=_MEAN, std=_STD, crop_padding=4, flip=True, classes=CLASSES)


def _files_stamp(folder: Path) -> str:
    """Sizes of the Fashion-MNIST files in ``folder`` (part of the cache key: other files, other scenes)."""
    return " ".join(f"{p.name}:{p.stat().st_size}" for p in sorted(folder.glob("*idx*")) if p.is_file())
