"""Trial tasks: what a trial trains for and scores, one registry entry per task (keyed as ``backbones``'
ArchConfig ``task``), so a caller asks the entry, never ``if task == ...``.

- ``classify``: labels per image; ``val_acc`` (fraction 0–1); data from ``trials.DATASETS`` via ``load_dataset``.
- ``segment``: a class per pixel; ``val_miou`` and ``val_pixel_acc`` (fractions 0–1, ``trials.segment_train``); data
  from ``trials.segment_data.SEGMENTATION_DATASETS`` via ``load_segmentation``.

``run_trial(..., task=NAME)`` trains with the entry's ``epochs`` (``trials.train.EpochTask``); the search's objective
is the entry's ``metric`` (higher is better), and ``metrics`` lists every validation metric an epoch reports.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from trials.data import DATASETS, load_dataset
from trials.segment_data import SEGMENTATION_DATASETS, load_segmentation
from trials.segment_train import SEGMENT, evaluate_segmentation
from trials.train import CLASSIFY, EpochTask, evaluate


@dataclass(frozen=True)
class TrialTask:
    """One task: its training/validation hooks, its metrics, its data sources and their loader, its test scorer."""

    name: str
    epochs: EpochTask  # train_epochs' draw + validate
    metric: str  # the objective the search maximises (an epoch reports it)
    metrics: tuple[str, ...]  # every validation metric an epoch reports
    datasets: Mapping[str, Any]  # name -> spec
    load: Callable[..., Any]  # load(name, *, root, train_size, val_size, seed, test, test_size, ...) -> TensorData
    score: Callable[..., Any]  # score(model, data, *, device, split) -> float (accuracy) or dict (miou, pixel_acc)
    # test(model, data, *, device, precision) -> {"test_acc": ...} or {"test_miou": ..., "test_pixel_acc": ...}: the
    # test split scored under the names the search records (its first key is the test metric of ``metric``)
    test: Callable[..., dict[str, float]]
    # the report shows a few test images with their true and predicted masks (search.summary.reports)
    mask_panel: bool = False


def _test_classify(model: Any, data: Any, **kwargs: Any) -> dict[str, float]:
    return {"test_acc": evaluate(model, data, split="test", **kwargs)}


def _test_segment(model: Any, data: Any, **kwargs: Any) -> dict[str, float]:
    scored = evaluate_segmentation(model, data, split="test", **kwargs)
    return {"test_miou": scored["miou"], "test_pixel_acc": scored["pixel_acc"]}


TRIAL_TASKS: dict[str, TrialTask] = {t.name: t for t in (
    TrialTask("classify", CLASSIFY, metric="val_acc", metrics=("val_acc",), datasets=DATASETS, load=load_dataset,
              score=evaluate, test=_test_classify),
    TrialTask("segment", SEGMENT, metric="val_miou", metrics=("val_miou", "val_pixel_acc"),
              datasets=SEGMENTATION_DATASETS, load=load_segmentation, score=evaluate_segmentation,
              test=_test_segment, mask_panel=True),
)}


def trial_task(name: str) -> TrialTask:
    """The registered task ``name``, else a one-line ValueError naming the choices."""
    if name not in TRIAL_TASKS:
        raise ValueError(f"unknown task {name!r}; valid tasks: {', '.join(TRIAL_TASKS)}")
    return TRIAL_TASKS[name]
