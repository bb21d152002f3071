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
