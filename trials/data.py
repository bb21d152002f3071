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
import gzip
import math
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from trials.image_folder import load_image_folder
from trials.source import DatasetError, DatasetMissingError, LoadRequest, Source

# Where downloads (CIFAR, SVHN, STL-10, Fashion-MNIST without the Debian package) and image-folder caches go
# (data.cache); published datasets are also looked for here.
DEFAULT_CACHE_ROOT = Path("~/.cache/attnas/data")
_DOWNLOAD_SOCKET_TIMEOUT_S = 20.0  # seconds; an offline machine fails fast instead of hanging


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


LoadFn = Callable[[LoadRequest], Source]


@dataclass(frozen=True)
class Known:
    """What is known in advance about a published dataset (an image folder's come from its images)."""

    num_classes: int
    mean: tuple[float, ...]  # per channel, 0–1 scale
    std: tuple[float, ...]
    crop_padding: int  # px at the native size
    flip: bool
    classes: tuple[str, ...] = ()


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


# ---------------------------------------------------------------- published datasets: files on disk

@dataclass(frozen=True)
class _Files:
    """A published dataset's on-disk form, per split ("train" or "test")."""

    missing: Callable[[Path, str], str]  # (folder, split) -> what is missing there ("" = present)
    read: Callable[[Path, str], tuple[np.ndarray, np.ndarray]]  # (folder, split) -> (uint8 N×C×H×W, int64 labels)
    fetch: Callable[[Path], object]  # torchvision download into this folder (network)
    how: str  # how to get it, for the one-line error


def _published(name: str, files: _Files, known: Known) -> LoadFn:
    """A loader of a published dataset: the folder data.root, else the spec's system_root then data.cache; with
    data.download, torchvision downloads what is missing into data.root or data.cache."""

    def load(request: LoadRequest) -> Source:
        folders = ([request.root] if request.root is not None
                   else [f for f in (request.system_root, request.cache) if f is not None])
        folder = next((f for f in folders if not files.missing(f, "train")), None)
        failure = ""
        if folder is None and request.download:
            target = folders[-1]
            failure = _download(lambda: files.fetch(target), root=target)
            folder = target if not files.missing(target, "train") else None
        if folder is None:
            what = files.missing(folders[-1], "train") + (f", {failure}" if failure else "")
            where = " or ".join(str(f) for f in folders)
            raise DatasetMissingError(f"dataset {name!r} not found under {where} ({what}): {files.how}")
        train_x, train_y = files.read(folder, "train")
        test_x = test_y = None
        if request.test:
            if missing := files.missing(folder, "test"):
                raise DatasetMissingError(f"dataset {name!r}: its test split is not under {folder} ({missing}): "
                                          f"{files.how}")
            test_x, test_y = files.read(folder, "test")
        return Source(train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y, num_classes=known.num_classes,
                      mean=known.mean, std=known.std, crop_padding=known.crop_padding, flip=known.flip,
                      classes=known.classes)

    return load


# Fashion-MNIST: gzipped IDX files (the Debian package's layout, or torchvision's FashionMNIST/raw/)
_FASHION_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),  # 60,000 images
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),  # 10,000 images, the official test split
}
FASHION_DEBIAN_ROOT = "/usr/share/datasets/fashion-mnist"  # apt-get install dataset-fashion-mnist


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


def _fashion_missing(folder: Path, split: str) -> str:
    absent = [stem for stem in _FASHION_FILES[split] if _find_idx(folder, stem) is None]
    return f"no {absent[0]}.gz" if absent else ""


def _fashion_read(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels = (_read_idx(_find_idx(folder, stem)) for stem in _FASHION_FILES[split])
    return images[:, None, :, :], labels.astype(np.int64)  # N×28×28 -> N×1×28×28


_FASHION = _Files(
    missing=_fashion_missing, read=_fashion_read,
    fetch=lambda folder: __import__("torchvision").datasets.FashionMNIST(str(folder), train=True, download=True),
    how="install the Debian package dataset-fashion-mnist (apt-get install dataset-fashion-mnist), point data.root=DIR "
        "at a folder with the gzipped IDX files, or run with data.download=true on a machine with internet",
)


# CIFAR-10/100: torchvision's pickled batches
def _cifar_files(name: str, folder_name: str) -> _Files:
    def dataset_class():
        import torchvision  # imported here: only CIFAR needs it (and it is slow to import)

        return torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100

    how = (f"let torchvision download it on a machine with internet (data.download=true), or point data.root=DIR at "
           f"a folder containing {folder_name}")

    def read(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
        try:
            dataset = dataset_class()(str(folder), train=split == "train", download=False)
        except RuntimeError as err:  # torchvision: "Dataset not found or corrupted."
            raise DatasetMissingError(f"dataset '{name}' under {folder / folder_name} is incomplete ({err}): "
                                      f"{how}") from err
        images = np.ascontiguousarray(dataset.data.transpose(0, 3, 1, 2))  # N×H×W×C -> N×C×H×W
        return images, np.asarray(dataset.targets, dtype=np.int64)

    return _Files(missing=lambda folder, split: "" if (folder / folder_name).is_dir() else f"no {folder_name}/",
                  read=read, fetch=lambda folder: dataset_class()(str(folder), train=True, download=True), how=how)


# SVHN: torchvision's .mat files (train_32x32.mat, test_32x32.mat), in the folder or its svhn/ subfolder
_SVHN_FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat"}


def _svhn_path(folder: Path, split: str) -> Path | None:
    return next((p for p in (folder / _SVHN_FILES[split], folder / "svhn" / _SVHN_FILES[split]) if p.is_file()), None)


def _svhn_read(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    import scipy.io  # imported here: only SVHN needs it

    mat = scipy.io.loadmat(str(_svhn_path(folder, split)))
    images = np.ascontiguousarray(mat["X"].transpose(3, 2, 0, 1))  # H×W×C×N -> N×C×H×W
    labels = mat["y"].astype(np.int64).reshape(-1)
    return images, np.where(labels == 10, 0, labels)  # SVHN labels the digit 0 as 10


def _svhn_fetch(folder: Path) -> None:
    import torchvision

    for split in _SVHN_FILES:  # torchvision fetches one split per call
        torchvision.datasets.SVHN(str(folder / "svhn"), split=split, download=True)


_SVHN = _Files(
    missing=lambda folder, split: "" if _svhn_path(folder, split) else f"no {_SVHN_FILES[split]}",
    read=_svhn_read, fetch=_svhn_fetch,
    how="let torchvision download it on a machine with internet (data.download=true), or point data.root=DIR at a "
        "folder containing train_32x32.mat and test_32x32.mat (http://ufldl.stanford.edu/housenumbers/)",
)


# STL-10: the labelled binaries of stl10_binary/ (96×96 RGB; the 100,000 unlabelled images are not used)
_STL_FOLDER = "stl10_binary"
_STL_SIDE = 96  # px
_STL_CLASSES = ("airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck")


def _stl_missing(folder: Path, split: str) -> str:
    absent = [n for n in (f"{split}_X.bin", f"{split}_y.bin") if not (folder / _STL_FOLDER / n).is_file()]
    return f"no {_STL_FOLDER}/{absent[0]}" if absent else ""


def _stl_read(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    raw = np.fromfile(folder / _STL_FOLDER / f"{split}_X.bin", dtype=np.uint8)
    images = raw.reshape(-1, 3, _STL_SIDE, _STL_SIDE).transpose(0, 1, 3, 2)  # stored column-major per channel
    labels = np.fromfile(folder / _STL_FOLDER / f"{split}_y.bin", dtype=np.uint8).astype(np.int64) - 1  # 1..10
    if len(labels) != len(images):
        raise DatasetError(f"dataset 'stl10' under {folder / _STL_FOLDER}: {len(images)} images but {len(labels)} "
                           f"labels in the {split} files")
    return np.ascontiguousarray(images), labels


_STL10 = _Files(
    missing=_stl_missing, read=_stl_read,
    fetch=lambda folder: __import__("torchvision").datasets.STL10(str(folder), split="train", download=True),
    how="let torchvision download it on a machine with internet (data.download=true, 2.6 GB), or point data.root=DIR "
        f"at a folder containing {_STL_FOLDER}/ (https://cs.stanford.edu/~acoates/stl10/)",
)


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

_CIFAR10 = Known(num_classes=10, mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616), crop_padding=4, flip=True)
_CIFAR100 = Known(num_classes=100, mean=(0.5071, 0.4865, 0.4409), std=(0.2673, 0.2564, 0.2762), crop_padding=4,
                  flip=True)
_FASHION_KNOWN = Known(num_classes=10, mean=(0.2860,), std=(0.3530,), crop_padding=2, flip=True)
# SVHN: house-number digits; no flip (a mirrored digit is another glyph). Mean/std over the train split.
_SVHN_KNOWN = Known(num_classes=10, mean=(0.4377, 0.4438, 0.4728), std=(0.1980, 0.2010, 0.1970), crop_padding=2,
                    flip=False, classes=tuple(str(d) for d in range(10)))
# STL-10: 5,000 labelled train and 8,000 test images at 96×96; native size unless data.image_size resizes it
# (data.image_size=32 costs 9x less per image on a CPU).
_STL_KNOWN = Known(num_classes=10, mean=(0.4467, 0.4398, 0.4066), std=(0.2603, 0.2566, 0.2713), crop_padding=12,
                   flip=True, classes=_STL_CLASSES)

DATASETS: dict[str, DatasetSpec] = {
    "fashion_mnist": DatasetSpec(
        name="fashion_mnist", known=_FASHION_KNOWN, system_root=FASHION_DEBIAN_ROOT,
        load=_published("fashion_mnist", _FASHION, _FASHION_KNOWN),
    ),
    "cifar10": DatasetSpec(name="cifar10", known=_CIFAR10,
                           load=_published("cifar10", _cifar_files("cifar10", "cifar-10-batches-py"), _CIFAR10)),
    "cifar100": DatasetSpec(name="cifar100", known=_CIFAR100,
                            load=_published("cifar100", _cifar_files("cifar100", "cifar-100-python"), _CIFAR100)),
    "svhn": DatasetSpec(name="svhn", known=_SVHN_KNOWN, load=_published("svhn", _SVHN, _SVHN_KNOWN)),
    "stl10": DatasetSpec(name="stl10", known=_STL_KNOWN, load=_published("stl10", _STL10, _STL_KNOWN)),
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
        test_x, test_y = _tensor(source.test_x, np.uint8), _tensor(source.test_y, np.int64)
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
