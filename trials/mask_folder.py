"""``mask_folder``: the user's own segmentation data, a folder ``ROOT/images/`` + ``ROOT/masks/``.

- ``images/STEM.EXT``: any image ``trials.image_folder`` reads (grayscale when every image is, else RGB).
- ``masks/STEM.png``: one PNG per image, same stem, same width and height, the class index per pixel: a grayscale
  PNG (mode L, I, I;16 or 1) or a palette PNG (mode P: the palette index is the class; the colours are ignored).
- ``ROOT/classes.txt`` (optional): one class name per line, index 0 first (e.g. ``background``); it fixes the class
  count, and a mask index at or above it is an error. Without it the classes are 0 .. the largest index found.
  There is no "ignore" label: an index of 255 (the usual void border) is refused either way.

Images are resized to ``image_size`` (bilinear, antialiased; default as ``trials.image_folder``) and masks with
nearest neighbour, so every pixel keeps a class of its own mask. A fixed random fifth (``TEST_FRACTION``,
``TEST_SPLIT_SEED``) is the test split; validation is ``val_size`` of the rest, drawn with the search seed.

Bad input is one ``DatasetError`` line naming the file or value, raised before anything is written: no images,
a missing ``images/`` or ``masks/`` folder, an image without a mask (or a mask without an image), a mask whose size
differs from its image's, a mask that is not single-channel or palette, an index out of range. The decoded arrays are
cached as ``CACHE/mask_folder/KEY.pt`` (KEY hashes every file's path, size and mtime and the image size), with the
per-channel mean/std over all of the folder's images.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch

from trials.image_folder import (IMAGE_EXTENSIONS, TEST_FRACTION, TEST_SPLIT_SEED, GRAY_MODES, decode_image,
                                 default_image_size)
from trials.dataset_source import DatasetError, LoadRequest, Source

MASK_MODES = frozenset({"L", "P", "I", "I;16", "1"})  # PIL modes that hold one class index per pixel
VOID = 255  # the common "ignore" index; refused (no ignore label)
_CACHE_VERSION = 1


def load_mask_folder(request: LoadRequest) -> Source:
    """Read ``request.root`` (see the module docstring) through its cache; one-line DatasetError on bad input."""
    if request.root is None:
        raise DatasetError("dataset 'mask_folder' needs data.root=DIR: a folder with images/ and masks/ (PNG class "
                           "indices, same file stems)")
    root = request.root
    pairs = _scan(root)
    classes = _declared_classes(root)
    key = _cache_key(root, pairs, image_size=request.image_size)
    path = request.cache.expanduser() / "mask_folder" / f"{key}.pt"
    if path.is_file():
        saved = torch.load(path, weights_only=True)
        images, masks = saved["images"].numpy(), saved["masks"].numpy()
        meta = json.loads(path.with_suffix(".json").read_text())
    else:
        images, masks, meta = _decode(root, pairs, classes, image_size=request.image_size, log=request.log)
        path.parent.mkdir(parents=True, exist_ok=True)  # written only once every file has been checked
        tmp = path.with_name(f".{key}.{os.getpid()}.tmp")
        torch.save({"images": torch.from_numpy(images), "masks": torch.from_numpy(masks)}, tmp)
        os.replace(tmp, path)
        path.with_suffix(".json").write_text(json.dumps(meta))
    count = len(images)
    order = np.random.default_rng(TEST_SPLIT_SEED).permutation(count)
    n_test = max(1, round(TEST_FRACTION * count))
    test, pool = np.sort(order[:n_test]), order[n_test:]
    if not 0 < request.val_size < len(pool):
        raise DatasetError(f"val_size={request.val_size} must be in 1..{len(pool) - 1} for mask_folder {root} "
                           f"({len(pool)} images outside the test split)")
    pool = np.random.default_rng(request.seed).permutation(pool)
    val, train = np.sort(pool[:request.val_size]), np.sort(pool[request.val_size:])
    return Source(train_x=images[train], train_y=masks[train], val_x=images[val], val_y=masks[val],
                  test_x=images[test] if request.test else None, test_y=masks[test] if request.test else None,
                  num_classes=len(meta["classes"]), mean=tuple(meta["mean"]), std=tuple(meta["std"]),
                  crop_padding=max(1, images.shape[-1] // 8), flip=True, classes=tuple(meta["classes"]))


def _scan(root: Path) -> list[tuple[Path, Path]]:
    """(image, mask) pairs by stem; DatasetError for a missing folder, no images or an unpaired file."""
    if not root.is_dir():
        raise DatasetError(f"data.root={root} is not a folder; point it at a folder with images/ and masks/")
    for sub in ("images", "masks"):
        if not (root / sub).is_dir():
            raise DatasetError(f"data.root={root} has no {sub}/ folder; a segmentation folder holds images/ and "
                               f"masks/ (PNG class indices, same file stems)")
    images = {p.stem: p for p in _files(root / "images", IMAGE_EXTENSIONS)}
    masks = {p.stem: p for p in _files(root / "masks", (".png",))}
    if not images:
        raise DatasetError(f"{root / 'images'} has no images (looked for {', '.join(IMAGE_EXTENSIONS)})")
    if missing := sorted(set(images) - set(masks)):
        raise DatasetError(f"image {images[missing[0]]} has no mask {root / 'masks' / (missing[0] + '.png')} "
                           f"({len(missing)} image(s) without a mask)")
    if extra := sorted(set(masks) - set(images)):
        raise DatasetError(f"mask {masks[extra[0]]} has no image of the same stem in {root / 'images'} "
                           f"({len(extra)} mask(s) without an image)")
    return [(images[stem], masks[stem]) for stem in sorted(images)]


def _files(folder: Path, extensions: tuple[str, ...]) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.name.lower().endswith(extensions))


def _declared_classes(root: Path) -> list[str] | None:
    path = root / "classes.txt"
    if not path.is_file():
        return None
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if len(names) < 2:
        raise DatasetError(f"{path} names {len(names)} class(es); segmentation needs at least 2 (e.g. background "
                           f"and one object class), one name per line")
    return names


def _read_mask(path: Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as im:
            if im.mode not in MASK_MODES:
                raise DatasetError(f"mask {path} has mode {im.mode}; a mask is a single-channel PNG of class indices "
                                   f"(modes {', '.join(sorted(MASK_MODES))}; palette PNGs count)")
            return np.array(im).astype(np.int64)  # P: palette indices, 1: booleans, I;16: up to 65535
    except (OSError, ValueError) as err:
        if isinstance(err, DatasetError):
            raise
        raise DatasetError(f"cannot read mask {path} ({' '.join(str(err).split())}); fix or remove the file") from None


def _decode(root: Path, pairs: list[tuple[Path, Path]], classes: list[str] | None, *, image_size: int | None,
            log) -> tuple[np.ndarray, np.ndarray, dict]:
    from PIL import Image

    sides, modes, raw_masks = [], [], []
    for image, mask in pairs:
        try:
            with Image.open(image) as im:
                size, mode = im.size, im.mode
        except (OSError, ValueError) as err:
            raise DatasetError(f"cannot read image {image} ({' '.join(str(err).split())}); fix or remove the "
                               f"file") from None
        values = _read_mask(mask)
        if values.shape[::-1] != size:
            raise DatasetError(f"mask {mask} is {values.shape[1]}×{values.shape[0]} px but image {image} is "
                               f"{size[0]}×{size[1]} px; a mask has its image's size")
        top = int(values.max())
        limit = len(classes) if classes is not None else VOID
        if top >= limit:
            where = (f"{root / 'classes.txt'} names {len(classes)} classes (0..{len(classes) - 1})"
                     if classes is not None else f"{VOID} is the void/ignore label, which is not supported")
            raise DatasetError(f"mask {mask} has class index {top}, out of range: {where}")
        sides.append(max(size))
        modes.append(mode)
        raw_masks.append(values)
    names = classes or [str(i) for i in range(max(int(m.max()) for m in raw_masks) + 1)]
    if len(names) < 2:
        raise DatasetError(f"every mask under {root / 'masks'} is all class 0; segmentation needs at least 2 classes")
    channels = 1 if all(m in GRAY_MODES for m in modes) else 3
    side = image_size or default_image_size(np.array(sides))
    log(f"mask_folder {root}: {len(pairs)} images, {len(names)} classes, {channels}×{side}×{side}")
    images = np.stack([decode_image(image, channels=channels, size=side) for image, _ in pairs])
    masks = np.stack([np.array(Image.fromarray(m.astype(np.int32)).resize((side, side), Image.Resampling.NEAREST))
                      for m in raw_masks]).astype(np.uint8)
    scaled = images.astype(np.float64) / 255
    meta = {"version": _CACHE_VERSION, "root": str(root), "classes": names,
            "mean": [round(float(v), 4) for v in scaled.mean(axis=(0, 2, 3))],
            "std": [round(max(float(v), 1e-3), 4) for v in scaled.std(axis=(0, 2, 3))]}
    return images, masks, meta


def _cache_key(root: Path, pairs: list[tuple[Path, Path]], *, image_size: int | None) -> str:
    digest = hashlib.sha256(f"v{_CACHE_VERSION} image_size={image_size or 'auto'}\n".encode())
    for path in [p for pair in pairs for p in pair] + [root / "classes.txt"]:
        if path.is_file():
            stat = path.stat()
            digest.update(f"{path.relative_to(root)}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:24]
