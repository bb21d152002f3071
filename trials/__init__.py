"""Trials: data on the device, the training loop, the latency probe, and `run_trial` that ties them.

Plain functions only; no Ray or MLflow imports (the search layer wraps these).
"""

from trials.constraints import Constraints
from trials.data import DATASETS, DatasetMissingError, TensorData, load_dataset
from trials.probe import PRECISIONS, device_info, measure_latency
from trials.train import TrialDiverged
from trials.trial import TrialBudget, run_trial

__all__ = [
    "Constraints",
    "DATASETS",
    "DatasetMissingError",
    "PRECISIONS",
    "TensorData",
    "TrialBudget",
    "TrialDiverged",
    "device_info",
    "load_dataset",
    "measure_latency",
    "run_trial",
]
