"""Trials: data on the device, the training loop, the latency probe, and `run_trial` that ties them.

Plain functions only; no Ray or MLflow imports (the search layer wraps these).
"""

from trials.constraints import Constraints
from trials.data import DATASETS, DEFAULT_CACHE_ROOT, TensorData, load_dataset
from trials.dataset_source import DatasetError, DatasetMissingError
from trials.probe import PRECISIONS, PROBE_MINIMUMS, ProbeConfig, device_info, measure_latency
from trials.runtime import RUNTIMES
from trials.slot import ProbeSlot
from trials.train import TRAIN_PRECISIONS, TrainConfig, TrialDiverged, evaluate
from trials.trial import ReportFn, TrialResult, resolve_device, run_trial
from trials.segment_data import SEGMENTATION_DATASETS, MaskData, load_segmentation
from trials.segment_train import evaluate_segmentation
from trials.tasks import TRIAL_TASKS, TrialTask, trial_task

__all__ = [
    "Constraints",
    "DATASETS",
    "DEFAULT_CACHE_ROOT",
    "DatasetError",
    "DatasetMissingError",
    "PRECISIONS",
    "PROBE_MINIMUMS",
    "ProbeConfig",
    "ProbeSlot",
    "RUNTIMES",
    "ReportFn",
    "TRAIN_PRECISIONS",
    "TensorData",
    "TrainConfig",
    "TRIAL_TASKS",
    "TrialDiverged",
    "TrialResult",
    "TrialTask",
    "MaskData",
    "SEGMENTATION_DATASETS",
    "device_info",
    "evaluate",
    "evaluate_segmentation",
    "load_dataset",
    "load_segmentation",
    "trial_task",
    "measure_latency",
    "resolve_device",
    "run_trial",
]
