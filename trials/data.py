"""Datasets as whole uint8 tensors that live on the trial's device.

A trial never touches PIL or a DataLoader: `load_dataset` reads a dataset once into `TensorData`
(uint8 images N×C×H×W, int64 labels), `TensorData.to(device)` moves it next to the model, and
`trials.augment` crops/flips/normalises whole batches there.

Validation is always a seeded, held-out slice of the official TRAIN split, so the official test
split stays untouched by the search. Only the confirmation phase asks for the test split
(`load_dataset(..., test=True)`); without that, `TensorData.test_x/test_y` are None.
"""

from __future__ import annotations

import dataclasses
import gzip
import math
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

DEFAULT_CACHE_ROOT = Path("~/.cache/attnas/data")  # where cifar10/cifar100 are looked for (and downloaded to)
_DOWNLOAD_SOCKET_TIMEOUT_S = 20.0  # seconds; an offline machine fails fast instead of hanging


class DatasetMissingError(RuntimeError):
    """A dataset is not on disk. The message is one line: which dataset, where we looked, how to get it."""


@dataclass
class TensorData:
    """One dataset split into train/val (and, when asked for, the official test split), held as tensors.

    Images are uint8 (0–255), shape N×C×H×W; labels are int64 in [0, num_classes).
    `mean`/`std` are per-channel on the 0–1 scale (divide pixels by 255 first); they come from the
    dataset's registry entry and apply unchanged to every split, test included.
    `test_x`/`test_y` are None unless `load_dataset(..., test=True)` loaded them: the search never
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
    test_x: torch.Tensor | None = None  # uint8, K×C×H×W: the official test split (None unless asked for)
    test_y: torch.Tensor | None = None  # int64, K

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


# A loader returns one whole official split (train, or test) as (uint8 N×C×H×W array, int64 labels).
# `size` and `seed` matter only to generated data; real loaders ignore them.
LoadFn = Callable[..., tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class DatasetSpec:
    """How to get one dataset and how to treat it (normalisation, augmentation)."""

    name: str
    load: LoadFn  # load(root=Path, download=bool, size=int, seed=int) -> (x, y) of the official train split
    default_root: str  # used when load_dataset(root=None)
    num_classes: int
    in_chans: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_padding: int  # px
    flip: bool
    # Same call, the official test split; None = the dataset has none (load_dataset(test=True) then refuses).
    # A separate entry rather than a `split` argument, so a loader that knows nothing of splits can never hand
    # its train images back as "test".
    load_test: LoadFn | None = None


# ---------------------------------------------------------------- Fashion-MNIST (gzipped IDX files)

_FASHION_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),  # 60,000 images
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),  # 10,000 images, the official test split
}


def _read_idx(path: Path) -> np.ndarray:
    """Parse one IDX file (optionally gzipped): big-endian header, then raw uint8 data."""
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    zero, dtype_code, ndim = int.from_bytes(raw[0:2], "big"), raw[2], raw[3]
    if zero != 0 or dtype_code != 0x08:  # 0x08 = unsigned byte, the only type MNIST-style files use
        raise ValueError(f"{path} is not a uint8 IDX file (header {raw[:4].hex()})")
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != math.prod(dims):
        raise ValueError(f"{path} is truncated: header says {dims}, found {data.size} bytes")
    return data.reshape(dims)


def _find_idx(root: Path, stem: str) -> Path | None:
    """The IDX file `stem` under root or under torchvision's FashionMNIST/raw layout, .gz or plain."""
    for folder in (root, root / "FashionMNIST" / "raw"):
        for name in (stem + ".gz", stem):
            if (folder / name).is_file():
                return folder / name
    return None


def _fashion_loader(split: str) -> LoadFn:
    files = _FASHION_FILES[split]

    def load(*, root: Path, download: bool, **_) -> tuple[np.ndarray, np.ndarray]:
        paths = [_find_idx(root, stem) for stem in files]
        failure = ""
        if None in paths and download:  # torchvision fetches the four files whichever split it is asked for
            failure = _download(lambda: __import__("torchvision").datasets.FashionMNIST(
                str(root), train=split == "train", download=True), root=root)
            paths = [_find_idx(root, stem) for stem in files]
        if None in paths:
            missing = files[paths.index(None)] + ".gz"
            failure = f", {failure}" if failure else ""
            raise DatasetMissingError(
                f"dataset 'fashion_mnist' not found under {root} (no {missing}{failure}): install the Debian package "
                f"dataset-fashion-mnist (apt-get install dataset-fashion-mnist), point data.root=DIR at a folder "
                f"with the gzipped IDX files, or run with data.download=true on a machine with internet"
            )
        images, labels = (_read_idx(p) for p in paths)
        return images[:, None, :, :], labels.astype(np.int64)  # N×28×28 -> N×1×28×28

    return load


# ---------------------------------------------------------------- CIFAR-10/100 (torchvision's pickled batches)

def _cifar_loader(name: str, folder: str, *, split: str = "train") -> LoadFn:
    """Loader of one split: "train" (data_batch_1..5 / train) or "test" (test_batch / test, the official test split)."""
    train = split == "train"

    def load(*, root: Path, download: bool, **_) -> tuple[np.ndarray, np.ndarray]:
        how = (
            f"let torchvision download it on a machine with internet (data.download=true), or point data.root=DIR at a folder "
            f"containing {folder}"
        )
        if not (root / folder).is_dir() and not download:  # checked before the (slow) torchvision import
            raise DatasetMissingError(f"dataset '{name}' not found under {root} (no {folder}/): {how}")
        import torchvision  # imported here: only CIFAR needs it

        cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
        failure = ""
        if download and not (root / folder).is_dir():
            failure = _download(lambda: cls(str(root), train=train, download=True), root=root)
        if not (root / folder).is_dir():
            failure = f", {failure}" if failure else ""
            raise DatasetMissingError(f"dataset '{name}' not found under {root} (no {folder}/{failure}): {how}")
        try:
            dataset = cls(str(root), train=train, download=False)
        except RuntimeError as err:  # torchvision: "Dataset not found or corrupted."
            raise DatasetMissingError(f"dataset '{name}' under {root / folder} is incomplete ({err}): {how}") from err
        images = np.ascontiguousarray(dataset.data.transpose(0, 3, 1, 2))  # N×H×W×C -> N×C×H×W
        return images, np.asarray(dataset.targets, dtype=np.int64)

    return load


def _download(fetch: Callable[[], object], *, root: Path) -> str:
    """Run a torchvision download with a short socket timeout; returns why it failed ("" on success).

    Folders the attempt created are removed again when it fails, so a failed run leaves nothing behind.
    """
    existing = next((p for p in (root, *root.parents) if p.exists()), None)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(_DOWNLOAD_SOCKET_TIMEOUT_S)
    try:
        fetch()
        return ""
    except Exception as err:  # offline, DNS failure, bad checksum: the caller raises DatasetMissingError
        reason = " ".join(str(err).split()) or type(err).__name__
        if existing is not None and existing != root:
            created = root
            while created.parent != existing:
                created = created.parent
            shutil.rmtree(created, ignore_errors=True)
        elif existing == root:
            for child in root.iterdir():  # partial downloads inside a folder that was already there
                if child.name.endswith((".tar.gz", ".gz")) and child.stat().st_size == 0:
                    child.unlink()
        return f"download failed: {reason}"
    finally:
        socket.setdefaulttimeout(previous)


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


def _load_synthetic(*, size: int, seed: int, **_) -> tuple[np.ndarray, np.ndarray]:
    return make_synthetic(size=size, seed=seed)


# The synthetic "official test split": like a real one it is fixed (the same whatever `seed` the train/val split
# uses) and generated from a stream that no integer seed reaches (spawn_key=(1,); an int seed s is
# SeedSequence(s) with an empty spawn key), so its images are never the training images of any seed.
_SYNTHETIC_TEST_SEED = np.random.SeedSequence(0, spawn_key=(1,))
_SYNTHETIC_TEST_SIZE = 2000  # images


def _load_synthetic_test(**_) -> tuple[np.ndarray, np.ndarray]:
    return make_synthetic(size=_SYNTHETIC_TEST_SIZE, seed=_SYNTHETIC_TEST_SEED)


# ---------------------------------------------------------------- registry

DATASETS: dict[str, DatasetSpec] = {
    "fashion_mnist": DatasetSpec(
        name="fashion_mnist", load=_fashion_loader("train"), default_root="/usr/share/datasets/fashion-mnist",
        num_classes=10, in_chans=1, mean=(0.2860,), std=(0.3530,), crop_padding=2, flip=True,
        load_test=_fashion_loader("test"),
    ),
    "cifar10": DatasetSpec(
        name="cifar10", load=_cifar_loader("cifar10", "cifar-10-batches-py"), default_root=str(DEFAULT_CACHE_ROOT),
        num_classes=10, in_chans=3, mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616),
        crop_padding=4, flip=True, load_test=_cifar_loader("cifar10", "cifar-10-batches-py", split="test"),
    ),
    "cifar100": DatasetSpec(
        name="cifar100", load=_cifar_loader("cifar100", "cifar-100-python"), default_root=str(DEFAULT_CACHE_ROOT),
        num_classes=100, in_chans=3, mean=(0.5071, 0.4865, 0.4409), std=(0.2673, 0.2564, 0.2762),
        crop_padding=4, flip=True, load_test=_cifar_loader("cifar100", "cifar-100-python", split="test"),
    ),
    # 10 classes, 1×16×16, gratings (see make_synthetic); flip off because it would mirror the orientation.
    "synthetic": DatasetSpec(
        name="synthetic", load=_load_synthetic, default_root="", num_classes=10, in_chans=1,
        mean=(0.5,), std=(0.3,), crop_padding=2, flip=False, load_test=_load_synthetic_test,
    ),
}
_SYNTHETIC_DEFAULT_TRAIN = 2000  # images generated when train_size is None


def load_dataset(
    name: str,
    *,
    root: str | None = None,
    train_size: int | None = None,
    val_size: int = 5000,
    seed: int = 0,
    download: bool = False,
    test: bool = False,
) -> TensorData:
    """Load dataset `name` (a key of DATASETS) as CPU tensors, split into train and validation.

    root: folder to read from (None = the dataset's default). val_size: images held out of the official
    train split for validation (seeded shuffle). train_size: subsample the remaining training images to
    this many (None = all). download: try torchvision's downloader (short timeout) when files are missing.
    test: also load the dataset's whole official test split into `test_x/test_y` (Fashion-MNIST t10k, 10,000
    images; CIFAR test_batch / test, 10,000; synthetic: 2,000 generated from a stream no seed reaches). It does not
    depend on `seed`, `train_size` or `val_size`. Only the confirmation phase asks for it; the search must not.
    Raises DatasetMissingError (one-line message) when the files are not there, ValueError for bad names/sizes.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid: {', '.join(sorted(DATASETS))}")
    spec = DATASETS[name]
    folder = Path(root if root is not None else spec.default_root).expanduser()
    pool_size = val_size + (train_size if train_size is not None else _SYNTHETIC_DEFAULT_TRAIN)
    images, labels = spec.load(root=folder, download=download, size=pool_size, seed=seed)

    if not 0 < val_size < len(images):
        raise ValueError(f"val_size={val_size} must be in 1..{len(images) - 1} for {name!r} ({len(images)} images)")
    order = np.random.default_rng(seed).permutation(len(images))
    val_idx, train_idx = order[:val_size], order[val_size:]
    if train_size is not None:
        if not 0 < train_size <= len(train_idx):
            raise ValueError(f"train_size={train_size} must be in 1..{len(train_idx)} for {name!r} with val_size={val_size}")
        train_idx = train_idx[:train_size]
    test_x = test_y = None
    if test:
        if spec.load_test is None:
            raise ValueError(f"dataset {name!r} has no official test split; datasets with one: "
                             f"{', '.join(sorted(n for n, s in DATASETS.items() if s.load_test is not None))}")
        test_images, test_labels = spec.load_test(root=folder, download=download, size=pool_size, seed=seed)
        if test_images.shape[1:] != images.shape[1:]:
            raise ValueError(f"dataset {name!r}: test images are {test_images.shape[1:]}, train images "
                             f"{images.shape[1:]} (C×H×W); the files under {folder} do not belong together")
        # copies: the IDX arrays are read-only views of the file's bytes (torch warns on those)
        test_x = torch.from_numpy(np.array(test_images, dtype=np.uint8, order="C", copy=True))
        test_y = torch.from_numpy(np.array(test_labels, dtype=np.int64, copy=True))
    take = lambda array, idx: torch.from_numpy(np.ascontiguousarray(array[np.sort(idx)]))  # noqa: E731
    return TensorData(
        name=name, train_x=take(images, train_idx), train_y=take(labels, train_idx),
        val_x=take(images, val_idx), val_y=take(labels, val_idx),
        num_classes=spec.num_classes, in_chans=int(images.shape[1]), mean=spec.mean, std=spec.std,
        crop_padding=spec.crop_padding, flip=spec.flip, test_x=test_x, test_y=test_y,
    )
