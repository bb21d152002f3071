"""What the driver measures on this host before any trial trains, and every trial then uses: the plain backbone's
batch-1 latency alone (the scale of latency_norm_ms) and, with ``train.precision=auto`` on a CPU, the training
arithmetic (:func:`trials.speed.choose_precision`). Both are kept on the parent run, so a resumed search uses what the
first command measured."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from backbones import build
from search.execution.alone import measure_alone
from search.log import tell
from search.outcomes import REFERENCE_LATENCY_TAG, TRAIN_PRECISION_TAG, TRAIN_SPEED_TAG
from search.settings.plan import AUTO, SearchPlan, TrialSettings
from spaces import PLAIN_CONTROL
from trials import TrainConfig
from trials.augment import normalize
from trials.speed import CANDIDATES, choose_precision

Remember = Callable[[str, Callable[[], str]], tuple[str, bool]]  # SearchRun.remember: (tag, compute) -> (text, new)


def calibrate(plan: SearchPlan, *, remember: Remember) -> TrialSettings:
    """The plan's trial settings with the reference latency and the training precision filled in."""
    return dataclasses.replace(plan.trial_settings, train=_train_config(plan, remember),
                               reference_latency_ms=_reference_latency(plan, remember))


def _reference_latency(plan: SearchPlan, remember: Remember) -> float | None:
    if not plan.calibration.latency_reference:
        return None
    text, measured = remember(REFERENCE_LATENCY_TAG, lambda: repr(measure_alone(
        {PLAIN_CONTROL: plan.base_arch.plain()}, probe=plan.trial_settings.probe, input_shape=plan.data.image_shape,
        device=plan.hardware, threads=plan.budget.cpu_per_trial)[PLAIN_CONTROL]))
    ms = float(text)
    if measured:
        ranks = ("the search ranks" if plan.trial_settings.latency_predictor is None
                 else "the trials log (the search ranks the latency table's prediction)")
        tell(f"Plain backbone alone: {ms:.3f} ms at batch 1; {ranks} latency_norm_ms = latency_rel x {ms:.3f}")
    return ms


def _train_config(plan: SearchPlan, remember: Remember) -> TrainConfig:
    train = plan.trial_settings.train
    if plan.calibration.train_precision != AUTO or plan.hardware == "cuda":  # given, or CUDA (always bf16 autocast)
        return train
    speed = {}

    def measure() -> str:
        torch.set_num_threads(plan.budget.cpu_per_trial)
        torch.manual_seed(0)
        batch = min(train.batch_size, len(plan.data.train_y))
        images = normalize(plan.data.train_x[:batch], mean=plan.data.mean, std=plan.data.std)
        # labels as the loss takes them: class indices int64 (a segmentation task's uint8 masks too)
        choice = choose_precision(build(plan.base_arch.plain()), images=images,
                                  labels=plan.data.train_y[:batch].long())
        speed["line"] = choice.describe()
        return choice.label

    label, measured = remember(TRAIN_PRECISION_TAG, measure)
    if measured:
        remember(TRAIN_SPEED_TAG, lambda: speed["line"])
        tell(f"Training arithmetic (train.precision=auto, measured on the plain backbone): {speed['line']}")
    precision, channels_last = CANDIDATES[label]
    return dataclasses.replace(train, precision=precision, channels_last=channels_last)
