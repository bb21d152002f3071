"""``python -m search.run space=NAME [key=value ...]``: a multi-objective attention-placement search.

Flow: check everything (:func:`search.plan.prepare`) -> MLflow parent run -> Ray Tune (Optuna + ASHA), one nested
MLflow run per trial -> Pareto front over full-budget trials -> reports on the parent run -> summary table.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Any

import hydra
import mlflow
import optuna
import ray
from omegaconf import DictConfig
from ray import tune

from dashboards import write_pareto_report
from dashboards.ui import ui_hint
from search import cli
from search.config import RunConfig
from search.errors import exit_on_bad_input
from search.pareto import pareto_front
from search.plan import SearchPlan, prepare
from search.progress import ProgressPrinter, arch_summary, format_table, quiet_trial_failures
from search.tracking import (MlflowTrialCallback, check_same_settings, close_stale_trial_runs, ended_trials,
                             experiment_id, find_parent_run, start_parent_run, trial_runs)
from search.tuning import make_scheduler, make_searcher, train_architecture, trial_outcome

PARETO_TAG = "pareto"


@dataclass
class SearchSummary:
    """What a finished search returns (and prints)."""

    name: str
    parent_run_id: str
    trials: int
    completed: int  # ran the full epoch budget
    early_stopped: int  # stopped by ASHA
    failed: int
    rejected: int  # over a hard budget (constraints.*): probed, never trained
    front: list[dict[str, Any]]  # Pareto-optimal full-budget trials, latency ascending
    wall_s: float


def run(cfg: DictConfig | RunConfig) -> SearchSummary:
    """Run one search as configured (a composed ``run`` config or a :class:`search.config.RunConfig`). Raises
    :class:`search.errors.UserError` for bad input, before writing."""
    plan = prepare(cfg)
    return execute(plan)


def execute(plan: SearchPlan) -> SearchSummary:
    """Run a checked plan: MLflow parent run, Ray Tune search, Pareto reports."""
    t0 = time.monotonic()
    _announce(plan)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    mlflow.set_tracking_uri(plan.tracking_uri)
    client = mlflow.MlflowClient(tracking_uri=plan.tracking_uri)
    experiment = experiment_id(client, name=plan.experiment, tracking_uri=plan.tracking_uri)
    params = _parent_params(plan)
    previous = find_parent_run(client, experiment=experiment, name=plan.name)
    existing: dict = {}
    if previous is None:
        parent = start_parent_run(client, experiment=experiment, name=plan.name, params=params,
                                  tags={"attnas.space": plan.space.name})
    else:  # same name as an earlier search: resume it (same settings required)
        check_same_settings(previous, params=params, ignore=_MAY_CHANGE_ON_RESUME)
        parent = previous.info.run_id
        client.update_run(parent, status="RUNNING")
        existing = trial_runs(client, experiment=experiment, parent_run_id=parent)
        _announce_resume(plan, existing)
    status = "FAILED"
    try:
        tracker = MlflowTrialCallback(client=client, experiment=experiment, parent_run_id=parent,
                                      search_name=plan.name, full_epochs=plan.budget.epochs, existing=existing,
                                      constraints=plan.constraints)
        printer = ProgressPrinter(total_trials=plan.budget.trials, full_epochs=plan.budget.epochs,
                                  constraints=plan.constraints,
                                  seen=existing.keys(),
                                  ended=ended_trials(existing))
        results = _tune(plan, callbacks=[tracker, printer])
        if previous is not None and (stale := close_stale_trial_runs(client, experiment=experiment,
                                                                      parent_run_id=parent)):
            print(f"Closed {stale} trial run(s) the crash cut off before Ray recorded them (status KILLED).")
        print("Computing the Pareto front over the full-budget trials and writing the reports ...", flush=True)
        _stall_for_tests()
        summary = _summarise(plan, results, tracker=tracker, client=client, parent=parent, t0=t0)
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        client.set_terminated(parent, status)
    _print_summary(summary, plan=plan)
    return summary


# Parent-run params that may differ when a search is resumed (they do not change what the search computes).
_MAY_CHANGE_ON_RESUME = ("concurrency",)


def _parent_params(plan: SearchPlan) -> dict[str, Any]:
    return {"space": plan.space.name, "sampler": plan.sampler, "seed": plan.seed, "hardware": plan.hardware,
            "concurrency": plan.concurrency, "asha_grace_period": plan.asha_grace_period,
            "asha_reduction_factor": plan.asha_reduction_factor, "dataset": plan.space.dataset,
            **{f"constraints.{k}": v for k, v in asdict(plan.constraints).items()},
            **({"faults.rate": plan.faults.rate, "faults.kind": plan.faults.kind} if plan.faults.rate else {}),
            **{f"budget.{k}": v for k, v in asdict(plan.budget).items()}}


def _announce_resume(plan: SearchPlan, existing: dict) -> None:
    ended = len(ended_trials(existing))
    print(f"Resuming search {plan.name}: {ended} of {plan.budget.trials} trials had finished, "
          f"{len(existing) - ended} were cut off (Ray restarts those it had recorded)", flush=True)


def _stall_for_tests() -> None:
    """Sleep ATTNAS_STALL_BEFORE_REPORTS_S seconds: lets the resume test kill the driver during the final step."""
    if seconds := float(os.environ.get("ATTNAS_STALL_BEFORE_REPORTS_S", "0") or 0):
        time.sleep(seconds)


def _announce(plan: SearchPlan) -> None:
    b = plan.budget
    where = ("CUDA device found: using the GPU budget" if plan.hardware == "cuda"
             else "No CUDA device: using the CPU budget")
    size = "all" if b.train_size is None else f"{b.train_size}"
    print(f"Search {plan.name}: space {plan.space.name} on {plan.space.dataset}, sampler {plan.sampler}", flush=True)
    print(f"{where} ({b.backbone}, {size} train / {b.val_size} val images, {b.epochs} epochs, {b.trials} trials, "
          f"{plan.concurrency} at once)", flush=True)


def _tune(plan: SearchPlan, *, callbacks: list) -> tune.ResultGrid:
    # One checkpoint per trial (its last epoch) makes Tune's "snapshotting too often" warning noise here.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # with verbose=0 Ray prints nothing; ProgressPrinter talks
    # Save the experiment state (trials + Optuna study) at every controller step, not every >= 10 s: a driver
    # killed with SIGKILL then loses at most the step it was in. The state is small (tens of KB).
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "0")
    # A candidate rejected by constraints.* reports its probe but no val_acc (it never trained); ASHA then leaves it
    # alone and FullBudgetOptunaSearch tells it infeasible. Ray's strict check would instead end the whole search.
    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
    per_trial = {"cpu": plan.budget.cpu_per_trial, "gpu": plan.budget.gpu_per_trial if plan.hardware == "cuda" else 0}
    ray.init(
        num_cpus=max(os.cpu_count() or 1, plan.concurrency * plan.budget.cpu_per_trial),
        include_dashboard=False,
        log_to_driver=False,  # trial workers' stdout stays in Ray's logs; the driver prints ProgressPrinter lines
        logging_level=logging.WARNING,
        configure_logging=True,
    )
    quiet_trial_failures()
    try:
        trainable = tune.with_resources(
            tune.with_parameters(train_architecture, data=plan.data, budget=plan.trial_budget, faults=plan.faults,
                                 latency_reference=plan.latency_reference),
            per_trial)
        experiment_dir = plan.storage / plan.name
        if tune.Tuner.can_restore(str(experiment_dir)):
            # Restores the trials and the searcher (the Optuna study with its sampler); unfinished trials are
            # restarted, finished and failed ones are kept. Callbacks are this process's, not the pickled ones.
            tuner = tune.Tuner.restore(str(experiment_dir), trainable=trainable, resume_unfinished=True,
                                       resume_errored=False, restart_errored=False)
            tuner._local_tuner.get_run_config().callbacks = callbacks  # no public setter (ray-project/ray#41364)
            return tuner.fit()
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                search_alg=make_searcher(space=plan.space, sampler=plan.sampler, seed=plan.seed,
                                         trials=plan.budget.trials, full_epochs=plan.budget.epochs,
                                         arch_fields=plan.arch_fields, constraints=plan.constraints),
                scheduler=make_scheduler(full_epochs=plan.budget.epochs, grace_period=plan.asha_grace_period,
                                         reduction_factor=plan.asha_reduction_factor),
                num_samples=plan.budget.trials,
                max_concurrent_trials=plan.concurrency,
                reuse_actors=True,  # one worker process per slot for the whole search: no per-trial process start
                trial_dirname_creator=_trial_dirname,
            ),
            run_config=tune.RunConfig(
                name=plan.name,
                storage_path=str(plan.storage),
                callbacks=callbacks,
                verbose=0,
            ),
        )
        return tuner.fit()
    finally:
        ray.shutdown()


def _trial_dirname(trial: Any) -> str:
    """Trial folders named by trial id (Ray's default embeds the whole config in the name)."""
    return trial.trial_id


def _summarise(plan: SearchPlan, results: tune.ResultGrid, *, tracker: MlflowTrialCallback,
               client: mlflow.MlflowClient, parent: str, t0: float) -> SearchSummary:
    rows, early, failed, rejected = [], 0, 0, 0
    for result in results:
        metrics = result.metrics or {}
        outcome = "failed" if result.error is not None else trial_outcome(metrics, full_epochs=plan.budget.epochs)
        if outcome == "failed":
            failed += 1
        elif outcome == "rejected":
            rejected += 1
        elif outcome == "early_stopped":
            early += 1
        else:
            trial_id = metrics["trial_id"]
            rows.append({"trial_id": trial_id, "run_id": tracker.run_ids.get(trial_id, ""),
                         "val_acc": float(metrics["val_acc"]), "latency_ms": float(metrics["latency_ms"]),
                         "params_m": float(metrics["params_m"]), "flops_g": float(metrics["flops_g"]),
                         "arch": arch_summary(result.config["arch"])})
    front_ids = set(pareto_front(rows))
    for i, row in enumerate(rows):
        row["pareto"] = i in front_ids
        if row["run_id"]:
            client.set_tag(row["run_id"], PARETO_TAG, "true" if row["pareto"] else "false")
    with tempfile.TemporaryDirectory() as folder:
        title = f"{plan.name}: val_acc vs latency_ms ({plan.budget.backbone}, {plan.space.dataset})"
        for path in write_pareto_report(rows, folder=folder, title=title):
            client.log_artifact(parent, str(path), artifact_path="pareto")
    wall_s = time.monotonic() - t0
    summary = SearchSummary(
        name=plan.name, parent_run_id=parent, trials=len(results), completed=len(rows), early_stopped=early,
        failed=failed, rejected=rejected, front=sorted((r for r in rows if r["pareto"]), key=lambda r: r["latency_ms"]), wall_s=wall_s)
    client.log_batch(parent, metrics=[
        mlflow.entities.Metric(key, float(value), int(time.time() * 1000), 0)
        for key, value in {"trials": summary.trials, "trials_completed": summary.completed,
                           "trials_early_stopped": early, "trials_failed": failed,
                           "trials_rejected": rejected,
                           "front_size": len(summary.front), "wall_s": wall_s}.items()])
    return summary


def _print_summary(summary: SearchSummary, *, plan: SearchPlan) -> None:
    print(f"\nSearch {summary.name} finished in {summary.wall_s:.0f}s: {summary.trials} trials, "
          f"{summary.completed} completed, {summary.early_stopped} stopped early by ASHA, {summary.failed} failed"
          + (f", {summary.rejected} rejected by the constraints." if summary.rejected else "."))
    if summary.front:
        print(f"Pareto front ({len(summary.front)} of {summary.completed} full-budget trials, {plan.budget.backbone}):")
        print(format_table(summary.front, [("trial_id", "trial", "s"), ("val_acc", "val_acc", ".4f"),
                                           ("latency_ms", "latency_ms", ".2f"), ("params_m", "params_m", ".3f"),
                                           ("flops_g", "flops_g", ".3f"),
                                           ("arch", f"stages 0..{plan.space.num_stages - 1}", "s")]))
    else:
        print("No trial completed its full budget, so there is no Pareto front (see the failed runs in MLflow).")
    print(f"\nMLflow UI:  {ui_hint(tracking_uri=plan.tracking_uri)}")
    if summary.front:
        print("Export the most accurate front model:  python -m search.export", flush=True)


@hydra.main(config_path=None, config_name="run", version_base=None)  # search.config.RunConfig
def _hydra_main(cfg: DictConfig) -> None:
    with exit_on_bad_input():
        run(cfg)


def main(argv: list[str] | None = None) -> None:
    """``python -m search.run ARGS``: compose the config from the overrides (:mod:`search.cli`) and run."""
    cli.main(run, _hydra_main, config_name="run", argv=argv)


if __name__ == "__main__":
    main()
