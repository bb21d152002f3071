"""Ray Tune callback that writes one nested MLflow run per trial, from the Ray driver.

All MLflow writes happen in the driver process, so trial workers never touch the store: one writer for SQLite, and
a trial that crashes cannot leave its run half-written.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Metric, Param, Run, RunStatus
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from ray.tune import Callback
from ray.tune.result import AUTO_RESULT_KEYS

from backbones import ArchConfig
from search.execution.checkpoint import ARCH, REFERENCE, WEIGHTS
from search.outcomes import (CONTROL_TAG, EPOCH, EPOCHS_RUN_TAG, ERROR_TAG, NODE_ID, NODE_ID_TAG, NODE_IP_TAG,
                             OUTCOME_TAG, PARAM_PREFIXES, REJECTED_BECAUSE_TAG, RESUMED_TAG, ROLE_TAG, SEARCH_TAG,
                             TRIAL_ROLE, TRIAL_TAG, Outcome, trial_outcome)
from search.execution.progress import trial_error_line
from search.tracking.parent import ended_trials, param_value
from trials import Constraints

CHECKPOINT_FILES = (WEIGHTS, REFERENCE)  # uploaded to model/; the ArchConfig goes to the run root at trial start
_NOT_METRICS = set(AUTO_RESULT_KEYS) | {"done", "trial_id", "experiment_tag", "should_checkpoint", "date"}


class MlflowTrialCallback(Callback):
    """Ray Tune callback: a nested MLflow run per trial with its architecture, per-epoch metrics and weights.

    ``on_trial_start`` creates the run (params = the sampled architecture), ``on_trial_result`` logs every epoch's
    metrics with ``step=epoch`` (the first result also tags the Ray node it runs on: ``attnas.node_id``/``node_ip``),
    ``on_trial_complete`` uploads the final checkpoint (weights, reference I/O, arch)
    and tags the outcome (``completed`` when the trial ran ``full_epochs``, else ``early_stopped``), and
    ``on_trial_error`` marks the run FAILED with the error.

    Resuming: ``existing`` are the trial runs of the same search from before a crash (:func:`trial_runs`). A trial
    Ray restores keeps its run (reopened if it was cut off), so no trial ever has two runs; a trial that had
    already finished is re-reported by the trainable from its final checkpoint and its run is not written twice.
    """

    def __init__(self, *, client: mlflow.MlflowClient, experiment: str, parent_run_id: str, search_name: str,
                 full_epochs: int, existing: Mapping[str, Run] | None = None,
                 constraints: Constraints = Constraints(), role: str = TRIAL_ROLE) -> None:
        """``role``: the ``attnas.role`` tag of the runs it writes (``trial`` in the search, ``confirm`` after it)."""
        self.role = role
        self.client = client
        self.experiment = experiment
        self.parent_run_id = parent_run_id
        self.search_name = search_name
        self.full_epochs = full_epochs
        self.constraints = constraints
        self.probed: set[str] = set()  # runs whose probe.* and train.* params are logged
        self.run_ids: dict[str, str] = {}  # Ray trial id -> MLflow run id
        self.open_runs: set[str] = set()  # MLflow runs not yet terminated
        existing = existing or {}
        ended = ended_trials(existing)
        self.run_ids.update({trial_id: run.info.run_id for trial_id, run in existing.items()})
        self.finished_before = {self.run_ids[trial_id] for trial_id in ended}  # never written again
        self.reopen = {trial_id: run_id for trial_id, run_id in self.run_ids.items()
                       if trial_id not in ended}  # cut off by a crash

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if (run_id := self.reopen.pop(trial.trial_id, None)) is not None:  # Ray restarts it; its run goes on
            self.client.update_run(run_id, status=RunStatus.to_string(RunStatus.RUNNING))
            self.client.set_tag(run_id, RESUMED_TAG, "true")
            self.open_runs.add(run_id)
            return
        self._open_run(trial)

    def _open_run(self, trial: Any) -> str:
        """The trial's run id, creating the run (params = the flattened ArchConfig, plus ``arch.json``) if needed."""
        if trial.trial_id in self.run_ids:
            return self.run_ids[trial.trial_id]
        run = self.client.create_run(
            self.experiment,
            run_name=trial.trial_id,
            tags={MLFLOW_PARENT_RUN_ID: self.parent_run_id, ROLE_TAG: self.role, SEARCH_TAG: self.search_name,
                  TRIAL_TAG: trial.trial_id,
                  **({CONTROL_TAG: trial.config["control"]} if trial.config.get("control") else {}),
                  **trial.config.get("tags", {})},
        )
        run_id = run.info.run_id
        self.run_ids[trial.trial_id] = run_id
        self.open_runs.add(run_id)
        params = ArchConfig.from_dict(trial.config["arch"]).params()  # head, s{i}.attn, s{i}.reduction, ...
        if trial.config.get("optuna_trial") is not None:  # the study trial it is (search.study.searcher), by number
            params["optuna_trial"] = str(trial.config["optuna_trial"])
        self.client.log_batch(run_id, params=[Param(k, v) for k, v in sorted(params.items())])
        self.client.log_dict(run_id, trial.config["arch"], ARCH)
        return run_id

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        run_id = self.run_ids.get(trial.trial_id)
        if run_id is None or run_id in self.finished_before:
            return
        if run_id not in self.probed:  # the first result carries what the latency was measured on, the training
            self.probed.add(run_id)    # arithmetic, and where it runs
            self._tag_node(run_id, result)
            probe = {k: v for k, v in result.items() if k.startswith(PARAM_PREFIXES)}
            try:
                self.client.log_batch(run_id, params=[Param(k, param_value(v)) for k, v in sorted(probe.items())])
            except mlflow.exceptions.MlflowException:  # a resumed trial on another machine: keep the first values
                pass
        step = int(result.get(EPOCH, result.get("training_iteration", 0)))
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, step) for k, v in result.items()
                   if k not in _NOT_METRICS and not k.startswith(PARAM_PREFIXES) and _is_number(v)]
        self.client.log_batch(run_id, metrics=metrics)

    def _tag_node(self, run_id: str, result: dict) -> None:
        """Tag the run with the Ray node the trial trains on (id and IP; on one machine all nodes share an IP)."""
        tags = {NODE_ID_TAG: result.get(NODE_ID), NODE_IP_TAG: result.get("node_ip")}
        for key, value in tags.items():
            if value:
                self.client.set_tag(run_id, key, str(value))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        run_id = self.run_ids.get(trial.trial_id)
        if run_id is None or run_id in self.finished_before:
            return
        last = trial.last_result or {}
        epochs = int(last.get(EPOCH, 0))
        outcome = trial_outcome(last, full_epochs=self.full_epochs)
        if outcome is Outcome.REJECTED:  # over a hard budget: probed, never trained
            self.client.set_tag(run_id, REJECTED_BECAUSE_TAG, self.constraints.reason(last) or "over budget")
        checkpoint = trial.checkpoint
        if outcome is Outcome.COMPLETED and checkpoint is not None:
            with checkpoint.as_directory() as where:  # in storage: a folder, or fetched from a URI (s3://...)
                folder = Path(where)
                for name in CHECKPOINT_FILES:
                    if (folder / name).is_file():
                        self.client.log_artifact(run_id, str(folder / name), artifact_path="model")
        self.client.set_tag(run_id, OUTCOME_TAG, str(outcome))
        self.client.set_tag(run_id, EPOCHS_RUN_TAG, str(epochs))
        self._terminate(run_id, RunStatus.to_string(RunStatus.FINISHED))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        run_id = self._open_run(trial)  # a trial can fail before it starts (e.g. its worker cannot import)
        if run_id in self.finished_before:
            return
        self.client.set_tag(run_id, OUTCOME_TAG, str(Outcome.FAILED))
        self.client.set_tag(run_id, ERROR_TAG, trial_error_line(trial)[:4000])
        self._terminate(run_id, RunStatus.to_string(RunStatus.FAILED))

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        """Runs of trials still running when the search ends (Ctrl-C, driver error) are closed as KILLED."""
        for run_id in sorted(self.open_runs):
            self.client.set_tag(run_id, OUTCOME_TAG, str(Outcome.INTERRUPTED))
            self._terminate(run_id, RunStatus.to_string(RunStatus.KILLED))

    def _terminate(self, run_id: str, status: str) -> None:
        self.client.set_terminated(run_id, status)
        self.open_runs.discard(run_id)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
