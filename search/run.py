"""``python -m search.run space=NAME [key=value ...]``: a multi-objective attention-placement search.

Flow: check everything (:func:`search.plan.prepare`) -> MLflow parent run -> Ray Tune (Optuna + ASHA), one nested
MLflow run per trial -> Pareto front over full-budget trials -> confirmation -> reports on the parent run (pareto.csv,
pareto.png, the interactive report.html) -> summary table and the placement insight in words.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import hydra
import optuna
from omegaconf import DictConfig
from ray import tune

from backbones import ArchConfig

from dashboards import write_pareto_report, write_report
from dashboards.study import study_hint
from dashboards.ui import experiment_url, run_url, ui_hint
from search import cli, storage
from search.cluster import alive_nodes, check_storage_shared, trial_nodes, trial_slots
from search.config import RunConfig
from search.errors import UserError, exit_on_bad_input
from search.confirmation import (Candidate, measure_alone, pick_candidates, confirmation_seeds, run_confirmation,
                                 summarise_confirmation)
from search.confirmation_stats import Confirmed, confirmation_sentence, write_confirmed_csv
from search.faults import with_faults
from search.outcomes import (CONFIRMED_CSV, DATA_JSON, LATENCY_OBJECTIVE, PARETO_TAG, REFERENCE_LATENCY_TAG, VERDICT_TAG,
                             Outcome, trial_outcome)
from search.plan import SearchPlan, prepare
from search.report_data import collect_report_data, insight_lines
from search.progress import ProgressPrinter, format_table, quiet_trial_failures, say
from search.searcher import DUPLICATE_ATTR, RAY_TRIAL_ATTR, StudySearcher, open_study
from search.mlflow_callback import MlflowTrialCallback
from search.tracking import SearchRun, close_stale_trial_runs, ended_trials
from search.tuning import make_scheduler, ray_runtime, run_tuner, train_architecture


@dataclass
class SearchSummary:
    """What a finished search returns (and prints)."""

    name: str
    parent_run_id: str
    experiment_id: str
    trials: int
    completed: int  # ran the full epoch budget
    early_stopped: int  # stopped by ASHA
    failed: int
    rejected: int  # over a hard budget (constraints.*): probed, never trained
    duplicates: int  # proposals of an architecture already trained: its result reused, nothing trained
    front: list[dict[str, Any]]  # Pareto-optimal full-budget trials, latency ascending
    wall_s: float  # the whole command: search, reports and confirmation
    rows: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # every full-budget trial (pareto.csv)
    confirmed: list[Confirmed] = dataclasses.field(default_factory=list)  # the confirmation table (plain first)
    verdict: str = ""  # the one sentence that says whether any placement beats the plain backbone
    insight: list[str] = dataclasses.field(default_factory=list)  # the report's placement insight, in words
    report: str = ""  # where report.html is (a local path when the artifact store is local, else its artifact URI)


def run(cfg: DictConfig | RunConfig) -> SearchSummary:
    """Run one search as configured (a composed ``run`` config or a :class:`search.config.RunConfig`). Raises
    :class:`search.errors.UserError` for bad input, before writing."""
    plan = prepare(cfg)
    return execute(plan)


def execute(plan: SearchPlan) -> SearchSummary:
    """Run a checked plan: MLflow parent run, Ray Tune search over the Optuna study, Pareto reports.

    With ``ray.address`` the driver joins the cluster first (its nodes size the search and must all reach the
    storage: checked before anything is written to MLflow) and only disconnects at the end."""
    t0 = time.monotonic()
    with contextlib.ExitStack() as joined:
        if plan.ray_address:
            joined.enter_context(ray_runtime(address=plan.ray_address))
            plan = _join_cluster(plan)
        return _execute(plan, t0=t0)


def _join_cluster(plan: SearchPlan) -> SearchPlan:
    """The plan on the cluster Ray is connected to: storage checked on each node that can run a trial, concurrency
    counted over those nodes unless ``concurrency=`` was given. Raises :class:`UserError` before any trial."""
    per_trial = _per_trial(plan)
    nodes = alive_nodes()
    runners = trial_nodes(nodes, cpu_per_trial=per_trial["cpu"], gpu_per_trial=per_trial["gpu"])
    if not runners:
        raise UserError(f"ray.address={plan.ray_address}: no node of the cluster has the {per_trial['cpu']:g} CPU(s) "
                        f"and {per_trial['gpu']:g} GPU(s) a trial takes (budget.cpu_per_trial, budget.gpu_per_trial); "
                        f"nodes: " + ", ".join(f"{n.ip} {n.cpus:g} CPU {n.gpus:g} GPU" for n in nodes))
    check_storage_shared(plan.storage, runners)
    concurrency = plan.concurrency if plan.concurrency_given else trial_slots(
        runners, cpu_per_trial=per_trial["cpu"], gpu_per_trial=per_trial["gpu"])
    print(f"Ray cluster {plan.ray_address}: {len(nodes)} nodes, {len(runners)} run trials "
          f"({sum(n.cpus for n in runners):g} CPUs, {sum(n.gpus for n in runners):g} GPUs); storage {plan.storage}",
          flush=True)
    return dataclasses.replace(plan, concurrency=concurrency)


def _per_trial(plan: SearchPlan) -> dict[str, float]:
    """The Ray resources one trial takes."""
    return {"cpu": plan.budget.cpu_per_trial, "gpu": plan.budget.gpu_per_trial if plan.hardware == "cuda" else 0}


def _execute(plan: SearchPlan, *, t0: float) -> SearchSummary:
    _announce(plan)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    with SearchRun(tracking_uri=plan.tracking_uri, experiment=plan.experiment, name=plan.name,
                   params=_parent_params(plan), tags={"attnas.space": plan.space.name},
                   may_change=_MAY_CHANGE_ON_RESUME) as search:
        if search.resumed:
            _announce_resume(plan, search)
        _record_data(plan, search=search)
        tracker = MlflowTrialCallback(client=search.client, experiment=search.experiment_id,
                                      parent_run_id=search.run_id, search_name=plan.name,
                                      full_epochs=plan.budget.epochs, existing=search.existing,
                                      constraints=plan.constraints)
        controls = plan.space.control_archs(base=plan.base_arch)
        searched = search.existing_runs(role="trial")
        printer = ProgressPrinter(total_trials=plan.budget.trials + len(controls), full_epochs=plan.budget.epochs,
                                  constraints=plan.constraints, seen=searched.keys(), ended=ended_trials(searched))
        searcher = StudySearcher(space=plan.space, base=plan.base_arch, storage=plan.study_storage,
                                 study_name=plan.name, sampler=plan.sampler, seed=plan.seed,
                                 trials=plan.budget.trials, full_epochs=plan.budget.epochs,
                                 constraints=plan.constraints, controls=controls, announce=say)
        search_data = dataclasses.replace(plan.data, test_x=None, test_y=None)  # the search never sees the test split
        settings = dataclasses.replace(plan.trial_settings,
                                       reference_latency_ms=_reference_latency(plan, search, controls["plain"]))
        trainable = tune.with_parameters(with_faults(train_architecture, faults=plan.faults), data=search_data,
                                         settings=settings, latency_reference=plan.latency_reference)
        per_trial = _per_trial(plan)
        local_ray = (contextlib.nullcontext() if plan.ray_address else  # on a cluster: joined already (execute)
                     ray_runtime(num_cpus=max(os.cpu_count() or 1, plan.concurrency * plan.budget.cpu_per_trial)))
        with local_ray:
            quiet_trial_failures()
            results = run_tuner(
                trainable=trainable, resources=per_trial, experiment_dir=storage.join(plan.storage, plan.name),
                searcher=searcher,
                scheduler=make_scheduler(full_epochs=plan.budget.epochs, grace_period=plan.asha_grace_period,
                                         reduction_factor=plan.asha_reduction_factor),
                num_samples=plan.budget.trials + len(controls), concurrency=plan.concurrency,
                callbacks=[tracker, printer])
            print("Computing the Pareto front over the full-budget trials ...", flush=True)
            _stall_for_tests()
            summary = _summarise(plan, results, tracker=tracker, search=search, t0=t0)
            confirmed = (_confirm(plan, search=search, front=summary.front, controls=controls, resources=per_trial)
                         if plan.confirm_top_k and summary.front else None)
        if confirmed is not None:  # after Ray has shut down (or, on a cluster, its trials ended): nothing else runs
            candidates, confirm_results = confirmed
            print("Measuring the latency of each confirmed architecture alone ...", flush=True)
            latency = measure_alone(candidates, probe=plan.trial_settings.probe, input_shape=plan.data.image_shape,
                                    device=plan.hardware, threads=plan.budget.cpu_per_trial)
            summary = _record_confirmation(
                summary, search=search, rows=summarise_confirmation(confirm_results, candidates=candidates,
                                                                    latency_ms=latency))
        summary = _write_reports(plan, search=search, summary=summary)
        if search.resumed and (stale := close_stale_trial_runs(search.client, experiment=search.experiment_id,
                                                                parent_run_id=search.run_id)):
            print(f"Closed {stale} trial run(s) the crash cut off before Ray recorded them (status KILLED).")
        summary = dataclasses.replace(summary, wall_s=time.monotonic() - t0)
        search.log_metrics({"wall_s": summary.wall_s})
    _print_summary(summary, plan=plan)
    return summary


def _confirm(plan: SearchPlan, *, search: SearchRun, front: list[dict[str, Any]], controls: dict[str, ArchConfig],
             resources: dict[str, float]) -> tuple[list[Candidate], tune.ResultGrid]:
    """The confirmation runs (search.confirmation): every control and the top_k front architectures, each trained
    from scratch on fresh seeds and scored on the test split; needs Ray running."""
    candidates = pick_candidates(front=front, controls=controls, top_k=plan.confirm_top_k)
    seeds = confirmation_seeds(search_seed=plan.seed, count=plan.confirm_seeds)
    print(f"\nConfirmation: {len(candidates)} architectures ({len(controls)} controls and "
          f"{len(candidates) - len(controls)} from the front) x {len(seeds)} seeds ({', '.join(map(str, seeds))}), "
          f"trained from scratch and scored on the official test split", flush=True)
    tracker = MlflowTrialCallback(client=search.client, experiment=search.experiment_id, parent_run_id=search.run_id,
                                  search_name=plan.name, full_epochs=plan.budget.epochs, existing=search.existing,
                                  role="confirm")
    confirming = search.existing_runs(role="confirm")
    printer = ProgressPrinter(total_trials=len(candidates) * len(seeds), full_epochs=plan.budget.epochs,
                              seen=confirming.keys(), ended=ended_trials(confirming))
    results = run_confirmation(candidates=candidates, seeds=seeds, data=plan.data, settings=plan.trial_settings,
                               experiment_dir=storage.join(plan.storage, plan.name, "confirm"), resources=resources,
                               concurrency=plan.concurrency, callbacks=[tracker, printer])
    return candidates, results


def _reference_latency(plan: SearchPlan, search: SearchRun, plain: ArchConfig) -> float | None:
    """The plain backbone's batch-1 latency (ms) measured alone at search start, before Ray starts (kept on the
    parent run, so a resumed search ranks with the same scale); None with latency.reference=false."""
    if not plan.latency_reference:
        return None
    tags = search.client.get_run(search.run_id).data.tags
    if REFERENCE_LATENCY_TAG in tags:
        return float(tags[REFERENCE_LATENCY_TAG])
    ms = measure_alone([Candidate(name="plain", arch=plain, control=True)], probe=plan.trial_settings.probe,
                       input_shape=plan.data.image_shape, device=plan.hardware,
                       threads=plan.budget.cpu_per_trial)["plain"]
    search.client.set_tag(search.run_id, REFERENCE_LATENCY_TAG, repr(ms))  # full precision: resume reads it back
    print(f"Plain backbone alone: {ms:.3f} ms at batch 1; the search ranks latency_norm_ms = latency_rel x {ms:.3f}",
          flush=True)
    return ms


def _record_data(plan: SearchPlan, *, search: SearchRun) -> None:
    """What the models' input is (search.outcomes.DATA_JSON on the parent run): export hands it to the user."""
    data = plan.data
    info = {"dataset": plan.space.dataset, "root": plan.data_root, "image_shape": list(data.image_shape),
            "mean": list(data.mean), "std": list(data.std), "classes": list(data.classes)}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / Path(DATA_JSON).name
        path.write_text(json.dumps(info, indent=1))
        search.log_artifacts([path], folder=str(Path(DATA_JSON).parent))


def _record_confirmation(summary: SearchSummary, *, search: SearchRun, rows: list[Confirmed]) -> SearchSummary:
    """Put the confirmed table on the parent run (confirmed.csv, verdict tags, metrics) and into the summary."""
    verdict = confirmation_sentence(rows)
    with tempfile.TemporaryDirectory() as folder:
        search.log_artifacts([write_confirmed_csv(rows, Path(folder) / CONFIRMED_CSV)], folder="confirmation")
    search.client.set_tag(search.run_id, VERDICT_TAG, verdict)
    search.log_metrics({f"confirmed.{row.name}.test_acc_mean": row.mean for row in rows if row.mean is not None})
    return dataclasses.replace(summary, confirmed=rows, verdict=verdict)


# Parent-run params that may differ when a search is resumed (they do not change what the search computes).
_MAY_CHANGE_ON_RESUME = ("concurrency",)


def _parent_params(plan: SearchPlan) -> dict[str, Any]:
    return {"space": plan.space.name, "sampler": plan.sampler, "seed": plan.seed, "hardware": plan.hardware,
            "concurrency": plan.concurrency, "asha_grace_period": plan.asha_grace_period,
            "asha_reduction_factor": plan.asha_reduction_factor, "dataset": plan.space.dataset,
            **({"data.root": plan.data_root} if plan.data_root else {}),
            "data.image_shape": "x".join(str(d) for d in plan.data.image_shape),
            **{f"constraints.{k}": v for k, v in asdict(plan.constraints).items()},
            **({"faults.rate": plan.faults.rate, "faults.kind": plan.faults.kind} if plan.faults.rate else {}),
            "confirm.top_k": plan.confirm_top_k, "confirm.seeds": plan.confirm_seeds,
            **{f"budget.{k}": v for k, v in asdict(plan.budget).items()}}


def _announce_resume(plan: SearchPlan, search: SearchRun) -> None:
    searched, confirming = search.existing_runs(role="trial"), search.existing_runs(role="confirm")
    ended = len(ended_trials(searched))
    total = plan.budget.trials + len(plan.space.control_archs(base=plan.base_arch))
    print(f"Resuming search {plan.name}: {ended} of {total} trials (controls included) had finished, "
          f"{len(searched) - ended} were cut off (Ray restarts those it had recorded)"
          + (f"; {len(ended_trials(confirming))} confirmation runs had finished" if confirming else ""), flush=True)


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
    print(f"Watch the study live:  {study_hint(storage=plan.study_storage)}", flush=True)


def _summarise(plan: SearchPlan, results: tune.ResultGrid, *, tracker: MlflowTrialCallback, search: SearchRun,
               t0: float) -> SearchSummary:
    rows, counts = [], {outcome: 0 for outcome in Outcome}
    for result in results:
        metrics = result.metrics or {}
        outcome = trial_outcome(metrics, full_epochs=plan.budget.epochs, error=result.error is not None)
        counts[outcome] += 1
        if outcome is Outcome.COMPLETED:
            trial_id = metrics["trial_id"]
            rows.append({"trial_id": trial_id, "run_id": tracker.run_ids.get(trial_id, ""),
                         "control": result.config.get("control") or "", "arch_json": result.config["arch"],
                         "val_acc": float(metrics["val_acc"]), "latency_ms": float(metrics["latency_ms"]),
                         LATENCY_OBJECTIVE: float(metrics[LATENCY_OBJECTIVE]),
                         "params_m": float(metrics["params_m"]), "flops_g": float(metrics["flops_g"]),
                         "arch": str(ArchConfig.from_dict(result.config["arch"]))})
    study = open_study(storage=plan.study_storage, name=plan.name)
    front_ids = {t.user_attrs.get(RAY_TRIAL_ATTR) for t in study.best_trials}  # constraint-aware, from Optuna
    duplicates = sum(DUPLICATE_ATTR in t.user_attrs for t in study.get_trials(deepcopy=False))
    for row in rows:
        row["pareto"] = row["trial_id"] in front_ids
        if row["run_id"]:
            search.set_trial_tag(row["run_id"], PARETO_TAG, "true" if row["pareto"] else "false")
    wall_s = time.monotonic() - t0
    summary = SearchSummary(
        name=plan.name, parent_run_id=search.run_id, experiment_id=search.experiment_id, trials=len(results),
        completed=len(rows), rows=rows,
        early_stopped=counts[Outcome.EARLY_STOPPED], failed=counts[Outcome.FAILED],
        rejected=counts[Outcome.REJECTED], duplicates=duplicates,
        front=sorted((r for r in rows if r["pareto"]), key=lambda r: r[LATENCY_OBJECTIVE]), wall_s=wall_s)
    search.log_metrics({"trials": summary.trials, "trials_completed": summary.completed,
                        "trials_early_stopped": summary.early_stopped, "trials_failed": summary.failed,
                        "trials_rejected": summary.rejected, "proposals_duplicate": duplicates,
                        "front_size": len(summary.front), "wall_s": wall_s})
    return summary


def _write_reports(plan: SearchPlan, *, search: SearchRun, summary: SearchSummary) -> SearchSummary:
    """After the search and its confirmation: pareto.csv and pareto.png under pareto/ and the interactive report.html
    at the top of the parent run's artifacts (dashboards.write_report, from the study, the trial runs and the
    confirmed table); returns the summary with the placement insight in words and where the report is."""
    print("Writing the search report ...", flush=True)
    title = f"{plan.name}: val_acc vs {LATENCY_OBJECTIVE} ({plan.budget.backbone}, {plan.space.dataset})"
    data = collect_report_data(
        study=open_study(storage=plan.study_storage, name=plan.name), client=search.client,
        experiment_id=search.experiment_id, parent_run_id=search.run_id, num_stages=plan.space.num_stages,
        types=[kind for stage in plan.space.stages for kind in stage.types], title=title,
        run_url=lambda run_id: run_url(tracking_uri=plan.tracking_uri, experiment_id=search.experiment_id,
                                       run_id=run_id),
        experiment_url=experiment_url(tracking_uri=plan.tracking_uri, experiment_id=search.experiment_id),
        confirmed=summary.confirmed, verdict=summary.verdict)
    with tempfile.TemporaryDirectory() as folder:
        search.log_artifacts(write_pareto_report(summary.rows, folder=folder, title=title), folder="pareto")
        search.log_artifacts([write_report(data, folder=folder)], folder="")
    where = search.client.get_run(search.run_id).info.artifact_uri.rstrip("/") + "/report.html"
    where = where[len("file://"):] if where.startswith("file://") else where
    return dataclasses.replace(summary, insight=insight_lines(data), report=where)


def _print_summary(summary: SearchSummary, *, plan: SearchPlan) -> None:
    print(f"\nSearch {summary.name} finished in {summary.wall_s:.0f}s: {summary.trials} trials, "
          f"{summary.completed} completed, {summary.early_stopped} stopped early by ASHA, {summary.failed} failed"
          + (f", {summary.rejected} rejected by the constraints" if summary.rejected else "")
          + f"; {summary.trials} distinct architectures trained"
          + (f", {summary.duplicates} repeated proposals reused their earlier result." if summary.duplicates else "."))
    if summary.front:
        print(f"Pareto front ({len(summary.front)} of {summary.completed} full-budget trials, {plan.budget.backbone}):")
        print(format_table(summary.front, [("trial_id", "trial", "s"), ("val_acc", "val_acc", ".4f"),
                                           (LATENCY_OBJECTIVE, LATENCY_OBJECTIVE, ".2f"), ("latency_ms", "latency_ms", ".2f"),
                                           ("params_m", "params_m", ".3f"),
                                           ("flops_g", "flops_g", ".3f"), ("control", "control", "s"),
                                           ("arch", f"stages 0..{plan.space.num_stages - 1}", "s")]))
    else:
        print("No trial completed its full budget, so there is no Pareto front (see the failed runs in MLflow).")
    if summary.confirmed:
        print(f"\nConfirmed on the official test split ({plan.space.dataset}), retrained from scratch per seed; "
              f"test_acc mean ± std, 95% interval of the paired difference to the plain backbone:")
        print(format_table([_confirmed_row(row) for row in summary.confirmed], [
            ("name", "confirmed", "s"), ("seeds", "seeds", "s"), ("test_acc", "test_acc", "s"),
            ("diff", "diff vs plain [95% CI]", "s"), ("verdict", "verdict", "s"), ("latency_ms", "latency_ms", ".2f"),
            ("arch", f"stages 0..{plan.space.num_stages - 1}", "s")]))
        print(f"\n{summary.verdict}")
    if summary.insight:
        print("\nPlacement insight (hints from few trials, not significant effects; the report has the heatmaps):")
        print("\n".join(f"  {line}" for line in summary.insight))
    if summary.report:
        print(f"\nSearch report (opens offline): {summary.report}")
    print(f"MLflow UI:  {ui_hint(tracking_uri=plan.tracking_uri)}")
    print(f"  the runs table with the search's columns: "
          f"{experiment_url(tracking_uri=plan.tracking_uri, experiment_id=summary.experiment_id)}")
    print(f"Optuna study:  {study_hint(storage=plan.study_storage)}")
    if summary.front:
        what = "the confirmed pick" if summary.confirmed else "the most accurate front model"
        print(f"Export {what}:  python -m search.export", flush=True)


def _confirmed_row(row: Confirmed) -> dict[str, Any]:
    def signed(value: float | None) -> str:
        return "n/a" if value is None else f"{value:+.4f}"

    return {"name": row.name, "seeds": str(row.n), "verdict": str(row.verdict), "latency_ms": row.latency_ms,
            "arch": row.arch_text,
            "test_acc": "n/a" if row.mean is None else f"{row.mean:.4f} ± {row.std or 0:.4f}",
            "diff": "" if row.verdict == "reference" else
            f"{signed(row.diff_mean)} [{signed(row.diff_ci_low)}, {signed(row.diff_ci_high)}]"}


@hydra.main(config_path=None, config_name="run", version_base=None)  # search.config.RunConfig
def _hydra_main(cfg: DictConfig) -> None:
    with exit_on_bad_input():
        run(cfg)


def main(argv: list[str] | None = None) -> None:
    """``python -m search.run ARGS``: compose the config from the overrides (:mod:`search.cli`) and run."""
    cli.main(run, _hydra_main, config_name="run", argv=argv)


if __name__ == "__main__":
    main()
