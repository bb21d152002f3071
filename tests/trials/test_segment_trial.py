"""The segment task at trial level: mIoU / pixel accuracy definitions, and one tiny run_trial on fashion_scenes."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from backbones import build
from trials import (DATASETS, TRIAL_TASKS, ProbeConfig, TrainConfig, evaluate_segmentation, load_segmentation,
                    run_trial, trial_task)
from trials.segment_train import confusion_matrix, draw_with_masks, scores


def test_miou_over_present_classes_and_pixel_accuracy() -> None:
    target = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1]])
    pred = torch.tensor([[0, 0, 1, 0], [0, 0, 1, 2]])
    result = scores(confusion_matrix(pred, target, num_classes=4))
    # class 0: TP 4, FP 1, FN 0 -> 0.8; class 1: TP 2, FN 2 -> 0.5; class 2: FP 1 -> 0; class 3: absent, left out
    assert result["miou"] == pytest.approx((0.8 + 0.5 + 0.0) / 3)
    assert result["pixel_acc"] == pytest.approx(6 / 8)
    assert scores(confusion_matrix(target, target, num_classes=4)) == {"miou": 1.0, "pixel_acc": 1.0}


def test_masks_ride_along_with_the_crop_and_flip() -> None:
    from trials import MaskData

    images = torch.arange(2 * 8 * 8, dtype=torch.uint8).reshape(2, 1, 8, 8)
    masks = (images[:, 0] % 7).to(torch.uint8)
    data = MaskData(name="t", train_x=images, train_y=masks, val_x=images, val_y=masks, num_classes=7, in_chans=1,
                    mean=(0.5,), std=(0.5,), crop_padding=2, flip=True)
    x, y = draw_with_masks(data, torch.tensor([0, 1]), torch.Generator().manual_seed(0))
    assert y.dtype == torch.int64 and y.shape == (2, 8, 8)
    inside = x[:, 0] > 0  # the crop's zero padding is background in the mask too
    assert torch.equal(y[inside], (x[:, 0][inside] % 7).long()) and (y[~inside & (x[:, 0] == 0)] == 0).all()


def test_task_registry() -> None:
    assert TRIAL_TASKS["segment"].metric == "val_miou" and TRIAL_TASKS["classify"].metric == "val_acc"
    assert "fashion_scenes" in TRIAL_TASKS["segment"].datasets and "fashion_mnist" in TRIAL_TASKS["classify"].datasets
    with pytest.raises(ValueError, match="unknown task 'detect'; valid tasks: classify, segment"):
        trial_task("detect")


def test_tiny_segmentation_trial_reports_miou(tmp_path: Path) -> None:
    if not Path(DATASETS["fashion_mnist"].default_root).is_dir():
        pytest.skip("Fashion-MNIST not installed (dataset-fashion-mnist)")
    data = load_segmentation("fashion_scenes", train_size=256, val_size=64, test=True, test_size=32, cache=tmp_path)
    arch = {"backbone": "resnet10t", "backbone_kwargs": {"channels": [16, 32, 64, 128], "stem_width": 8},
            "in_chans": 1, "num_classes": data.num_classes, "small_input": False, "task": "segment",
            "stages": [{"attn": "se", "reduction": 4}] + [{"attn": "none"}] * 3,
            "decoder": [{"attn": "scse", "reduction": 4}] + [{"attn": "none"}] * 3, "skips": ["gate", "none", "none"]}
    torch.manual_seed(0)
    model = build(arch)
    reports = []
    result = run_trial(model=model, data=data, train=TrainConfig(epochs=1, batch_size=32), device="cpu",
                       probe=ProbeConfig(runs=3, warmup=1, batch=0), task="segment",
                       report=lambda r, m: reports.append(r.metrics))
    metrics = result.metrics
    assert len(reports) == 1 and metrics["epoch"] == 1
    for key in ("val_miou", "val_pixel_acc", "latency_ms", "params_m", "flops_g", "train_loss", "epoch_s"):
        assert key in metrics, key
    assert "val_acc" not in metrics and 0.0 < metrics["val_miou"] <= 1.0 and 0.5 < metrics["val_pixel_acc"] <= 1.0
    test = evaluate_segmentation(model, data, device=torch.device("cpu"), split="test")
    assert set(test) == {"miou", "pixel_acc"}


def test_classification_run_trial_is_unchanged_by_the_task_hook(tiny_cnn) -> None:
    from trials.data import make_synthetic, TensorData

    x, y = make_synthetic(size=96, seed=0)
    data = TensorData(name="s", train_x=torch.from_numpy(x[:64]), train_y=torch.from_numpy(y[:64]),
                      val_x=torch.from_numpy(x[64:]), val_y=torch.from_numpy(y[64:]), num_classes=10, in_chans=1,
                      mean=(0.5,), std=(0.3,), crop_padding=2, flip=False)
    runs = []
    for kw in ({}, {"task": "classify"}):
        torch.manual_seed(0)
        runs.append(run_trial(model=tiny_cnn(), data=data, train=TrainConfig(epochs=1, batch_size=32), device="cpu",
                              probe=ProbeConfig(runs=1, warmup=0, batch=0), **kw).metrics)
    assert runs[0]["val_acc"] == runs[1]["val_acc"] and "val_miou" not in runs[0]
