"""The user's own images (trials.image_folder through trials.load_dataset), on real Fashion-MNIST images written as
PNG files of several sizes and modes; SVHN and STL-10 read from small files written in their formats."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from trials import DATASETS, DatasetError, DatasetMissingError, load_dataset
from trials.image_folder import TEST_FRACTION, default_image_size
from trials.dataset_source import stratified_split


def _load(root: Path, cache: Path, **kwargs):
    lines: list[str] = []
    kwargs = {"val_size": 50, "seed": 0, "test": True, **kwargs}
    data = load_dataset("image_folder", root=root, cache=cache, log=lines.append, **kwargs)
    return data, lines


def test_a_tree_of_mixed_pngs_loads_as_rgb_with_stratified_splits(tmp_path: Path, fashion_pngs) -> None:
    fashion_pngs(tmp_path / "imgs", per_class=30, classes=5)  # 150 images: 28/36/48 px, a third RGB
    data, lines = _load(tmp_path / "imgs", tmp_path / "cache")
    # mixed modes -> RGB; median side 36 px -> 32 px; classes = sorted folder names; channels/classes from the data
    assert data.image_shape == (3, 32, 32) and data.in_chans == 3 and data.num_classes == 5
    assert data.classes == ("coat", "dress", "pullover", "trouser", "tshirt")
    assert data.train_x.dtype == torch.uint8 and data.train_y.dtype == torch.int64
    # one line, before loading, says how much memory the tensors take and where the cache is
    assert len(lines) == 1 and "150 images in 5 classes, 3×32×32, 0.5 MB as uint8 tensors" in lines[0]
    assert str(tmp_path / "cache" / "image_folder") in lines[0]
    # fixed stratified fifth for test, stratified val_size of the rest, the remainder trains
    assert len(data.test_y) == round(TEST_FRACTION * 150) and torch.bincount(data.test_y).tolist() == [6] * 5
    assert len(data.val_y) == 50 and torch.bincount(data.val_y).tolist() == [10] * 5
    assert len(data.train_y) == 150 - 30 - 50 and torch.bincount(data.train_y).tolist() == [14] * 5
    # no image in two splits
    rows = [bytes(x) for split in (data.train_x, data.val_x, data.test_x) for x in split.flatten(1).numpy()]
    assert len(set(rows)) == len(rows)
    # mean/std are measured on the images (outside the test split), per channel; RGB copies are tinted darker
    pool = torch.cat([data.train_x, data.val_x]).float() / 255
    assert data.mean == pytest.approx(tuple(pool.mean(dim=(0, 2, 3)).tolist()), abs=1e-3)
    assert data.mean[0] > data.mean[2] and all(0.05 < s < 0.5 for s in data.std)
    assert data.crop_padding == 4 and data.flip


def test_the_test_split_is_fixed_and_val_follows_the_seed(tmp_path: Path, fashion_pngs) -> None:
    fashion_pngs(tmp_path / "imgs", per_class=20, classes=3)
    a, _ = _load(tmp_path / "imgs", tmp_path / "cache", seed=0, val_size=12)
    b, _ = _load(tmp_path / "imgs", tmp_path / "cache", seed=1, val_size=12)
    assert torch.equal(a.test_x, b.test_x)  # like an official test split: the same for every search seed
    assert not torch.equal(a.val_x, b.val_x)  # validation is drawn by the search seed
    c, _ = _load(tmp_path / "imgs", tmp_path / "cache", seed=0, val_size=12)
    assert torch.equal(a.val_x, c.val_x) and torch.equal(a.train_x, c.train_x)
    assert _load(tmp_path / "imgs", tmp_path / "cache", val_size=12, test=False)[0].test_x is None


def test_the_second_load_reads_the_cache_and_decodes_nothing(tmp_path: Path, fashion_pngs,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    files = fashion_pngs(tmp_path / "imgs", per_class=12, classes=3)
    first, lines = _load(tmp_path / "imgs", tmp_path / "cache", val_size=6)
    assert "decoding once into cache" in lines[0]
    from PIL import Image

    def no_decoding(*args, **kwargs):
        raise AssertionError("the cache was not used: an image was opened")

    monkeypatch.setattr(Image, "open", no_decoding)
    second, lines = _load(tmp_path / "imgs", tmp_path / "cache", val_size=6)
    assert "from cache" in lines[0]
    for key in ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y"):
        assert torch.equal(getattr(first, key), getattr(second, key)), key
    assert (first.mean, first.std, first.classes) == (second.mean, second.std, second.classes)
    monkeypatch.undo()
    # a changed folder (one image removed) is decoded again, under a new key
    files[0].unlink()
    third, lines = _load(tmp_path / "imgs", tmp_path / "cache", val_size=6)
    assert "decoding once" in lines[0] and len(third.train_y) + len(third.val_y) + len(third.test_y) == 35
    assert len(list((tmp_path / "cache" / "image_folder").glob("*.pt"))) == 2


def test_grayscale_only_is_one_channel_and_image_size_is_honoured(tmp_path: Path, fashion_pngs) -> None:
    files = fashion_pngs(tmp_path / "imgs", per_class=9, classes=2)
    for path in files[2::3]:  # the RGB copies -> grayscale again
        from PIL import Image

        Image.open(path).convert("L").save(path)
    data, lines = _load(tmp_path / "imgs", tmp_path / "cache", val_size=4, image_size=20)
    assert data.image_shape == (1, 20, 20) and len(data.mean) == 1 and data.crop_padding == 3
    assert "1×20×20" in lines[0]


def test_an_already_split_folder_uses_its_val_and_test(tmp_path: Path, fashion_pngs) -> None:
    root = tmp_path / "split"
    fashion_pngs(root / "train", per_class=20, classes=3)
    fashion_pngs(root / "val", per_class=5, classes=3, offset=20)
    fashion_pngs(root / "test", per_class=4, classes=2, offset=25)  # a class may be missing from test/
    data, _ = _load(root, tmp_path / "cache", val_size=999)  # val/ exists: val_size is not used
    assert (len(data.train_y), len(data.val_y), len(data.test_y)) == (60, 15, 8)
    assert data.num_classes == 3 and torch.bincount(data.val_y).tolist() == [5, 5, 5]
    # without test/: a fixed stratified fifth of train/ is the test split
    shutil.rmtree(root / "test")
    data, _ = _load(root, tmp_path / "cache", val_size=999)
    assert (len(data.train_y), len(data.val_y), len(data.test_y)) == (48, 15, 12)


def test_default_image_size_by_size_class() -> None:
    assert default_image_size(np.array([28, 28, 36, 48])) == 32
    assert default_image_size(np.array([32, 64, 500, 600])) == 64


def test_stratified_split_keeps_class_proportions() -> None:
    labels = np.repeat([0, 1, 2], [100, 50, 10])
    picked, rest = stratified_split(labels, count=32, rng=np.random.default_rng(0))
    assert np.bincount(labels[picked]).tolist() == [20, 10, 2]
    assert len(np.intersect1d(picked, rest)) == 0 and len(picked) + len(rest) == len(labels)
    picked, _ = stratified_split(labels, count=7, rng=np.random.default_rng(1))
    assert len(picked) == 7 and np.bincount(labels[picked], minlength=3).tolist() == [4, 2, 1]


@pytest.mark.parametrize(("make", "expect"), [
    (lambda root: root.mkdir(), "has no class folders"),
    (lambda root: (root / "cats").mkdir(parents=True), "has one class folder ('cats'"),
    (lambda root: [(root / c).mkdir(parents=True) for c in ("cats", "dogs")], "has no images"),
    (lambda root: None, "is not a folder"),
])
def test_unusable_folders_raise_one_line(tmp_path: Path, make, expect: str) -> None:
    make(tmp_path / "imgs")
    with pytest.raises(DatasetError) as info:
        load_dataset("image_folder", root=tmp_path / "imgs", cache=tmp_path / "cache", val_size=1)
    assert expect in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "cache").exists()


def test_a_corrupt_image_stops_the_load_naming_it(tmp_path: Path, fashion_pngs) -> None:
    files = fashion_pngs(tmp_path / "imgs", per_class=5, classes=2)
    files[3].write_bytes(files[3].read_bytes()[:60])  # truncated PNG: the header reads, decoding fails
    with pytest.raises(DatasetError, match=f"cannot read image {files[3]}"):
        load_dataset("image_folder", root=tmp_path / "imgs", cache=tmp_path / "cache", val_size=2)
    assert not list((tmp_path / "cache").rglob("*.pt"))


def test_image_folder_needs_a_root() -> None:
    with pytest.raises(DatasetError, match="needs data.root=DIR"):
        load_dataset("image_folder", val_size=1)


# ---------------------------------------------------------------- SVHN and STL-10 (small files in their formats)

def test_svhn_reads_its_mat_files_and_maps_label_10_to_0(tmp_path: Path) -> None:
    import scipy.io

    rng = np.random.default_rng(0)
    for split, n in (("train", 40), ("test", 12)):
        x = rng.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)  # H×W×C×N, as the official files
        y = np.arange(n).reshape(n, 1) % 10 + 1  # 1..10; 10 is the digit 0
        scipy.io.savemat(tmp_path / f"{split}_32x32.mat", {"X": x, "y": y})
    data = load_dataset("svhn", root=tmp_path, val_size=10, seed=0, test=True)
    assert data.image_shape == (3, 32, 32) and data.num_classes == 10 and not data.flip
    assert sorted(torch.cat([data.train_y, data.val_y]).tolist()) == sorted(np.arange(40) % 10 + 1 - 10 * (np.arange(40) % 10 == 9))
    assert data.test_y.tolist()[:10] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0]
    x = scipy.io.loadmat(tmp_path / "test_32x32.mat")["X"]
    assert torch.equal(data.test_x[3], torch.from_numpy(x[..., 3].transpose(2, 0, 1).copy()))
    # python -m trials DATASET ROOT: the same files, one line, exit 0; a missing dataset is one error line, exit 2
    from trials.__main__ import main

    assert main(["svhn", str(tmp_path)]) == 0
    assert main(["svhn", str(tmp_path / "empty")]) == 2 and main(["imagenet"]) == 2


def test_stl10_reads_its_binaries_and_resizes_on_request(tmp_path: Path) -> None:
    folder = tmp_path / "stl10_binary"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for split, n in (("train", 30), ("test", 10)):
        images = rng.integers(0, 256, size=(n, 3, 96, 96), dtype=np.uint8)
        images.transpose(0, 1, 3, 2).tofile(folder / f"{split}_X.bin")  # column-major per channel, as shipped
        (np.arange(n) % 10 + 1).astype(np.uint8).tofile(folder / f"{split}_y.bin")
        if split == "test":
            expected = images
    data = load_dataset("stl10", root=tmp_path, val_size=5, test=True)
    assert data.image_shape == (3, 96, 96) and data.classes[0] == "airplane" and data.crop_padding == 12
    assert torch.equal(data.test_x, torch.from_numpy(expected)) and data.test_y.tolist() == list(range(10))
    small = load_dataset("stl10", root=tmp_path, val_size=5, test=True, image_size=32)
    assert small.image_shape == (3, 32, 32) and small.test_x.shape == (10, 3, 32, 32) and small.crop_padding == 4
    # antialiased: the small image's mean is the big one's
    assert abs(small.test_x.float().mean() - data.test_x.float().mean()) < 1.0


@pytest.mark.parametrize(("name", "missing"), [("svhn", "train_32x32.mat"), ("stl10", "stl10_binary/train_X.bin")])
def test_svhn_and_stl10_missing_say_how_to_get_them(tmp_path: Path, name: str, missing: str) -> None:
    with pytest.raises(DatasetMissingError) as info:
        load_dataset(name, root=tmp_path, download=False)
    message = str(info.value)
    assert "\n" not in message and f"dataset {name!r} not found under {tmp_path}" in message
    assert missing in message and "data.download=true" in message and "data.root=DIR" in message


def test_fashion_mnist_is_looked_for_in_the_cache_after_the_debian_folder(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the Debian files, the torchvision layout under data.cache (where a download puts it) is found."""
    spec = DATASETS["fashion_mnist"]
    debian = Path(spec.default_root)
    if not (debian / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("Fashion-MNIST not installed (dataset-fashion-mnist)")
    monkeypatch.setitem(DATASETS, "fashion_mnist", dataclasses.replace(spec, system_root=str(tmp_path / "no-debian")))
    with pytest.raises(DatasetMissingError) as info:  # neither folder has it, no download
        load_dataset("fashion_mnist", cache=tmp_path / "cache", download=False)
    assert f"{tmp_path / 'no-debian'} or {tmp_path / 'cache'}" in str(info.value)
    raw = tmp_path / "cache" / "FashionMNIST" / "raw"  # where torchvision's download puts the files
    raw.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        (raw / name).symlink_to(debian / name)
    data = load_dataset("fashion_mnist", cache=tmp_path / "cache", train_size=10, val_size=10)
    assert data.image_shape == (1, 28, 28) and data.num_classes == 10
