"""Datasets as whole uint8 tensors that live on the trial's device.

A trial never touches PIL or a DataLoader: `load_dataset` reads a dataset once into `TensorData`
(uint8 images N×C×H×W, int64 labels), `TensorData.to(device)` moves it next to the model, and
`trials.augment` crops/flips/normalises whole batches there.

Sources are a registry (`DATASETS`): name -> a loader that turns a `LoadRequest` into a `Source` (arrays and what
the data says about itself). Published datasets (Fashion-MNIST, CIFAR-10/100, SVHN, STL-10) read their official
files; `image_folder` reads the user's own images (`trials.image_folder`); `synthetic` generates gratings for tests.

Validation is a seeded, held-out slice of the train split (or the data's own val/ folder), so the test split stays
untouched by the search. Only the confirmation phase asks for the test split (`load_dataset(..., test=True)`);
without that, `TensorData.test_x/test_y` are None.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from trials.image_folder import load_image_folder
from trials.published import (CIFAR10_KNOWN, CIFAR100_KNOWN, FASHION_DEBIAN_ROOT, FASHION_FILES, FASHION_KNOWN,
                              STL10_FILES, STL10_KNOWN, SVHN_FILES, SVHN_KNOWN, Known, LoadFn, cifar_files, published)
from trials.dataset_source import DatasetError, LoadRequest, Source, stratified_split

# Where downloads (CIFAR, SVHN, STL-10, Fashion-MNIST without the Debian package) and image-folder caches go
# (data.cache); published datasets are also looked for here.
DEFAULT_CACHE_ROOT = Path("~/.cache/attnas/data")
TEST_SUBSET_SEED = 20240  # load_dataset(test_size=N): the one generator seed of the fixed test subset (no search seed)


@dataclass
class TensorData:
    """One dataset split into train/val (and, when asked for, the held-out test split), held as tensors.

    Images are uint8 (0–255), shape N×C×H×W; labels are int64 in [0, num_classes).
    `mean`/`std` are per-channel on the 0–1 scale (divide pixels by 255 first); they come from the
    dataset's registry entry (image folders: computed from the folder's images) and apply unchanged to every split,
    test included. `test_x`/`test_y` are None unless `load_dataset(..., test=True)` loaded them: the search never
    gets them, only the confirmation phase does.
    """

    name: str
    train_x: torch.Tensor  # uint8, N×C×H×W
    train_y: torch.Tensor  # int64, N
    val_x: torch.Tensor  # uint8, M×C×H×W
    val_y: torch.Tensor  # int64, M
    num_classes: int
    in_chans: int
    mean: tuple[float, ...]  # per channel, 0–1 scale
    std: tuple[float, ...]  # per channel, 0–1 scale
    crop_padding: int  # random-crop padding in pixels for augmentation (0 = no crop)
    flip: bool  # random horizontal flip during training
    test_x: torch.Tensor | None = None  # uint8, K×C×H×W: the held-out test split (None unless asked for)
    test_y: torch.Tensor | None = None  # int64, K
    classes: tuple[str, ...] = ()  # class names by label, where the dataset has them

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        c, h, w = self.train_x.shape[1:]
        return (int(c), int(h), int(w))

    def to(self, device: torch.device | str) -> "TensorData":
        """A copy whose tensors (train, val and test when loaded) live on `device` (self when they already do)."""
        device = torch.device(device)
        if self.train_x.device == device:
            return self
        move = lambda t: None if t is None else t.to(device, non_blocking=True)  # noqa: E731
        return dataclasses.replace(
            self, train_x=move(self.train_x), train_y=move(self.train_y),
            val_x=move(self.val_x), val_y=move(self.val_y),
            test_x=move(self.test_x), test_y=move(self.test_y),
        )


@dataclass(frozen=True)
class DatasetSpec:
    """How to get one dataset: its loader, the read-only system folder it may be installed in, and (published
    datasets) what is known about it in advance."""

    name: str
    load: LoadFn
    known: Known | None = None  # None: classes, channels and mean/std come from the data (image folders)
    system_root: str = ""  # looked in before data.cache when data.root is not set (Debian's Fashion-MNIST)
    has_test: bool = True  # False: load_dataset(test=True) refuses

    @property
    def default_root(self) -> str:
        """Where the dataset is looked for first when data.root is not set."""
        return self.system_root or str(DEFAULT_CACHE_ROOT)


# ---------------------------------------------------------------- synthetic (generated, for tests)

def make_synthetic(
    *, size: int, seed: int | np.random.SeedSequence = 0, num_classes: int = 10, in_chans: int = 1,
    image_size: int = 16,
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded generated images that a small CNN can learn in a few epochs.

    Class k is a sinusoidal grating with a class-specific orientation and frequency, random phase
    (so position does not give the class away; random crops keep it learnable) and pixel noise.
    Returns (uint8 size×C×H×W, int64 labels).
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, size=size)
    angle = np.pi * (labels % 5) / 5  # 5 orientations, radians
    freq = 2 * np.pi * (1 + labels // 5) / 8  # cycles per 8 px: 1, 2, ... (radians/px)
    phase = rng.uniform(0, 2 * np.pi, size=size)
    yy, xx = np.meshgrid(np.arange(image_size), np.arange(image_size), indexing="ij")
    along = np.cos(angle)[:, None, None] * xx + np.sin(angle)[:, None, None] * yy
    wave = np.sin(freq[:, None, None] * along + phase[:, None, None])  # size×H×W in [-1, 1]
    gain = rng.uniform(0.6, 1.0, size=(size, in_chans, 1, 1))  # per-channel contrast
    noise = rng.normal(0, 0.3, size=(size, in_chans, image_size, image_size))
    pixels = 128 + 100 * (gain * wave[:, None] + noise)
    return np.clip(pixels, 0, 255).astype(np.uint8), labels.astype(np.int64)


def _load_synthetic(request: LoadRequest) -> Source:
    train_x, train_y = make_synthetic(size=request.pool_size, seed=request.seed)
    test_x, test_y = make_synthetic(size=_SYNTHETIC_TEST_SIZE, seed=_SYNTHETIC_TEST_SEED) if request.test else (None, None)
    known = _SYNTHETIC
    return Source(train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y, num_classes=known.num_classes,
                  mean=known.mean, std=known.std, crop_padding=known.crop_padding, flip=known.flip)


# The synthetic "official test split": like a real one it is fixed (the same whatever `seed` the train/val split
# uses) and generated from a stream that no integer seed reaches (spawn_key=(1,); an int seed s is
# SeedSequence(s) with an empty spawn key), so its images are never the training images of any seed.
_SYNTHETIC_TEST_SEED = np.random.SeedSequence(0, spawn_key=(1,))
_SYNTHETIC_TEST_SIZE = 2000  # images
# 10 classes, 1×16×16, gratings (see make_synthetic); flip off because it would mirror the orientation.
_SYNTHETIC = Known(num_classes=10, mean=(0.5,), std=(0.3,), crop_padding=2, flip=False)


# ---------------------------------------------------------------- registry

DATASETS: dict[str, DatasetSpec] = {
    "fashion_mnist": DatasetSpec(
        name="fashion_mnist", known=FASHION_KNOWN, system_root=FASHION_DEBIAN_ROOT,
        load=published("fashion_mnist", FASHION_FILES, FASHION_KNOWN),
    ),
    "cifar10": DatasetSpec(name="cifar10", known=CIFAR10_KNOWN,
                           load=published("cifar10", cifar_files("cifar10", "cifar-10-batches-py"), CIFAR10_KNOWN)),
    "cifar100": DatasetSpec(name="cifar100", known=CIFAR100_KNOWN,
                            load=published("cifar100", cifar_files("cifar100", "cifar-100-python"), CIFAR100_KNOWN)),
    "svhn": DatasetSpec(name="svhn", known=SVHN_KNOWN, load=published("svhn", SVHN_FILES, SVHN_KNOWN)),
    "stl10": DatasetSpec(name="stl10", known=STL10_KNOWN, load=published("stl10", STL10_FILES, STL10_KNOWN)),
    # the user's own images: data.root=DIR (trials.image_folder)
    "image_folder": DatasetSpec(name="image_folder", load=load_image_folder),
    "synthetic": DatasetSpec(name="synthetic", known=_SYNTHETIC, load=_load_synthetic),
}
_SYNTHETIC_DEFAULT_TRAIN = 2000  # images generated when train_size is None


def load_dataset(
    name: str,
    *,
    root: str | Path | None = None,
    train_size: int | None = None,
    val_size: int = 5000,
    seed: int = 0,
    download: bool = False,
    test: bool = False,
    test_size: int | None = None,
    image_size: int | None = None,
    cache: str | Path | None = None,
    log: Callable[[str], None] = lambda line: None,
) -> TensorData:
    """Load dataset `name` (a key of DATASETS) as CPU tensors, split into train and validation.

    root: folder to read from (None = the dataset's default folders: the Debian package's for Fashion-MNIST, then
    `cache`; image_folder needs it). val_size: images held out of the train split for validation (seeded shuffle;
    image folders: stratified by class, and not used when the folder has its own val/). train_size: subsample the
    remaining training images to this many (None = all). download: try torchvision's downloader (short timeout) into
    root or `cache` when files are missing. test: also load the held-out test split into `test_x/test_y`
    (Fashion-MNIST t10k, 10,000 images; CIFAR test_batch / test, 10,000; SVHN 26,032; STL-10 8,000; an image
    folder's test/ or its fixed stratified fifth; synthetic: 2,000 generated from a stream no seed reaches). It does
    not depend on `seed`, `train_size` or `val_size`. Only the confirmation phase asks for it; the search must not.
    test_size: score on a fixed stratified subset of this many test images (None = the whole test split): the same
    images for every seed and search (drawn with its own generator, TEST_SUBSET_SEED), for quick checks on a CPU.
    image_size: square side in px; every split is resized to it (bilinear, antialiased) when the images have another
    size (None = native; image folders: their default, `trials.image_folder.default_image_size`). cache: where
    downloads and image-folder caches go (None = DEFAULT_CACHE_ROOT). log: gets one-line progress messages.
    Raises DatasetMissingError (one-line message) when the files are not there, ValueError (DatasetError included)
    for bad names, sizes or unusable data.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid: {', '.join(sorted(DATASETS))}")
    if image_size is not None and image_size < 1:
        raise DatasetError(f"image_size={image_size} must be an integer >= 1 (px)")
    spec = DATASETS[name]
    if test and not spec.has_test:
        raise ValueError(f"dataset {name!r} has no test split; datasets with one: "
                         f"{', '.join(sorted(n for n, s in DATASETS.items() if s.has_test))}")
    pool_size = val_size + (train_size if train_size is not None else _SYNTHETIC_DEFAULT_TRAIN)
    source = spec.load(LoadRequest(
        root=None if root is None else Path(root).expanduser(), cache=Path(cache or DEFAULT_CACHE_ROOT).expanduser(),
        system_root=Path(spec.system_root) if spec.system_root else None,
        download=download, seed=seed, val_size=val_size, test=test, image_size=image_size, pool_size=pool_size,
        log=log))
    if image_size is not None:
        source = _resized(source, size=image_size)
    images, labels = source.train_x, source.train_y
    if source.val_x is None:
        if not 0 < val_size < len(images):
            raise ValueError(f"val_size={val_size} must be in 1..{len(images) - 1} for {name!r} ({len(images)} images)")
        order = np.random.default_rng(seed).permutation(len(images))
        val_idx, train_idx = order[:val_size], order[val_size:]
        val_x, val_y = images[np.sort(val_idx)], labels[np.sort(val_idx)]
    else:  # the data's own validation split; the train pool is all training images
        train_idx = np.random.default_rng(seed).permutation(len(images))
        val_x, val_y = source.val_x, source.val_y
    if train_size is not None:
        if not 0 < train_size <= len(train_idx):
            raise ValueError(f"train_size={train_size} must be in 1..{len(train_idx)} for {name!r} with val_size={val_size}")
        train_idx = train_idx[:train_size]
    test_x = test_y = None
    if test:
        if source.test_x.shape[1:] != images.shape[1:]:
            raise ValueError(f"dataset {name!r}: test images are {source.test_x.shape[1:]}, train images "
                             f"{images.shape[1:]} (C×H×W); the files do not belong together")
        test_images, test_labels = source.test_x, source.test_y
        if test_size is not None:
            if not 0 < test_size <= len(test_labels):
                raise ValueError(f"test_size={test_size} must be in 1..{len(test_labels)} for {name!r} "
                                 f"(its test split has {len(test_labels)} images)")
            keep, _ = stratified_split(np.asarray(test_labels), count=test_size,
                                       rng=np.random.default_rng(TEST_SUBSET_SEED))
            test_images, test_labels = test_images[keep], test_labels[keep]
        test_x, test_y = _tensor(test_images, np.uint8), _tensor(test_labels, np.int64)
    train_idx = np.sort(train_idx)
    return TensorData(
        name=name, train_x=_tensor(images[train_idx], np.uint8), train_y=_tensor(labels[train_idx], np.int64),
        val_x=_tensor(val_x, np.uint8), val_y=_tensor(val_y, np.int64),
        num_classes=source.num_classes, in_chans=int(images.shape[1]), mean=source.mean, std=source.std,
        crop_padding=source.crop_padding, flip=source.flip, test_x=test_x, test_y=test_y, classes=source.classes,
    )


def _tensor(array: np.ndarray, dtype: type) -> torch.Tensor:
    """A tensor owning a C-contiguous copy (IDX arrays are read-only views of the file's bytes; torch warns on those)."""
    return torch.from_numpy(np.array(array, dtype=dtype, order="C", copy=True))


def _resized(source: Source, *, size: int) -> Source:
    """`source` with every split resized to size×size (bilinear, antialiased); crop padding scales with the side."""
    side = source.train_x.shape[2]
    if source.train_x.shape[2:] == (size, size):
        return source

    def resize(images: np.ndarray | None) -> np.ndarray | None:
        if images is None:
            return None
        out = np.empty((len(images), images.shape[1], size, size), dtype=np.uint8)
        for start in range(0, len(images), 2048):  # chunks: float copies of 2,048 images at a time
            chunk = torch.from_numpy(np.ascontiguousarray(images[start:start + 2048])).float()
            scaled = F.interpolate(chunk, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
            out[start:start + 2048] = scaled.round().clamp(0, 255).to(torch.uint8).numpy()
        return out

    return dataclasses.replace(source, train_x=resize(source.train_x), val_x=resize(source.val_x),
                               test_x=resize(source.test_x),
                               crop_padding=round(source.crop_padding * size / side))
