"""Published datasets read from their official files: Fashion-MNIST (IDX), CIFAR-10/100 (torchvision's batches),
SVHN (.mat) and STL-10 (binaries), each looked for in data.root, else its system folder and data.cache, and fetched
through torchvision's downloader into data.cache when missing and allowed (short socket timeout, so an offline
machine fails in seconds with one line saying how to get the files).
"""

from __future__ import annotations

import gzip
import math
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trials.dataset_source import DatasetError, DatasetMissingError, LoadRequest, Source

_DOWNLOAD_SOCKET_TIMEOUT_S = 20.0  # seconds; an offline machine fails fast instead of hanging
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
class _Files:
    """A published dataset's on-disk form, per split ("train" or "test")."""

    missing: Callable[[Path, str], str]  # (folder, split) -> what is missing there ("" = present)
    read: Callable[[Path, str], tuple[np.ndarray, np.ndarray]]  # (folder, split) -> (uint8 N×C×H×W, int64 labels)
    fetch: Callable[[Path], object]  # torchvision download into this folder (network)
    how: str  # how to get it, for the one-line error


def published(name: str, files: _Files, known: Known) -> LoadFn:
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


FASHION_FILES = _Files(
    missing=_fashion_missing, read=_fashion_read,
    fetch=lambda folder: __import__("torchvision").datasets.FashionMNIST(str(folder), train=True, download=True),
    how="install the Debian package dataset-fashion-mnist (apt-get install dataset-fashion-mnist), point data.root=DIR "
        "at a folder with the gzipped IDX files, or run with data.download=true on a machine with internet",
)


# CIFAR-10/100: torchvision's pickled batches
def cifar_files(name: str, folder_name: str) -> _Files:
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


SVHN_FILES = _Files(
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


STL10_FILES = _Files(
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


# What is known in advance about each (mean/std per channel over the train split, 0–1 scale).
CIFAR10_KNOWN = Known(num_classes=10, mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616), crop_padding=4, flip=True)
CIFAR100_KNOWN = Known(num_classes=100, mean=(0.5071, 0.4865, 0.4409), std=(0.2673, 0.2564, 0.2762), crop_padding=4,
                  flip=True)
FASHION_KNOWN = Known(num_classes=10, mean=(0.2860,), std=(0.3530,), crop_padding=2, flip=True)
# SVHN: house-number digits; no flip (a mirrored digit is another glyph). Mean/std over the train split.
SVHN_KNOWN = Known(num_classes=10, mean=(0.4377, 0.4438, 0.4728), std=(0.1980, 0.2010, 0.1970), crop_padding=2,
                    flip=False, classes=tuple(str(d) for d in range(10)))
# STL-10: 5,000 labelled train and 8,000 test images at 96×96; native size unless data.image_size resizes it
# (data.image_size=32 costs 9x less per image on a CPU).
STL10_KNOWN = Known(num_classes=10, mean=(0.4467, 0.4398, 0.4066), std=(0.2603, 0.2566, 0.2713), crop_padding=12,
                   flip=True, classes=_STL_CLASSES)
