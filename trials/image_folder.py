"""The user's own images: a folder with one subfolder per class, decoded once and cached as uint8 tensors.

Layouts (torchvision ``ImageFolder``'s, class = subfolder name, labels in sorted name order):

- one tree ``ROOT/CLASS/...``: a fixed stratified fifth is the test split (`TEST_FRACTION`, drawn with
  `TEST_SPLIT_SEED`, independent of the search seed, so every search on the folder shares it, like an official test
  split); validation is a stratified `val_size` of the rest, drawn with the search seed.
- already split ``ROOT/train/CLASS/...`` with optional ``ROOT/val/CLASS/...`` and ``ROOT/test/CLASS/...``: ``val/``
  is the validation split (then `val_size` is not used) and ``test/`` the test split; without ``test/`` the test
  split is carved from ``train/`` as for one tree; without ``val/`` validation is cut from ``train/`` by seed.
  A class in ``val/`` or ``test/`` must also be in ``train/``.

Images may have any size and mode. Each is resized to ``image_size``×``image_size`` (bilinear, antialiased; the
aspect ratio is not kept: no crop, nothing cut off). Modes: when every image is grayscale (1, L, LA, I, I;16, F) the
data has one channel; otherwise every image is converted to RGB (three channels; alpha dropped, palettes expanded).
Files are images by extension (`IMAGE_EXTENSIONS`, any case); other files and hidden entries are ignored. An image
that cannot be decoded stops the load with its path (nothing is skipped silently: a corrupt file is something to fix).
Training augmentation: random crop with ceil(image_size / 8) px padding and a random horizontal flip.

The decoded tensors, labels, splits and the per-channel mean/std (computed over the images outside the test split)
go to ``CACHE/image_folder/KEY.pt`` (+ ``KEY.json``); KEY hashes every file's relative path, size and mtime and the
requested image size, so a later load of the unchanged folder reads the cache (seconds) and decodes nothing, and any
added, removed or touched file decodes the folder again.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from trials.dataset_source import DatasetError, LoadRequest, Source, stratified_split

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".pgm", ".pbm", ".bmp", ".tif", ".tiff", ".webp", ".gif")
GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "F"})  # PIL modes read as one channel
TEST_FRACTION = 0.2  # of a tree without test/: the held-out test split (stratified by class)
TEST_SPLIT_SEED = 20261122  # fixed, not the search seed: all searches on one folder share its test split
SPLIT_FOLDERS = ("train", "val", "test")  # a ROOT/train/ folder means "already split"
_TRAIN, _VAL, _TEST = 0, 1, 2  # split codes in the cache
_CACHE_VERSION = 1  # bump when the cached content changes meaning
_PROGRESS_EVERY_S = 5.0  # seconds between "decoded i/N" lines


def default_image_size(sides: np.ndarray) -> int:
    """The square side (px) images are resized to when data.image_size is not set: 32 when the median longer side
    of the source images is at most 40 px (MNIST/CIFAR-like thumbnails), else 64 (CPU-friendly for larger photos)."""
    return 32 if float(np.median(sides)) <= 40 else 64


@dataclass(frozen=True)
class _File:
    path: Path
    rel: str  # relative to the root (the cache key uses it)
    label: int
    split: int  # _TRAIN (pool), _VAL (val/ folder) or _TEST (test/ folder)


def load_image_folder(request: LoadRequest) -> Source:
    """Load the image folder `request.root` (see the module docstring) through its cache under `request.cache`."""
    if request.root is None:
        raise DatasetError("dataset 'image_folder' needs data.root=DIR: a folder with one subfolder of images per "
                           "class (DIR/CLASS/img.jpg, or DIR/train/CLASS/... with optional val/ and test/)")
    root = request.root
    if not root.is_dir():
        raise DatasetError(f"data.root={root} is not a folder; point it at a folder with one subfolder of images per "
                           f"class (DIR/CLASS/img.jpg)")
    files, classes = _scan(root)
    key = _cache_key(root, files, image_size=request.image_size)
    folder = request.cache.expanduser() / "image_folder"
    images, labels, splits, meta = _read_cache(folder, key, root=root, log=request.log)
    if images is None:
        images, labels, splits, meta = _decode(root, files, classes, image_size=request.image_size,
                                               folder=folder, key=key, log=request.log)
    return _to_source(images, labels, splits, meta, request=request)


def _scan(root: Path) -> tuple[list[_File], list[str]]:
    """Every image file under the class folders, in a fixed order, and the sorted class names."""
    split_layout = (root / "train").is_dir()
    if split_layout:
        parts = [(root / name, code) for name, code in zip(SPLIT_FOLDERS, (_TRAIN, _VAL, _TEST))
                 if (root / name).is_dir()]
    else:
        parts = [(root, _TRAIN)]
    classes = _class_folders(parts[0][0])
    where = parts[0][0]
    if not classes:
        raise DatasetError(f"data.root={root} has no class folders under {where}: put each class's images in its "
                           f"own subfolder ({where}/CLASS/img.jpg)")
    if len(classes) == 1:
        raise DatasetError(f"data.root={root} has one class folder ({classes[0]!r} under {where}); a classifier "
                           f"needs at least 2 classes, one subfolder each")
    index = {name: i for i, name in enumerate(classes)}
    files: list[_File] = []
    for part, code in parts:
        for name in _class_folders(part):
            if name not in index:
                raise DatasetError(f"class folder {part / name} has no counterpart in {parts[0][0]}; classes there: "
                                   f"{', '.join(classes)}")
            found = _images_in(part / name)
            if not found:
                raise DatasetError(f"class folder {part / name} has no images (looked for "
                                   f"{', '.join(IMAGE_EXTENSIONS)}); add images or remove the folder")
            files += [_File(path=p, rel=p.relative_to(root).as_posix(), label=index[name], split=code) for p in found]
    return files, classes


def _class_folders(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images_in(folder: Path) -> list[Path]:
    found = []
    for here, dirs, names in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(here) / n for n in sorted(names)
                  if not n.startswith(".") and n.lower().endswith(IMAGE_EXTENSIONS)]
    return found


def _cache_key(root: Path, files: list[_File], *, image_size: int | None) -> str:
    digest = hashlib.sha256(f"v{_CACHE_VERSION} image_size={image_size or 'auto'}\n".encode())
    for f in sorted(files, key=lambda f: f.rel):
        stat = f.path.stat()
        digest.update(f"{f.rel}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:24]


def _size_line(root: Path, meta: dict, *, cache: Path, fresh: bool) -> str:
    c, s, n = meta["channels"], meta["image_size"], meta["count"]
    mb = n * c * s * s / 1e6
    how = "decoding once into" if fresh else "from"
    return (f"image_folder {root}: {n} images in {len(meta['classes'])} classes, {c}×{s}×{s}, {mb:.1f} MB as uint8 "
            f"tensors ({how} cache {cache})")


def _read_cache(folder: Path, key: str, *, root: Path, log) -> tuple:
    meta_path, data_path = folder / f"{key}.json", folder / f"{key}.pt"
    if not (meta_path.is_file() and data_path.is_file()):
        return None, None, None, None
    try:
        meta = json.loads(meta_path.read_text())
        log(_size_line(root, meta, cache=data_path, fresh=False))
        saved = torch.load(data_path, weights_only=True)
        return saved["images"].numpy(), saved["labels"].numpy(), saved["splits"].numpy(), meta
    except (OSError, ValueError, KeyError, RuntimeError) as err:  # a damaged cache: decode again
        log(f"image_folder cache {data_path} is unreadable ({type(err).__name__}); decoding the folder again")
        return None, None, None, None


def _decode(root: Path, files: list[_File], classes: list[str], *, image_size: int | None, folder: Path, key: str,
            log) -> tuple:
    from PIL import Image  # imported here: only image folders decode images

    modes, sides = [], []
    for f in files:  # headers only: modes and sizes decide channels and the default image size
        try:
            with Image.open(f.path) as im:
                modes.append(im.mode)
                sides.append(max(im.size))
        except (OSError, ValueError, Image.DecompressionBombError) as err:
            raise DatasetError(f"cannot read image {f.path} ({_reason(err)}); fix or remove the file") from None
    gray = all(mode in GRAY_MODES for mode in modes)
    size = image_size or default_image_size(np.array(sides))
    meta = {"version": _CACHE_VERSION, "root": str(root), "classes": classes, "count": len(files),
            "channels": 1 if gray else 3, "image_size": size}
    data_path = folder / f"{key}.pt"
    log(_size_line(root, meta, cache=data_path, fresh=True))
    images = np.empty((len(files), meta["channels"], size, size), dtype=np.uint8)
    last = time.monotonic()
    for i, f in enumerate(files):
        images[i] = decode_image(f.path, channels=meta["channels"], size=size)
        if time.monotonic() - last > _PROGRESS_EVERY_S:
            log(f"  decoded {i + 1}/{len(files)} images")
            last = time.monotonic()
    labels = np.array([f.label for f in files], dtype=np.int64)
    splits = np.array([f.split for f in files], dtype=np.int8)
    if not (splits == _TEST).any():  # no test/ folder: a fixed stratified fifth of the pool
        pool = np.flatnonzero(splits == _TRAIN)
        picked, _ = stratified_split(labels[pool], count=round(TEST_FRACTION * len(pool)),
                                     rng=np.random.default_rng(TEST_SPLIT_SEED))
        splits[pool[picked]] = _TEST
    meta["mean"], meta["std"] = _channel_stats(images[splits != _TEST])
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{key}.{os.getpid()}.tmp"
    torch.save({"images": torch.from_numpy(images), "labels": torch.from_numpy(labels),
                "splits": torch.from_numpy(splits)}, tmp)
    os.replace(tmp, data_path)
    tmp.write_text(json.dumps(meta, indent=1))
    os.replace(tmp, folder / f"{key}.json")  # written last: its presence means the .pt is complete
    return images, labels, splits, meta


def read_pixels(path: str | Path, *, channels: int, size: int) -> np.ndarray:
    """One image file as uint8 channels×size×size: converted to L (channels=1) or RGB (3), resized bilinearly
    (antialiased, aspect ratio not kept), as attnas decodes every training image of a folder. search.export writes
    this function out into an exported model's module for its ``load_image``: so only PIL and numpy (np) here."""
    from PIL import Image

    with Image.open(path) as im:
        pixels = np.array(im.convert("L" if channels == 1 else "RGB").resize((size, size), Image.Resampling.BILINEAR))
    return pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)


def decode_image(path: str | Path, *, channels: int, size: int) -> np.ndarray:
    """:func:`read_pixels`; raises DatasetError naming the file when it cannot be decoded."""
    from PIL import Image

    try:
        return read_pixels(path, channels=channels, size=size)
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise DatasetError(f"cannot read image {path} ({_reason(err)}); fix or remove the file") from None


def _reason(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def _channel_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 N×C×H×W images on the 0–1 scale (float64 sums, in chunks)."""
    total = np.zeros(images.shape[1])
    squares = np.zeros(images.shape[1])
    for start in range(0, len(images), 4096):
        chunk = images[start:start + 4096].astype(np.float64) / 255
        total += chunk.sum(axis=(0, 2, 3))
        squares += (chunk ** 2).sum(axis=(0, 2, 3))
    count = len(images) * images.shape[2] * images.shape[3]
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean ** 2, 0))
    return [round(float(m), 4) for m in mean], [round(max(float(s), 1e-3), 4) for s in std]


def _to_source(images: np.ndarray, labels: np.ndarray, splits: np.ndarray, meta: dict, *,
               request: LoadRequest) -> Source:
    pool = np.flatnonzero(splits == _TRAIN)
    val = np.flatnonzero(splits == _VAL)
    if not len(val):  # no val/ folder: a stratified val_size of the pool, by the search seed
        if not 0 < request.val_size < len(pool):
            raise DatasetError(f"val_size={request.val_size} must be in 1..{len(pool) - 1} for image_folder "
                               f"{meta['root']} ({len(pool)} images outside the test split); set budget.val_size=N")
        picked, rest = stratified_split(labels[pool], count=request.val_size, rng=np.random.default_rng(request.seed))
        val, pool = pool[picked], pool[rest]
    test = np.flatnonzero(splits == _TEST)
    size = meta["image_size"]
    return Source(
        train_x=images[pool], train_y=labels[pool], val_x=images[val], val_y=labels[val],
        test_x=images[test] if request.test else None, test_y=labels[test] if request.test else None,
        num_classes=len(meta["classes"]), mean=tuple(meta["mean"]), std=tuple(meta["std"]),
        crop_padding=max(1, math.ceil(size / 8)), flip=True, classes=tuple(meta["classes"]),
    )
