"""`run_trial`: one architecture, one budget -> measured latency/params/FLOPs, then per-epoch metrics.

Plain functions only (no Ray, no MLflow): the search layer passes a `report` callback that forwards the
metrics to its tracker and may raise to stop the trial early.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from trials.data import TensorData
from trials.probe import count_flops_g, count_params_m, measure_latency
from trials.train import train_epochs

ReportFn = Callable[[dict[str, float], nn.Module], None]
"""Called after every epoch with the metrics so far and the model; raising stops the trial (and propagates)."""


@dataclass
class TrialBudget:
    """How much compute a trial gets and the optimiser settings it trains with."""

    epochs: int = 3  # passes over the training split; the LR schedule spans all of them
    batch_size: int = 128  # images per SGD step
    lr: float = 0.05  # peak LR of SGD+Nesterov at 20% of the steps (linear warm-up, linear decay to 0); on
    # resnet10t/Fashion-MNIST, 3 epochs: same final val_acc as 0.2 (0.786 vs 0.783), much better epoch 1 (ASHA)
    weight_decay: float = 5e-4  # L2 on conv/linear weights (not BN/bias), per unit lr
    label_smoothing: float = 0.1  # cross-entropy target smoothing (0–1); helps short schedules
    latency_runs: int = 30  # timed forward passes; latency_ms is their median
    latency_warmup: int = 10  # untimed forward passes first (allocator, cudnn autotune, caches)
    threads: int | None = None  # torch.set_num_threads(threads) for the trial's process; None = leave as is
    device: str = "auto"  # "auto" -> "cuda" if available else "cpu"; or any torch device string
    seed: int = 0  # torch/numpy/random seeds, batch order, augmentation


def resolve_device(device: str) -> torch.device:
    """'auto' -> cuda when available, else cpu; anything else -> torch.device(device)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def run_trial(
    *, model: nn.Module, data: TensorData, budget: TrialBudget, report: ReportFn | None = None
) -> dict[str, float]:
    """Measure, then train `model` on `data` within `budget`, reporting after every epoch.

    Before any training: latency_ms / latency_iqr_ms (batch 1, eval, median of budget.latency_runs),
    params_m (millions) and flops_g (GFLOPs at batch 1, 2 per multiply-add). Then per epoch:
    epoch, train_loss, val_acc (0–1), epoch_s; every report carries the static metrics too.
    Returns the last epoch's metrics (or only the static ones when budget.epochs == 0).
    Moves `model` to the device in place (channels_last on CUDA). Raises TrialDiverged on a NaN/inf loss
    and lets whatever `report` raises propagate.
    """
    if budget.threads is not None:
        torch.set_num_threads(budget.threads)  # process-wide; under Ray each trial is its own process
    torch.manual_seed(budget.seed)
    np.random.seed(budget.seed)
    random.seed(budget.seed)

    device = resolve_device(budget.device)
    model.to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)  # the layout training uses, so latency matches it
    data = data.to(device)

    input_shape = data.image_shape
    metrics: dict[str, float] = {
        **measure_latency(model, input_shape=input_shape, device=device,
                          warmup=budget.latency_warmup, runs=budget.latency_runs),
        "params_m": count_params_m(model),
        "flops_g": count_flops_g(model, input_shape=input_shape, device=device),
    }

    for epoch_metrics in train_epochs(
        model, data, epochs=budget.epochs, batch_size=budget.batch_size, lr=budget.lr,
        weight_decay=budget.weight_decay, label_smoothing=budget.label_smoothing,
        seed=budget.seed, device=device,
    ):
        metrics = {**metrics, **epoch_metrics}
        if report is not None:
            report(dict(metrics), model)
    return metrics
