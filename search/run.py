"""``python -m search.run space=NAME [key=value ...]``: a multi-objective attention-placement search.

The phases, in order: check everything (:func:`search.plan_check.prepare`) -> the MLflow parent run -> the plain
backbone's reference latency and the training arithmetic, measured -> Ray Tune over the Optuna study with ASHA, one nested MLflow run per trial -> the
Pareto front over full-budget trials -> confirmation on the test split -> the reports on the parent run -> the summary.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import sys
import time
from collections.abc import Mapping, Sequence

import hydra
import requests
from mlflow.exceptions import MlflowException
from omegaconf import DictConfig
from ray import tune

from backbones import ArchConfig
from search.confirm.phase import confirm_front, finish_confirmation, record_confirmation
from search.execution import storage
from search.execution.calibration import calibrate
from search.execution.cluster import join_cluster
from search.execution.faults import with_faults
from search.execution.progress import ProgressPrinter, quiet_libraries
from search.execution.scheduler import make_scheduler
from search.execution.signals import EXIT_INTERRUPTED, EXIT_TERMINATED, Terminated, stop_on_signals
from search.execution.trainable import train_architecture
from search.execution.tuner import ray_runtime, run_tuner
from search.log import error, say, tell
from search.outcomes import DATA_JSON, SPACE_TAG, TRIAL_ROLE
from search.plan_check import prepare
from search.settings import cli
from search.settings.config import RunConfig
from search.settings.errors import exception_chain, exit_on_bad_input
from search.settings.plan import SearchPlan, TrialSettings
from search.study.database import DatabaseDown
from search.study.prescreen import compare_with_trials, prescreen
from search.study.searcher import StudySearcher
from search.summary.console import announce, announce_resume, print_summary
from search.summary.front import SearchSummary, summarise_search
from search.summary.reports import write_reports
from search.tracking.latency_table import record_latency_table
from search.tracking.parent import SearchRun, close_stale_trial_runs, ended_trials
from search.tracking.plan_params import MAY_CHANGE_ON_RESUME, data_info, parent_params
from search.tracking.trial_runs import MlflowTrialCallback


def run(cfg: DictConfig | RunConfig) -> SearchSummary:
    """Run one search as configured (a composed ``run`` config or a :class:`search.settings.config.RunConfig`).
    Raises :class:`search.settings.errors.UserError` for bad input, before writing."""
    return execute(prepare(cfg))


def execute(plan: SearchPlan) -> SearchSummary:
    """Run a checked plan. With ``ray.address`` the driver joins the cluster first (its nodes size the search and
    must all reach the storage: checked before anything is written to MLflow) and only disconnects at the end."""
    t0 = time.monotonic()
    with contextlib.ExitStack() as joined:
        if plan.execution.ray_address:
            joined.enter_context(ray_runtime(address=plan.execution.ray_address))
            plan = dataclasses.replace(plan, execution=join_cluster(plan.execution, per_trial=plan.per_trial))
        return _phases(plan, t0=t0)


def _phases(plan: SearchPlan, *, t0: float) -> SearchSummary:
    announce(plan)
    quiet_libraries()
    controls = plan.space.control_archs(base=plan.base_arch)
    with SearchRun(tracking_uri=plan.mlflow.tracking_uri, experiment=plan.mlflow.experiment, name=plan.name,
                   params=parent_params(plan), tags={SPACE_TAG: plan.space.name},
                   may_change=MAY_CHANGE_ON_RESUME) as search:
        if search.resumed:
            announce_resume(plan, search, controls=len(controls))
        search.log_dict(data_info(plan), path=DATA_JSON)
        if plan.trial_settings.latency_predictor is not None:
            record_latency_table(search, plan.trial_settings.latency_predictor)
        # before Ray starts (nothing else runs); the search and the confirmation both train with what it measured
        plan = dataclasses.replace(plan, trial_settings=calibrate(plan, remember=search.remember))
        settings = plan.trial_settings
        proposals = prescreen(plan, search=search, settings=settings) if plan.strategy == "oneshot" else []
        execution = plan.execution
        local_ray = (contextlib.nullcontext() if execution.ray_address else  # on a cluster: joined already (execute)
                     ray_runtime(num_cpus=max(os.cpu_count() or 1, execution.concurrency * plan.budget.cpu_per_trial)))
        with local_ray:
            results, run_ids = _search_trials(plan, search=search, settings=settings, controls=controls,
                                              proposals=proposals)
            if proposals:
                compare_with_trials(plan, search=search, results=results)
            tell("Computing the Pareto front over the full-budget trials ...")
            summary = summarise_search(results, full_epochs=plan.budget.epochs, study_storage=plan.study.storage,
                                       run_ids=run_ids, search=search, wall_s=time.monotonic() - t0,
                                       metric=plan.score.val, latency=plan.score.latency)
            confirmed = (confirm_front(plan, search=search, front=summary.front, controls=controls,
                                       searched=summary.rows)
                         if plan.confirm.top_k and summary.front else None)
        if confirmed is not None:  # after Ray has shut down (or, on a cluster, its trials ended): nothing else runs
            rows = finish_confirmation(plan, confirmation=confirmed)
            verdict = record_confirmation(search, rows, resolution=plan.confirm.resolution, score=plan.score)
            summary = dataclasses.replace(summary, confirmed=rows, verdict=verdict)
        summary = write_reports(plan, search=search, summary=summary)
        if search.resumed and (stale := close_stale_trial_runs(search.client, experiment=search.experiment_id,
                                                                parent_run_id=search.run_id)):
            tell(f"Closed {stale} trial run(s) the crash cut off before Ray recorded them (status KILLED).")
        summary = dataclasses.replace(summary, wall_s=time.monotonic() - t0)
        search.log_metrics({"wall_s": summary.wall_s})
    print_summary(summary, plan=plan)
    return summary


def _search_trials(plan: SearchPlan, *, search: SearchRun, settings: TrialSettings,
                   controls: Mapping[str, ArchConfig],
                   proposals: Sequence[ArchConfig] = ()) -> tuple[tune.ResultGrid, dict[str, str]]:
    """The search proper: the controls first, then the sampler's proposals, as Ray Tune trials with ASHA; returns
    Ray's results and the MLflow run id of each trial. Needs Ray running."""
    tracker = MlflowTrialCallback(client=search.client, experiment=search.experiment_id, parent_run_id=search.run_id,
                                  search_name=plan.name, full_epochs=plan.budget.epochs, existing=search.existing,
                                  constraints=settings.constraints)
    searched = search.existing_runs(role=TRIAL_ROLE)
    printer = ProgressPrinter(total_trials=plan.budget.trials + len(controls), full_epochs=plan.budget.epochs,
                              metrics=(plan.score.val, *plan.score.also_val), latency=plan.score.latency,
                              constraints=settings.constraints, seen=searched.keys(), ended=ended_trials(searched))
    searcher = StudySearcher(space=plan.space, base=plan.base_arch, storage=plan.study.storage, study_name=plan.name,
                             sampler=plan.study.sampler, seed=plan.seed, trials=plan.budget.trials,
                             full_epochs=plan.budget.epochs, constraints=settings.constraints, controls=controls,
                             proposals=proposals, announce=say, objectives=plan.score.objectives)
    search_data = dataclasses.replace(plan.data, test_x=None, test_y=None)  # the search never sees the test split
    trainable = tune.with_parameters(with_faults(train_architecture, faults=plan.faults), data=search_data,
                                     settings=settings, latency_reference=plan.calibration.latency_reference)
    results = run_tuner(
        trainable=trainable, resources=plan.per_trial, experiment_dir=storage.join(plan.execution.storage, plan.name),
        searcher=searcher, scheduler=make_scheduler(full_epochs=plan.budget.epochs, asha=plan.asha,
                                                      metric=plan.score.val, latency=plan.score.latency),
        num_samples=plan.budget.trials + len(controls), concurrency=plan.execution.concurrency,
        callbacks=[tracker, printer])
    return results, tracker.run_ids


@hydra.main(config_path=None, config_name="run", version_base=None)  # search.settings.config.RunConfig
def _hydra_main(cfg: DictConfig) -> None:
    with exit_on_bad_input():
        run(cfg)


EXIT_UNAVAILABLE = 75  # EX_TEMPFAIL (sysexits.h): a service the search needs stayed down; try again later


def main(argv: list[str] | None = None) -> None:
    """``python -m search.run ARGS``: compose the config from the overrides (:mod:`search.settings.cli`) and run.

    Ctrl-C (SIGINT) stops the whole search with exit code 130 (Ray Tune's own handler, which would end only the
    current phase and let the search go on to confirm a partial front, is off: ``search.execution.tuner``), and
    SIGTERM (a batch scheduler's stop) the same way with 143 (:mod:`search.execution.signals`). A study database
    that stays down past its patience (:mod:`search.study.database`), or a tracking server past its client's retries,
    ends it with 75 and one line. In each case the trials and
    MLflow runs finished so far are kept and the same command resumes."""
    stop_on_signals()
    try:
        cli.main(run, _hydra_main, config_name="run", argv=argv)
    except Terminated:
        error("\nStopped by SIGTERM: the finished trials and their MLflow runs are kept; rerun the same command to "
              "resume.")
        sys.exit(EXIT_TERMINATED)
    except KeyboardInterrupt:
        error("\nInterrupted: the finished trials and their MLflow runs are kept; rerun the same command to resume.")
        sys.exit(EXIT_INTERRUPTED)
    except Exception as exc:
        if (reason := _service_down(exc)) is None:
            raise
        error(f"\nThe search stopped: {reason}; the finished trials and their MLflow runs are kept: rerun the same "
              f"command to resume.")
        sys.exit(EXIT_UNAVAILABLE)


def _service_down(exc: BaseException) -> str | None:
    """Why the search stopped, in words, when a service it needs stayed down: the study database past its patience
    (:class:`DatabaseDown`), or the MLflow tracking server past its client's retries (about 4 minutes by default:
    ``MLFLOW_HTTP_REQUEST_MAX_RETRIES``); None for any other error."""
    if (down := _cause(exc, DatabaseDown)) is not None:
        return str(down)
    if _cause(exc, requests.exceptions.RequestException) is not None and (
            failed := _cause(exc, MlflowException)) is not None:
        where = re.match(r"API request to (\S+)", str(failed))
        return f"the MLflow tracking server did not answer ({where.group(1) if where else type(failed).__name__})"
    return None


def _cause(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    """``exc`` or the first exception of type ``kind`` it was raised from (Ray Tune may wrap its searcher's error)."""
    return next((e for e in exception_chain(exc) if isinstance(e, kind)), None)


if __name__ == "__main__":
    main()
