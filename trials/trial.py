"""`run_trial`: one architecture -> measured latency/params/FLOPs, then per-epoch metrics, as a `TrialResult`.

Plain functions only (no Ray, no MLflow): the search layer passes a `report` callback that forwards each result
to its tracker and may raise to stop the trial early.
"""

from __future__ import annotations

import dataclasses
import os
import random
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from trials.constraints import Constraints
from trials.data import TensorData
from trials.probe import ProbeConfig, count_flops_g, count_params_m, device_info, measure_latency
from trials.slot import ProbeSlot
from trials.tasks import trial_task
from trials.train import EpochTask, TrainConfig, train_epochs


@dataclass(frozen=True)
class TrialResult:
    """What a trial has measured so far: after the probe, after each epoch, and at the end (`run_trial` returns it)."""

    metrics: dict[str, float]  # floats only (Ray/MLflow metrics): the probe's, then epoch, train_loss, val_acc, ...
    device_info: dict[str, str | int]  # `trials.device_info` of the probe: strings/ints to log as params, not metrics
    rejection: str | None = None  # why the probe was over a hard budget (`Constraints.reason`); None = not rejected

    @property
    def rejected(self) -> bool:
        """Whether a hard budget rejected the trial before any training step."""
        return self.rejection is not None


ReportFn = Callable[[TrialResult, nn.Module], None]
"""Called after every epoch (once, after the probe, for a rejected trial) with the result so far and the model;
raising stops the trial (and propagates)."""


def resolve_device(device: str) -> torch.device:
    """'auto' -> cuda when available, else cpu; anything else -> torch.device(device)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def run_trial(
    *,
    model: nn.Module,
    data: TensorData,
    train: TrainConfig = TrainConfig(),
    probe: ProbeConfig = ProbeConfig(),
    constraints: Constraints = Constraints(),
    device: str = "auto",
    threads: int | None = None,
    report: ReportFn | None = None,
    reference: nn.Module | None = None,
    probe_lock: str | os.PathLike | None = None,
    task: str = "classify",
) -> TrialResult:
    """Measure, then train `model` on `data` as `train` says, reporting after every epoch.

    Before any training, on the eager model: latency_ms / latency_iqr_ms (batch 1, eval, median of probe.runs,
    ms), latency_b{N}_ms / latency_b{N}_iqr_ms (the same at N = probe.batch, unless it is 0 or 1), both in
    probe.precision and layout; threads (torch intra-op threads, as a float); params_m (millions) and flops_g
    (GFLOPs at batch 1, 2 per multiply-add). Then per epoch: epoch, train_loss, val_acc (0–1), epoch_s; every
    result carries the static metrics too, and `device_info` (`trials.device_info`: device_name, torch_version,
    threads, latency_precision, latency_layout, and cuda_version on CUDA).
    device: "auto" -> "cuda" if available else "cpu"; or any torch device string. threads:
    torch.set_num_threads(threads) for the process (under Ray each trial is its own); None = leave as is.
    reference: a model to time interleaved with `model` (e.g. the same backbone without attention); adds
    latency_rel (and latency_b{N}_rel): `model`'s median latency / the reference's, which repeats far better than
    milliseconds on a machine with other load. Moved to the device; never trained.
    probe_lock: the lock file of the search's exclusive probe slot (`trials.slot.ProbeSlot`; created with its folder
    if missing). The latency probe then holds the slot exclusively, and training holds it shared (paused before every
    step), so while any trial of the search times its model, no other trial that uses the same file trains or
    probes. None (the default): no locking, as for a trial run on its own.
    When the probe is over one of `constraints`, nothing is trained: the static metrics plus epoch 0 and
    rejected 1.0 are reported once and returned, with `rejection` saying why.
    Returns the last epoch's result (or only the static metrics when train.epochs == 0).
    task: a `trials.TRIAL_TASKS` name: "classify" (val_acc) or "segment" (`data` is `MaskData`, `model` outputs
    N×classes×H×W; each epoch reports val_miou and val_pixel_acc in val_acc's place). The probe is the same for both.
    Moves `model` to the device in place (channels_last on CUDA). Raises TrialDiverged on a NaN/inf loss
    and lets whatever `report` raises propagate.
    """
    epochs = trial_task(task).epochs  # before any work: an unknown task is a one-line ValueError
    if threads is not None:
        torch.set_num_threads(threads)  # process-wide; under Ray each trial is its own process
    torch.manual_seed(train.seed)
    np.random.seed(train.seed)
    random.seed(train.seed)

    device = resolve_device(device)
    model.to(device)
    on_cuda = device.type == "cuda"
    if on_cuda:
        model.to(memory_format=torch.channels_last)  # the layout training uses, so latency matches it
        torch.backends.cudnn.benchmark = True  # as in training; set before timing so every trial is timed alike
        probe = dataclasses.replace(probe, channels_last=True)  # the layout it is timed in, as device_info says
    data = data.to(device)
    if reference is not None:
        reference.to(device)
        if on_cuda:
            reference.to(memory_format=torch.channels_last)

    with ProbeSlot(probe_lock, device=device) as slot:
        return _measure_and_train(model=model, data=data, train=train, probe=probe, constraints=constraints,
                                  device=device, report=report, reference=reference, slot=slot, epochs=epochs)


def _measure_and_train(*, model: nn.Module, data: TensorData, train: TrainConfig, probe: ProbeConfig,
                       constraints: Constraints, device: torch.device, report: ReportFn | None,
                       reference: nn.Module | None, slot: ProbeSlot, epochs: EpochTask) -> TrialResult:
    """`run_trial` once the model, the reference and the data are on `device`."""
    input_shape = data.image_shape
    metrics: dict[str, float] = {}
    with slot.exclusive():  # no other trial of the search computes while we time (a no-op without a lock file)
        for batch_size in probe.batch_sizes:
            metrics.update(measure_latency(model, probe, input_shape=input_shape, device=device,
                                           batch_size=batch_size, reference=reference))
    metrics.update({
        "threads": float(torch.get_num_threads()),
        "params_m": count_params_m(model),
        "flops_g": count_flops_g(model, input_shape=input_shape, device=device),
    })
    result = TrialResult(metrics=metrics, device_info=device_info(device, probe))
    if (rejection := constraints.reason(metrics)) is not None:  # over a hard budget: reject before any training step
        result = dataclasses.replace(result, metrics={**metrics, "epoch": 0.0, "rejected": 1.0}, rejection=rejection)
        if report is not None:
            report(result, model)
        return result

    for epoch_metrics in train_epochs(model, data, train, device=device, slot=slot, task=epochs):
        result = dataclasses.replace(result, metrics={**result.metrics, **epoch_metrics})
        if report is not None:
            report(result, model)
    return result
