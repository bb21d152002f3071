"""The Ray trainable: one trial of the search (or of the confirmation) as ``trials.run_trial`` with a report to Tune
per epoch and a checkpoint at the last one."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import ray
import torch
from ray import tune
from torch import nn

from backbones import ArchConfig, build
from search.execution.checkpoint import load_metrics, save_checkpoint
from search.outcomes import (EPOCH, LATENCY_MS, LATENCY_OBJECTIVE, LATENCY_REL, LATENCY_TARGET, NODE_ID, PROBE_PREFIX,
                             TRAIN_PREFIX)
from search.settings.plan import TrialSettings
from trials import TRIAL_TASKS, TensorData, TrialResult, run_trial


def assigned_device(requested: str) -> tuple[str, str]:
    """The device this Ray trial trains on and the GPUs Ray gave it, as ``(device, gpu_ids)``.

    With ``requested`` CUDA ("cuda", or "auto" when Ray reserved a GPU), Ray has set ``CUDA_VISIBLE_DEVICES`` of the
    trial's process to the GPU(s) it reserved for it (``budget.gpu_per_trial``; trials sharing a GPU share its id),
    so "cuda" is that GPU; ``gpu_ids`` names it ("0", "0,1"; "" on CPU). A CUDA trial without a reserved GPU would
    crowd a GPU Ray does not account for: that raises, naming the setting.
    """
    gpus = ",".join(str(g) for g in ray.get_gpu_ids())
    if requested == "cpu" or (requested == "auto" and not gpus):
        return "cpu", ""
    if not gpus:
        raise RuntimeError(f"device={requested} but Ray reserved no GPU for this trial: budget.gpu_per_trial must be "
                           f"> 0 and the Ray node must have GPUs")
    return "cuda", gpus


def train_architecture(config: dict[str, Any], *, data: TensorData, settings: TrialSettings,
                       latency_reference: bool = False,
                       build_model: Callable[[ArchConfig], nn.Module] = build) -> None:
    """Ray trainable: build ``config["arch"]``, run the plain trial, report every epoch to Tune.

    ``config`` may also carry ``seed`` (train with this seed instead of the search's; the confirmation phase) and
    ``test: True`` (the last report adds the task's test metrics on the official test split, which ``data`` then
    holds: ``test_acc``, or ``test_miou`` and ``test_pixel_acc``; ``trials.TRIAL_TASKS[arch.task].test``). The
    architecture's task says what is trained and scored (``run_trial(task=...)``).

    The final epoch's report carries a checkpoint (weights + reference input/output + arch + metrics) that the
    MLflow callback uploads and ``search.export`` rebuilds from. With ``latency_reference`` the plain backbone
    (``ArchConfig.plain``) is timed interleaved with the model, which adds ``latency_rel``. When Ray restores a
    trial that already reached that checkpoint (the driver was killed before it recorded the trial as finished),
    the trial is not trained again: its saved final metrics are reported once more with the same checkpoint.
    ``build_model`` is ``backbones.build`` (``search.execution.faults.with_faults`` swaps it to make a trial fail on purpose).
    ``settings.probe_lock`` (set by ``search.plan_check``) makes the latency probe exclusive among the search's trials
    (``run_trial(probe_lock=...)``, ``trials.ProbeSlot``). With ``settings.latency_predictor`` (``latency.table``)
    every report also carries ``latency_target_ms``, the latency predicted for the table's device.
    """
    arch = ArchConfig.from_dict(config["arch"])
    task = TRIAL_TASKS[arch.task]
    train = settings.train if config.get("seed") is None else replace(settings.train, seed=int(config["seed"]))
    epochs = train.epochs
    if (restored := tune.get_checkpoint()) is not None:
        with restored.as_directory() as folder:
            final = load_metrics(folder)
        if final is not None and int(final.get(EPOCH, 0)) >= epochs:
            tune.report(final, checkpoint=restored)
            return
    torch.manual_seed(train.seed)  # the same ArchConfig and seed give the same initial weights
    model = build_model(arch)
    node_id = ray.get_runtime_context().get_node_id()  # the Ray node it trains on (Tune adds node_ip, hostname)
    device, gpu_ids = assigned_device(settings.device)
    # the latency on the table's device, when the search ranks that (devices.Unpriceable fails the trial, one line)
    target = ({} if settings.latency_predictor is None
              else {LATENCY_TARGET: settings.latency_predictor.predict(arch)})

    def report(result: TrialResult, trained: Any) -> None:
        # what the latency was measured on rides along in every report; the MLflow callback logs it as params
        metrics = {**result.metrics, **{f"{PROBE_PREFIX}{k}": v for k, v in result.device_info.items()},
                   f"{TRAIN_PREFIX}precision": train.precision, f"{TRAIN_PREFIX}channels_last": train.channels_last,
                   f"{TRAIN_PREFIX}device": device, **({f"{TRAIN_PREFIX}gpu_ids": gpu_ids} if gpu_ids else {}),
                   NODE_ID: node_id, **target}
        metrics[LATENCY_OBJECTIVE] = (metrics[LATENCY_REL] * settings.reference_latency_ms
                                      if LATENCY_REL in metrics and settings.reference_latency_ms
                                      else metrics[LATENCY_MS])
        if int(metrics[EPOCH]) < epochs:
            tune.report(metrics)
            return
        if config.get("test"):
            metrics.update(task.test(trained, data, device=next(trained.parameters()).device,
                                     precision=train.precision))
        with tempfile.TemporaryDirectory() as folder:
            save_checkpoint(folder, model=trained, arch=arch.to_dict(), input_shape=tuple(data.val_x.shape[1:]),
                            metrics=metrics)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))

    reference = build(arch.plain()) if latency_reference else None
    run_trial(model=model, data=data, train=train, probe=settings.probe, constraints=settings.constraints,
              device=device, threads=settings.threads, report=report, reference=reference,
              probe_lock=settings.probe_lock, task=task.name)
