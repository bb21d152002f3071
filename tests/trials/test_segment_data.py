"""fashion_scenes: deterministic, cached, train/val garments disjoint parts of the official train split, test scenes
from t10k only; the loader's sizes and the MaskData it returns."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

import trials.scenes as scenes_module
from trials import DATASETS, MaskData, load_segmentation
from trials.scenes import CANVAS, CLASSES, INK, TEST_SCENES, VAL_GARMENTS, make_scenes

TRAIN_VALUE, TEST_VALUE = 100, 200  # every ink pixel of a fake train / t10k garment


def _idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes(), compresslevel=1))


@pytest.fixture(scope="module")
def fake_fashion(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Fashion-MNIST-shaped folder: train garments all TRAIN_VALUE, t10k all TEST_VALUE; each garment's index is
    written in base 16 into its first 4 pixels (values <= INK: never pasted as ink)."""
    root = tmp_path_factory.mktemp("fashion")
    for split, count, value in (("train", VAL_GARMENTS + 1000, TRAIN_VALUE), ("t10k", 300, TEST_VALUE)):
        images = np.full((count, 28, 28), value, dtype=np.uint8)
        index = np.arange(count)
        for digit in range(4):
            images[:, 0, digit] = (index >> (4 * digit)) & 15
        _idx(root / f"{split}-images-idx3-ubyte.gz", images)
        _idx(root / f"{split}-labels-idx1-ubyte.gz", (index % 10).astype(np.uint8))
    return root


def _garment_ids(images: np.ndarray) -> set[int]:
    return {int(sum(int(g[0, 0, d]) << (4 * d) for d in range(4))) for g in images}


def test_make_scenes_is_deterministic_and_masks_match_the_ink() -> None:
    rng = np.random.default_rng(0)
    garments = rng.integers(0, 256, size=(50, 1, 28, 28)).astype(np.uint8)
    labels = rng.integers(0, 10, size=50)
    a, ma = make_scenes(garments, labels, count=20, seed=3)
    b, mb = make_scenes(garments, labels, count=20, seed=3)
    assert np.array_equal(a, b) and np.array_equal(ma, mb)
    assert a.shape == (20, 1, CANVAS, CANVAS) and ma.shape == (20, CANVAS, CANVAS) and ma.dtype == np.uint8
    assert ((a[:, 0] > INK) == (ma > 0)).all()  # a pixel is a garment's exactly where it shows ink
    assert ma.max() <= 10 and len(CLASSES) == 11
    assert not np.array_equal(make_scenes(garments, labels, count=20, seed=4)[1], ma)


def test_splits_test_from_t10k_only_and_disjoint_garments(fake_fashion: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    used: dict[int, set[int]] = {}
    original = scenes_module.make_scenes

    def recording(images, labels, *, count, seed):
        used[count] = _garment_ids(images)
        return original(images, labels, count=count, seed=seed)

    monkeypatch.setattr(scenes_module, "make_scenes", recording)
    data = load_segmentation("fashion_scenes", root=fake_fashion, train_size=40, val_size=30, test=True,
                             cache=tmp_path)
    assert isinstance(data, MaskData) and data.num_classes == 11 and data.image_shape == (1, CANVAS, CANVAS)
    assert used[40].isdisjoint(used[30]) and len(used[30]) == VAL_GARMENTS  # val garments: their own 10,000
    assert used[TEST_SCENES] == set(range(300))  # every t10k garment, and only those
    for split, value, other in (("train", TRAIN_VALUE, TEST_VALUE), ("val", TRAIN_VALUE, TEST_VALUE),
                                ("test", TEST_VALUE, TRAIN_VALUE)):
        x = getattr(data, f"{split}_x")
        assert (x == value).any() and not (x == other).any(), split
    assert data.train_y.dtype == torch.uint8 and len(data.test_y) == TEST_SCENES


def test_determinism_cache_and_seed(fake_fashion: Path, tmp_path: Path) -> None:
    kwargs = dict(root=fake_fashion, train_size=20, val_size=10, test=True)
    first = load_segmentation("fashion_scenes", cache=tmp_path / "a", seed=0, **kwargs)
    cached = list((tmp_path / "a" / "fashion_scenes").glob("*.pt"))
    assert len(cached) == 3
    again = load_segmentation("fashion_scenes", cache=tmp_path / "a", seed=0, **kwargs)  # from the cache
    fresh = load_segmentation("fashion_scenes", cache=tmp_path / "b", seed=0, **kwargs)  # regenerated
    other = load_segmentation("fashion_scenes", cache=tmp_path / "b", seed=1, **kwargs)
    for split in ("train_x", "train_y", "val_y", "test_x", "test_y"):
        assert torch.equal(getattr(first, split), getattr(again, split))
        assert torch.equal(getattr(first, split), getattr(fresh, split))
    assert not torch.equal(first.train_y, other.train_y) and torch.equal(first.test_y, other.test_y)


def test_real_fashion_scenes(tmp_path: Path) -> None:
    if not Path(DATASETS["fashion_mnist"].default_root).is_dir():
        pytest.skip("Fashion-MNIST not installed (dataset-fashion-mnist)")
    data = load_segmentation("fashion_scenes", train_size=16, val_size=8, cache=tmp_path)
    assert data.train_x.shape == (16, 1, 64, 64) and 0.05 < float((data.train_y > 0).float().mean()) < 0.5


@pytest.mark.parametrize("kwargs, message", [
    ({"train_size": 0}, "train_size=0 must be >= 1"),
    ({"val_size": 0}, "val_size=0 must be >= 1"),
])
def test_bad_sizes(fake_fashion: Path, tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_segmentation("fashion_scenes", root=fake_fashion, cache=tmp_path, **{"val_size": 5, **kwargs})


def test_unknown_dataset_names_the_choices() -> None:
    with pytest.raises(ValueError, match="valid: fashion_scenes, mask_folder"):
        load_segmentation("scenes")
