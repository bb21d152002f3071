import time
from pathlib import Path

import pytest
import torch

from trials import DATASETS, DatasetMissingError, load_dataset

FASHION_ROOT = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(not (FASHION_ROOT / "train-images-idx3-ubyte.gz").is_file(), reason="dataset-fashion-mnist not installed")
def test_fashion_mnist_loads_from_idx_files():
    data = load_dataset("fashion_mnist", train_size=3000, val_size=1000, seed=0)
    assert data.train_x.shape == (3000, 1, 28, 28) and data.train_x.dtype == torch.uint8
    assert data.val_x.shape == (1000, 1, 28, 28) and data.val_y.dtype == torch.int64
    assert int(data.train_y.min()) == 0 and int(data.train_y.max()) == 9
    assert data.num_classes == 10 and data.in_chans == 1 and data.image_shape == (1, 28, 28)
    assert data.flip and data.crop_padding == 2
    # mean of the real pixels is close to the registered normalisation mean
    assert abs(data.train_x.float().mean().item() / 255 - data.mean[0]) < 0.02


@pytest.mark.skipif(not (FASHION_ROOT / "train-images-idx3-ubyte.gz").is_file(), reason="dataset-fashion-mnist not installed")
def test_fashion_mnist_split_is_seeded_and_disjoint():
    full = load_dataset("fashion_mnist", val_size=5000, seed=3)
    assert len(full.train_y) + len(full.val_y) == 60000
    again = load_dataset("fashion_mnist", val_size=5000, seed=3)
    assert torch.equal(full.val_x, again.val_x)


def test_missing_root_raises_one_line_error_naming_the_path(tmp_path):
    bad = tmp_path / "nowhere"
    with pytest.raises(DatasetMissingError) as info:
        load_dataset("fashion_mnist", root=str(bad))
    message = str(info.value)
    assert "\n" not in message and str(bad) in message and "fashion_mnist" in message
    assert "dataset-fashion-mnist" in message and "data.root=" in message


def test_cifar10_missing_raises_quickly(tmp_path):
    start = time.perf_counter()
    with pytest.raises(DatasetMissingError) as info:
        load_dataset("cifar10", root=str(tmp_path), download=False)
    assert time.perf_counter() - start < 5
    message = str(info.value)
    assert "\n" not in message and str(tmp_path) in message and "cifar-10-batches-py" in message


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(ValueError, match="cifar10"):
        load_dataset("imagenet")


def test_synthetic_is_seeded_and_moves_to_device():
    a = load_dataset("synthetic", train_size=100, val_size=50, seed=1)
    b = load_dataset("synthetic", train_size=100, val_size=50, seed=1)
    assert torch.equal(a.train_x, b.train_x) and a.train_x.shape == (100, 1, 16, 16)
    assert set(DATASETS) >= {"fashion_mnist", "cifar10", "cifar100", "synthetic"}
    moved = a.to("cpu")
    assert moved.train_x.device.type == "cpu"


# ---------------------------------------------------------------- the official test split (load_dataset(test=True))

@pytest.mark.skipif(not (FASHION_ROOT / "t10k-images-idx3-ubyte.gz").is_file(), reason="dataset-fashion-mnist not installed")
def test_fashion_mnist_test_split_is_the_official_t10k():
    data = load_dataset("fashion_mnist", train_size=3000, val_size=1000, seed=0, test=True)
    assert data.test_x.shape == (10_000, 1, 28, 28) and data.test_x.dtype == torch.uint8
    assert data.test_y.shape == (10_000,) and data.test_y.dtype == torch.int64
    assert set(data.test_y.tolist()) == set(range(10)) and data.num_classes == 10
    assert torch.bincount(data.test_y).tolist() == [1000] * 10  # t10k is balanced: 1,000 images per class
    # the same normalisation as train/val applies: the registered mean fits the test pixels too
    assert abs(data.test_x.float().mean().item() / 255 - data.mean[0]) < 0.02
    # the test images are not the training images: none of them occurs byte-for-byte in the 60,000 train images
    full = load_dataset("fashion_mnist", val_size=5000, seed=0)
    seen = {bytes(image) for image in torch.cat([full.train_x, full.val_x]).flatten(1).numpy()}
    repeated = sum(bytes(image) in seen for image in data.test_x.flatten(1).numpy())
    assert repeated == 0, f"{repeated} of 10,000 test images also occur in the train split"
    # independent of the seed and sizes of the train/val split
    other = load_dataset("fashion_mnist", train_size=100, val_size=100, seed=7, test=True)
    assert torch.equal(other.test_x, data.test_x) and torch.equal(other.test_y, data.test_y)


def test_test_split_is_absent_unless_asked_for():
    data = load_dataset("synthetic", train_size=100, val_size=50, seed=0)
    assert data.test_x is None and data.test_y is None
    assert data.to("meta").test_x is None


def test_synthetic_test_split_is_fixed_generated_apart_and_moves_to_device():
    a = load_dataset("synthetic", train_size=200, val_size=50, seed=0, test=True)
    b = load_dataset("synthetic", train_size=100, val_size=20, seed=5, test=True)
    assert a.test_x.shape == (2000, 1, 16, 16) and a.test_x.dtype == torch.uint8 and a.test_y.dtype == torch.int64
    assert int(a.test_y.min()) >= 0 and int(a.test_y.max()) < a.num_classes
    assert torch.equal(a.test_x, b.test_x) and torch.equal(a.test_y, b.test_y)  # fixed, like an official split
    # generated from another stream than any train split: no test image is a train/val image of seed 0 or 5
    train = {bytes(x) for d in (a, b) for x in torch.cat([d.train_x, d.val_x]).flatten(1).numpy()}
    assert not any(bytes(x) in train for x in a.test_x.flatten(1).numpy())
    # same pixel statistics as train, so the registered normalisation applies to it unchanged
    assert abs(a.test_x.float().mean().item() - a.train_x.float().mean().item()) / 255 < 0.02
    moved = a.to("meta")  # every tensor travels, the test split included
    assert {t.device.type for t in (moved.train_x, moved.val_y, moved.test_x, moved.test_y)} == {"meta"}
    assert moved.test_x.shape == a.test_x.shape


def test_test_size_is_one_fixed_stratified_subset_of_the_test_split():
    full = load_dataset("synthetic", train_size=100, val_size=20, seed=0, test=True)
    a = load_dataset("synthetic", train_size=100, val_size=20, seed=0, test=True, test_size=500)
    b = load_dataset("synthetic", train_size=200, val_size=50, seed=7, test=True, test_size=500)
    assert a.test_x.shape == (500, 1, 16, 16) and torch.equal(a.test_x, b.test_x)  # no seed or size reaches it
    rows = {bytes(x) for x in full.test_x.flatten(1).numpy()}
    assert all(bytes(x) in rows for x in a.test_x.flatten(1).numpy())  # a subset of the split, not new images
    share = torch.bincount(a.test_y, minlength=a.num_classes) / 500
    assert torch.allclose(share, torch.bincount(full.test_y, minlength=a.num_classes) / len(full.test_y), atol=0.003)
    with pytest.raises(ValueError, match=r"test_size=2001 must be in 1\.\.2000"):
        load_dataset("synthetic", train_size=100, val_size=20, test=True, test_size=2001)


def test_missing_test_files_raise_one_line_error_naming_them(tmp_path):
    for stem in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        if not (FASHION_ROOT / stem).is_file():
            pytest.skip("dataset-fashion-mnist not installed")
        (tmp_path / stem).symlink_to(FASHION_ROOT / stem)
    assert load_dataset("fashion_mnist", root=str(tmp_path), train_size=10, val_size=10).test_x is None
    with pytest.raises(DatasetMissingError) as info:
        load_dataset("fashion_mnist", root=str(tmp_path), train_size=10, val_size=10, test=True)
    message = str(info.value)
    assert "\n" not in message and "t10k-images-idx3-ubyte.gz" in message and str(tmp_path) in message


def test_cifar10_test_split_missing_raises_quickly(tmp_path):
    start = time.perf_counter()
    with pytest.raises(DatasetMissingError) as info:
        load_dataset("cifar10", root=str(tmp_path), download=False, test=True)
    assert time.perf_counter() - start < 5
    assert "\n" not in str(info.value) and "cifar-10-batches-py" in str(info.value)


def test_evaluate_reads_the_test_split_with_the_same_normalisation():
    import dataclasses

    from torch import nn

    from trials.train import evaluate

    data = load_dataset("synthetic", train_size=100, val_size=300, seed=0)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16 * 16, data.num_classes))
    cpu = torch.device("cpu")
    with pytest.raises(ValueError, match="test=True"):
        evaluate(model, data, device=cpu, split="test")
    # the test split holding the very images of the val split scores exactly the same: same normalisation, same path
    mirrored = dataclasses.replace(data, test_x=data.val_x.clone(), test_y=data.val_y.clone())
    assert evaluate(model, mirrored, device=cpu, split="test") == evaluate(model, mirrored, device=cpu)
    with pytest.raises(ValueError, match="split="):
        evaluate(model, data, device=cpu, split="train")
