"""MLflow wiring: one parent run per search, one nested run per trial, logged from the Ray driver.

All MLflow writes happen in the driver process (a Ray Tune callback), so trial workers never touch the store:
one writer for SQLite, and a trial that crashes cannot leave its run half-written.
"""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Metric, Param, Run
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from ray.tune import Callback
from ray.tune.result import AUTO_RESULT_KEYS

from backbones import ArchConfig
from search.artifacts import ARCH, REFERENCE, WEIGHTS
from search.errors import UserError
from search.tuning import PROBE_PREFIX, trial_outcome
from trials.constraints import Constraints

ROLE_TAG = "attnas.role"  # "search" on parent runs, "trial" on nested runs
SEARCH_TAG = "attnas.search"  # the search name, on the parent and on every trial run
TRIAL_TAG = "attnas.trial_id"  # the Ray trial id, on trial runs
OUTCOME_TAG = "attnas.outcome"  # completed | early_stopped | failed | rejected | interrupted
ENDED_STATUSES = ("FINISHED", "FAILED")  # MLflow statuses of a trial run that was fully written
CHECKPOINT_FILES = (WEIGHTS, REFERENCE)  # uploaded to model/; the ArchConfig goes to the run root at trial start
_NOT_METRICS = set(AUTO_RESULT_KEYS) | {"done", "trial_id", "experiment_tag", "should_checkpoint", "date"}


def check_tracking_uri(uri: str) -> None:
    """Fail early, with one line, when the tracking store cannot be reached (before Ray starts)."""
    if uri.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=5) as response:
                response.read()
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise UserError(
                f"MLflow tracking server {uri} is unreachable ({reason}); start one with "
                f"'mlflow server --host 127.0.0.1 --port 5000' or use mlflow.tracking_uri=sqlite:///mlflow.db"
            ) from None
    elif uri.startswith("sqlite:///"):
        folder = Path(uri[len("sqlite:///"):]).expanduser().resolve().parent
        if not folder.is_dir():
            raise UserError(f"mlflow.tracking_uri={uri}: folder {folder} does not exist")
    elif not uri.startswith(("file:", "databricks", "postgresql", "mysql")) and "://" in uri:
        raise UserError(f"mlflow.tracking_uri={uri}: unsupported scheme; use sqlite:///FILE, file:DIR or http://HOST:PORT")


def experiment_id(client: mlflow.MlflowClient, *, name: str, tracking_uri: str) -> str:
    """Get or create the experiment. With a local store, artifacts go to ./mlartifacts (absolute path)."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = None
    if not tracking_uri.startswith(("http://", "https://")):
        location = (Path.cwd() / "mlartifacts").resolve().as_uri()
    return client.create_experiment(name, artifact_location=location)


def start_parent_run(client: mlflow.MlflowClient, *, experiment: str, name: str, params: Mapping[str, Any],
                     tags: Mapping[str, str]) -> str:
    """Create the search's parent run and log its settings; returns the run id."""
    run = client.create_run(experiment, run_name=name, tags={ROLE_TAG: "search", SEARCH_TAG: name, **tags})
    client.log_batch(run.info.run_id, params=[Param(k, _param_value(v)) for k, v in params.items()])
    return run.info.run_id


def find_parent_run(client: mlflow.MlflowClient, *, experiment: str, name: str) -> Run | None:
    """The parent run of the search called ``name`` in ``experiment``, if an earlier command created one."""
    runs = client.search_runs([experiment], max_results=1, order_by=["attributes.start_time ASC"],
                              filter_string=f"tags.`{ROLE_TAG}` = 'search' and tags.`{SEARCH_TAG}` = '{name}'")
    return runs[0] if runs else None


def check_same_settings(run: Run, *, params: Mapping[str, Any], ignore: tuple[str, ...] = ()) -> None:
    """Raise :class:`UserError` when resuming ``run`` with settings other than those it was started with."""
    logged = run.data.params
    for key, value in params.items():
        if key in ignore or key not in logged or logged[key] == _param_value(value):
            continue
        name = run.data.tags.get(SEARCH_TAG, run.info.run_name)
        raise UserError(
            f"search {name!r} already exists with {key}={logged[key]}, but this command gives {key}="
            f"{_param_value(value)}; rerun it with the same settings to resume it, or pick a new name=")


def trial_runs(client: mlflow.MlflowClient, *, experiment: str, parent_run_id: str) -> dict[str, Run]:
    """The trial runs already nested under ``parent_run_id``, by Ray trial id (for resuming a search)."""
    runs = client.search_runs([experiment], max_results=50_000,
                              filter_string=f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent_run_id}'")
    return {run.data.tags[TRIAL_TAG]: run for run in runs if TRIAL_TAG in run.data.tags}


def ended_trials(runs: Mapping[str, Run]) -> set[str]:
    """The trial ids among ``runs`` (:func:`trial_runs`) whose runs were fully written before a crash."""
    return {trial_id for trial_id, run in runs.items() if run.info.status in ENDED_STATUSES}


def close_stale_trial_runs(client: mlflow.MlflowClient, *, experiment: str, parent_run_id: str) -> int:
    """Close trial runs a killed driver left RUNNING and the resumed search never picked up; returns how many.

    They belong to trials started after Ray's last experiment checkpoint, so Ray has no record of them.
    """
    stale = [run for run in trial_runs(client, experiment=experiment, parent_run_id=parent_run_id).values()
             if run.info.status == "RUNNING"]
    for run in stale:
        client.set_tag(run.info.run_id, OUTCOME_TAG, "interrupted")
        client.set_terminated(run.info.run_id, "KILLED")
    return len(stale)


class MlflowTrialCallback(Callback):
    """Ray Tune callback: a nested MLflow run per trial with its architecture, per-epoch metrics and weights.

    ``on_trial_start`` creates the run (params = the sampled architecture), ``on_trial_result`` logs every epoch's
    metrics with ``step=epoch``, ``on_trial_complete`` uploads the final checkpoint (weights, reference I/O, arch)
    and tags the outcome (``completed`` when the trial ran ``full_epochs``, else ``early_stopped``), and
    ``on_trial_error`` marks the run FAILED with the error.

    Resuming: ``existing`` are the trial runs of the same search from before a crash (:func:`trial_runs`). A trial
    Ray restores keeps its run (reopened if it was cut off), so no trial ever has two runs; a trial that had
    already finished is re-reported by the trainable from its final checkpoint and its run is not written twice.
    """

    def __init__(self, *, client: mlflow.MlflowClient, experiment: str, parent_run_id: str, search_name: str,
                 full_epochs: int, existing: Mapping[str, Run] | None = None,
                 constraints: Constraints = Constraints()) -> None:
        self.client = client
        self.experiment = experiment
        self.parent_run_id = parent_run_id
        self.search_name = search_name
        self.full_epochs = full_epochs
        self.constraints = constraints
        self.probed: set[str] = set()  # runs whose probe.* params are logged
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
            self.client.update_run(run_id, status="RUNNING")
            self.client.set_tag(run_id, "attnas.resumed", "true")
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
            tags={MLFLOW_PARENT_RUN_ID: self.parent_run_id, ROLE_TAG: "trial", SEARCH_TAG: self.search_name,
                  TRIAL_TAG: trial.trial_id},
        )
        run_id = run.info.run_id
        self.run_ids[trial.trial_id] = run_id
        self.open_runs.add(run_id)
        params = ArchConfig.from_dict(trial.config["arch"]).params()  # head, s{i}.attn, s{i}.reduction, ...
        self.client.log_batch(run_id, params=[Param(k, v) for k, v in sorted(params.items())])
        self.client.log_dict(run_id, trial.config["arch"], ARCH)
        return run_id

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        run_id = self.run_ids.get(trial.trial_id)
        if run_id is None or run_id in self.finished_before:
            return
        if run_id not in self.probed:  # the first result carries what the latency was measured on
            self.probed.add(run_id)
            probe = {k: v for k, v in result.items() if k.startswith(PROBE_PREFIX)}
            try:
                self.client.log_batch(run_id, params=[Param(k, _param_value(v)) for k, v in sorted(probe.items())])
            except mlflow.exceptions.MlflowException:  # a resumed trial on another machine: keep the first values
                pass
        step = int(result.get("epoch", result.get("training_iteration", 0)))
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, step) for k, v in result.items()
                   if k not in _NOT_METRICS and not k.startswith(PROBE_PREFIX) and _is_number(v)]
        self.client.log_batch(run_id, metrics=metrics)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        run_id = self.run_ids.get(trial.trial_id)
        if run_id is None or run_id in self.finished_before:
            return
        last = trial.last_result or {}
        epochs = int(last.get("epoch", 0))
        outcome = trial_outcome(last, full_epochs=self.full_epochs)
        if outcome == "rejected":  # over a hard budget: probed, never trained
            self.client.set_tag(run_id, "attnas.rejected_because", self.constraints.reason(last) or "over budget")
        checkpoint = trial.checkpoint
        if outcome == "completed" and checkpoint is not None:
            folder = Path(checkpoint.path)
            for name in CHECKPOINT_FILES:
                if (folder / name).is_file():
                    self.client.log_artifact(run_id, str(folder / name), artifact_path="model")
        self.client.set_tag(run_id, OUTCOME_TAG, outcome)
        self.client.set_tag(run_id, "attnas.epochs_run", str(epochs))
        self._terminate(run_id, "FINISHED")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        run_id = self._open_run(trial)  # a trial can fail before it starts (e.g. its worker cannot import)
        if run_id in self.finished_before:
            return
        self.client.set_tag(run_id, OUTCOME_TAG, "failed")
        self.client.set_tag(run_id, "attnas.error", trial_error_line(trial)[:4000])
        self._terminate(run_id, "FAILED")

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        """Runs of trials still running when the search ends (Ctrl-C, driver error) are closed as KILLED."""
        for run_id in sorted(self.open_runs):
            self.client.set_tag(run_id, OUTCOME_TAG, "interrupted")
            self._terminate(run_id, "KILLED")

    def _terminate(self, run_id: str, status: str) -> None:
        self.client.set_terminated(run_id, status)
        self.open_runs.discard(run_id)


def trial_error_line(trial: Any) -> str:
    """The last line of a failed Ray trial's error (usually ``SomeError: message``)."""
    error = trial.get_error() if hasattr(trial, "get_error") else None
    local = Path(getattr(trial, "error_file", None) or "/nonexistent")
    if not error and local.is_file():  # Ray writes the trace locally before it syncs it to storage
        error = local.read_text(errors="replace")
    lines = [line for line in str(error or "").strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "trial raised an error"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _param_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:6000]
