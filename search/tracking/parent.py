"""MLflow wiring: the search's parent run (:class:`SearchRun`), finding its trial runs, the experiment's runs view.

No Ray here (``search.export`` uses it); the per-trial Ray callback that writes the nested runs is
``search.tracking.trial_runs``; the tracking URI's rules are ``search.settings.tracking_uri``.

All MLflow writes happen in the driver process (a Ray Tune callback), so trial workers never touch the store:
one writer for SQLite, and a trial that crashes cannot leave its run half-written.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Metric, Param, Run, RunStatus
from mlflow.exceptions import MlflowException
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from search.settings.errors import UserError
from search.tracking.driver import Heartbeat, refuse_if_driven, this_driver
from search.tracking.links import RUNS_VIEW_KEY
from search.settings.tracking_uri import is_server
from search.outcomes import (CONFIRM_TAG, CONTROL_TAG, FLOPS_G, LATENCY_MS, LATENCY_TARGET, OBJECTIVES, OUTCOME_TAG, PARAMS_M,
                             PARETO_TAG, ROLE_TAG, SEARCH_ROLE, SEARCH_TAG, SEED_TAG, TEST_ACC, TEST_MIOU, TRIAL_TAG, VAL_MIOU,
                             Outcome)

ENDED_STATUSES = tuple(RunStatus.to_string(s) for s in (RunStatus.FINISHED, RunStatus.FAILED))  # fully written runs


# What the MLflow UI shows first. MLflow 3 opens an experiment on its GenAI overview unless told otherwise: the
# experiment tag below says "machine learning" (MLflow's own kind for training runs), and the URL parameter
# workflowType=machine_learning picks the training-runs view in MLflow 3.17, whose UI follows that switch (kept in the
# browser) before the tag. Which columns the runs table shows is a saved view ("Views" above the runs table), which
# MLflow keeps as an experiment tag mlflow.sharedViewState.<id> holding {name, createdAt, updatedAt, state: JSON text}
# (read from MLflow 3.17's UI code) and opens with the URL parameter viewStateShareKey=<id>.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
TRAINING_KIND = "custom_model_development"  # MLflow's ExperimentKind for "Machine learning" (vs genai_development)
RUNS_VIEW_NAME = "attnas: runs with objectives and outcomes"
RUNS_VIEW_COLUMNS = (  # MLflow's column ids: metrics.`name`, params.`name`, tags.`name`
    *(f"metrics.`{m}`" for m in (*OBJECTIVES, LATENCY_TARGET, LATENCY_MS, PARAMS_M, FLOPS_G, TEST_ACC, VAL_MIOU, TEST_MIOU)),
    *(f"tags.`{t}`" for t in (OUTCOME_TAG, PARETO_TAG, CONTROL_TAG, CONFIRM_TAG, SEED_TAG)),
)




def runs_view_state() -> dict[str, Any]:
    """The saved view's state: our columns, newest first. (Which parent runs are unfolded is not part of a saved
    view in MLflow 3.17: a search's trials are one click away, on the + beside its run.)"""
    return {"selectedColumns": list(RUNS_VIEW_COLUMNS), "orderByKey": "attributes.start_time", "orderByAsc": False}


def experiment_id(client: mlflow.MlflowClient, *, name: str, tracking_uri: str) -> str:
    """Get or create the experiment (with a local store, artifacts go to ./mlartifacts, absolute path), and make the
    MLflow UI open it on its training runs with our columns (:func:`show_training_runs`)."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        found = experiment.experiment_id
    else:
        location = None
        if not is_server(tracking_uri):
            location = (Path.cwd() / "mlartifacts").resolve().as_uri()
        try:
            found = client.create_experiment(name, artifact_location=location)
        except MlflowException as exc:  # another search on the same server created it a moment ago
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            found = client.get_experiment_by_name(name).experiment_id
    show_training_runs(client, experiment_id=found)
    return found


def show_training_runs(client: mlflow.MlflowClient, *, experiment_id: str) -> None:
    """Tag the experiment as training runs (not GenAI) and save the runs view (:func:`runs_view_state`): val_acc,
    latency_norm_ms, latency_ms, params_m, flops_g, test_acc and the outcome, pareto, control and
    confirmation tags as columns. An existing experiment is tagged too."""
    now = int(time.time() * 1000)
    envelope = {"name": RUNS_VIEW_NAME, "createdAt": now, "updatedAt": now,
                "state": json.dumps(runs_view_state())}
    _set_experiment_tag(client, experiment_id=experiment_id, key=EXPERIMENT_KIND_TAG, value=TRAINING_KIND)
    _set_experiment_tag(client, experiment_id=experiment_id, key=f"mlflow.sharedViewState.{RUNS_VIEW_KEY}",
                        value=json.dumps(envelope))


def _set_experiment_tag(client: mlflow.MlflowClient, *, experiment_id: str, key: str, value: str) -> None:
    """Set one experiment tag, when two searches start at once on one tracking server too: MLflow's SQL store writes
    a tag by reading it and then inserting it when absent, so of two searches writing the same new tag at the same
    moment, one fails on the table's primary key (PostgreSQL's ``UniqueViolation``). The tag then exists, and
    writing it again updates it."""
    try:
        client.set_experiment_tag(experiment_id, key, value)
    except MlflowException:
        if key not in client.get_experiment(experiment_id).tags:
            raise  # another failure than that race
        client.set_experiment_tag(experiment_id, key, value)


class SearchRun:
    """The MLflow parent run of one search, as a context manager.

    On enter: creates the parent run (tags, settings as params), or, when a search of that name exists, checks
    that no other driver runs it now (:mod:`search.tracking.driver`) and that the settings are the same, and reopens
    it (``resumed``; ``existing`` then holds its trial runs by Ray trial id). While inside, a heartbeat marks this
    driver alive. On exit: the run ends FINISHED, KILLED (Ctrl-C, SIGTERM) or FAILED (any other error); the error
    propagates.
    """

    def __init__(self, *, tracking_uri: str, experiment: str, name: str, params: Mapping[str, Any],
                 tags: Mapping[str, str], may_change: tuple[str, ...] = ()) -> None:
        self.client = mlflow.MlflowClient(tracking_uri=tracking_uri)
        self.experiment_id = experiment_id(self.client, name=experiment, tracking_uri=tracking_uri)
        self.name = name
        self._params, self._tags, self._may_change = params, tags, may_change
        self.run_id = ""
        self.resumed = False
        self.existing: dict[str, Run] = {}
        self._tracking_uri = tracking_uri
        self._heartbeat: Heartbeat | None = None

    def __enter__(self) -> SearchRun:
        previous = find_parent_run(self.client, experiment=self.experiment_id, name=self.name)
        if previous is None:
            run = self.client.create_run(self.experiment_id, run_name=self.name,
                                         tags={ROLE_TAG: SEARCH_ROLE, SEARCH_TAG: self.name, **self._tags,
                                               **this_driver()})
            first = find_parent_run(self.client, experiment=self.experiment_id, name=self.name)
            if first is not None and first.info.run_id != run.info.run_id:  # the same name started twice at once
                self.client.delete_run(run.info.run_id)
                refuse_if_driven(first, name=self.name)
                raise UserError(f"search {self.name!r} was started by another command a moment ago; rerun this "
                                f"one to resume it once that one has stopped, or pick a new name=")
            self.run_id = run.info.run_id
            self.client.log_batch(self.run_id, params=[Param(k, param_value(v)) for k, v in self._params.items()])
        else:  # same name as an earlier search: resume it (no other driver; same settings required)
            refuse_if_driven(previous, name=self.name)
            check_same_settings(previous, params=self._params, ignore=self._may_change)
            self.run_id = previous.info.run_id
            self.resumed = True
            self.client.update_run(self.run_id, status=RunStatus.to_string(RunStatus.RUNNING))
            for key, value in this_driver().items():
                self.client.set_tag(self.run_id, key, value)
            self.existing = trial_runs(self.client, experiment=self.experiment_id, parent_run_id=self.run_id)
        self._heartbeat = Heartbeat(tracking_uri=self._tracking_uri, run_id=self.run_id).start()
        return self

    def existing_runs(self, *, role: str) -> dict[str, Run]:
        """The runs of ``existing`` with ``attnas.role`` = ``role`` (``trial``: the search, ``confirm``)."""
        return {key: run for key, run in self.existing.items() if run.data.tags.get(ROLE_TAG) == role}

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: Any) -> None:
        if self._heartbeat is not None:
            self._heartbeat.stop()
        status = (RunStatus.FINISHED if kind is None else RunStatus.KILLED if issubclass(kind, KeyboardInterrupt)
                  else RunStatus.FAILED)
        try:
            self.client.set_terminated(self.run_id, RunStatus.to_string(status))
        except MlflowException:
            if kind is None:
                raise
            # the search is already ending on an error (perhaps this server's outage): that error is the news; the
            # run stays RUNNING, which a resumed search reopens anyway

    def log_artifacts(self, paths: Any, *, folder: str) -> None:
        """Upload files to ``folder/`` of the parent run."""
        for path in paths:
            self.client.log_artifact(self.run_id, str(path), artifact_path=folder or None)

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()])

    def set_trial_tag(self, run_id: str, key: str, value: str) -> None:
        self.client.set_tag(run_id, key, value)

    def log_dict(self, value: Mapping[str, Any], *, path: str) -> None:
        """Upload ``value`` as JSON to ``path`` (e.g. ``data/data.json``) of the parent run."""
        self.client.log_dict(self.run_id, dict(value), path)

    def remember(self, tag: str, compute: Callable[[], str]) -> tuple[str, bool]:
        """The text kept under ``tag`` on the parent run, or ``compute()`` stored there (so a resumed search reads
        back what the first command measured); returns (text, computed now)."""
        tags = self.client.get_run(self.run_id).data.tags
        if tag in tags:
            return tags[tag], False
        value = compute()
        self.client.set_tag(self.run_id, tag, value)
        return value, True


def find_parent_run(client: mlflow.MlflowClient, *, experiment: str, name: str) -> Run | None:
    """The parent run of the search called ``name`` in ``experiment``, if an earlier command created one."""
    runs = client.search_runs([experiment], max_results=1, order_by=["attributes.start_time ASC"],
                              filter_string=f"tags.`{ROLE_TAG}` = '{SEARCH_ROLE}' and tags.`{SEARCH_TAG}` = '{name}'")
    return runs[0] if runs else None


def check_same_settings(run: Run, *, params: Mapping[str, Any], ignore: tuple[str, ...] = ()) -> None:
    """Raise :class:`UserError` when resuming ``run`` with settings other than those it was started with."""
    logged = run.data.params
    for key, value in params.items():
        if key in ignore or key not in logged or logged[key] == param_value(value):
            continue
        name = run.data.tags.get(SEARCH_TAG, run.info.run_name)
        raise UserError(
            f"search {name!r} already exists with {key}={logged[key]}, but this command gives {key}="
            f"{param_value(value)}; rerun it with the same settings to resume it, or pick a new name=")


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
             if run.info.status == RunStatus.to_string(RunStatus.RUNNING)]
    for run in stale:
        client.set_tag(run.info.run_id, OUTCOME_TAG, str(Outcome.INTERRUPTED))
        client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.KILLED))
    return len(stale)


def param_value(value: Any) -> str:
    """An MLflow param value: strings as they are, anything else as JSON, cut to MLflow's length limit."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:6000]
