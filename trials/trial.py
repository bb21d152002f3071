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

from trials.constraints import Constraints
from trials.data import TensorData
from trials.probe import check_precision, count_flops_g, count_params_m, device_info, measure_latency
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
    latency_batch: int = 32  # images per pass of the throughput latency latency_b{N}_ms; 0 (or 1) = not measured
    latency_precision: str = "fp32"  # "fp32" | "bf16" | "fp16" (trials.probe.PRECISIONS): deployment precision
    latency_channels_last: bool = False  # time NHWC on CPU too (on CUDA the model is NHWC already, as in training)
    compile: bool = False  # torch.compile the training forward (latency is always timed on the eager model)
    constraints: Constraints = Constraints()  # hard budgets: over one, the trial is rejected before training
    threads: int | None = None  # torch.set_num_threads(threads) for the trial's process; None = leave as is
    device: str = "auto"  # "auto" -> "cuda" if available else "cpu"; or any torch device string
    seed: int = 0  # torch/numpy/random seeds, batch order, augmentation

    def __post_init__(self) -> None:
        check_precision(self.latency_precision)  # one-line ValueError naming the valid precisions
        if self.latency_batch < 0:
            raise ValueError(f"latency_batch={self.latency_batch} must be >= 0 (0 = no throughput latency)")


def resolve_device(device: str) -> torch.device:
    """'auto' -> cuda when available, else cpu; anything else -> torch.device(device)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def run_trial(
    *,
    model: nn.Module,
    data: TensorData,
    budget: TrialBudget,
    report: ReportFn | None = None,
    info: dict[str, str | int] | None = None,
    reference: nn.Module | None = None,
) -> dict[str, float]:
    """Measure, then train `model` on `data` within `budget`, reporting after every epoch.

    Before any training, on the eager model: latency_ms / latency_iqr_ms (batch 1, eval, median of
    budget.latency_runs, ms), latency_b{N}_ms / latency_b{N}_iqr_ms (the same at N = budget.latency_batch,
    unless it is 0 or 1), both in budget.latency_precision and layout; threads (torch intra-op threads, as a float);
    params_m (millions) and flops_g (GFLOPs at batch 1, 2 per multiply-add). Then per epoch: epoch,
    train_loss, val_acc (0–1), epoch_s; every report carries the static metrics too.
    info: a dict that, when given, is filled in place before training with `trials.probe.device_info` (device_name,
    torch_version, threads, latency_precision, latency_layout, and cuda_version on CUDA): strings/ints to log as
    params, kept out of the float metrics.
    reference: a model to time interleaved with `model` (e.g. the same backbone without attention); adds
    latency_rel (and latency_b{N}_rel): `model`'s median latency / the reference's, which repeats far better than
    milliseconds on a machine with other load. Moved to the device; never trained.
    When the probe is over one of budget.constraints, nothing is trained: the static metrics plus epoch 0 and
    rejected 1.0 are reported once and returned (``budget.constraints.reason(metrics)`` says why).
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
    on_cuda = device.type == "cuda"
    if on_cuda:
        model.to(memory_format=torch.channels_last)  # the layout training uses, so latency matches it
        torch.backends.cudnn.benchmark = True  # as in training; set before timing so every trial is timed alike
    data = data.to(device)
    if reference is not None:
        reference.to(device)
        if on_cuda:
            reference.to(memory_format=torch.channels_last)

    input_shape = data.image_shape
    channels_last = budget.latency_channels_last or on_cuda
    metrics: dict[str, float] = {}
    for batch_size in [1] + ([budget.latency_batch] if budget.latency_batch > 1 else []):
        metrics.update(measure_latency(
            model, input_shape=input_shape, device=device, batch_size=batch_size, warmup=budget.latency_warmup,
            runs=budget.latency_runs, precision=budget.latency_precision, channels_last=channels_last,
            reference=reference,
        ))
    metrics.update({
        "threads": float(torch.get_num_threads()),
        "params_m": count_params_m(model),
        "flops_g": count_flops_g(model, input_shape=input_shape, device=device),
    })
    if info is not None:
        info.update(device_info(device, precision=budget.latency_precision, channels_last=channels_last))
    if budget.constraints.reason(metrics) is not None:  # over a hard budget: reject before any training step
        metrics.update({"epoch": 0.0, "rejected": 1.0})
        if report is not None:
            report(dict(metrics), model)
        return metrics

    for epoch_metrics in train_epochs(
        model, data, epochs=budget.epochs, batch_size=budget.batch_size, lr=budget.lr,
        weight_decay=budget.weight_decay, label_smoothing=budget.label_smoothing,
        seed=budget.seed, device=device, compile=budget.compile,
    ):
        metrics = {**metrics, **epoch_metrics}
        if report is not None:
            report(dict(metrics), model)
    return metrics
